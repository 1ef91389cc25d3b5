"""The occluded reading: a training tile with a sprite drawn over part of it (opt-in).

A sprite is drawn with its own palette over the background, so in a cell it stands on, its
pixels are mostly colours the training tile's recolouring does not produce, in one blob that
comes in from the cell's border. The **occluded distance** from training tile t to query q
(aligned, one flip) is computed as follows, with σ always a one-to-one map from t's colours to
q's chosen greedily (the largest co-occurrence count first, then the next among colours still
free):

1. σ from the pixels still counted (at first all of them, the colour pairs shown by the half or
   strip that found the candidate taking precedence); **foreign** pixels are those whose query
   colour is not in σ's image — colours t cannot explain.
2. The **excused** pixels: the foreign ones, grown GROW = 2 steps (8-way) through differing
   pixels, so a sprite's outline in a colour the tile also uses goes with its body. Steps 1–2
   run twice (the second σ from the pixels left visible). Growing further finds more sprites
   but also excuses the tile's own differences seen through the sprite's transparent pixels
   (`make bench`, real_reuse on 304 sprite cells: no growth 59 % found at precision 1.0, 2 steps
   66 % at 0.96, unbounded 73 % at 0.91 — and then a brick with its mortar lines moved, beside
   a blob of new colour, passes too).
3. The distance is the differing pixels outside the excused ones under a last σ from them.

A pair **matches** when that distance is ≤ K and the visible part still holds the evidence:
at least MIN_VISIBLE visible pixels, at least MIN_DRAWING of them not t's most common visible
colour (a sky is nobody's drawing), some foreign pixel, the excused blob touching the cell's
border (a 16×16 sprite on a 16×16 cell always does) and fitting a box of at most MAX_BOX
pixels (a sprite's part of a cell is a corner or band of it; a blob spread over the whole cell
is a different drawing). And the search drops a match whose excused pixels (¾ of them or more)
lie in one half of the query that some training tile shows in that same half, partition for
partition: that is two training halves put side by side on the grid, not a tile under a
sprite (`_collage`).

**At most MAX_EXCUSED = 48 pixels are excused** (`search`): a larger occluder is left to the sprite
reading (`nesgan.tiles.sprites`), which asks that training screens show the sprite. Measured
(`make bench`): with the limit the planted benchmark's precision with `--under-sprites` went back
from 0.966 (recombined halves of two training tiles read as a tile under a 128-pixel "sprite")
to 0.998 for this reading, and on real reuse the limit cost nothing once the sprite reading
followed (sprite recall 0.96 with both, 0.39 with this reading alone).

What the other checks cost and catch, measured before that limit (`make bench`): on the planted benchmark's negatives (heavy
edits, recombined halves of two training tiles, held-out tiles) the reading alone flags 242 of
them, mostly recombined halves whose second half is in colours the first cannot explain; the
collage check takes that to 108, the box to 60, and reading at most STRIP_CAP = 100 training
tiles per key (not 400) to 0.966 precision with the reading on (0.998 off), while on real
reuse's 304 sprite cells these together lose 2 of the 200 found. Also asking that half of each
of t's colours stay visible was measured and dropped: it cost a tenth of the sprites
found (most of those covering 65–128 pixels) for a few false flags.

A reading that ignored *any* sprite-sized corner rectangle (not only foreign colours) caught more
sprites but also tiles that merely share half a drawing with a training tile in the same colours
(`make bench`, real_reuse); one-to-one σ and foreign colours are what keep those out. Merges
under a sprite are not covered (σ is one-to-one).

**Candidates.** Training tiles are indexed by the colour partition of their two halves each way
and of their 4-pixel edge strips (top, bottom, left, right): a sprite that leaves 8 columns or
rows of the cell clean lets a half find the tile, one that leaves 4 lets a strip find it. A
partition shared by more than STRIP_CAP training tiles, or a flat half or strip, is no evidence
and is not read (a sparse one is: requiring 4 pixels of drawing per key lost a sixth of the
sprites found, those over a starry sky's few dots).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nesgan.tiles.distance import LABEL_CAP, PIXELS, frequency_labels, unique_sorted
from nesgan.tiles.search import label_weights, partition_hashes
from nesgan.tiles.tile import TILE, flips

MIN_VISIBLE = 128  # pixels the sprite must leave visible: at least half the tile is evidence
MAX_BOX = 192  # the excused pixels' bounding box: a sprite's part of the cell leaves a quarter clear
MIN_DRAWING = 8  # visible pixels off the most common visible colour: a drawing, not a sky
MIN_BLOCK_DRAWING = 1  # a flat half or strip is no key (sparse ones are: a starry sky's few dots)
STRIP_CAP = 100  # training tiles read per key: a partition shared by more says little
CHUNK = 20000  # pairs decided at a time
COLLAGES = True  # reject a match whose excused half is itself a training tile's half
GROW = 2  # pixels the excused blob grows through differing pixels: a sprite's outline (measured)
MAX_EXCUSED = 48  # a larger occluder is left to the sprite reading (nesgan.tiles.sprites; measured)
_S = slice(None)
REGIONS = (  # top, bottom, left, right halves; top, bottom, left, right 4-pixel strips
    (slice(0, 8), _S), (slice(8, 16), _S), (_S, slice(0, 8)), (_S, slice(8, 16)),
    (slice(0, 4), _S), (slice(12, 16), _S), (_S, slice(0, 4)), (_S, slice(12, 16)),
)


def _greedy_map(co: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, L, L) co-occurrence counts [t label, q label] -> (σ (P, L) q label per t label, −1
    where unmatched; matched pixel count (P,)): greedy one-to-one, largest count first."""
    p, n, _ = co.shape
    m = co.astype(np.int32)  # a copy, struck out as pairs are taken
    flat = m.reshape(p, n * n)
    sig = np.full((p, n), -1, np.int64)
    total = np.zeros(p, np.int64)
    live = np.arange(p)
    for _ in range(n):
        j = flat[live].argmax(1)
        v = flat[live, j]
        more = v > 0
        live, j, v = live[more], j[more], v[more]
        if not len(live):
            break
        a, b = j // n, j % n
        sig[live, a] = b
        total[live] += v
        m[live, a, :] = 0
        m[live, :, b] = 0
    return sig, total


def _cooccur(codes: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """(P, 256) pair codes (pair · L² + t label · L + q label) and (P, 256) bool -> (P, L, L)
    counts over the kept pixels."""
    p = len(codes)
    return np.bincount(codes[keep], minlength=p * LABEL_CAP * LABEL_CAP).reshape(p, LABEL_CAP, LABEL_CAP)


def _grow(seed: np.ndarray, through: np.ndarray) -> np.ndarray:
    """(P, 16, 16) bool: `seed` grown 8-way through `through` pixels, GROW steps."""
    out = seed.copy()
    for _ in range(GROW):
        d = out.copy()
        d[:, 1:] |= out[:, :-1]
        d[:, :-1] |= out[:, 1:]
        d2 = d.copy()
        d2[:, :, 1:] |= d[:, :, :-1]
        d2[:, :, :-1] |= d[:, :, 1:]
        new = out | (d2 & through)
        if (new == out).all():
            break
        out = new
    return out


@dataclass
class Occluded:
    """The occluded reading of aligned pairs."""

    distance: np.ndarray  # (P,) differing pixels outside the excused ones
    excused: np.ndarray  # (P, 16, 16) bool: the pixels not counted (where the sprite stands)
    matches: np.ndarray  # (P,) distance ≤ K and the visible part holds the evidence


def occluded_reading(q_tiles: np.ndarray, t_tiles: np.ndarray, k: int, seed: np.ndarray | None = None) -> Occluded:
    """The occluded distance and verdict (module docstring) for aligned (P, 16, 16) pairs, no
    flips. Tiles with more than LABEL_CAP colours have their rarest ones lumped together.

    `seed` (P, 16, 16) bool: pixels known to be clear of the sprite (the half or strip that found
    the candidate); the first map pairs the colours they show first, then the rest."""
    p = len(q_tiles)
    if seed is None:
        seed = np.zeros((p, TILE, TILE), bool)
    dist = np.full(p, PIXELS, np.int64)
    excused = np.zeros((p, TILE, TILE), bool)
    ok = np.zeros(p, bool)
    for s in range(0, p, CHUNK):
        sl = slice(s, s + CHUNK)
        d, e, m = _reading_chunk(np.asarray(q_tiles[sl]), np.asarray(t_tiles[sl]), k,
                                 np.asarray(seed[sl]).reshape(-1, PIXELS))
        dist[sl], excused[sl], ok[sl] = d, e, m
    return Occluded(dist, excused, ok)


def _reading_chunk(q_tiles: np.ndarray, t_tiles: np.ndarray, k: int, seed: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = len(q_tiles)
    q_lab, _ = frequency_labels(q_tiles)
    t_lab, _ = frequency_labels(t_tiles)
    q_lab, t_lab = q_lab.astype(np.intp), t_lab.astype(np.intp)
    rows = np.arange(p)[:, None]
    codes = rows * (LABEL_CAP * LABEL_CAP) + t_lab * LABEL_CAP + q_lab  # (P, 256)
    keep = np.ones((p, PIXELS), bool)
    excl = ~keep
    any_foreign = np.zeros(p, bool)
    for step in range(2):
        co = _cooccur(codes, keep)
        if step == 0 and seed.any():  # pairs the clear pixels show outrank all others
            co = co + (PIXELS + 1) * _cooccur(codes, seed)
        sig, _ = _greedy_map(co)
        image = np.zeros((p, LABEL_CAP + 1), bool)
        image[np.broadcast_to(rows, sig.shape), np.where(sig >= 0, sig, LABEL_CAP)] = True
        foreign = ~image[rows, q_lab]  # (P, 256)
        any_foreign = foreign.any(1)
        diff = np.take_along_axis(sig, t_lab, 1) != q_lab
        excl = _grow(foreign.reshape(p, TILE, TILE), diff.reshape(p, TILE, TILE)).reshape(p, PIXELS)
        keep = ~excl
    _, matched = _greedy_map(_cooccur(codes, keep))
    visible = keep.sum(1)
    dist = visible - matched
    shown = np.bincount((rows * LABEL_CAP + t_lab)[keep], minlength=p * LABEL_CAP).reshape(p, LABEL_CAP)
    drawing = visible - shown.max(1)
    e2 = excl.reshape(p, TILE, TILE)
    touch = e2[:, 0].any(1) | e2[:, -1].any(1) | e2[:, :, 0].any(1) | e2[:, :, -1].any(1)
    rows_hit, cols_hit = e2.any(2), e2.any(1)  # (P, 16) each
    height = TILE - rows_hit.argmax(1) - rows_hit[:, ::-1].argmax(1)
    width = TILE - cols_hit.argmax(1) - cols_hit[:, ::-1].argmax(1)
    boxed = height * width <= MAX_BOX
    ok = (dist <= k) & (visible >= MIN_VISIBLE) & (drawing >= MIN_DRAWING) & any_foreign & touch & boxed
    return dist, e2, ok


@dataclass
class OccludedFound:
    """What the occlusion search found per query."""

    train_id: np.ndarray  # (Q,) best matching training tile (-1: none)
    distance: np.ndarray  # (Q,) its occluded distance (PIXELS where none)
    flip: np.ndarray  # (Q,) flip of the query that matches it
    excused: np.ndarray  # (Q, 16, 16) bool: pixels not counted, in the query's own orientation
    matches: np.ndarray  # (Q,) a training tile matched under the occluded reading


_REGION_MASKS = np.zeros((len(REGIONS), TILE, TILE), bool)
for _i, (_ys, _xs) in enumerate(REGIONS):
    _REGION_MASKS[_i, _ys, _xs] = True


class OcclusionSearch:
    """Training tiles indexed by the colour partitions of their halves and edge strips
    (module docstring); `search` decides each candidate with `occluded_reading`."""

    def __init__(self, tiles: np.ndarray, k: int):
        self.k = int(k)
        self.tiles = np.ascontiguousarray(np.asarray(tiles, dtype=np.uint8))
        lab, _ = frequency_labels(self.tiles)
        lab = lab.reshape(-1, TILE, TILE)
        self.hash: list[np.ndarray] = []
        self.ids: list[np.ndarray] = []
        for ys, xs in REGIONS:
            h, _ = partition_hashes(label_weights(lab[:, ys, xs].reshape(len(lab), -1)), coarse=False)
            order = np.argsort(h, kind="stable")
            self.hash.append(h[order])
            self.ids.append(order.astype(np.int32))  # 4 bytes a tile per key: 32 MB at 10⁶

    def candidates(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Quadruples (query, flip, training id, region) sharing a half or strip partition
        (region: the first of REGIONS that found the pair)."""
        q, m = len(queries), len(self.tiles)
        if not q or not m:
            e = np.zeros(0, np.int64)
            return e, e, e, e
        keys = []
        lab, _ = frequency_labels(queries)
        for f, lf in enumerate(flips(lab.reshape(-1, TILE, TILE))):
            for r, (ys, xs) in enumerate(REGIONS):
                block = lf[:, ys, xs].reshape(q, -1)
                counts = np.zeros((q, LABEL_CAP), np.int64)
                np.add.at(counts, (np.broadcast_to(np.arange(q)[:, None], block.shape), block), 1)
                h, _ = partition_hashes(label_weights(block), coarse=False)
                lo = np.searchsorted(self.hash[r], h, "left")
                n = np.searchsorted(self.hash[r], h, "right") - lo
                n[(n > STRIP_CAP) | (block.shape[1] - counts.max(1) < MIN_BLOCK_DRAWING)] = 0
                if not n.any():
                    continue
                qq = np.repeat(np.arange(q), n)
                start = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
                pair = (qq * 4 + f).astype(np.int64) * m + self.ids[r][start + np.arange(len(qq))]
                keys.append(pair * len(REGIONS) + r)
        if not keys:
            e = np.zeros(0, np.int64)
            return e, e, e, e
        keys = unique_sorted(np.concatenate(keys))
        pair, region = keys // len(REGIONS), keys % len(REGIONS)
        first = np.r_[True, pair[1:] != pair[:-1]]  # sorted: the lowest region of each pair
        pair, region = pair[first], region[first]
        return pair // m // 4, pair // m % 4, pair % m, region

    def _collage(self, aligned: np.ndarray, excused: np.ndarray) -> np.ndarray:
        """(P, 16, 16) queries (aligned with their match) and their excused pixels -> (P,) True
        where every excused pixel lies in one half of the query whose colour partition some
        training tile shows in that same half: the 'sprite' is training art put beside the
        match on the grid — two training halves side by side, not a tile under a sprite."""
        p = len(aligned)
        lab, _ = frequency_labels(aligned)
        lab = lab.reshape(p, TILE, TILE)
        out = np.zeros(p, bool)
        for r, (ys, xs) in enumerate(REGIONS[:4]):
            outside = excused.copy()
            outside[:, ys, xs] = False
            inside = outside.sum((1, 2)) * 4 <= excused.sum((1, 2))  # ≥ 3/4 of them in this half
            if not inside.any():
                continue
            h, _ = partition_hashes(label_weights(lab[inside][:, ys, xs].reshape(int(inside.sum()), -1)), coarse=False)
            at = np.minimum(np.searchsorted(self.hash[r], h), len(self.hash[r]) - 1)
            out[np.flatnonzero(inside)[self.hash[r][at] == h]] = True
        return out

    def search(self, queries: np.ndarray) -> OccludedFound:
        """For each (Q, 16, 16) query, the matching candidate with the fewest excused pixels
        (ties: the smaller distance, then the earlier flip and lower id)."""
        queries = np.ascontiguousarray(np.asarray(queries, dtype=np.uint8))
        q = len(queries)
        out = OccludedFound(np.full(q, -1, np.int64), np.full(q, PIXELS, np.int64), np.zeros(q, np.int64),
                            np.zeros((q, TILE, TILE), bool), np.zeros(q, bool))
        qq, ff, rr, region = self.candidates(queries)
        if not len(qq):
            return out
        q_flips = flips(queries)
        found = occluded_reading(q_flips[ff, qq], self.tiles[rr], self.k, _REGION_MASKS[region])
        hit = np.flatnonzero(found.matches & (found.excused.reshape(len(qq), -1).sum(1) <= MAX_EXCUSED))
        if COLLAGES and len(hit):
            hit = hit[~self._collage(q_flips[ff[hit], qq[hit]], found.excused[hit])]
        if not len(hit):
            return out
        area = found.excused[hit].reshape(len(hit), -1).sum(1)
        order = hit[np.lexsort((rr[hit], ff[hit], found.distance[hit], area, qq[hit]))]
        firsts = order[np.r_[True, qq[order[1:]] != qq[order[:-1]]]]
        w = qq[firsts]
        out.train_id[w], out.distance[w], out.flip[w] = rr[firsts], found.distance[firsts], ff[firsts]
        out.matches[w] = True
        # the excused pixels back in the query's own orientation (flips are their own inverses)
        for f in range(4):
            sel = ff[firsts] == f
            if sel.any():
                out.excused[w[sel]] = flips(found.excused[firsts[sel]])[f]
        return out
