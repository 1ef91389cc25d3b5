"""Read one tile layer of a Tiled map as NES colour indices, pixel by pixel.

The map is read through `nesgan.tiled.model` (finite, orthogonal, 16×16 tiles: what
`nesgan export-tiles --tmx` writes and Tiled keeps). Each gid is resolved through its tileset
(external TSX or embedded, an atlas image with any margin and spacing) to 16×16 RGBA pixels,
flipped as Tiled draws it, and every opaque pixel is looked up in the NES palette's
RGB table: nesgan's atlases are written in exactly those colours. Empty cells and transparent
pixels show the backdrop, as on the NES.

The default layer is the one painted with nesgan's tilesets: external TSX files whose tiles
carry nesgan's `near_copy` property.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nesgan.colour.palette import EMITTABLE, Palette
from nesgan.errors import NesganError
from nesgan.tiled.model import ROTATE_120, TiledMap, flip_tile, read_map
from nesgan.tiled.tmx import GID_MASK, TILE


@dataclass
class Level:
    """A map layer as NES colour indices."""

    path: Path
    layer: str
    indices: np.ndarray  # (16·rows, 16·cols) int16 NES index, -1 where nothing is drawn
    tiles_used: int  # distinct (gid, flips) painted in the layer
    other_layers: list[str] = field(default_factory=list)  # tile layers not exported

    @property
    def size(self) -> tuple[int, int]:
        """(columns, rows) in 16×16 tiles."""
        return self.indices.shape[1] // TILE, self.indices.shape[0] // TILE


def read_level(path: Path, palette: Palette, layer: str | None = None,
               check_size: Callable[[int, int], None] | None = None) -> Level:
    """The chosen layer of the map at `path` as NES colour indices. `check_size(columns, rows)`
    may refuse the layer's size before any tile is read."""
    tmap = read_map(path)
    for each in tmap.layers:  # every layer decodes, or the map is refused before any pixel
        each.gids()
    chosen = tmap.pick_layer(layer)
    grid = chosen.gids()
    if check_size is not None:
        check_size(grid.shape[1], grid.shape[0])
    return Level(tmap.path, chosen.name,
                 _paint(grid, tmap, palette, f"layer {chosen.name!r} of {tmap.what}"),
                 int(len(np.unique(grid[grid != 0]))),
                 [each.name for each in tmap.layers if each is not chosen])


def _paint(grid: np.ndarray, tmap: TiledMap, palette: Palette, what: str) -> np.ndarray:
    """(rows, cols) gids -> (16·rows, 16·cols) int16 NES indices (-1: nothing drawn)."""
    rows, cols = grid.shape
    rgb = palette.rgb[EMITTABLE].astype(np.int64)
    packed_pal = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    keys, first = np.unique(packed_pal, return_index=True)  # the canonical index where RGBs coincide
    values = EMITTABLE[first].astype(np.int16)
    uniq, inverse = np.unique(grid, return_inverse=True)
    tiles = np.full((len(uniq), TILE, TILE), -1, np.int16)  # uniq[0] may be 0: an empty cell
    for k, gid in enumerate(uniq.tolist()):
        if gid == 0:
            continue
        r, c = (int(v[0]) for v in np.nonzero(grid == gid))
        at = f"column {c}, row {r} of {what}"
        if gid & ROTATE_120:
            raise NesganError(f"the tile at {at} has the hexagonal 120° rotation flag; the map "
                              "must be orthogonal")
        bare = gid & GID_MASK
        ts = tmap.owner(bare)
        if ts is None:
            raise NesganError(f"the tile at {at} has gid {bare}, which no tileset of the map holds")
        pixels = ts.pixels(tmap.what)
        local = bare - ts.firstgid
        if local >= len(pixels):
            raise NesganError(f"the tile at {at} is tile {local} of tileset {ts.name!r}, which has "
                              f"{len(pixels)} tiles")
        rgba = flip_tile(pixels[local], gid).astype(np.int64)
        alpha = rgba[..., 3]
        if ((alpha > 0) & (alpha < 255)).any():
            raise NesganError(f"tile {local} of tileset {ts.name!r} (first at {at}) is partly "
                              "transparent; an NES pixel is either a colour or the backdrop")
        packed = (rgba[..., 0] << 16) | (rgba[..., 1] << 8) | rgba[..., 2]
        pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
        known = keys[pos] == packed
        stray = (alpha == 255) & ~known
        if stray.any():
            bad = int(packed[stray][0])
            raise NesganError(
                f"tile {local} of tileset {ts.name!r} (first at {at}) has colour #{bad:06x}, "
                f"which is not in the NES palette table {palette.name!r}; nesgan's tilesets use "
                "its colours exactly: quantize the tileset's image onto it (`nesgan quantize`), "
                "or pass the .pal file its colours come from with --palette")
        tiles[k] = np.where(alpha == 255, values[pos], -1)
    cells = tiles[inverse.reshape(rows, cols)]  # (rows, cols, 16, 16)
    return cells.swapaxes(1, 2).reshape(rows * TILE, cols * TILE)
