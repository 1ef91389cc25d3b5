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
drawings); and **real reuse** (`nearcopy_reuse.real_reuse`): precision and recall per way a real
game reuses its own art — another palette set, colours merged into the backdrop, sprites over
tiles, a status bar off the level's grid — by default and with `--under-sprites` (the tile
reading, then the sprite reading over the training screens; each reading's share is reported).
Two readings measured here and not shipped (a sprite-sized corner rectangle ignored, shifted
windows) are recorded in docs/near-copies-experiments.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nesgan.bench.nearcopy_reuse import real_reuse
from nesgan.bench.reference import brute_nearest_merge, exact_distances, merge_exact_distances
from nesgan.colour.palette import EMITTABLE
from nesgan.tiles.distance import PIXELS
from nesgan.tiles.nearcopy import OCCLUDED, TileIndex, trivial_mask, verdicts
from nesgan.tiles.search import TileSearch
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


def mosaic_index(tiles: np.ndarray) -> TileIndex:
    """Training tiles laid out as screens, 14×14 tiles each, in order, indexed as export-tiles
    indexes a training folder (a tile set has no screens of its own; windows across neighbouring
    tiles stand in for them in the sprite reading)."""
    n = len(tiles)
    cell = np.arange(n, dtype=np.int32)
    xy = np.stack([cell % 196 % 14 * TILE, cell % 196 // 14 * TILE], 1).astype(np.int32)
    screen = cell // 196
    return TileIndex(tiles=tiles, screen=screen, xy=xy, screens=[f"mosaic{i}" for i in range(-(-n // 196))],
                     fingerprint="mosaic", cells=cell, cell_screen=screen, cell_xy=xy)


def score(bench: Benchmark, k: int = DEFAULT_NEAR_COPY_PIXELS, occluded: bool = False) -> dict:
    """Precision / recall of the flags on the non-trivial queries, and the per-kind flag rates;
    with `occluded`, as `--under-sprites` flags them (`nearcopy.verdicts` over the training
    tiles laid out as screens: `mosaic_index`)."""
    trivial = trivial_mask(bench.queries, k)
    v = verdicts(mosaic_index(bench.train), bench.queries, k, occluded=occluded)
    hidden = np.array([m == OCCLUDED for m in v.match], bool)
    found = v.found
    flag = ((found.distance <= k) | hidden) & ~trivial
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
        figures["real_reuse_sprites_seed7"] = real_reuse(seed=7, kinds=("sprites",))
    return figures


def occluded_speed(train_size: int, n_queries: int, seed: int = 0, k: int = DEFAULT_NEAR_COPY_PIXELS) -> dict:
    """What `--under-sprites` costs: the default search vs the default search, then the tile
    reading on the queries it leaves original, then the sprite reading (its block index over the
    training tiles laid out as screens, `mosaic_index`) on the queries still left (index builds
    included), same data, same run: each stage timed on its own, which `nearcopy.verdicts` (what
    `score` and `real_reuse` run) does not report."""
    bench = make_benchmark(train_size, n_queries, seed=seed, k=k, screen_held_out=False)
    index = mosaic_index(bench.train)
    trivial = trivial_mask(bench.queries, k)
    t0 = time.perf_counter()
    found = index.search(k).search(bench.queries, trivial)
    t1 = time.perf_counter()
    ask = np.flatnonzero((found.distance > k) & ~trivial)
    occ = index.occlusion(k).search(bench.queries[ask])
    t2 = time.perf_counter()
    sprites = index.sprites(k)
    assert sprites is not None
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
