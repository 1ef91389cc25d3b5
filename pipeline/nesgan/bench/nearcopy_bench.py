"""Near-copy benchmark: flag quality on planted copies, and search speed at scale.

Data (all from the embedded museum, `nesgan.museum.synth`):

* **training tiles**: every tile of a few rendered screens of the training games (HUD text and
  sprites included), then grown to the requested size by recombining them (one quadrant from
  another tile), mirroring and sprinkling a few pixels;
* **planted near-copies** (label 1): a training tile copied exactly, palette-swapped, mirrored,
  or with 1–3 pixels changed (with a swap and a mirror on top);
* **genuinely new tiles** (label 0): heavy edits of training tiles (32–96 pixels changed),
  recombined halves of two different training tiles, and tiles of games held out of training
  that are more than 2K from every training tile (the games share a font and stock art).
  Trivial (near-flat) tiles are left out of the scoring: there is no drawing to copy.

Figures: precision and recall of `near_copy` flags; search time for 10,000 queries against
100,000 and 1,000,000 training tiles next to scikit-learn brute force on raw pixels (the
reference), their recall of the exact nearest (recolouring- and flip-invariant merge) distance
within K, and the K-choice evidence (distances of planted edits vs distances between distinct
drawings); and **real reuse** (`real_reuse`): precision and recall per way a real game reuses its
own art — another palette set, colours merged into the backdrop, sprites over tiles, a status
bar off the level's grid — by default and with `--under-sprites` (the tile reading, then the
sprite reading over the training screens; each reading's share is reported), next to what a
rectangle reading and shifted windows (both not shipped) would add and cost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nesgan.bench.reference import brute_nearest_merge, exact_distances, merge_exact_distances
from nesgan.colour.palette import EMITTABLE
from nesgan.tiles.distance import PIXELS, frequency_labels, unique_sorted
from nesgan.tiles.nearcopy import trivial_mask
from nesgan.tiles.search import POSTING_CAP, TileSearch, label_weights, partition_hashes
from nesgan.tiles.tile import DEFAULT_NEAR_COPY_PIXELS, TILE, flips, slice_tiles


def museum_tiles(games: range, shots: int = 3, seed: int = 0) -> np.ndarray:
    """(N, 16, 16) NES-index tiles of rendered screens of the given games, exact-deduplicated."""
    from nesgan.museum.synth import make_game, render_frame
    from nesgan.tiles.tile import dedupe

    out = []
    for g in games:
        game = make_game(seed, g)
        for s in range(shots):
            out.append(slice_tiles(render_frame(game, s).indices, (0, 0))[0])
    return dedupe(np.concatenate(out))[0]


def _repaint(tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A palette swap: each colour of the tile to a distinct random emittable colour."""
    colours = np.unique(tile)
    new = rng.choice(EMITTABLE, size=len(colours), replace=False)
    lut = np.zeros(64, np.uint8)
    lut[colours] = new
    return lut[tile]


def _edit(tile: np.ndarray, n: int, rng: np.random.Generator, pool: np.ndarray | None = None) -> np.ndarray:
    """Change n distinct pixels, each to a colour different from its own (from the tile's colours
    when there are at least two, else from `pool`)."""
    t = tile.copy().reshape(-1)
    colours = np.unique(t)
    choices = colours if len(colours) > 1 else (pool if pool is not None else EMITTABLE)
    for p in rng.choice(PIXELS, size=n, replace=False):
        others = choices[choices != t[p]]
        t[p] = rng.choice(others if len(others) else EMITTABLE[EMITTABLE != t[p]])
    return t.reshape(tile.shape)


def _flip(tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return flips(tile[None])[int(rng.integers(1, 4)), 0]


def grow_training(base: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """`base` plus recombined / re-painted / mirrored / speckled variants, `size` tiles in all."""
    if size <= len(base):
        return base[:size].copy()
    n = size - len(base)
    a = base[rng.integers(len(base), size=n)]
    b = base[rng.integers(len(base), size=n)]
    kind = rng.integers(4, size=n)  # which quadrant comes from the other tile
    out = a.copy()
    for q, (ys, xs) in enumerate([(slice(0, 8), slice(0, 8)), (slice(0, 8), slice(8, 16)),
                                  (slice(8, 16), slice(0, 8)), (slice(8, 16), slice(8, 16))]):
        out[kind == q, ys, xs] = b[kind == q, ys, xs]
    # mirror a quarter of them, speckle a third with 1–6 random pixels (vectorised)
    m = rng.random(n) < 0.25
    out[m] = out[m][:, :, ::-1]
    s = np.flatnonzero(rng.random(n) < 0.33)
    for k in range(6):
        live = s[rng.random(len(s)) < (1.0 if k == 0 else 0.5)]
        p = rng.integers(PIXELS, size=len(live))
        flat = out.reshape(n, -1)
        flat[live, p] = rng.choice(EMITTABLE, size=len(live))
    return np.concatenate([base, out])


@dataclass
class Benchmark:
    train: np.ndarray  # (N, 16, 16)
    queries: np.ndarray  # (Q, 16, 16)
    label: np.ndarray  # (Q,) 1 planted near-copy, 0 genuinely new
    kind: list[str]  # (Q,) how each query was made


def make_benchmark(train_size: int, queries: int, seed: int = 0, train_games: int = 12,
                   held_out_games: int = 4, k: int = DEFAULT_NEAR_COPY_PIXELS,
                   screen_held_out: bool = True) -> Benchmark:
    """Labelled near-copy benchmark (see the module docstring).

    `screen_held_out`: keep only held-out tiles more than 2K from every training tile (the grown
    ones included). The museum's games share a generator: a font, stock drawings, and 8×8
    quadrants that recombined training tiles reassemble; a held-out tile within K of one of
    those *is* a copy by the definition, so it cannot serve as a "new" example. Off for the
    speed runs, where labels do not matter and the check would cost a second index."""
    rng = np.random.default_rng(seed)
    base = museum_tiles(range(train_games), seed=seed)
    base = base[~trivial_mask(base, k)] if train_size <= len(base) else base
    train = grow_training(base, train_size, rng)
    held = museum_tiles(range(train_games, train_games + held_out_games), seed=seed)
    # the museum's games share a font and a few stock drawings: a held-out tile within 2K of a
    # training tile is one of those, not a new drawing, so it is no negative example
    near = TileSearch(train if screen_held_out else base, 2 * k).search(held).distance
    held = held[near > 2 * k]
    sources = np.flatnonzero(~trivial_mask(train[: len(base)], 3 * k))  # tiles with drawing in them
    out, label, kind = [], [], []
    for _ in range(queries):
        r = rng.random()
        src = train[rng.choice(sources)]
        if r < 0.5:  # planted near-copies
            how = ["copy", "swap", "flip", "edit1", "edit2", "edit3", "edit+swap+flip"][int(rng.integers(7))]
            t = src
            if how in ("swap", "edit+swap+flip"):
                t = _repaint(t, rng)
            if how in ("flip", "edit+swap+flip"):
                t = _flip(t, rng)
            if how.startswith("edit"):
                t = _edit(t, int(how[4]) if how[4].isdigit() else int(rng.integers(1, 4)), rng)
            out.append(t), label.append(1), kind.append(how)
        elif r < 0.7:  # heavy edits
            n = int(rng.integers(32, 97))
            out.append(_repaint(_edit(src, n, rng), rng)), label.append(0), kind.append(f"heavy{n // 32 * 32}")
        elif r < 0.85:  # recombined halves of two training tiles
            other = train[rng.choice(sources)]
            t = src.copy()
            if rng.random() < 0.5:
                t[8:] = other[8:]
            else:
                t[:, 8:] = other[:, 8:]
            d, _ = exact_distances(np.stack([t, t]), np.stack([src, other]))
            if d.min() < 32:  # halves too alike: not a recombination, skip
                continue
            out.append(t), label.append(0), kind.append("halves")
        else:  # a held-out game's tile
            out.append(held[int(rng.integers(len(held)))]), label.append(0), kind.append("held_out")
    return Benchmark(train, np.stack(out), np.array(label), kind)


def mosaic_search(tiles: np.ndarray, k: int, occlusion=None):
    """The sprite reading over training tiles laid out as screens, 14×14 tiles each, in order (a
    tile set has no screens of its own; windows across neighbouring tiles stand in for them)."""
    from nesgan.tiles.sprites import SpriteSearch, screen_images

    n = len(tiles)
    cell = np.arange(n)
    xy = np.stack([cell % 196 % 14 * TILE, cell % 196 // 14 * TILE], 1)
    screens = -(-n // 196)
    images, ids = screen_images(tiles, cell.astype(np.int32), (cell // 196).astype(np.int32), xy, screens)
    return SpriteSearch(tiles, images, ids, k, occlusion)


def score(bench: Benchmark, k: int = DEFAULT_NEAR_COPY_PIXELS, occluded: bool = False) -> dict:
    """Precision / recall of the flags on the non-trivial queries, and the per-kind flag rates;
    with `occluded`, as `--under-sprites` flags them (the tile reading, then the sprite reading
    over the training tiles laid out as screens: `mosaic_search`)."""
    search = TileSearch(bench.train, k)
    trivial = trivial_mask(bench.queries, k)
    found = search.search(bench.queries, trivial)
    flag = (found.distance <= k) & ~trivial
    if occluded:
        from nesgan.tiles.occlusion import OcclusionSearch

        ask = np.flatnonzero(~flag & ~trivial)
        occlusion = OcclusionSearch(bench.train, k)
        hit = occlusion.search(bench.queries[ask]).matches
        flag[ask[hit]] = True
        rest = ask[~hit]
        flag[rest[mosaic_search(bench.train, k, occlusion).search(bench.queries[rest])[0].matches]] = True
    keep = ~trivial
    tp = int((flag & (bench.label == 1) & keep).sum())
    fp = int((flag & (bench.label == 0) & keep).sum())
    fn = int((~flag & (bench.label == 1) & keep).sum())
    kinds = sorted(set(bench.kind))
    rate = {kd: round(float(np.mean([f for f, kk, kp in zip(flag, bench.kind, keep, strict=True) if kk == kd and kp] or [np.nan])), 3)
            for kd in kinds}
    return {
        "precision": round(tp / max(tp + fp, 1), 4),
        "recall": round(tp / max(tp + fn, 1), 4),
        "queries_scored": int(keep.sum()),
        "trivial_skipped": int(trivial.sum()),
        "flag_rate_by_kind": rate,
        "found": found,
    }


def _brute_exact(queries: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Exact nearest distance of each query by comparing with every training tile (slow)."""
    return np.array([brute_nearest_merge(q, train)[0] for q in queries], dtype=np.int64)


def speed(train_size: int, n_queries: int, baseline_queries: int, truth_queries: int, seed: int = 0,
          k: int = DEFAULT_NEAR_COPY_PIXELS) -> dict:
    """Search time (index build + queries) vs sklearn brute force on raw pixels, same data."""
    from sklearn.neighbors import NearestNeighbors

    bench = make_benchmark(train_size, n_queries, seed=seed, k=k, screen_held_out=False)
    t0 = time.perf_counter()
    search = TileSearch(bench.train, k)
    t1 = time.perf_counter()
    trivial = trivial_mask(bench.queries, k)
    found = search.search(bench.queries, trivial)
    t2 = time.perf_counter()
    # reference: scikit-learn brute force on raw pixel values, a subset of the queries
    nb = min(baseline_queries, n_queries)
    t3 = time.perf_counter()
    ref = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(bench.train.reshape(len(bench.train), -1).astype(np.float32))
    _, ref_idx = ref.kneighbors(bench.queries[:nb].reshape(nb, -1).astype(np.float32))
    t4 = time.perf_counter()
    ours_per_query = (t2 - t1) / n_queries
    ref_per_query = (t4 - t3) / nb
    fig = {
        "train_tiles": train_size, "queries": n_queries,
        "ours_build_s": round(t1 - t0, 2), "ours_query_s": round(t2 - t1, 2),
        "ours_total_s": round(t2 - t0, 2),
        "sklearn_brute_queries": nb, "sklearn_brute_s": round(t4 - t3, 2),
        "sklearn_brute_s_extrapolated": round(ref_per_query * n_queries, 1),
        "speedup_per_query": round(ref_per_query / max(ours_per_query, 1e-9), 1),
        "complete_search_fraction": round(float(found.complete[~trivial].mean()), 4),
    }
    # recall against the exact nearest distance, on a sample checked by brute force
    nt = min(truth_queries, n_queries)
    if nt:
        sample = np.flatnonzero(~trivial)[:nt]
        truth = _brute_exact(bench.queries[sample], bench.train)
        ref_d, _ = merge_exact_distances(bench.queries[sample], bench.train[ref_idx[sample, 0]]) if nb >= sample.max(initial=0) + 1 else (None, None)
        within = truth <= k
        fig["exact_sample"] = int(nt)
        fig["exact_within_k"] = int(within.sum())
        fig["ours_recall_within_k"] = round(float((found.distance[sample][within] == truth[within]).mean()) if within.any() else 1.0, 4)
        fig["ours_nearest_exact_rate"] = round(float((found.distance[sample] == truth).mean()), 4)
        if ref_d is not None:
            fig["sklearn_recall_within_k"] = round(float((ref_d[within] == truth[within]).mean()) if within.any() else 1.0, 4)
    return fig


def k_choice(seed: int = 0, games: int = 10, shots: int = 4) -> dict:
    """Evidence for K: the exact distance from each non-trivial tile of `games` games to the
    nearest tile of `games` other games (distinct drawings, apart from a shared font and stock
    art), next to the distances of the planted edits (1–3 px: at most 3 by construction)."""
    a = museum_tiles(range(0, games), shots=shots, seed=seed)
    b = museum_tiles(range(games, 2 * games), shots=shots, seed=seed)
    a = a[~trivial_mask(a, DEFAULT_NEAR_COPY_PIXELS)]
    reach = 24  # search exactly this far; beyond it only "more than 24" matters
    found = TileSearch(b, reach).search(a)
    d = np.where(found.exact, found.distance, reach + 1)
    hist = np.bincount(np.minimum(d, reach + 1), minlength=reach + 2)
    return {
        "tiles": int(len(a)),
        "nearest_other_game_histogram": {**{str(i): int(hist[i]) for i in range(reach + 1)},
                                          f">{reach}": int(hist[reach + 1])},
        "flagged_at_k": {str(k): int((d <= k).sum() - (d == 0).sum()) for k in (2, 3, 4, 5, 6, 8, 12, 16)},
        "identical_shared_art": int((d == 0).sum()),
    }


def run(out: Path, quick: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    planted = make_benchmark(2000 if quick else 20000, 400 if quick else 2000, seed=1)
    q = score(planted)
    q.pop("found")
    figures = {"flags": q, "k": DEFAULT_NEAR_COPY_PIXELS}
    q = score(planted, occluded=True)
    q.pop("found")
    figures["flags_under_sprites"] = q
    sizes = [(20000, 1000, 200, 30)] if quick else [(100000, 10000, 1000, 20), (1000000, 10000, 300, 0)]
    figures["speed"] = [speed(*s) for s in sizes]
    figures["occluded_speed"] = occluded_speed(20000 if quick else 100000, 1000 if quick else 10000)
    figures["k_choice"] = k_choice()
    figures["real_reuse"] = (real_reuse(train_games=4, held_out_games=3, shots=4, query_shots=2) if quick
                             else real_reuse())
    if not quick:  # the same sprite figures on another museum (other games, critters and palettes)
        figures["real_reuse_sprites_seed7"] = real_reuse(seed=7, kinds=("sprites",), shifted=False)
    return figures


# ---- real reuse: how NES games reuse their own art -------------------------------------------

REUSE_KINDS = ("palette", "merge1", "merge2", "sprites", "statusbar")


def _repalette(game, rng: np.random.Generator, merged: int):
    """The game under another palette set: a new backdrop and new sub-palettes (the same layout,
    the same drawings); `merged` colours of each sub-palette take the backdrop colour."""
    from dataclasses import replace

    pick = rng.choice(EMITTABLE, size=13, replace=False)
    backdrop, rest = int(pick[0]), pick[1:].reshape(4, 3)
    subs = []
    for sp in rest:
        sp = [int(c) for c in sp]
        for j in rng.choice(3, size=merged, replace=False):
            sp[j] = backdrop
        subs.append(tuple(sp))
    return replace(game, backdrop=backdrop, subpalettes=tuple(subs))


def reuse_training(seed: int, games: range, shots: range) -> np.ndarray:
    """Training tiles: every grid cell of the games' shots (sprites and HUD included), deduped."""
    return reuse_screens(seed, games, shots)[0]


def reuse_screens(seed: int, games: range, shots: range) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The training set as export-tiles indexes it: unique tiles, and every cell of every screen
    (tile id, screen, x/y), as `nesgan.tiles.nearcopy.TileIndex` keeps them."""
    from nesgan.museum.synth import make_game, render_frame
    from nesgan.tiles.tile import dedupe

    cells, screen, xy = [], [], []
    for i, (g, s) in enumerate((g, s) for g in games for s in shots):
        tiles, pos = slice_tiles(render_frame(make_game(seed, g), s).indices)
        cells.append(tiles)
        screen.append(np.full(len(tiles), i, np.int32))
        xy.append(pos.astype(np.int32))
    uniq, inverse, _ = dedupe(np.concatenate(cells))
    return uniq, inverse.astype(np.int32), np.concatenate(screen), np.concatenate(xy), len(cells)


def reuse_queries(seed: int, games: range, shots: range, kind: str, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Query cells of `kind` from new shots of `games`, with the clean source cells each one
    shows (original palette, no sprites; (Q, 2, 16, 16): for a status bar off the grid the two
    HUD cells a query cell straddles, else the same cell twice), and per query the pixels a
    sprite covers ((Q, 16, 16) bool)."""
    from nesgan.museum.synth import make_game, render_frame, render_scrolled

    queries, sources, covered = [], [], []
    for g in games:
        game = make_game(seed, g)
        for s in shots:
            clean = render_frame(game, s, sprites=False).indices
            src, _ = slice_tiles(clean)
            cover = np.zeros((len(src), TILE, TILE), bool)
            if kind in ("palette", "merge1", "merge2"):
                other = _repalette(game, rng, {"palette": 0, "merge1": 1, "merge2": 2}[kind])
                q, _ = slice_tiles(render_frame(other, s, sprites=False).indices)
                pair = np.stack([src, src], 1)
            elif kind == "sprites":
                frame = render_frame(game, s, sprites=True)
                q, _ = slice_tiles(frame.indices)
                cover = slice_tiles(frame.sprite_mask.astype(np.uint8))[0].astype(bool)
                keep = cover.any((1, 2))  # only the cells a sprite stands on
                q, pair, cover = q[keep], np.stack([src, src], 1)[keep], cover[keep]
            else:  # statusbar: the level scrolled by a non-multiple of 16 px, the HUD fixed
                if not game.hud_top:  # a bottom panel's text is off the 16-px grid already
                    continue
                shift = int(rng.integers(1, 16))
                screen = render_scrolled(game, s, shift, sprites=False)
                px = (-shift) % 16  # the level's grid phase, as a cropper finds it
                band = screen[16:32]  # the HUD's text: name-table rows 2–3
                hud = clean[16:32]  # the same text, on the grid
                n = (256 - px) // 16
                q = np.stack([band[:, px + 16 * i : px + 16 * i + 16] for i in range(n)])
                left = np.stack([hud[:, 16 * ((px + 16 * i) // 16) : 16 * ((px + 16 * i) // 16) + 16] for i in range(n)])
                right = np.stack([hud[:, min(16 * ((px + 16 * i) // 16 + 1), 240) : min(16 * ((px + 16 * i) // 16 + 1), 240) + 16]
                                  for i in range(n)])
                pair = np.stack([left, right], 1)
                cover = np.zeros((n, TILE, TILE), bool)
            queries.append(q)
            sources.append(pair)
            covered.append(cover)
    return np.concatenate(queries), np.concatenate(sources), np.concatenate(covered)


# ---- sprites over tiles: the rectangle reading, measured and not shipped ----------------------
# (the shipped, opt-in reading is nesgan.tiles.occlusion; real_reuse measures both)

HALVES = ((slice(0, 8), slice(None)), (slice(8, 16), slice(None)),
          (slice(None), slice(0, 8)), (slice(None), slice(8, 16)))  # top, bottom, left, right


def _corner_rectangles(area: int) -> np.ndarray:
    """(R, 16, 16) bool: every rectangle that touches a corner of the tile and covers ≤ area
    pixels — the part of a cell a 16×16 sprite at any position can cover."""
    out = []
    for h in range(1, TILE + 1):
        for w in range(1, TILE + 1):
            if h * w > area:
                continue
            for ys in (slice(0, h), slice(TILE - h, TILE)):
                for xs in (slice(0, w), slice(TILE - w, TILE)):
                    r = np.zeros((TILE, TILE), bool)
                    r[ys, xs] = True
                    out.append(r)
    return np.unique(np.stack(out).reshape(len(out), -1), axis=0).reshape(-1, TILE, TILE)


def occluded_distances(q_tiles: np.ndarray, t_tiles: np.ndarray, area: int) -> np.ndarray:
    """Aligned (P, 16, 16) pairs, no flips -> (P,) pixels that differ outside the best corner
    rectangle of ≤ `area` pixels (where a sprite may stand), under the best many-to-one map of
    the training tile's colours (chosen on the whole tile, then again outside that rectangle)."""
    p = len(q_tiles)
    q = np.asarray(q_tiles).reshape(p, PIXELS).astype(np.intp)
    t = np.asarray(t_tiles).reshape(p, PIXELS).astype(np.intp)
    rect = _corner_rectangles(area).reshape(-1, PIXELS).astype(np.float32)  # (R, 256)
    out = np.empty(p, np.int64)
    rows = np.arange(p)[:, None]
    for s in range(0, p, 4096):
        qs, ts = q[s : s + 4096], t[s : s + 4096]
        n = len(qs)
        r = rows[:n]
        keep = np.ones((n, PIXELS), bool)
        for _ in range(2):  # the map from the visible pixels, then the occluder, twice
            co = np.zeros((n, 64, 64), np.int64)
            np.add.at(co, (np.broadcast_to(r, ts.shape)[keep], ts[keep], qs[keep]), 1)
            sigma = co.argmax(2)  # (n, 64) training colour -> query colour
            diff = np.take_along_axis(sigma, ts, axis=1) != qs  # (n, 256)
            hidden = diff.astype(np.float32) @ rect.T  # (n, R) differing pixels under each rectangle
            best = hidden.argmax(1)
            keep = ~rect[best].astype(bool)
        out[s : s + 4096] = diff.sum(1) - hidden[np.arange(n), best].astype(np.int64)
    return out


class RectangleSearch:
    """The rectangle reading (not shipped): training tiles indexed by their four halves; a query
    matches when the pixels differing outside the best sprite-sized corner rectangle (≤ `area`
    pixels, whatever their colours) are ≤ K."""

    def __init__(self, tiles: np.ndarray, k: int, area: int = 128):
        self.k, self.area = int(k), int(area)
        self.tiles = np.ascontiguousarray(np.asarray(tiles, dtype=np.uint8))
        lab, _ = frequency_labels(self.tiles)
        lab = lab.reshape(-1, TILE, TILE)
        self.hash, self.ids = [], []
        for ys, xs in HALVES:
            h, _ = partition_hashes(label_weights(lab[:, ys, xs].reshape(len(lab), -1)), coarse=False)
            order = np.argsort(h)
            self.hash.append(h[order])
            self.ids.append(order)

    def search(self, queries: np.ndarray) -> np.ndarray:
        """(Q, 16, 16) -> (Q,) the best candidate's rectangle distance (PIXELS: no candidate)."""
        queries = np.asarray(queries, np.uint8)
        q, m = len(queries), len(self.tiles)
        keys = []
        lab, _ = frequency_labels(queries)
        for f, lf in enumerate(flips(lab.reshape(-1, TILE, TILE))):
            for half, (ys, xs) in enumerate(HALVES):
                w = label_weights(lf[:, ys, xs].reshape(q, -1))
                h, _ = partition_hashes(w, coarse=False)
                lo = np.searchsorted(self.hash[half], h, "left")
                n = np.minimum(np.searchsorted(self.hash[half], h, "right") - lo, POSTING_CAP)
                n[(w > 0).sum(1) < 2] = 0  # a flat half is no evidence
                qq = np.repeat(np.arange(q), n)
                start = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
                keys.append((qq * 4 + f).astype(np.int64) * m + self.ids[half][start + np.arange(len(qq))])
        dist = np.full(q, PIXELS, np.int64)
        keys = unique_sorted(np.concatenate(keys)) if keys and m else np.zeros(0, np.int64)
        if not len(keys):
            return dist
        qq, ff, rr = keys // m // 4, keys // m % 4, keys % m
        np.minimum.at(dist, qq, occluded_distances(flips(queries)[ff, qq], self.tiles[rr], self.area))
        return dist


def shifted_flags(search: TileSearch, screen: np.ndarray, phase: tuple[int, int], k: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Per grid cell of `screen` cut at `phase`: flagged by the grid search alone, and flagged
    when windows at every horizontal offset 1–15 px are searched too (a cell counts a window
    that covers ≥ 8 of its columns). (rows, cols) bool each."""
    px, py = phase
    grid, pos = slice_tiles(screen, phase)
    rows, cols = (screen.shape[0] - py) // TILE, (screen.shape[1] - px) // TILE
    windows, owners = [], []
    for dx in range(TILE):
        w, wpos = slice_tiles(screen, (px + dx, py))
        windows.append(w)
        col = (wpos[:, 0] - px) // TILE + (dx >= TILE // 2)  # the cell it covers most
        owners.append((wpos[:, 1] - py) // TILE * cols + np.minimum(col, cols - 1))
    windows, owners = np.concatenate(windows), np.concatenate(owners)
    found = search.search(windows, trivial_mask(windows, k))
    hit = (found.distance <= k) & ~trivial_mask(windows, k)
    shifted = np.zeros(rows * cols, bool)
    shifted[owners[hit]] = True
    on_grid = hit[: len(grid)]  # dx = 0 comes first: the grid itself
    return on_grid.reshape(rows, cols), (shifted | np.pad(on_grid, (0, rows * cols - len(grid)))).reshape(rows, cols)


def real_reuse(seed: int = 0, train_games: int = 8, held_out_games: int = 6, shots: int = 8,
               query_shots: int = 6, sprite_shots: int = 24, k: int = DEFAULT_NEAR_COPY_PIXELS,
               kinds: tuple[str, ...] = REUSE_KINDS, shifted: bool = True) -> dict:
    """Precision and recall per kind of reuse (REUSE_KINDS), as real games reuse their art.

    Training: every grid cell of `shots` screens of each training game (HUD and sprites
    included). Queries: new screens of the same games (positives: cells whose clean source is
    within K of a training tile) and of held-out games (negatives: cells whose clean source is
    more than 2K from every training tile — the museum's games share a font and stock art), each
    made by one kind: another palette set; one or two colours of each sub-palette merged into the
    backdrop; sprites drawn over the background (`sprite_shots` screens: only the cells a sprite
    stands on count); the level scrolled while the status bar stays (its text off the level's
    grid). Trivial cells are left out.

    Per kind: the default reading; `--under-sprites` (the shipped occluded reading,
    nesgan.tiles.occlusion); the rectangle reading (a sprite-sized corner ignored whatever its
    colours: measured, not shipped). Negatives are labelled by their source; each false flag is
    also checked by brute force against every training tile, and `precision_by_definition`
    counts only those more than K away under the merge distance as false (a held-out tile whose
    colours merged into a training tile's drawing *is* a copy by the definition)."""
    from nesgan.tiles.occlusion import OcclusionSearch
    from nesgan.tiles.sprites import SpriteSearch, screen_images

    train, cells, cell_screen, cell_xy, n_screens = reuse_screens(seed, range(train_games), range(shots))
    search, wide = TileSearch(train, k), TileSearch(train, 2 * k)
    occlusion = OcclusionSearch(train, k)
    t0 = time.perf_counter()
    sprites = SpriteSearch(train, *screen_images(train, cells, cell_screen, cell_xy, n_screens), k, occlusion)
    sprite_index_s = time.perf_counter() - t0
    rectangle = RectangleSearch(train, k, area=128)
    rng = np.random.default_rng(seed + 1)
    timing: dict[str, float] = {}
    asked: dict[str, int] = {}
    out: dict[str, object] = {"train_tiles": int(len(train)), "train_screens": n_screens,
                              "sprite_blocks_indexed": int(len(sprites.codes)),
                              "sprite_index_s": round(sprite_index_s, 2)}
    bands = ((1, 16), (17, 64), (65, 128), (129, 256))
    for kind in kinds:
        new_shots = range(100, 100 + (sprite_shots if kind == "sprites" else query_shots))
        fig: dict[str, object] = {}
        flags: dict[str, dict[str, np.ndarray]] = {}
        for label, games in (("pos", range(train_games)), ("neg", range(train_games, train_games + held_out_games))):
            q, src, cover = reuse_queries(seed, games, new_shots, kind, rng)
            near = np.stack([wide.search(src[:, j]).distance for j in range(2)], 1)
            keep = ~trivial_mask(q, k) & ~(trivial_mask(src[:, 0], k) & trivial_mask(src[:, 1], k))
            keep &= (near.max(1) <= k) if label == "pos" else (near.min(1) > 2 * k)
            q, src, sprite = q[keep], src[keep, 0], cover[keep]
            cover = sprite.reshape(len(q), -1).sum(1)
            flag = search.search(q, trivial_mask(q, k)).distance <= k
            occluded, tile_only = flag.copy(), flag.copy()
            if (~flag).any():
                ask = np.flatnonzero(~flag)
                t0 = time.perf_counter()
                occ = occlusion.search(q[ask])
                rest = ask[~occ.matches]
                spr, _ = sprites.search(q[rest])
                timing[label] = timing.get(label, 0.0) + time.perf_counter() - t0
                asked[label] = asked.get(label, 0) + len(ask)
                tile_only[ask] = occ.matches
                occluded[ask] = occ.matches
                occluded[rest] = spr.matches
                for name in ("train_id", "distance", "flip", "excused", "matches"):  # one reading per query
                    getattr(occ, name)[~occ.matches] = getattr(spr, name)
                if label == "neg":  # as shown, the training tile under a sprite?
                    fig["under_sprites_false_flags_only_under_the_sprite"] = _only_under_sprite(
                        src[ask], sprite[ask], train, occ, k)
            rect = flag | (rectangle.search(q) <= k) if len(q) else flag
            flags[label] = {"default": flag, "under_sprites": occluded, "tile_reading_only": tile_only,
                            "rectangle": rect}
            if label == "neg":  # false flags by source: which are copies by the definition?
                d = np.array([brute_nearest_merge(q[i], train)[0] for i in np.flatnonzero(flag)], np.int64)
                fig["false_flags_within_k_by_brute_force"] = int((d <= k).sum())
                fig["false_flag_brute_force_distances"] = {str(v): int(c) for v, c in enumerate(np.bincount(d)) if c}
                if kind.startswith("merge"):  # a stricter rule for merges? what the flags rest on
                    fig["false_flags_two_colour_merge_only"] = _merge_only_share(q, train, search, k)
            if label == "pos" and kind.startswith("merge"):
                fig["true_flags_two_colour_merge_only"] = _merge_only_share(q, train, search, k)
            if kind == "sprites" and label == "pos":
                sel = [(lo, hi, (cover >= lo) & (cover <= hi)) for lo, hi in bands]
                fig["positives_by_sprite_pixels"] = {f"{lo}-{hi}": int(m.sum()) for lo, hi, m in sel}
                for name in ("default", "tile_reading_only", "under_sprites"):
                    fig[f"recall_by_sprite_pixels_{name}"] = {
                        f"{lo}-{hi}": round(float(flags[label][name][m].mean()), 3) for lo, hi, m in sel if m.any()}
        npos, nneg = len(flags["pos"]["default"]), len(flags["neg"]["default"])
        fig.update({"positives": npos, "negatives": nneg})
        for name in ("default", "under_sprites", "tile_reading_only", "rectangle"):
            tp, fp = int(flags["pos"][name].sum()), int(flags["neg"][name].sum())
            fig[name] = {"recall": round(tp / max(npos, 1), 3), "precision": round(tp / max(tp + fp, 1), 3),
                         "false_flags": fp}
        tp, fp = int(flags["pos"]["default"].sum()), int(flags["neg"]["default"].sum())
        fp_def = fp - int(fig["false_flags_within_k_by_brute_force"])
        fig["default"]["precision_by_definition"] = round(tp / max(tp + fp_def, 1), 3)
        tp, fp_more = int(flags["pos"]["under_sprites"].sum()), int((flags["neg"]["under_sprites"] & ~flags["neg"]["default"]).sum())
        fp_def += fp_more - int(fig.get("under_sprites_false_flags_only_under_the_sprite", 0))
        fig["under_sprites"]["precision_by_definition"] = round(tp / max(tp + fp_def, 1), 3)
        out[kind] = fig
        print(f"  real reuse {kind}: {fig}", flush=True)
    out["under_sprites_cost"] = {f"{lab}_queries_read": asked.get(lab, 0) for lab in ("pos", "neg")}
    out["under_sprites_cost"]["seconds_both_readings"] = round(sum(timing.values()), 2)
    if shifted:
        out["shifted_windows"] = _shift_figures(seed, search, train_games, held_out_games,
                                                range(100, 100 + query_shots), k, rng)
    return out


def _merge_only_share(q: np.ndarray, train: np.ndarray, search: TileSearch, k: int) -> dict:
    """Of the flagged cells: how many show ≤ 2 colours and match only through a merge (the
    one-to-one reading is farther than K) — what a stricter rule for 2-colour merges would
    unflag."""
    from nesgan.tiles.distance import frequency_labels, pair_readings

    found = search.search(q, trivial_mask(q, k))
    flag = np.flatnonzero(found.distance <= k)
    if not len(flag):
        return {"flagged": 0, "two_colour_merge_only": 0}
    readings = pair_readings(q[flag], train[found.train_id[flag]])
    _, colours = frequency_labels(q[flag])
    only = (colours <= 2) & (readings["recolour"] > k)
    hist = np.bincount(found.distance[flag][only], minlength=k + 1)
    return {"flagged": int(len(flag)), "two_colour_merge_only": int(only.sum()),
            "their_distances": {str(v): int(c) for v, c in enumerate(hist) if c}}


def _only_under_sprite(sources: np.ndarray, sprites: np.ndarray, train: np.ndarray, occ, k: int) -> int:
    """How many occluded matches are, as shown, their training tile under a sprite: outside the
    pixels the real sprite covers, the clean source cell is within K of the matched training
    tile (mirrored the way it matched, recoloured by those pixels). A query with no sprite
    never is."""
    from nesgan.tiles.distance import recolour_map

    n = 0
    for i in np.flatnonzero(occ.matches):
        if not sprites[i].any():
            continue
        t = flips(train[occ.train_id[i]][None])[int(occ.flip[i]), 0]  # in the query's orientation
        seen = ~sprites[i]
        n += int((recolour_map(sources[i][seen], t[seen])[t[seen]] != sources[i][seen]).sum() <= k)
    return n


def occluded_speed(train_size: int, n_queries: int, seed: int = 0, k: int = DEFAULT_NEAR_COPY_PIXELS) -> dict:
    """What `--under-sprites` costs: the default search vs the default search, then the tile
    reading on the queries it leaves original, then the sprite reading (its block index over the
    training tiles laid out as screens, `mosaic_search`) on the queries still left (index builds
    included), same data, same run."""
    from nesgan.tiles.occlusion import OcclusionSearch

    bench = make_benchmark(train_size, n_queries, seed=seed, k=k, screen_held_out=False)
    trivial = trivial_mask(bench.queries, k)
    t0 = time.perf_counter()
    found = TileSearch(bench.train, k).search(bench.queries, trivial)
    t1 = time.perf_counter()
    ask = np.flatnonzero((found.distance > k) & ~trivial)
    occlusion = OcclusionSearch(bench.train, k)
    occ = occlusion.search(bench.queries[ask])
    t2 = time.perf_counter()
    sprites = mosaic_search(bench.train, k, occlusion)
    t3 = time.perf_counter()
    rest = ask[~occ.matches]
    spr, _ = sprites.search(bench.queries[rest])
    t4 = time.perf_counter()
    return {"train_tiles": train_size, "queries": n_queries, "default_s": round(t1 - t0, 2),
            "tile_reading_extra_s": round(t2 - t1, 2), "sprite_index_s": round(t3 - t2, 2),
            "sprite_reading_s": round(t4 - t3, 2), "ratio": round((t4 - t0) / max(t1 - t0, 1e-9), 2),
            "asked": int(len(ask)), "sprite_reading_asked": int(len(rest)),
            "sprite_ms_per_query": round(1000 * (t4 - t3) / max(len(rest), 1), 1),
            "tile_reading_flags": int(occ.matches.sum()), "sprite_reading_flags": int(spr.matches.sum()),
            "sprite_blocks_indexed": int(len(sprites.codes))}


def _shift_figures(seed: int, search: TileSearch, train_games: int, held_out_games: int, shots: range,
                   k: int, rng: np.random.Generator) -> dict:
    """Status-bar text off the level's grid: HUD text cells flagged by the grid search vs with
    shifted windows; and on held-out games' scrolled screens, cells flagged each way."""
    from nesgan.museum.synth import make_game, render_scrolled

    hud = {"grid": 0, "shifted": 0, "cells": 0}
    held = {"grid": 0, "shifted": 0, "cells": 0}
    for g in range(train_games + held_out_games):
        game = make_game(seed, g)
        for s in shots:
            shift = int(rng.integers(1, 16))
            screen = render_scrolled(game, s, shift, sprites=False)
            phase = ((-shift) % TILE, 0)
            on_grid, shifted = shifted_flags(search, screen, phase, k)
            if g < train_games:
                if not game.hud_top:
                    continue
                text = ~trivial_mask(slice_tiles(screen[16:32], (phase[0], 0))[0], k)  # HUD text row
                hud["cells"] += int(text.sum())
                hud["grid"] += int(on_grid[1, : len(text)][text].sum())
                hud["shifted"] += int(shifted[1, : len(text)][text].sum())
            else:
                cells = ~trivial_mask(slice_tiles(screen, phase)[0], k)
                held["cells"] += int(cells.sum())
                held["grid"] += int(on_grid.ravel()[: len(cells)][cells].sum())
                held["shifted"] += int(shifted.ravel()[: len(cells)][cells].sum())
    return {"status_bar_text_cells": hud["cells"],
            "status_bar_recall_grid": round(hud["grid"] / max(hud["cells"], 1), 3),
            "status_bar_recall_shifted": round(hud["shifted"] / max(hud["cells"], 1), 3),
            "held_out_cells": held["cells"],
            "held_out_flagged_grid": round(held["grid"] / max(held["cells"], 1), 3),
            "held_out_flagged_shifted": round(held["shifted"] / max(held["cells"], 1), 3)}
