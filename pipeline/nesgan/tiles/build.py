"""The tile stage `build_tiles`: quantize every generated 224×224 screen onto the NES palette, cut it
on phase (0, 0) into 14×14 tiles, deduplicate them exactly (keeping counts and every place each
occurs), check each unique tile against the training screens' tiles (`nesgan.tiles.nearcopy`), and
write `tiles.jsonl` (sorted keys) plus contact sheets (`nesgan.tiles.contact`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nesgan.colour.palette import Palette, load_palette
from nesgan.errors import NesganError
from nesgan.files import write_jsonl
from nesgan.images import GRID, TILE, image_files
from nesgan.tiles.contact import write_contact_sheets
from nesgan.tiles.nearcopy import load_or_build_index, verdicts
from nesgan.tiles.tile import (
    DEFAULT_NEAR_COPY_PIXELS,
    dedupe,
    key_hex,
    open_screen,
    shape_keys,
    slice_tiles,
)


@dataclass(frozen=True)
class TileConfig:
    generated: Path  # folder of 224×224 generated PNGs (file-name order)
    train: Path  # training screens folder (data/screens)
    tiles_dir: Path  # where tiles.jsonl + contact sheets go
    near_copy_pixels: int = DEFAULT_NEAR_COPY_PIXELS  # K; the choice is argued in nesgan.tiles.nearcopy
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
    paths = image_files(config.generated)
    if not paths:
        raise NesganError(f"no images in {config.generated}; run `nesgan generate` first")
    quantized = [open_screen(p, palette) for p in tqdm(paths, desc="quantize", unit="screen",
                                                       disable=len(paths) < 50, file=sys.stderr)]
    return [p.name for p in paths], quantized


def build_tiles(config: TileConfig) -> TileReport:
    """Quantize, slice and dedupe the generated screens, check them against the training tiles,
    and write tiles_dir/tiles.jsonl (sorted keys) plus contact sheets."""
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
