"""The tile stage `build_tiles`: quantize every generated 224×224 screen onto the NES palette, cut it
on phase (0, 0) into 14×14 cells, deduplicate them exactly, group the cells into a sheet of at most
`max_tiles` NES-legal tiles (`nesgan.tiles.sheet`; `max_tiles=0` keeps every distinct cell as it
is), check each sheet tile against the training screens' tiles (`nesgan.tiles.nearcopy`), and
write `tiles.jsonl` (sorted keys), `rebuild.jsonl` + `rebuild-diff.png` (how far the screens
rebuilt from the sheet are from the quantized ones) and contact sheets (`nesgan.tiles.contact`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nesgan.colour.palette import Palette, load_palette
from nesgan.crop.load import training_reference
from nesgan.errors import NesganError
from nesgan.files import atomic_write_bytes, write_jsonl
from nesgan.images import GRID, SCREEN, TILE, encode_png, image_files
from nesgan.patterns import INVENTED_N, Reference
from nesgan.tiles.contact import write_contact_sheets, write_member_sheets
from nesgan.tiles.nearcopy import Verdicts, copy_share, load_or_build_index, verdicts
from nesgan.tiles.sheet import (
    DEFAULT_MAX_TILES,
    Sheet,
    SheetConfig,
    build_fitting_sheet,
    check_budget,
    orphan_rate,
)
from nesgan.tiles.tile import (
    DEFAULT_NEAR_COPY_PIXELS,
    dedupe,
    key_hex,
    open_screen,
    partition_hashes,
    rebuild_screens,
    shape_keys,
    slice_tiles,
)


@dataclass(frozen=True)
class TileConfig:
    generated: Path  # folder of 224×224 generated PNGs (file-name order)
    train: Path | tuple[Path, ...]  # training screens folder(s) (data/screens)
    tiles_dir: Path  # where tiles.jsonl + contact sheets go
    near_copy_pixels: int = DEFAULT_NEAR_COPY_PIXELS  # K; the choice is argued in nesgan.tiles.nearcopy
    palette_file: Path | None = None  # None: the built-in 2C02 table
    contact_sheets: bool = True  # off only for benchmarks and tests that do not look at them
    max_tiles: int = DEFAULT_MAX_TILES  # sheet budget; 0 = every distinct quantized cell, as it is
    palettes: int | None = None  # cap on shared sub-palettes (4 = one NES palette set)
    under_sprites: bool = False  # also the occluded reading (nesgan.tiles.occlusion): opt-in

    def __post_init__(self) -> None:
        if not 0 <= int(self.near_copy_pixels) <= TILE * TILE:
            raise NesganError(f"--near-copy-pixels must be 0–256, got {self.near_copy_pixels}")
        check_budget(self.max_tiles, self.palettes)


@dataclass
class TileReport:
    palette: Palette
    tiles: np.ndarray  # (N, 16, 16) uint8 NES colour indices: unique generated tiles, id = index
    rows: list[dict]  # tiles.jsonl rows; rows[i]["id"] == i
    screens: list[tuple[str, np.ndarray]]  # per generated screen: (file name, (14, 14) tile ids)
    quantized: list[np.ndarray]  # per generated screen: (224, 224) uint8 NES indices
    contact_sheets: list[Path] = field(default_factory=list)  # PNGs in tiles_dir, flagged first
    sheet: Sheet | None = None  # the tile sheet (None with max_tiles=0)
    max_tiles: int = DEFAULT_MAX_TILES
    fitted_budget: int | None = None  # the budget that fitted one NES pattern table (≤ max_tiles)
    differing: list[int] = field(default_factory=list)  # per screen: pixels rebuilt ≠ quantized
    orphan_quantized: float = 0.0  # lone-pixel rate of the quantized screens
    orphan_rebuilt: float = 0.0  # … of the screens rebuilt from the tiles
    rebuild_picture: Path | None = None  # tiles_dir/rebuild-diff.png
    reference: Reference | None = None  # the training screens' window partitions (with a sheet)

    @property
    def differing_share(self) -> float:
        """Share of all generated pixels the rebuilt map shows differently from the quantized screens."""
        return sum(self.differing) / (len(self.differing) * SCREEN * SCREEN) if self.differing else 0.0

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
    cells, cell_of, cell_counts = dedupe(all_tiles)
    # 3. the sheet: at most max_tiles NES-legal tiles, each cell drawn with one of them
    sheet, reference, budget = None, None, config.max_tiles
    judged: dict[bytes, Verdicts] = {}  # the verdicts the sheet's copy bound read, by the tiles judged
    if config.max_tiles == 0:
        tiles, counts, inverse = cells, cell_counts, cell_of
    else:
        reference = training_reference(config.train, palette)

        def copies(candidate: np.ndarray) -> float:  # the sheet's near-copy share, judged as step 5 reports it
            judged[candidate.tobytes()] = found = verdicts(index, candidate, config.near_copy_pixels,
                                                           occluded=config.under_sprites)
            return copy_share(candidate, found.verdict)

        sheet, budget = build_fitting_sheet(cells, cell_counts, palette, SheetConfig(config.max_tiles, config.palettes),
                                            known=None if reference is None else reference.counts[INVENTED_N][0],
                                            drawings=np.unique(partition_hashes(index.tiles)), reference=reference,
                                            copies=copies)
        tiles, counts = sheet.tiles, np.rint(sheet.counts).astype(np.int64)
        inverse = sheet.labels[cell_of]
    screens = [(n, inverse[i * GRID * GRID : (i + 1) * GRID * GRID].reshape(GRID, GRID))
               for i, n in enumerate(names)]
    rebuilt = rebuild_screens(tiles, screens)
    differing = [int((r != q).sum()) for r, q in zip(rebuilt, quantized, strict=True)]
    # 4. shape keys and groups (palette swaps and mirrors of one drawing)
    keys = shape_keys(tiles)
    group_of: dict[int, int] = {}
    groups = [group_of.setdefault(int(k), len(group_of)) for k in keys]
    # 5. nearest training tile for every sheet tile, and the verdict
    found = judged.get(np.ascontiguousarray(tiles).tobytes()) or verdicts(index, tiles, config.near_copy_pixels,
                                                                         occluded=config.under_sprites)

    inverse_cells = np.full(len(cells), -1, np.int64)
    inverse_cells[cell_of[::-1]] = np.arange(len(cell_of))[::-1]  # distinct cell -> its first occurrence
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
            "members": _members(sheet, i, inverse_cells, occurrences[i], all_screen, all_pos, names),
            "subpalette": None if sheet is None else int(sheet.tile_sub[i]),
            "palette": None if sheet is None else _palette_of(sheet, i),
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
        sheets = write_contact_sheets(config.tiles_dir, tiles, found.shown, rows, palette, found.excused)
        if sheet is not None:
            sheets += write_member_sheets(config.tiles_dir, tiles, rows, [cells[m] for m in sheet.members],
                                          palette)
    picture = config.tiles_dir / "rebuild-diff.png"
    atomic_write_bytes(picture, encode_png(palette.to_rgb(rebuild_picture(quantized, rebuilt)).astype(np.uint8)))
    write_jsonl(config.tiles_dir / "rebuild.jsonl", [
        {"screen": n, "differing_pixels": d, "share": round(d / (SCREEN * SCREEN), 6),
         "orphan_quantized": round(orphan_rate([q]), 6), "orphan_rebuilt": round(orphan_rate([r]), 6),
         "status": "ok", "error": None}
        for n, d, q, r in zip(names, differing, quantized, rebuilt, strict=True)])
    write_jsonl(config.tiles_dir / "tiles.jsonl", rows)  # the manifest last
    return TileReport(palette=palette, tiles=tiles, rows=rows, screens=screens,
                      quantized=quantized, contact_sheets=sheets, sheet=sheet, max_tiles=config.max_tiles,
                      fitted_budget=budget,
                      differing=differing, orphan_quantized=orphan_rate(quantized),
                      orphan_rebuilt=orphan_rate(rebuilt), rebuild_picture=picture, reference=reference)


def _members(sheet: Sheet | None, i: int, first: np.ndarray, occurrences: list[dict],
             all_screen: np.ndarray, all_pos: np.ndarray, names: list[str]) -> list[dict]:
    """A few cells tile i stands for (nearest, typical, farthest of its members)."""
    if sheet is None:
        return occurrences[:1]
    out = []
    for u in sheet.members[i]:
        j = first[u]
        out.append({"screen": names[int(all_screen[j])], "x": int(all_pos[j][0]), "y": int(all_pos[j][1])})
    return out


def _palette_of(sheet: Sheet, i: int) -> list[int]:
    """The NES colours tile i may show: [backdrop, sub-palette…] (or its own ≤4 colours)."""
    sub = list(sheet.subpalettes[int(sheet.tile_sub[i])])
    return sub if sheet.backdrop is None else [sheet.backdrop, *sub]


REBUILD_ROWS = 8  # screens shown in rebuild-diff.png
_DIFF_ON, _DIFF_OFF, _GAP = 0x30, 0x0F, 0x2D  # white where rebuilt ≠ quantized, black elsewhere, grey gaps


def rebuild_picture(quantized: list[np.ndarray], rebuilt: list[np.ndarray]) -> np.ndarray:
    """NES indices of a picture: per screen (up to REBUILD_ROWS) quantized | rebuilt | where they differ."""
    rows = []
    for q, r in list(zip(quantized, rebuilt, strict=True))[:REBUILD_ROWS]:
        gap = np.full((q.shape[0], 4), _GAP, np.uint8)
        mask = np.where(q != r, _DIFF_ON, _DIFF_OFF).astype(np.uint8)
        rows.append(np.concatenate([q, gap, r, gap, mask], axis=1))
        rows.append(np.full((4, rows[-1].shape[1]), _GAP, np.uint8))
    return np.concatenate(rows[:-1], axis=0)
