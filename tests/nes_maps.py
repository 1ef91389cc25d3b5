"""Test maps for export-nes: NES-legal screens from the embedded museum, written as a real
nesgan map (TSX tileset with nesgan's per-tile properties + PNG atlas, TMX layer `nesgan`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nesgan.demo import synth
from nesgan.palette import Palette
from nesgan.tmx import empty_atlas, write_atlas
from nesgan.tmx_merge import OwnTileset, update_map

PALETTE = Palette.builtin()


def museum_indices(game: int = 0, shots=(0, 1), rows: int = 14, cols: int = 14,
                   seed: int = 0) -> np.ndarray:
    """(16·rows, 16·cols·len(shots)) NES indices: the museum game's shots side by side, each
    cropped on the attribute grid (its bottom `rows` cells, left `cols` cells)."""
    g = synth.make_game(seed, game)
    parts = []
    for shot in shots:
        frame = synth.render_frame(g, shot, sprites=False).indices  # (240, 256)
        parts.append(frame[240 - 16 * rows :, : 16 * cols])
    return np.concatenate(parts, axis=1)


def write_map(folder: Path, indices: np.ndarray, name: str = "nesgan",
              gids_hook=None) -> Path:
    """Write `indices` (multiples of 16 on both sides) as folder/level.tmx painted from
    folder/tilesets/NAME.tsx, one tile per distinct 16×16 cell."""
    h, w = indices.shape
    cells = indices.reshape(h // 16, 16, w // 16, 16).swapaxes(1, 2).reshape(-1, 16, 16)
    uniq, inverse = np.unique(cells, axis=0, return_inverse=True)
    atlas = empty_atlas(name, 16)
    for k, tile in enumerate(uniq):
        atlas.append(PALETTE.to_rgb(tile))
        atlas.props[k] = {"count": int((inverse == k).sum()), "near_copy": False}
    tsx = folder / "tilesets" / f"{name}.tsx"
    write_atlas(tsx, atlas)
    local = inverse.reshape(h // 16, w // 16).astype(np.int64)
    which = np.zeros_like(local)
    tmx = folder / "level.tmx"
    update_map(tmx, [OwnTileset(tsx, name, atlas.extent)], name, which, local)
    return tmx
