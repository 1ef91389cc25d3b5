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

import random
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from nesgan.colour.palette import Palette
from nesgan.level.example import read_example
from nesgan.level.grow import build_model, grow
from nesgan.level.patterns import copied_runs, row_tiles, symmetric_kl, violations, windows
from nesgan.tiled.merge import OwnTileset, update_map
from nesgan.tiled.tmx import empty_atlas, write_atlas

SCREEN = 16  # columns a screen


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
