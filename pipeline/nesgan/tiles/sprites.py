"""The sprite reading: a training tile with a *training sprite* standing on it (part of
`--under-sprites`).

The occluded reading (`nesgan.tiles.occlusion`) looks at one tile: it may only excuse a small
blob in colours the training tile cannot explain, and it needs a clean half or strip to find the
tile at all. A sprite that covers half the cell, or whose outline shares a colour with the tile,
is out of its reach. This reading uses what the training *screens* show: NES sprites move, so the
critter standing on a generated cell was seen in training at some pixel offset, over some other
background. A generated cell q **matches** when

1. a window W of a training screen at a pixel offset off the 16-px grid (a place where a sprite
   stood) agrees with q on a set S of pixels under a one-to-one colour map (W's flips allowed):
   the sprite, seen before;
2. a training tile t (flips and a many-to-one recolouring allowed) explains q everywhere outside
   S but for at most K pixels, and explains at least MIN_TILE pixels of q with at least
   MIN_DRAWING of them off its most common colour: a tile, not a sky;
3. the pixels only W explains (the sprite's part of the cell, P) are more than K (fewer would
   only stretch K: on the demo's generated screens they let 2-pixel "sprites" through) and lie
   for the most part (ANCHORED) where W was *found*: inside the 3×3 blocks of q that matched
   W's blocks, grown by one pixel. A window found through two small blocks elsewhere does not get to explain a large flat
   region (on the museum's held-out games that coincidence flagged 3 % of clean cells).

**Finding W.** Every 3×3 block of every training screen (at every pixel position) is indexed
by its colour partition (the pattern up to a recolouring); a partition shown more than
POSTING_CAP times, or a flat block, is no evidence. Each 3×3 block of q (and of its flips) votes
for the window positions its matches imply; windows with at least MIN_VOTES votes are
candidates, the TOP_WINDOWS best first. W's colours are paired with q's greedily, the pairs
seen where W's blocks matched first (else a sprite's outline drawn in the colour of W's own sky
loses its pair to that sky).

**Finding t.** Candidates are the tiles of the training screens where the sprite windows were
found (a sprite and the ground it walks on are seen together; at most POOL_CAP tiles, the
screens with the most votes first) and the occluded reading's half/strip candidates; each is
read against q with S not counted (first on an eighth of those pixels: no map explains all of
them better than the best map explains a part, so a candidate already over K there is out).

**Collages.** A "sprite" that lies (¾ of it or more) in one half of q, where some training tile
shows that half the same way, is two training halves side by side, not a tile under a sprite:
no match (the occluded reading's `_collage`). On the planted benchmark's recombined halves this
took the precision with `--under-sprites` from 0.977 to 0.993, for one sprite cell in 304.

Measured (`make bench`, real_reuse: 8 museum games' screens as training, 304 sprite-covered
cells of new screens): with the occluded reading first, recall 0.957 at precision 0.99 (0.911 /
0.996 on a second museum seed); the block index holds ~50,000 blocks per 224×224 training
screen; a query costs about 5 ms on that museum, more where the sprite's screens hold many
distinct tiles (`occluded_speed`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nesgan.tiles.distance import PIXELS, frequency_labels
from nesgan.tiles.occlusion import OccludedFound, OcclusionSearch, _greedy_map
from nesgan.tiles.tile import TILE, first_positions, flips

BLOCK = 3  # side of the blocks that find sprite windows
POSTING_CAP = 64  # a block partition seen more often than this is no evidence
MIN_VOTES = 2  # blocks that must agree on a window position
TOP_WINDOWS = 16  # windows read per query, most votes first
POOL_CAP = 512  # candidate tiles taken from the screens that show the sprite (cost bound; measured)
MIN_TILE = 96  # pixels the training tile must explain
MIN_DRAWING = 8  # of those, pixels off its most common colour
COLLAGES = True  # reject a sprite that is one half of the cell, as some training tile shows it
ANCHORED = 0.5  # share of the sprite's pixels that must lie where W was found (blocks + 1 px)
_SHIFTS = (np.arange(BLOCK * BLOCK, dtype=np.uint64) * np.uint64(4))


def block_codes(image: np.ndarray) -> np.ndarray:
    """(H, W) colour indices -> (H−2, W−2) uint64: the colour partition of each 3×3 block (the
    position of the first pixel of the same colour, 4 bits a pixel); 0 = a flat block."""
    image = np.asarray(image)
    h, w = image.shape[0] - BLOCK + 1, image.shape[1] - BLOCK + 1
    if h <= 0 or w <= 0:
        return np.zeros((max(h, 0), max(w, 0)), np.uint64)
    view = np.lib.stride_tricks.sliding_window_view(image, (BLOCK, BLOCK)).reshape(h * w, BLOCK * BLOCK)
    out = np.empty(h * w, np.uint64)
    for s in range(0, h * w, 65536):
        first = first_positions(view[s : s + 65536]).astype(np.uint64)
        out[s : s + 65536] = np.bitwise_or.reduce(first << _SHIFTS, axis=1)
    return out.reshape(h, w)


def screen_images(tiles: np.ndarray, cells: np.ndarray, cell_screen: np.ndarray, cell_xy: np.ndarray,
                  screens: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The training screens' gridded areas rebuilt from their cells (tile ids, screen, x/y), and
    the distinct tile ids each one shows. In an image, (0, 0) is a grid corner."""
    images, ids = [], []
    order = np.argsort(cell_screen, kind="stable")
    bounds = np.searchsorted(cell_screen[order], np.arange(screens + 1))
    for s in range(screens):
        sel = order[bounds[s] : bounds[s + 1]]
        if not len(sel):
            images.append(np.zeros((0, 0), np.uint8))
            ids.append(np.zeros(0, np.int64))
            continue
        xy = cell_xy[sel] - cell_xy[sel].min(0)
        img = np.zeros((int(xy[:, 1].max()) + TILE, int(xy[:, 0].max()) + TILE), np.uint8)
        for (x, y), t in zip(xy.tolist(), cells[sel].tolist(), strict=True):
            img[y : y + TILE, x : x + TILE] = tiles[t]
        images.append(img)
        ids.append(np.unique(cells[sel]).astype(np.int64))
    return images, ids


@dataclass
class Window:
    flip: int  # flip of the query whose blocks found it
    screen: int
    y: int
    x: int  # top-left pixel in the screen image
    votes: int
    anchor: np.ndarray  # (16, 16) bool, the query's own orientation: the matched blocks + 1 px


def _greedy_agree(a: np.ndarray, b: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
    """(16, 16) each -> where b equals τ(a) for the one-to-one τ paired greedily, the largest
    co-occurrence first (`occlusion._greedy_map`) — among the pixels of `first` (bool) before all
    others, when given."""
    a_colours, a_lab = np.unique(a, return_inverse=True)
    b_colours, b_lab = np.unique(b, return_inverse=True)
    a_lab, b_lab = a_lab.ravel(), b_lab.ravel()
    n = max(len(a_colours), len(b_colours))
    co = np.zeros((1, n, n), np.int64)
    np.add.at(co[0], (a_lab, b_lab), 1)
    if first is not None:  # a pair seen there outranks every pair seen only elsewhere
        np.add.at(co[0], (a_lab[first.ravel()], b_lab[first.ravel()]), PIXELS + 1)
    sig, _ = _greedy_map(co)
    return (sig[0][a_lab] == b_lab).reshape(a.shape)


def _dilate(mask: np.ndarray) -> np.ndarray:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    grown = out.copy()
    grown[:, 1:] |= out[:, :-1]
    grown[:, :-1] |= out[:, 1:]
    return grown


def _mismatches(lab: np.ndarray, n_lab: int, q_lab: np.ndarray, pixels: np.ndarray, nq: int,
                rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Co-occurrence counts (len(rows), n_lab, nq) of candidate labels `lab[rows]` (< n_lab)
    against the query's labels at `pixels`, and the pixels the best many-to-one map leaves
    unexplained."""
    if not len(rows):
        return np.zeros((0, n_lab, nq), np.int64), np.zeros(0, np.int64)
    r = np.arange(len(rows))[:, None]
    co = np.bincount(((r * n_lab + lab[rows][:, pixels]) * nq + q_lab[None]).ravel(),
                     minlength=len(rows) * n_lab * nq).reshape(len(rows), n_lab, nq)
    return co, len(pixels) - co.max(2).sum(1)


class SpriteSearch:
    """Training screens' 3×3 blocks indexed by partition; `search` applies the sprite reading."""

    def __init__(self, tiles: np.ndarray, screens: list[np.ndarray], screen_tiles: list[np.ndarray],
                 k: int, occlusion: OcclusionSearch | None = None):
        self.k = int(k)
        self.tiles = np.ascontiguousarray(np.asarray(tiles, np.uint8))
        self.screens = screens
        self.screen_tiles = screen_tiles
        self.occlusion = occlusion if occlusion is not None else OcclusionSearch(self.tiles, k)
        codes, where = [], []
        for s, img in enumerate(screens):
            c = block_codes(img)
            if not c.size:
                continue
            yy, xx = np.nonzero(c)
            codes.append(c[yy, xx])
            where.append(np.stack([np.full(len(yy), s), yy, xx], 1).astype(np.int32))
        codes_all = np.concatenate(codes) if codes else np.zeros(0, np.uint64)
        where_all = np.concatenate(where) if where else np.zeros((0, 3), np.int32)
        order = np.argsort(codes_all, kind="stable")
        self.codes, self.where = codes_all[order], where_all[order]

    def windows(self, query: np.ndarray) -> list[Window]:
        """Candidate windows for one (16, 16) query, most votes first (grid ones included)."""
        found: list[Window] = []
        side = TILE - BLOCK + 1
        for f, qf in enumerate(flips(query[None])[:, 0]):
            c = block_codes(qf).ravel()
            lo = np.searchsorted(self.codes, c, "left")
            n = np.searchsorted(self.codes, c, "right") - lo
            n[(c == 0) | (n > POSTING_CAP)] = 0
            if not n.any():
                continue
            by, bx = np.divmod(np.arange(len(c)), side)
            hit = np.repeat(lo - np.r_[0, np.cumsum(n)[:-1]], n) + np.arange(int(n.sum()))
            w = self.where[hit].astype(np.int64)
            rb, cb = np.repeat(by, n), np.repeat(bx, n)
            key = (w[:, 0] * 4096 + (w[:, 1] - rb + 64)) * 4096 + (w[:, 2] - cb + 64)
            uniq, inverse, votes = np.unique(key, return_inverse=True, return_counts=True)
            for j in np.flatnonzero(votes >= MIN_VOTES).tolist():
                s, rest = divmod(int(uniq[j]), 4096 * 4096)
                y, x = divmod(rest, 4096)
                anchor = np.zeros((TILE, TILE), bool)
                for a, b in zip(rb[inverse == j].tolist(), cb[inverse == j].tolist(), strict=True):
                    anchor[a : a + BLOCK, b : b + BLOCK] = True
                anchor = flips(_dilate(anchor)[None])[f, 0]
                found.append(Window(f, s, y - 64, x - 64, int(votes[j]), anchor))
        found.sort(key=lambda w: -w.votes)
        return found[:TOP_WINDOWS]

    def _image(self, w: Window) -> np.ndarray | None:
        img = self.screens[w.screen]
        if w.y < 0 or w.x < 0 or w.y + TILE > img.shape[0] or w.x + TILE > img.shape[1]:
            return None
        return flips(img[w.y : w.y + TILE, w.x : w.x + TILE][None])[w.flip, 0]

    def read(self, query: np.ndarray) -> tuple[int, int, int, np.ndarray, Window] | None:
        """The best sprite reading of one query: (training id, flip, unexplained pixels, the
        sprite's pixels P (16, 16) bool, the window), or None."""
        q = np.asarray(query, np.uint8)
        sprites = []
        for w in self.windows(q):
            if w.y % TILE == 0 and w.x % TILE == 0:
                continue  # on the grid: a background tile, not a sprite
            img = self._image(w)
            if img is None:
                continue
            agree = _greedy_agree(img, q, w.anchor)
            if agree.sum() > self.k:
                sprites.append((w, agree))
        if not sprites:
            return None
        pool, screens, size = [], set(), 0
        for w, _ in sprites:  # the screens that show the sprite, most votes first, up to POOL_CAP tiles
            if w.screen not in screens and size < POOL_CAP:
                screens.add(w.screen)
                pool.append(self.screen_tiles[w.screen])
                size += len(pool[-1])
        pool.append(self.occlusion.candidates(q[None])[2])
        pool_ids = np.unique(np.concatenate(pool)).astype(np.int64)
        if not len(pool_ids):
            return None
        cand = flips(self.tiles[pool_ids]).reshape(-1, PIXELS)  # (4n, 256), flip-major
        n = len(pool_ids)
        lab = frequency_labels(cand.reshape(-1, TILE, TILE))[0].astype(np.int64)
        n_lab = int(lab.max()) + 1
        colour_of = np.zeros((len(cand), n_lab), np.int64)
        colour_of[np.arange(len(cand))[:, None], lab] = cand  # a label's colour (lumped: one of them)
        qv = q.reshape(-1).astype(np.int64)
        q_colours, ql = np.unique(qv, return_inverse=True)
        nq = len(q_colours)
        best = None
        for w, agree in sprites:
            vis = np.flatnonzero(~agree.reshape(-1))
            if not len(vis):
                continue
            # an eighth of the visible pixels first: no map does better on all of them than the
            # best map does on a part, so a candidate already over K there is out
            _, mis = _mismatches(lab, n_lab, ql[vis[::8]], vis[::8], nq, np.arange(len(cand)))
            live = np.flatnonzero(mis <= self.k)
            co, live_mis = _mismatches(lab, n_lab, ql[vis], vis, nq, live)
            keep = live_mis <= self.k
            ok, co, ok_mis = live[keep], co[keep], live_mis[keep]
            if not len(ok):
                continue
            seen = co.sum(2) > 0  # (c, L)
            mapped = np.where(seen, q_colours[co.argmax(2)], colour_of[ok])  # unseen: itself
            explains = np.take_along_axis(mapped, lab[ok], 1) == qv[None]  # (c, 256)
            count = explains.sum(1)
            top = np.zeros(len(ok), np.int64)
            for i in range(len(ok)):
                if count[i]:
                    top[i] = np.bincount(qv[explains[i]], minlength=64).max()
            sprite = agree.reshape(1, -1) & ~explains  # P
            anchored = (sprite & w.anchor.reshape(1, -1)).sum(1) >= ANCHORED * sprite.sum(1)
            good = (count >= MIN_TILE) & (count - top >= MIN_DRAWING) & anchored & (sprite.sum(1) > self.k)
            for i in np.flatnonzero(good).tolist():
                score = (int(count[i]), -int(sprite[i].sum()))
                if best is None or score > best[0]:
                    row = int(ok[i])
                    best = (score, int(pool_ids[row % n]), row // n, int(ok_mis[i]),
                            sprite[i].reshape(TILE, TILE), w)
        if best is None:
            return None
        _, train_id, flip, distance, sprite, window = best
        if COLLAGES and self.occlusion._collage(flips(q[None])[flip], flips(sprite[None])[flip])[0]:
            return None  # the 'sprite' is a training tile's half beside another's: no sprite
        return train_id, flip, distance, sprite, window

    def search(self, queries: np.ndarray) -> tuple[OccludedFound, list[Window | None]]:
        """The sprite reading of each (Q, 16, 16) query (`OccludedFound`: excused = the sprite's
        pixels), and the training-screen window that showed the sprite."""
        queries = np.asarray(queries, np.uint8)
        q = len(queries)
        out = OccludedFound(np.full(q, -1, np.int64), np.full(q, PIXELS, np.int64), np.zeros(q, np.int64),
                            np.zeros((q, TILE, TILE), bool), np.zeros(q, bool))
        where: list[Window | None] = [None] * q
        if not len(self.tiles) or not len(self.codes):
            return out, where
        for i in range(q):
            r = self.read(queries[i])
            if r is None:
                continue
            out.train_id[i], out.flip[i], out.distance[i], out.excused[i], where[i] = r
            out.matches[i] = True
        return out, where
