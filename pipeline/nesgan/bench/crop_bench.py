"""Crop stage: grid-phase detection against a cell-by-cell reference, in one run.

Figures: the vectorised `detect_grid_phase` vs the same score computed cell by cell with Python
sets (speedup, and whether the chosen phases agree), and how often it finds the phase of the
embedded museum's mid-scroll shots (fixed status bar, level shifted by a random amount); and how
often the status-bar detector (crop/hud.py) finds the museum's bars exactly, from a game's shots
together and from each shot alone.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np

from nesgan.grid import CELL, REPEAT_WEIGHT, detect_grid_phase, expected_phase


def _reference_scores(rgb: np.ndarray) -> np.ndarray:
    """The documented score of every phase, one cell at a time."""
    h, w = rgb.shape[:2]
    ny, nx = (h - 2 * CELL + 1) // CELL + 1, (w - 2 * CELL + 1) // CELL + 1
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    scores = np.zeros((CELL, CELL))
    for py in range(CELL):
        ys = sorted({0, h, *range(py, h, CELL)})
        for px in range(CELL):
            xs = sorted({0, w, *range(px, w, CELL)})
            extra = sum(len(set(packed[y0:y1, x0:x1].ravel().tolist())) - 1
                        for y0, y1 in itertools.pairwise(ys) for x0, x1 in itertools.pairwise(xs))
            cells = {packed[py + CELL * j: py + CELL * (j + 1), px + CELL * i: px + CELL * (i + 1)].tobytes()
                     for j in range(ny) for i in range(nx)}
            scores[py, px] = extra / (h * w / CELL**2) + REPEAT_WEIGHT * len(cells) / (ny * nx)
    return scores


def _reference_phase(rgb: np.ndarray) -> tuple[int, int]:
    scores = _reference_scores(rgb)
    px0, py0 = expected_phase(*rgb.shape[:2])
    if scores[py0, px0] <= scores.min() + 1e-6:
        return (px0, py0)
    py, px = np.unravel_index(int(np.argmin(scores)), scores.shape)
    return (int(px), int(py))


def _shots(count: int) -> list[tuple[np.ndarray, tuple[int, int]]]:
    """Mid-scroll museum shots as (224×224 RGB crop of the frame, true phase)."""
    from nesgan.museum.synth import make_games, render_scrolled

    rng = np.random.default_rng(0)
    games = make_games(0, 8)
    out = []
    for i in range(count):
        game = games[i % len(games)]
        sx, dx, dy = int(rng.integers(1, 256)), int(rng.integers(0, 33)), int(rng.integers(0, 17))
        rgb = game.palette().to_rgb(render_scrolled(game, i, sx))[dy:dy + 224, dx:dx + 224]
        out.append((np.ascontiguousarray(rgb), ((-sx - dx) % CELL, (-dy) % CELL)))
    return out


def _hud_figures(games: int, per_game: int) -> dict:
    """Share of museum shots (256×240 and 256×224, 40 % mid-scroll) whose bar rows are found
    exactly: from all of a game's shots, and from each shot alone."""
    from nesgan.crop.hud import detect_alone, detect_shots
    from nesgan.museum.synth import make_games, render_scrolled

    rng = np.random.default_rng(1)
    right_shots = right_alone = total = 0
    for game in make_games(3, games):
        frames, truths = [], []
        for shot in range(per_game):
            scroll = int(rng.integers(1, 256)) if rng.random() < 0.4 else 0
            full = game.palette().to_rgb(render_scrolled(game, shot, scroll))
            ntsc = rng.random() < 0.65
            frames.append(full[8:232] if ntsc else full)
            cut = 8 if ntsc else 0
            truths.append((32 - cut, 0) if game.hud_top else (0, 32 - cut))
        found = detect_shots(frames, [8 if len(f) == 224 else 0 for f in frames])
        for f, hud, want in zip(frames, found, truths, strict=True):
            right_shots += hud.rows(len(f)) == want
            right_alone += detect_alone(f, 8 if len(f) == 224 else 0).rows(len(f)) == want
            total += 1
    return {
        "hud_museum_shots": total,
        "hud_found_fraction_by_game": round(right_shots / total, 3),
        "hud_found_fraction_one_shot_alone": round(right_alone / total, 3),
    }


def run(out: Path, quick: bool) -> dict:
    hud = _hud_figures(6 if quick else 40, 8 if quick else 12)
    shots = _shots(24 if quick else 160)
    t0 = time.perf_counter()
    fast = [detect_grid_phase(rgb) for rgb, _ in shots]
    t_fast = (time.perf_counter() - t0) / len(shots)
    ref_n = 2 if quick else 6
    t0 = time.perf_counter()
    ref = [_reference_phase(rgb) for rgb, _ in shots[:ref_n]]
    t_ref = (time.perf_counter() - t0) / ref_n
    return {
        "grid_phase_speedup_vs_cell_by_cell": round(t_ref / t_fast, 1),
        "grid_phase_ms_per_224px_image": round(t_fast * 1000, 2),
        "reference_agrees": ref == fast[:ref_n],
        "scrolled_museum_shots": len(shots),
        "scrolled_phase_found_fraction": round(
            float(np.mean([f == truth for f, (_, truth) in zip(fast, shots, strict=True)])), 3),
        **hud,
    }
