"""The export-nes stage: a Tiled map layer -> pattern table, nametables, palette and a ROM.

1. Read the layer as NES colour indices (`level.read_level`); refuse a map taller than a screen
   or wider than NROM holds before reading a tile.
2. Place it on the PPU's canvas: 240 rows; a shorter map is centred in whole 8-px rows, its
   16×16 tiles kept on the attribute grid (from nametable row 16·k), and the vertical scroll
   (0 or 8) puts it on screen: a 224-row map fills nametable rows 16…239 and, scrolled by 8,
   the NTSC-visible rows 8…231, while the 8 rows above and below show the backdrop. Columns
   are padded with the backdrop to whole 256-px screens (at least two: the scrolling ring).
3. Choose the backdrop and ≤ 4 sub-palettes (`nametable.choose_palettes`), each 16×16 area's
   sub-palette, and every pixel's 2-bit value.
4. Cut the values into 8×8 patterns, deduplicated (≤ 256: one pattern table).
5. Encode: tiles.chr, screen-NN.nam (a nametable + attribute table per 256-px screen),
   palette.pal (the 16 bytes for $3F00) and level.nes (the viewer with the level patched in).

Every refusal happens before anything is written; each file is written atomically, level.nes
last, and screen-NN.nam files of an earlier, wider export are removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nesgan.colour.palette import Palette, load_palette
from nesgan.errors import NesganError
from nesgan.files import atomic_write_bytes
from nesgan.nes import chr as chrtab
from nesgan.nes import nametable as nt
from nesgan.nes import rom
from nesgan.nes.level import TILE, read_level

SCREEN_ROWS = nt.SCREEN_H // TILE  # 15 map rows fill the 240-row picture
MAX_MAP_COLUMNS = rom.MAX_COLUMNS * 8 // TILE  # 494 map columns fit NROM's PRG
SCREEN_NAME = re.compile(r"screen-(\d{2,})\.nam")


@dataclass(frozen=True)
class NesConfig:
    tmx: Path  # the map painted with nesgan's tilesets
    out: Path = Path("nes")  # the default output folder
    layer: str | None = None  # None: the layer painted with nesgan's tilesets
    palette_file: Path | None = None  # the .pal table the tilesets' colours come from

    def __post_init__(self) -> None:
        if Path(self.tmx).suffix.lower() in (".tmj", ".json"):
            raise NesganError(f"{self.tmx} is a JSON map; export-nes reads Tiled's XML format: in "
                              "Tiled, File → Save As… a .tmx and pass that")


@dataclass
class NesReport:
    out: Path
    layer: str
    size: tuple[int, int]  # map (columns, rows) in 16×16 tiles
    screens: int  # 256-px nametables written
    patterns: int  # distinct 8×8 patterns in tiles.chr
    tiles_used: int  # distinct 16×16 tiles painted
    backdrop: int
    subpalettes: tuple[tuple[int, ...], ...]
    screen_top: int  # screen row of the map's first pixel row
    scroll_y: int  # the ROM's vertical scroll
    max_x: int  # the camera's last x (0: no scrolling)
    other_layers: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    @property
    def rom(self) -> Path:
        return self.out / "level.nes"

    def summary(self) -> str:
        subs = len(self.subpalettes)
        lines = [
            f"layer {self.layer!r}: {self.size[0]}×{self.size[1]} tiles, {self.tiles_used} "
            f"distinct; {self.patterns} of 256 8×8 patterns, backdrop ${self.backdrop:02X} + "
            f"{subs} sub-palette{'s' * (subs != 1)}, shown at rows {self.screen_top}–"
            f"{self.screen_top + 16 * self.size[1] - 1}"
            + (f", scrolls {self.max_x} px" if self.max_x else ", fits one screen"),
            "wrote " + ", ".join(str(p) for p in self.files),
        ]
        if self.other_layers:
            lines.append("not exported (the NES has one background layer): "
                         + ", ".join(repr(n) for n in self.other_layers))
        lines.append(f"play: open {self.rom} in any NES emulator; hold Right or Left to scroll")
        return "\n".join(lines)


@dataclass
class Encoded:
    """The level in the PPU's terms, before it becomes files."""

    patterns: np.ndarray  # (N, 8, 8) pixel values
    tiles: np.ndarray  # (30, 32·S) pattern index per 8×8 cell of the canvas
    attrs: np.ndarray  # (15, 16·S) sub-palette per 16×16 area
    bg: nt.BackgroundPalette
    rom_columns: int  # 8-px columns the ROM carries (≥ 64, multiple of 4)
    screen_top: int
    scroll_y: int
    max_x: int


def vertical_placement(height_px: int) -> tuple[int, int, int]:
    """(screen_top, nametable_top, scroll_y) for a map `height_px` tall (a multiple of 16, at
    most 240): centred in 8-px rows, its rows on the 16-px attribute grid of the nametable (the
    next one down), scrolled up into place. Rows 0–7 and past the map wrap to blank rows."""
    screen_top = (nt.SCREEN_H - height_px) // 2 // 8 * 8
    nt_top = -(-screen_top // 16) * 16
    return screen_top, nt_top, nt_top - screen_top


def _check_size(columns: int, rows: int, what: str) -> None:
    if rows > SCREEN_ROWS:
        raise NesganError(
            f"{what} is {rows} tiles ({16 * rows} px) tall; an NES screen shows {SCREEN_ROWS} "
            f"({nt.SCREEN_H} px; 14 in the NTSC-visible 224 rows) and this ROM scrolls only "
            "horizontally: make the map at most 15 tiles tall (Map > Resize Map in Tiled)")
    if columns > MAX_MAP_COLUMNS:
        raise NesganError(
            f"{what} is {columns} tiles ({16 * columns} px) wide; NROM's 32 KiB of PRG holds "
            f"{MAX_MAP_COLUMNS} ({16 * MAX_MAP_COLUMNS} px, about "
            f"{MAX_MAP_COLUMNS * 16 // nt.SCREEN_W} screens): split it into several maps")


def encode_level(indices: np.ndarray, palette: Palette, what: str) -> Encoded:
    """(16·rows, 16·cols) NES indices (-1: backdrop) -> patterns, nametables and palette."""
    h, w = indices.shape
    screen_top, nt_top, scroll_y = vertical_placement(h)
    screens = max(2, -(-w // nt.SCREEN_W))
    canvas = np.full((nt.SCREEN_H, screens * nt.SCREEN_W), -1, np.int16)
    canvas[nt_top : nt_top + h, :w] = indices

    def where(at: tuple[int, int]) -> str:
        c, r = at
        return f"the tile at column {c}, row {r - nt_top // TILE}"

    bg = nt.choose_palettes(canvas, palette, what, where)
    attrs = nt.area_subpalettes(canvas, bg)
    values = nt.pixel_values(canvas, bg, attrs)
    patterns, tiles = chrtab.dedupe_patterns(values)
    if len(patterns) > chrtab.TABLE_TILES:
        blank = bool((patterns == 0).all(axis=(1, 2)).any())  # a backdrop-only pattern
        fit = (chrtab.TABLE_TILES - blank) // 4
        raise NesganError(
            f"{what} needs {len(patterns)} distinct 8×8 patterns; the NES pattern table holds "
            f"{chrtab.TABLE_TILES}: export tiles with `--max-tiles {fit}` (a 16×16 tile is up to "
            f"four 8×8 patterns: {fit} × 4 ≤ {chrtab.TABLE_TILES}{', with the blank one' if blank else ''}) "
            "or paint with fewer distinct tiles")
    rom_columns = max(rom.RING_COLUMNS, -(-w // 32) * 4)
    return Encoded(patterns, tiles, attrs, bg, rom_columns, screen_top, scroll_y,
                   max(0, w - nt.SCREEN_W))


def column_records(enc: Encoded) -> np.ndarray:
    """(C, 32) ROM column records: 30 nametable bytes, then the attribute bytes of rows 2k and
    2k+1 of the column's 32-px attribute column (k = column mod 4)."""
    c = enc.rom_columns
    out = np.zeros((c, rom.COLUMN_BYTES), np.uint8)
    out[:, :30] = enc.tiles[:, :c].T
    for s in range(-(-c // nt.NT_COLS)):
        table = np.frombuffer(nt.pack_attributes(enc.attrs[:, 16 * s : 16 * s + 16]),
                              np.uint8).reshape(8, 8)  # (attribute row, attribute column)
        for col in range(32 * s, min(32 * s + 32, c)):
            k, group = col % 4, (col % 32) // 4
            out[col, 30:32] = table[2 * k : 2 * k + 2, group]
    return out


def nametable_files(enc: Encoded, screens: int) -> list[bytes]:
    return [nt.nametable_bytes(enc.tiles[:, 32 * s : 32 * s + 32], enc.attrs[:, 16 * s : 16 * s + 16])
            for s in range(screens)]


def export_nes(config: NesConfig) -> NesReport:
    """Write OUT/tiles.chr, OUT/screen-NN.nam, OUT/palette.pal and OUT/level.nes for the map."""
    palette = load_palette(config.palette_file)
    what = f"map {config.tmx}"
    level = read_level(config.tmx, palette, config.layer,
                       check_size=lambda c, r: _check_size(c, r, what))
    enc = encode_level(level.indices, palette, f"layer {level.layer!r} of {what}")
    w = level.indices.shape[1]
    screens = max(1, -(-w // nt.SCREEN_W))
    chr_data = chrtab.encode_chr(enc.patterns)
    pal = enc.bg.pal_bytes()
    block = rom.level_block(pal, column_records(enc), enc.max_x, enc.scroll_y)
    image = rom.build_rom(block, chr_data)  # everything is built before the first write

    out = Path(config.out)
    report = NesReport(out, level.layer, level.size, screens, len(enc.patterns), level.tiles_used,
                       enc.bg.backdrop, enc.bg.subpalettes, enc.screen_top, enc.scroll_y,
                       enc.max_x, level.other_layers)
    writes = [(out / "tiles.chr", chr_data)]
    writes += [(out / f"screen-{s:02d}.nam", data)
               for s, data in enumerate(nametable_files(enc, screens))]
    writes += [(out / "palette.pal", pal), (out / "level.nes", image)]
    for path, data in writes[:-1]:
        atomic_write_bytes(path, data)
        report.files.append(path)
    keep = {p.name for p, _ in writes}
    for stale in out.glob("screen-*.nam"):
        if SCREEN_NAME.fullmatch(stale.name) and stale.name not in keep:
            stale.unlink()
    atomic_write_bytes(out / "level.nes", image)  # last: its presence means a whole export
    report.files.append(out / "level.nes")
    return report
