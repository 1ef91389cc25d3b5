"""Test maps for export-nes: NES-legal screens from the embedded museum, written as a real
nesgan map (TSX tileset with nesgan's per-tile properties + PNG atlas, TMX layer `nesgan`)."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from nesgan.colour.palette import Palette
from nesgan.museum import synth
from nesgan.tiled.merge import OwnTileset, update_map
from nesgan.tiled.tmx import decode_data, empty_atlas, encode_data, write_atlas

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


def write_map(folder: Path, indices: np.ndarray, name: str = "nesgan", flags=None,
              empty=None, ours: bool = True) -> Path:
    """Write `indices` (multiples of 16 on both sides) as folder/level.tmx painted from
    folder/tilesets/NAME.tsx, one tile per distinct 16×16 cell. `flags` (rows, cols) are Tiled
    flip bits OR-ed into the gids, `empty` (rows, cols) cells are left empty; `ours=False`
    leaves out nesgan's per-tile properties (a tileset made by someone else)."""
    h, w = indices.shape
    cells = indices.reshape(h // 16, 16, w // 16, 16).swapaxes(1, 2).reshape(-1, 16, 16)
    uniq, inverse = np.unique(cells, axis=0, return_inverse=True)
    atlas = empty_atlas(name, 16)
    for k, tile in enumerate(uniq):
        atlas.append(PALETTE.to_rgb(tile))
        if ours:
            atlas.props[k] = {"count": int((inverse == k).sum()), "near_copy": False}
    tsx = folder / "tilesets" / f"{name}.tsx"
    write_atlas(tsx, atlas)
    local = inverse.reshape(h // 16, w // 16).astype(np.int64)
    which = np.zeros_like(local)
    tmx = folder / "level.tmx"
    update_map(tmx, [OwnTileset(tsx, name, atlas.extent)], name, which, local)
    if flags is not None or empty is not None:
        set_layer(tmx, name, lambda gids: np.where(
            empty if empty is not None else False, 0,
            gids | (flags if flags is not None else 0)).astype(np.uint32))
    return tmx


def set_layer(tmx: Path, layer: str, change) -> None:
    """Rewrite one layer's gids with `change(gids) -> gids`."""
    root = ET.parse(tmx).getroot()
    el = next(e for e in root.iter("layer") if e.get("name") == layer)
    data = el.find("data")
    gids = decode_data(data, int(el.get("width")), int(el.get("height")), "test")
    encode_data(data, change(gids))
    tmx.write_text(ET.tostring(root, encoding="unicode"))


def tiled_flip(tile: np.ndarray, gid: int) -> np.ndarray:
    """A tile as Tiled draws it with flip bits (TMX reference): the diagonal flip swaps x and
    y, and comes before the horizontal and then the vertical flip."""
    if gid & 0x20000000:
        tile = tile.T
    if gid & 0x80000000:
        tile = tile[:, ::-1]
    if gid & 0x40000000:
        tile = tile[::-1]
    return tile


def spec_attribute(table: bytes, row: int, col: int) -> int:
    """Sub-palette of 16×16 area (row, col) as the PPU reads it: byte 8·(row//2) + col//2 of the
    64-byte attribute table; bits 1–0 top-left, 3–2 top-right, 5–4 bottom-left, 7–6 bottom-right."""
    byte = table[8 * (row // 2) + col // 2]
    return (byte >> (2 * (2 * (row % 2) + col % 2))) & 3


def decode_nametable(nam: bytes, chr_data: bytes, pal: bytes) -> np.ndarray:
    """(240, 256) NES indices a nametable shows, decoded from the file formats alone."""
    assert len(nam) == 1024 and len(pal) == 16 and len(chr_data) % 16 == 0
    out = np.zeros((240, 256), np.int16)
    for ty in range(30):
        for tx in range(32):
            tile = chr_data[16 * nam[32 * ty + tx] : 16 * nam[32 * ty + tx] + 16]
            sub = spec_attribute(nam[960:], ty // 2, tx // 2)
            for y in range(8):
                for x in range(8):
                    v = (tile[y] >> (7 - x) & 1) | (tile[8 + y] >> (7 - x) & 1) << 1
                    out[8 * ty + y, 8 * tx + x] = pal[0] if v == 0 else pal[4 * sub + v]
    return out
