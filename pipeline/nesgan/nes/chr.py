"""Pattern tables (CHR): 8×8 tiles of 2-bit pixel values, and their deduplication.

A CHR tile is 16 bytes: 8 bytes of bit plane 0 (bit 0 of each pixel's value, one byte a row),
then 8 bytes of bit plane 1; in each byte the most significant bit is the leftmost pixel. A pixel
value 0 shows the backdrop ($3F00), 1–3 the colours of its 16×16 area's sub-palette. One pattern
table holds 256 tiles (4 KiB); NROM's 8 KiB CHR-ROM holds two (background and sprites).
"""

from __future__ import annotations

import numpy as np

TILE = 8  # the PPU's tile: 8×8 pixels
BYTES_PER_TILE = 16  # two bit planes of 8 rows
TABLE_TILES = 256  # tiles in one pattern table (a nametable byte indexes it)


def encode_chr(patterns: np.ndarray) -> bytes:
    """(N, 8, 8) pixel values 0–3 -> N × 16 bytes of CHR."""
    p = np.asarray(patterns, dtype=np.uint8)
    if p.ndim != 3 or p.shape[1:] != (TILE, TILE) or (p > 3).any():
        raise ValueError(f"patterns must be (N, 8, 8) values 0–3, got shape {p.shape}")
    plane0 = np.packbits(p & 1, axis=2)[..., 0]  # (N, 8): a byte per row, MSB = leftmost
    plane1 = np.packbits(p >> 1, axis=2)[..., 0]  # (N, 8)
    return np.concatenate([plane0, plane1], axis=1).tobytes()  # (N, 16)


def decode_chr(data: bytes) -> np.ndarray:
    """CHR bytes (a multiple of 16) -> (N, 8, 8) uint8 pixel values 0–3."""
    if len(data) % BYTES_PER_TILE:
        raise ValueError(f"CHR data is {len(data)} bytes, not a multiple of {BYTES_PER_TILE}")
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 2, TILE)  # (N, plane, row)
    bits = np.unpackbits(raw[..., None], axis=3)  # (N, 2, 8, 8), MSB first = leftmost pixel
    return (bits[:, 0] | (bits[:, 1] << 1)).astype(np.uint8)


def to_tiles(values: np.ndarray) -> np.ndarray:
    """(8·R, 8·C) pixel values -> (R, C, 8, 8) tiles."""
    h, w = values.shape
    return values.reshape(h // TILE, TILE, w // TILE, TILE).swapaxes(1, 2)


def from_tiles(tiles: np.ndarray) -> np.ndarray:
    """(R, C, 8, 8) tiles -> (8·R, 8·C) pixel values."""
    r, c = tiles.shape[:2]
    return tiles.swapaxes(1, 2).reshape(r * TILE, c * TILE)


def dedupe_patterns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(8·R, 8·C) pixel values -> (patterns (N, 8, 8), index (R, C)): each distinct 8×8 tile once,
    numbered in order of first appearance reading row by row, so the CHR reads like the map."""
    tiles = to_tiles(np.asarray(values, dtype=np.uint8))  # (R, C, 8, 8)
    r, c = tiles.shape[:2]
    flat = tiles.reshape(r * c, TILE * TILE)
    uniq, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # unique rows by first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    patterns = uniq[order].reshape(-1, TILE, TILE)
    return patterns, rank[inverse.reshape(-1)].reshape(r, c)
