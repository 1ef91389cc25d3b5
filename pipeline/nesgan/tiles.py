"""16×16 tiles: grid-aligned slicing, shape keys, exact dedupe, and the tile stage `build_tiles`.

Vocabulary used throughout nesgan:

* a **tile** is a (16, 16) uint8 array of NES colour indices;
* its **shape** is the tile with its colours relabelled 0, 1, 2, … in order of first appearance
  (row-major), so two tiles share a shape exactly when one is a palette swap of the other;
* its **key** is a 64-bit hash of the smallest-hashing shape over the four flips (none, H, V, HV),
  so palette swaps and mirrors of one drawing share a key; rows number each distinct key as a
  `shape_group` in order of first appearance.

The stage (`build_tiles`) quantizes every generated 224×224 screen onto the NES palette, cuts it on
phase (0, 0) into 14×14 tiles, deduplicates them exactly (keeping counts and every place each
occurs), checks each unique tile against the training screens' tiles (`nesgan.nearcopy`), and
writes `tiles.jsonl` (sorted keys) plus contact sheets (`nesgan.contact`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nesgan.errors import NesganError
from nesgan.palette import Palette, load_palette

TILE = 16  # one NES attribute area: 2×2 pattern tiles sharing a sub-palette
SCREEN = 224  # 14 × 16: what the generator draws and the crop stage writes
GRID = SCREEN // TILE  # 14 tiles a side
FLIPS = ("none", "h", "v", "hv")  # index 0–3 in `flips()` order
ACCEPTED_MODES = ("RGB", "RGBA", "P", "L")  # modes that convert to RGB without guessing
DEFAULT_NEAR_COPY_PIXELS = 4  # see nesgan.nearcopy: 1–3 px edits < 4 < the ≥ 6 px between drawings

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


def shape_keys(tiles: np.ndarray) -> np.ndarray:
    """(N, 16, 16) -> (N,) uint64 key: the same for palette swaps and H/V/HV mirrors of a drawing."""
    hashes = np.stack([hash_rows(shape_labels(f)) for f in flips(tiles)])  # (4, N)
    return hashes.min(0)


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
    from nesgan.quantize import open_rgb, quantize_rgb

    return quantize_rgb(open_rgb(path, size=size, modes=ACCEPTED_MODES), palette)


def list_pngs(folder: Path) -> list[Path]:
    """Image files directly in `folder`, in file-name order (hidden files skipped)."""
    from nesgan.quantize import IMAGE_SUFFIXES

    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


@dataclass(frozen=True)
class TileConfig:
    generated: Path  # folder of 224×224 generated PNGs (file-name order)
    train: Path  # training screens folder (data/screens)
    tiles_dir: Path  # where tiles.jsonl + contact sheets go
    near_copy_pixels: int = DEFAULT_NEAR_COPY_PIXELS  # K; the choice is argued in nesgan.nearcopy
    palette_file: Path | None = None  # None: the built-in 2C02 table
    contact_sheets: bool = True  # off only for benchmarks and tests that do not look at them

    def __post_init__(self) -> None:
        if not 0 <= int(self.near_copy_pixels) <= TILE * TILE:
            raise NesganError(f"--near-copy-pixels must be 0–256, got {self.near_copy_pixels}")


@dataclass
class TileReport:
    palette: Palette
    tiles: np.ndarray  # (N, 16, 16) uint8 NES colour indices: unique generated tiles, id = index
    rows: list[dict]  # tiles.jsonl rows; rows[i]["id"] == i
    screens: list[tuple[str, np.ndarray]]  # per generated screen: (file name, (14, 14) tile ids)
    quantized: list[np.ndarray]  # per generated screen: (224, 224) uint8 NES indices
    contact_sheets: list[Path] = field(default_factory=list)  # PNGs in tiles_dir, flagged first

    @property
    def near_copies(self) -> int:
        return sum(bool(r["near_copy"]) for r in self.rows)

    @property
    def trivial(self) -> int:
        return sum(r["verdict"] == "trivial" for r in self.rows)


def _generated_screens(config: TileConfig, palette: Palette) -> tuple[list[str], list[np.ndarray]]:
    from tqdm import tqdm

    if not config.generated.is_dir():
        raise NesganError(f"generated folder {config.generated} does not exist; run `nesgan generate` first")
    paths = list_pngs(config.generated)
    if not paths:
        raise NesganError(f"no images in {config.generated}; run `nesgan generate` first")
    quantized = [open_screen(p, palette) for p in tqdm(paths, desc="quantize", unit="screen",
                                                       disable=len(paths) < 50, file=sys.stderr)]
    return [p.name for p in paths], quantized


def build_tiles(config: TileConfig) -> TileReport:
    """Quantize, slice and dedupe the generated screens, check them against the training tiles,
    and write tiles_dir/tiles.jsonl (sorted keys) plus contact sheets."""
    from nesgan.contact import write_contact_sheets
    from nesgan.files import write_jsonl
    from nesgan.nearcopy import load_or_build_index, verdicts

    palette = load_palette(config.palette_file)
    names, quantized = _generated_screens(config, palette)
    index = load_or_build_index(config.train, palette)  # fails early on a missing training folder

    # 1. slice every screen on phase (0, 0): the generator learned grid-aligned crops
    per_screen = [slice_tiles(q, (0, 0)) for q in quantized]
    all_tiles = np.concatenate([t for t, _ in per_screen])  # (S·196, 16, 16)
    all_pos = np.concatenate([p for _, p in per_screen])  # (S·196, 2)
    all_screen = np.repeat(np.arange(len(names)), GRID * GRID)  # (S·196,)
    # 2. exact dedupe, ids in order of first appearance
    tiles, inverse, counts = dedupe(all_tiles)
    screens = [(n, inverse[i * GRID * GRID : (i + 1) * GRID * GRID].reshape(GRID, GRID))
               for i, n in enumerate(names)]
    # 3. shape keys and groups (palette swaps and mirrors of one drawing)
    keys = shape_keys(tiles)
    group_of: dict[int, int] = {}
    groups = [group_of.setdefault(int(k), len(group_of)) for k in keys]
    # 4. nearest training tile for every unique tile, and the verdict
    found = verdicts(index, tiles, config.near_copy_pixels)

    occurrences: list[list[dict]] = [[] for _ in range(len(tiles))]
    for t, s, (x, y) in zip(inverse.tolist(), all_screen.tolist(), all_pos.tolist(), strict=True):
        occurrences[t].append({"screen": names[s], "x": x, "y": y})
    rows = []
    for i in range(len(tiles)):
        colours = sorted(int(c) for c in np.unique(tiles[i]))
        rows.append({
            "id": i,
            "key": key_hex(keys[i]),
            "shape_group": groups[i],
            "count": int(counts[i]),
            "colours": colours,
            "first_seen": occurrences[i][0],
            "occurrences": occurrences[i],
            "near_copy": found.verdict[i] == "near_copy",
            "verdict": found.verdict[i],
            "nearest": found.nearest_row(i, index),
            "status": "ok",
            "error": None,
        })
    config.tiles_dir.mkdir(parents=True, exist_ok=True)
    sheets = []
    if config.contact_sheets:
        nearest = index.tiles[np.maximum(found.found.train_id, 0)] if len(index.tiles) else None
        sheets = write_contact_sheets(config.tiles_dir, tiles, nearest, rows, palette)
    write_jsonl(config.tiles_dir / "tiles.jsonl", rows)  # the manifest last
    return TileReport(palette=palette, tiles=tiles, rows=rows, screens=screens,
                      quantized=quantized, contact_sheets=sheets)
