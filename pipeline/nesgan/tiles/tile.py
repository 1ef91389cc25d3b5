"""16×16 tiles: grid-aligned slicing, shape keys, exact dedupe — the basics every tile module uses.

Vocabulary used throughout nesgan:

* a **tile** is a (16, 16) uint8 array of NES colour indices;
* its **shape** is the tile with its colours relabelled 0, 1, 2, … in order of first appearance
  (row-major), so two tiles share a shape exactly when one is a palette swap of the other;
* its **key** is a 64-bit hash of the smallest-hashing shape over the four flips (none, H, V, HV),
  so palette swaps and mirrors of one drawing share a key; rows number each distinct key as a
  `shape_group` in order of first appearance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nesgan.colour.lut import quantize_rgb
from nesgan.colour.palette import Palette
from nesgan.images import GRID, SCREEN, TILE, open_rgb

__all__ = ["GRID", "SCREEN", "TILE"]  # re-exported: tile code speaks in these
FLIPS = ("none", "h", "v", "hv")  # index 0–3 in `flips()` order
ACCEPTED_MODES = ("RGB", "RGBA", "P", "L")  # modes that convert to RGB without guessing
DEFAULT_NEAR_COPY_PIXELS = 4  # see nesgan.tiles.nearcopy: 1–3 px edits < 4 < the ≥ 6 px between drawings

# Odd 64-bit multipliers for the positional hash of 256 labels (fixed: keys are stable across runs).
_HASH_W = np.random.default_rng(0x7E5).integers(1, 2**63, size=TILE * TILE, dtype=np.uint64) | np.uint64(1)


def flips(tiles: np.ndarray) -> np.ndarray:
    """(N, 16, 16) -> (4, N, 16, 16): as is, mirrored left-right, upside down, both."""
    t = np.asarray(tiles)
    return np.stack([t, t[:, :, ::-1], t[:, ::-1, :], t[:, ::-1, ::-1]])


def first_positions(flat: np.ndarray) -> np.ndarray:
    """(N, L) colour indices < 64 -> (N, L) position of the first pixel of the same colour.

    Equal outputs <=> equal up to a colour bijection: the canonical palette-free form of a block.
    """
    flat = np.asarray(flat)
    n, length = flat.shape
    first = np.zeros((n, 64), dtype=np.int16)
    rows = np.arange(n)
    for j in range(length - 1, -1, -1):  # the last write wins, so walk backwards
        first[rows, flat[:, j]] = j
    return np.take_along_axis(first, flat.astype(np.intp), axis=1)


def shape_labels(tiles: np.ndarray) -> np.ndarray:
    """(N, 16, 16) -> (N, 256) uint8: colours relabelled 0, 1, … in order of first appearance."""
    flat = np.asarray(tiles).reshape(len(tiles), -1)
    pos = first_positions(flat).astype(np.intp)  # (N, 256)
    is_first = pos == np.arange(flat.shape[1])[None, :]
    rank = np.cumsum(is_first, axis=1) - 1  # (N, 256) label of the colour first seen at j
    return np.take_along_axis(rank, pos, axis=1).astype(np.uint8)


def hash_rows(a: np.ndarray) -> np.ndarray:
    """(N, L ≤ 256) small ints -> (N,) uint64 positional hash (wrapping arithmetic)."""
    a = np.asarray(a).astype(np.uint64)
    out = np.empty(len(a), dtype=np.uint64)
    w = _HASH_W[: a.shape[1]]
    for s in range(0, len(a), 65536):
        h = (a[s : s + 65536] + np.uint64(1)) @ w  # (n,)
        out[s : s + 65536] = h ^ (h >> np.uint64(29))
    return out


def partition_hashes(tiles: np.ndarray) -> np.ndarray:
    """(N, 16, 16) -> (N,) uint64: the same for palette swaps of a drawing (not its mirrors)."""
    return hash_rows(shape_labels(tiles))


def shape_keys(tiles: np.ndarray) -> np.ndarray:
    """(N, 16, 16) -> (N,) uint64 key: the same for palette swaps and H/V/HV mirrors of a drawing."""
    return np.stack([partition_hashes(f) for f in flips(tiles)]).min(0)  # (4, N) → (N,)


def key_hex(key: int | np.uint64) -> str:
    return f"{int(key):016x}"


def slice_tiles(indices: np.ndarray, phase: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """Cut (H, W) NES indices on the grid whose cells start at x ≡ px, y ≡ py (mod 16).

    Partial cells at the border are not tiles. Returns tiles (N, 16, 16) in row-major order and
    their top-left pixel positions (N, 2) as (x, y).
    """
    px, py = int(phase[0]) % TILE, int(phase[1]) % TILE
    h, w = indices.shape
    ny, nx = (h - py) // TILE, (w - px) // TILE
    if nx <= 0 or ny <= 0:
        return np.zeros((0, TILE, TILE), np.uint8), np.zeros((0, 2), np.int64)
    area = indices[py : py + ny * TILE, px : px + nx * TILE]
    tiles = area.reshape(ny, TILE, nx, TILE).transpose(0, 2, 1, 3).reshape(-1, TILE, TILE)
    ys, xs = np.mgrid[0:ny, 0:nx]
    pos = np.stack([xs.ravel() * TILE + px, ys.ravel() * TILE + py], 1)
    return np.ascontiguousarray(tiles), pos


def rebuild_screens(tiles: np.ndarray, screens) -> list[np.ndarray]:
    """Each screen of `screens` ((name, (14, 14) tile ids) pairs) drawn with `tiles`
    ((T, 16, 16) NES indices), (224, 224) each: the map rebuilt from the sheet, the inverse of
    `slice_tiles`."""
    tiles = np.asarray(tiles)
    # (14, 14, 16, 16) -> (14, 16, 14, 16) -> (224, 224)
    return [tiles[np.asarray(ids)].swapaxes(1, 2).reshape(SCREEN, SCREEN)
            for _, ids in screens]


def dedupe(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact dedupe, first occurrence first: (unique (U,16,16), inverse (N,), counts (U,))."""
    flat = np.ascontiguousarray(np.asarray(tiles, dtype=np.uint8).reshape(len(tiles), -1))
    if len(flat) == 0:
        return np.zeros((0, TILE, TILE), np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()
    _, first, inverse, counts = np.unique(rows, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(first, kind="stable")  # unique ids in order of first appearance
    new_id = np.empty_like(order)
    new_id[order] = np.arange(len(order))
    return flat[first[order]].reshape(-1, TILE, TILE), new_id[inverse.ravel()], counts[order]


def open_screen(path: Path, palette: Palette, *, size: int | None = SCREEN) -> np.ndarray:
    """A screen image -> (H, W) NES indices; refuses unreadable files, odd modes and wrong sizes."""
    return quantize_rgb(open_rgb(path, size=size, modes=ACCEPTED_MODES), palette)
