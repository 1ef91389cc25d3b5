"""Tile-sheet benchmark: recovery of a known answer, and time and memory at scale.

**Recovery.** Clean screens of the embedded museum (`nesgan.museum.synth`, sprites off: every
16×16 cell is NES-legal and drawn from a known vocabulary of metatiles) are spoiled the way GAN
output is spoiled: every pixel's RGB jittered off the palette (Gaussian, σ = 14 per channel), a
faint 2×2 checkerboard (±10) on top, and 3 % of the pixels replaced by a random colour (speckle);
then quantized onto the NES palette as export-tiles does. The sheet is built with T = the clean
screens' distinct tile count, and the rebuilt map is compared with the clean screens: the share
of equal pixels and of cells rebuilt exactly, the orphan-pixel rate next to the clean screens'
(the speckled input's is printed too), and the most colours any tile shows. The reference is the
quantized spoiled map itself (what `--max-tiles 0` hands the user).

**Scale.** Cells recombined from museum tiles with the same spoiling, 1,000 and 10,000 screens'
worth (196 cells a screen), to a 256-tile sheet: seconds and peak memory (the process's own
high-water mark grows by at most what the sheet allocates on top of the cells).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np

from nesgan.colour.lut import load_lut, quantize_rgb
from nesgan.colour.palette import Palette
from nesgan.images import GRID, SCREEN, TILE
from nesgan.patterns import Reference
from nesgan.tiles.sheet import SheetConfig, build_sheet, colours_per_tile, orphan_rate
from nesgan.tiles.tile import dedupe, slice_tiles

JITTER = 14.0  # RGB σ per channel
CHECKER = 10.0  # ± amplitude of the 2×2 checkerboard
SPECKLE = 0.03  # share of pixels replaced by a random colour


def clean_screens(games: int, shots: int, seed: int = 0) -> np.ndarray:
    """(S, 224, 224) NES indices: museum screens without sprites, cut on the 16-px grid."""
    from nesgan.museum.synth import make_game, render_frame

    out = []
    for g in range(games):
        game = make_game(seed, g)
        for s in range(shots):
            out.append(render_frame(game, s, sprites=False).indices[:SCREEN, 16 : 16 + SCREEN])
    return np.stack(out)


def spoil(screens: np.ndarray, palette: Palette, rng: np.random.Generator) -> np.ndarray:
    """Clean NES-index screens (..., H, W) -> spoiled RGB, quantized back to NES indices."""
    lut = load_lut(palette, verbose=False)
    out = np.empty_like(screens)
    h, w = screens.shape[-2:]
    yy, xx = np.mgrid[0:h, 0:w]
    checker = np.where((yy + xx) % 2 == 0, CHECKER, -CHECKER)[..., None]  # (H, W, 1)
    for i, s in enumerate(screens):
        rgb = palette.to_rgb(s).astype(np.float64)
        rgb += rng.normal(0, JITTER, rgb.shape) + checker
        speck = rng.random((h, w)) < SPECKLE
        rgb[speck] = rng.integers(0, 256, (int(speck.sum()), 3))
        out[i] = quantize_rgb(np.clip(rgb, 0, 255).round().astype(np.uint8), palette, lut)
    return out


def cells_of(screens: np.ndarray) -> np.ndarray:
    return np.concatenate([slice_tiles(s, (0, 0))[0] for s in screens])


def rebuild(tiles: np.ndarray, labels: np.ndarray, n_screens: int) -> np.ndarray:
    """(S, 224, 224) from tiles and (S·196,) cell labels."""
    grid = tiles[labels].reshape(n_screens, GRID, GRID, TILE, TILE)
    return grid.transpose(0, 1, 3, 2, 4).reshape(n_screens, SCREEN, SCREEN)


def recovery(games: int = 6, shots: int = 8, seed: int = 0, palettes: int | None = None) -> dict:
    palette = Palette.builtin()
    clean = clean_screens(games, shots, seed)
    clean_q = np.stack([quantize_rgb(palette.to_rgb(s), palette) for s in clean])
    spoiled = spoil(clean_q, palette, np.random.default_rng(seed))
    truth, _, _ = dedupe(cells_of(clean_q))
    t0 = time.perf_counter()
    sheet = build_sheet(cells_of(spoiled), None, palette, SheetConfig(max_tiles=len(truth), palettes=palettes))
    seconds = time.perf_counter() - t0
    rebuilt = rebuild(sheet.tiles, sheet.labels, len(clean))
    cells_equal = (cells_of(rebuilt) == cells_of(clean_q)).reshape(-1, TILE * TILE).all(1)
    return {
        "screens": len(clean),
        "clean_distinct_tiles": len(truth),
        "sheet_tiles": len(sheet.tiles),
        "pixels_equal": round(float((rebuilt == clean_q).mean()), 4),
        "cells_equal": round(float(cells_equal.mean()), 4),
        "spoiled_pixels_equal": round(float((spoiled == clean_q).mean()), 4),
        "orphan_rate_rebuilt": round(orphan_rate(rebuilt), 4),
        "orphan_rate_clean": round(orphan_rate(clean_q), 4),
        "orphan_rate_spoiled": round(orphan_rate(spoiled), 4),
        "orphan_target": round(1.5 * orphan_rate(clean_q) + 0.002, 4),
        "max_colours_per_tile": int(colours_per_tile(sheet.tiles).max()),
        "subpalettes": len(sheet.subpalettes),
        "seconds": round(seconds, 2),
    }


POOL_SCREENS = 300  # spoiled screens the scale cells are drawn from (58,800 cells, ×4 with mirrors)


def scale_cells(n_screens: int, rng: np.random.Generator, vocab: np.ndarray, palette: Palette) -> np.ndarray:
    """n_screens·196 spoiled cells: drawn from POOL_SCREENS spoiled screens of random vocabulary
    tiles, each cell mirrored at random (spoiling 10,000 screens one by one would take longer
    than the sheet itself)."""
    block = GRID * GRID
    screens = np.stack([rebuild(vocab[rng.integers(0, len(vocab), block)], np.arange(block), 1)[0]
                        for _ in range(POOL_SCREENS)])
    pool = cells_of(spoil(screens, palette, rng))  # (POOL·196, 16, 16)
    pick = pool[rng.integers(0, len(pool), n_screens * block)]
    flip = rng.integers(0, 4, len(pick))
    pick[flip & 1 == 1] = pick[flip & 1 == 1][:, :, ::-1]
    pick[flip & 2 == 2] = pick[flip & 2 == 2][:, ::-1, :]
    return pick


def scale(sizes: tuple[int, ...], max_tiles: int = 256) -> dict:
    palette = Palette.builtin()
    rng = np.random.default_rng(1)
    art = clean_screens(12, 4)
    vocab, _, _ = dedupe(cells_of(art))
    reference = Reference(art)  # export-tiles always has --train: each group's drawing is then chosen
    out = {}
    for n in sizes:
        cells = scale_cells(n, rng, vocab, palette)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        sheet = build_sheet(cells, None, palette, SheetConfig(max_tiles=max_tiles, palettes=4))
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        t0 = time.perf_counter()
        build_sheet(cells, None, palette, SheetConfig(max_tiles=max_tiles, palettes=4), reference=reference)
        chosen = time.perf_counter() - t0
        peak_chosen = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out[f"{n}_screens"] = {"cells": len(cells), "seconds": round(seconds, 1),
                               "seconds_with_reference": round(chosen, 1),
                               "peak_rss_gib_with_reference": round(peak_chosen / 2**20, 2),
                               "tiles": len(sheet.tiles), "peak_rss_gib": round(peak / 2**20, 2),
                               "rss_growth_gib": round(max(peak - before, 0) / 2**20, 2)}
        del cells, sheet
    first, last = sizes[0], sizes[-1]
    out["time_growth"] = round(out[f"{last}_screens"]["seconds"] / max(out[f"{first}_screens"]["seconds"], 1e-9), 2)
    out["size_growth"] = last / first
    return out


def run(out: Path, quick: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    # several games (several backdrops: no one palette set can show them), and one game with
    # --palettes 4 (its own palette set is the known answer)
    figures = {"recovery": recovery(4 if quick else 6, 6 if quick else 10),
               "recovery_one_game_palettes_4": recovery(1, 12 if quick else 24, palettes=4)}
    figures["scale"] = scale((100, 1000) if quick else (1000, 10000))
    return figures


if __name__ == "__main__":
    import json

    print(json.dumps(run(Path("bench-out/sheet_bench"), quick=True), indent=2))
