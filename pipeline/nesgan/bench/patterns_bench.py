"""The two numbers of issue 21 (`nesgan.patterns`): how fast the window partitions are read.

Every 16×16 cell is read as its n×n windows' partitions (n = 2, 3, 4): `train` at every sample
step and for the training floor, `generate` to choose its screens, export-tiles for its sheet.
Windows lie inside cells, so `window_keys` keys each distinct cell once and copies the keys to
the cell's repeats. Side by side in one run, on museum screens (sprites on, as `train` sees
them) and on screens whose every cell is its own (the worst case for that reuse):
- `window_keys`;
- the same keys computed for every cell, repeats included (the code before the reuse);
- the plain reading: every window copied out and packed (`partition_keys(cell_windows(...))`).
Every variant's keys are checked equal.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from nesgan import patterns

SIZES = (2, 3, 4)


def museum_screens(games: int, shots: int, seed: int = 0) -> np.ndarray:
    """(S, 224, 224) NES indices of the embedded museum's shots, cut on the 16-px grid."""
    from nesgan.museum.synth import make_game, render_frame

    out = []
    for g in range(games):
        game = make_game(seed, g)
        out += [render_frame(game, s).indices[:224, 16:240] for s in range(shots)]
    return np.stack(out)


def _every_cell(screens: np.ndarray, n: int) -> np.ndarray:
    cells = patterns.screen_cells(screens)
    keys = patterns._cell_window_keys(cells.reshape(-1, patterns.CELL, patterns.CELL), n)
    return keys.reshape(*cells.shape[:2], *keys.shape[1:])


def _copies(screens: np.ndarray, n: int) -> np.ndarray:
    m = patterns.CELL - n + 1
    keys = patterns.partition_keys(patterns.cell_windows(screens, n))
    return keys.reshape(*keys.shape[:2], m, m)


def _time(fn, screens: np.ndarray, repeats: int) -> tuple[float, list[np.ndarray]]:
    best, out = float("inf"), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = [fn(screens, n) for n in SIZES]
        best = min(best, time.perf_counter() - t0)
    return best, out


def run(out: Path, quick: bool) -> dict:
    games, shots = (4, 8) if quick else (12, 16)  # the demo's museum: 12 games, 16 shots each
    sets = {"museum": museum_screens(games, shots)}
    rng = np.random.default_rng(0)
    sets["all cells distinct"] = rng.integers(0, 54, (len(sets["museum"]) // 4, 224, 224)).astype(np.uint8)
    figures: dict[str, object] = {}
    for name, screens in sets.items():
        cells = patterns.screen_cells(screens).reshape(-1, patterns.CELL * patterns.CELL)
        distinct = len(np.unique(cells, axis=0))
        ours, keys = _time(patterns.window_keys, screens, 3)
        every, keys_every = _time(_every_cell, screens, 2)
        copies, keys_copies = _time(_copies, screens, 1)
        for a, b, c in zip(keys, keys_every, keys_copies, strict=True):
            assert np.array_equal(a, b) and np.array_equal(a, c), "window keys differ between readings"
        figures[name] = {
            "screens": len(screens), "cells": len(cells), "distinct_cells": distinct,
            "window_keys_s": round(ours, 3), "every_cell_s": round(every, 3), "window_copies_s": round(copies, 3),
            "ratio_vs_every_cell": round(every / ours, 2), "ratio_vs_window_copies": round(copies / ours, 2),
        }
    return figures
