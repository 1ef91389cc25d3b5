"""Level benchmark: `nesgan level` against a column chain and a reference overlapping model.

Two examples: the demo's map (`demo/level.tmx` when `make demo` has run, else skipped) and a
hand-made one, four screens of one museum game painted from its own metatiles
(`museum_example`, also the tests' fixture). For each, 100 seeds × a 32-screen level:

- success rate, restarts and backtracks of `nesgan level` (pattern 2 and 3);
- tile-pattern KL (symmetric, ε = 1e-7, on tile ids) example vs level on 2×2 and 3×3 windows,
  for the level and for the first-order column chain (next column = one that follows the
  current column somewhere in the example: the simplest generator keeping every 2×2 window);
- the longest run of level columns copied from the example (distribution);
- time per cell, against a straight Python overlapping model (`reference_wfc`: lowest-entropy
  cell, weighted collapse, propagation by support counts, restart on contradiction), which runs
  on a 2-screen output because it is slow; its contradiction rate is reported too.
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from nesgan.colour.palette import Palette
from nesgan.level.example import read_example
from nesgan.level.grow import build_model, grow
from nesgan.level.patterns import copied_runs, symmetric_kl, violations, windows
from nesgan.tiled.merge import OwnTileset, update_map
from nesgan.tiled.tmx import empty_atlas, write_atlas

SCREEN = 16  # columns a screen
JUDGED = ("kl2", "kl3", "copy", "example_columns")  # example_columns: share of level columns
# that are whole example columns


def museum_example(folder: Path, game: int = 0, shots: tuple[int, ...] = (0, 1, 2, 3),
                   rows: int = 15, seed: int = 0) -> Path:
    """A hand-made example: `shots` of a museum game (sprites off) side by side, `rows` 16-px
    rows from the bottom, as folder/example.tmx painted from folder/tilesets/museum.tsx (one
    tile per distinct 16×16 cell, nesgan's per-tile properties, so it reads as nesgan's)."""
    from nesgan.museum import synth

    palette = Palette.builtin()
    g = synth.make_game(seed, game)
    parts = [synth.render_frame(g, s, sprites=False).indices[240 - 16 * rows:] for s in shots]
    indices = np.concatenate(parts, axis=1)  # (16·rows, 256·shots)
    h, w = indices.shape
    cells = indices.reshape(h // 16, 16, w // 16, 16).swapaxes(1, 2).reshape(-1, 16, 16)
    uniq, inverse = np.unique(cells, axis=0, return_inverse=True)
    atlas = empty_atlas("museum", 16)
    for k, tile in enumerate(uniq):
        atlas.append(palette.to_rgb(tile))
        atlas.props[k] = {"count": int((inverse == k).sum()), "near_copy": False}
    tsx = folder / "tilesets" / "museum.tsx"
    write_atlas(tsx, atlas)
    tmx = folder / "example.tmx"
    local = inverse.reshape(h // 16, w // 16).astype(np.int64)
    update_map(tmx, [OwnTileset(tsx, "museum", atlas.extent)], "museum", np.zeros_like(local), local)
    return tmx


# --- the column chain: the simplest generator that keeps every 2×2 window ----------------------


def column_chain(grid: np.ndarray, width: int, seed: int) -> np.ndarray:
    """A first-order chain over the example's columns: the next column is drawn from the
    columns that follow the current one somewhere in the example (columns that only end the
    example are pruned first, so it never stops)."""
    cols = [c.tobytes() for c in np.ascontiguousarray(grid.T)]
    follow: dict[bytes, list[bytes]] = defaultdict(list)
    for a, b in zip(cols, cols[1:], strict=False):
        follow[a].append(b)
    while True:  # prune successors that have no successor themselves
        dead = {b for nexts in follow.values() for b in nexts if not follow.get(b)}
        if not dead:
            break
        for a in list(follow):
            follow[a] = [b for b in follow[a] if b not in dead]
            if not follow[a]:
                del follow[a]
    rng = random.Random(seed)
    content = {c: col for c, col in zip(cols, grid.T, strict=True)}
    cur = rng.choice([c for c in cols if c in follow])
    out = [cur]
    while len(out) < width:
        cur = rng.choice(follow[cur])
        out.append(cur)
    return np.stack([content[c] for c in out], axis=1)


# --- the reference: a straight Python overlapping model ----------------------------------------


def reference_wfc(grid: np.ndarray, n: int, width: int, seed: int) -> np.ndarray | None:
    """The overlapping model's core loop as it is usually written, in plain Python: a wave of
    pattern sets over the (H−N+1)×(W−N+1) pattern positions, observe the lowest-entropy
    position (noise breaks ties), collapse it weighted by the example's counts, propagate bans
    through per-direction support counts. The same rules as `nesgan level`: a pattern may stand
    only on the rows where the example shows it. None on a contradiction."""
    height = grid.shape[0]
    counts = windows(grid, n)
    pats = list(counts)
    weight = [float(counts[p]) for p in pats]
    square = [np.array(p).reshape(n, n).T for p in pats]  # row-major n×n
    rows_seen = [{tuple(grid[y : y + n, x : x + n].T.reshape(-1).tolist())
                  for x in range(grid.shape[1] - n + 1)} for y in range(height - n + 1)]
    dirs = ((0, 1), (1, 0), (0, -1), (-1, 0))  # (dy, dx)

    def overlap(a: np.ndarray, dy: int, dx: int) -> tuple[int, ...]:
        """The part of `a` a neighbour at (dy, dx) overlaps."""
        return tuple(a[max(0, dy) : min(n, n + dy), max(0, dx) : min(n, n + dx)].reshape(-1).tolist())

    # prop[d][p]: the patterns that may stand at offset d from p (they agree where they overlap)
    prop = []
    for dy, dx in dirs:
        by_key: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for q, b in enumerate(square):
            by_key[overlap(b, -dy, -dx)].append(q)
        prop.append([by_key.get(overlap(a, dy, dx), []) for a in square])
    ph, pw = height - n + 1, width - n + 1
    cells = ph * pw
    rng = random.Random(seed)
    wave = [[True] * len(pats) for _ in range(cells)]
    support = [[[len(prop[(d + 2) % 4][t]) for d in range(4)] for t in range(len(pats))]
               for _ in range(cells)]
    left = [len(pats)] * cells
    wlogw = [w * math.log(w) for w in weight]
    sum_w = [sum(weight)] * cells  # kept up to date on every ban, as the original does
    sum_wlogw = [sum(wlogw)] * cells
    stack: list[tuple[int, int]] = []

    def ban(i: int, t: int) -> None:
        wave[i][t] = False
        support[i][t] = [0, 0, 0, 0]
        left[i] -= 1
        sum_w[i] -= weight[t]
        sum_wlogw[i] -= wlogw[t]
        stack.append((i, t))

    def propagate() -> bool:
        while stack:
            i1, t1 = stack.pop()
            y1, x1 = divmod(i1, pw)
            for d, (dy, dx) in enumerate(dirs):
                y2, x2 = y1 + dy, x1 + dx
                if not (0 <= y2 < ph and 0 <= x2 < pw):
                    continue
                i2 = y2 * pw + x2
                for t2 in prop[d][t1]:
                    s = support[i2][t2]
                    s[d] -= 1
                    if s[d] == 0 and wave[i2][t2]:
                        ban(i2, t2)
                if left[i2] == 0:
                    return False
        return True

    for i in range(cells):
        y = i // pw
        for t, p in enumerate(pats):
            if p not in rows_seen[y]:
                ban(i, t)
    if not propagate():
        return None
    while True:
        best, best_h = -1, float("inf")
        for i in range(cells):
            if left[i] == 0:
                return None
            if left[i] == 1:
                continue
            h = math.log(sum_w[i]) - sum_wlogw[i] / sum_w[i] + 1e-6 * rng.random()
            if h < best_h:
                best, best_h = i, h
        if best < 0:
            break
        options = [t for t in range(len(pats)) if wave[best][t]]
        pick = rng.choices(options, [weight[t] for t in options])[0]
        for t in options:
            if t != pick:
                ban(best, t)
        if not propagate():
            return None
    out = np.zeros((height, width), np.int64)
    for i in range(cells):
        y, x = divmod(i, pw)
        sq = square[wave[i].index(True)]
        out[y : y + n, x : x + n] = sq
    return out


# --- the benchmark ----------------------------------------------------------------------------


def _percentiles(values: list[float]) -> dict[str, float]:
    a = np.array(values, dtype=np.float64)
    return {"mean": round(float(a.mean()), 4), "p50": round(float(np.median(a)), 4),
            "p90": round(float(np.percentile(a, 90)), 4), "max": round(float(a.max()), 4)}


def _judge(grid: np.ndarray, level: np.ndarray) -> dict[str, float]:
    grid, level = np.asarray(grid, np.int64), np.asarray(level, np.int64)
    known = {c.tobytes() for c in np.ascontiguousarray(grid.T)}
    return {"kl2": symmetric_kl(windows(grid, 2), windows(level, 2)),
            "kl3": symmetric_kl(windows(grid, 3), windows(level, 3)),
            "copy": float(max(copied_runs(grid, level), default=0)),
            "example_columns": float(np.mean([c.tobytes() in known
                                              for c in np.ascontiguousarray(level.T)]))}


def bench_example(grid: np.ndarray, seeds: int, screens: int, ref_runs: int) -> dict:
    width = screens * SCREEN
    out: dict[str, object] = {"example_size": [int(grid.shape[1]), int(grid.shape[0])]}
    half = grid.shape[1] // 2  # the noise floor: the example's two halves against each other
    out["halves_kl2"] = round(symmetric_kl(windows(grid[:, :half], 2), windows(grid[:, half:], 2)), 3)
    out["halves_kl3"] = round(symmetric_kl(windows(grid[:, :half], 3), windows(grid[:, half:], 3)), 3)
    per_cell: dict[str, float] = {}
    for n in (2, 3):
        t0 = time.perf_counter()
        model = build_model(grid, n)
        build = time.perf_counter() - t0
        rows, restarts, backtracks, ok, seconds = [], [], [], 0, []
        for seed in range(seeds):
            t0 = time.perf_counter()
            g = grow(model, width, seed)
            seconds.append(time.perf_counter() - t0 + build)
            ok += violations(grid, g.level, n) == []
            restarts.append(g.restarts)
            backtracks.append(g.backtracks)
            rows.append(_judge(grid, g.level))
        out[f"level_n{n}"] = {
            "success": ok / seeds, "restarts": _percentiles(restarts),
            "backtracks": _percentiles(backtracks), "seconds": _percentiles(seconds),
            **{k: _percentiles([r[k] for r in rows]) for k in JUDGED}}
        per_cell[f"level_n{n}"] = float(np.mean(seconds)) / (width * grid.shape[0])
    rows, seconds = [], []
    for seed in range(seeds):
        t0 = time.perf_counter()
        level = column_chain(grid, width, seed)
        seconds.append(time.perf_counter() - t0)
        rows.append(_judge(grid, level))
    out["column_chain"] = {"seconds": _percentiles(seconds),
                           **{k: _percentiles([r[k] for r in rows]) for k in JUDGED}}
    per_cell["column_chain"] = float(np.mean(seconds)) / (width * grid.shape[0])
    # the reference overlapping model on a 2-screen output (it is slow), n = 2
    ref_width, fails, spent, done = 2 * SCREEN, 0, 0.0, 0
    for seed in range(ref_runs):
        t0 = time.perf_counter()
        level = reference_wfc(grid, 2, ref_width, seed)
        spent += time.perf_counter() - t0
        if level is None:
            fails += 1
        else:
            done += 1
            assert violations(grid, level, 2) == []
    per_cell["reference_wfc_n2"] = spent / (ref_runs * ref_width * grid.shape[0])
    out["reference_wfc_n2"] = {"runs": ref_runs, "contradictions": fails, "screens": 2}
    out["seconds_per_cell"] = {k: float(f"{v:.3g}") for k, v in per_cell.items()}
    out["speedup_vs_reference"] = {k: round(per_cell["reference_wfc_n2"] / v, 1)
                                   for k, v in per_cell.items() if k.startswith("level")}
    return out


def run(out: Path, quick: bool) -> dict:
    import tempfile

    seeds, screens, ref_runs = (10, 8, 2) if quick else (100, 32, 5)
    results: dict[str, object] = {"seeds": seeds, "screens": screens}
    with tempfile.TemporaryDirectory() as tmp:
        grids = {"museum_example": read_example(museum_example(Path(tmp))).gids}
    demo = Path("demo/level.tmx")
    if demo.exists():
        grids["demo_map"] = read_example(demo).gids
    else:
        results["demo_map"] = "skipped: run `make demo` first (demo/level.tmx)"
    for name, grid in grids.items():
        print(f"  {name}: {grid.shape[1]}×{grid.shape[0]} tiles", flush=True)
        results[name] = bench_example(grid.astype(np.int64), seeds, screens, ref_runs)
    return results
