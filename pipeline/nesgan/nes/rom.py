"""The iNES NROM ROM: nesgan's fixed viewer program plus one level's data.

iNES header (16 bytes): `NES` $1A, PRG-ROM size in 16 KiB units, CHR-ROM size in 8 KiB units,
flags 6 (bit 0: 1 = vertical mirroring, the two nametables side by side for horizontal
scrolling; bits 7–4: mapper low nibble), flags 7 (mapper high nibble), then zeros. NROM is
mapper 0: here 32 KiB PRG at $8000–$FFFF and 8 KiB CHR (pattern table 0 the background's).

PRG layout. The program (`asm/viewer.s`, assembled once into `asm/viewer.bin`) fills
$FC00–$FFFF; nesgan writes the level block into $8000–$FBFF at export time:

    $8000  16 bytes  background palette for $3F00
    $8010  word      the camera's last x: map width − 256 (0 for a map narrower than a screen)
    $8012  byte      vertical scroll: 0, or 8 to show nametable row 16 at screen row 8
    $8013  byte      the ring window's last left attribute column: columns / 4 − 16
    $8020  32 bytes per 8-px map column (at least 64 columns, a multiple of 4): its 30
           nametable bytes top to bottom, then the attribute bytes of rows 2k and 2k+1 of its
           32-px attribute column, k = column mod 4
"""

from __future__ import annotations

from importlib import resources

import numpy as np

from nesgan.errors import NesganError

PRG_BANK = 16 * 1024  # iNES PRG unit
CHR_BANK = 8 * 1024  # iNES CHR unit
PRG_BANKS, CHR_BANKS = 2, 1  # NROM-256
PRG_BASE = 0x8000
PROGRAM_START = 0xFC00  # viewer.cfg's PRG memory area
PROGRAM_SIZE = 0x10000 - PROGRAM_START
MIRROR_VERTICAL = 0x01  # flags 6 bit 0

# The level block (viewer.s names them LEVEL_*).
LEVEL_PALETTE = 0x8000
LEVEL_MAXX = 0x8010
LEVEL_SCROLLY = 0x8012
LEVEL_MAXGROUP = 0x8013
LEVEL_COLUMNS = 0x8020
COLUMN_BYTES = 32  # 30 nametable bytes + 2 attribute bytes
RING_COLUMNS = 64  # two nametables of 32 columns
MAX_COLUMNS = (PROGRAM_START - LEVEL_COLUMNS) // COLUMN_BYTES // 4 * 4  # 988: 7904 px of map
SPEED = 2  # camera pixels per frame while Right or Left is held (viewer.s SPEED)


def program() -> bytes:
    """The assembled viewer ($FC00–$FFFF), shipped with nesgan."""
    data = resources.files("nesgan.nes").joinpath("asm/viewer.bin").read_bytes()
    if len(data) != PROGRAM_SIZE:
        raise NesganError(f"nesgan's viewer.bin is {len(data)} bytes, expected {PROGRAM_SIZE}; "
                          "reinstall nesgan")
    return data


def ines_header(prg_banks: int = PRG_BANKS, chr_banks: int = CHR_BANKS) -> bytes:
    """NROM (mapper 0), vertical mirroring, no battery, trainer or PlayChoice data."""
    return b"NES\x1a" + bytes([prg_banks, chr_banks, MIRROR_VERTICAL, 0]) + bytes(8)


def level_block(pal: bytes, columns: np.ndarray, max_x: int, scroll_y: int) -> bytes:
    """The bytes for $8000–$FBFF. `columns`: (C, 32) uint8 column records, C ≥ 64, C % 4 == 0."""
    c = len(columns)
    if len(pal) != 16 or c < RING_COLUMNS or c % 4 or columns.shape[1:] != (COLUMN_BYTES,):
        raise ValueError(f"bad level: {len(pal)} palette bytes, columns {columns.shape}")
    if c > MAX_COLUMNS:
        raise ValueError(f"{c} columns exceed the {MAX_COLUMNS} that fit")
    head = bytearray(LEVEL_COLUMNS - PRG_BASE)
    head[0:16] = pal
    head[LEVEL_MAXX - PRG_BASE : LEVEL_MAXX - PRG_BASE + 2] = max_x.to_bytes(2, "little")
    head[LEVEL_SCROLLY - PRG_BASE] = scroll_y
    head[LEVEL_MAXGROUP - PRG_BASE] = c // 4 - RING_COLUMNS // 4
    body = columns.astype(np.uint8).tobytes()
    return (bytes(head) + body).ljust(PROGRAM_START - PRG_BASE, b"\0")


def build_rom(level: bytes, chr_data: bytes) -> bytes:
    """iNES file: header, 32 KiB PRG (level block + viewer), 8 KiB CHR (`chr_data` padded)."""
    if len(level) != PROGRAM_START - PRG_BASE or len(chr_data) > CHR_BANK // 2:
        raise ValueError("level block or pattern table of the wrong size")
    prg = level + program()
    return ines_header() + prg + chr_data.ljust(CHR_BANK, b"\0")


def split_rom(rom: bytes) -> tuple[bytes, bytes]:
    """An NROM iNES file -> (PRG, CHR), checking the header says what nesgan writes."""
    if rom[:4] != b"NES\x1a":
        raise ValueError("not an iNES file")
    prg_n, chr_n, flags6, flags7 = rom[4], rom[5], rom[6], rom[7]
    if (flags6 >> 4) | (flags7 & 0xF0) or flags6 & 0x04:
        raise ValueError("not a plain NROM image")
    prg = rom[16 : 16 + prg_n * PRG_BANK]
    return prg, rom[16 + len(prg) : 16 + len(prg) + chr_n * CHR_BANK]
