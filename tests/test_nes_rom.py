"""The ROM: its fixed program rebuilds from source, its header, and what it shows in an emulator
(cynes), frame by frame, against the map as Tiled renders it."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nes_maps import PALETTE, museum_indices, write_map
from nesgan.colour.palette import EMITTABLE
from nesgan.nes import NesConfig, export_nes, rom

ASM = Path(rom.__file__).parent / "asm"
needs_cc65 = pytest.mark.skipif(not (shutil.which("ca65") and shutil.which("ld65")),
                                reason="cc65 is not installed (`make cc65` or `apt-get install cc65`)")
needs_tiled = pytest.mark.tiled  # skipped where Tiled is not installed (conftest)
RIGHT, LEFT = 0x01, 0x02  # cynes.NES.controller bits (cynes.NES_INPUT_RIGHT / _LEFT)
BOOT_FRAMES = 8  # two vblank waits, filling both nametables, then the first NMI turns rendering on


@needs_cc65
def test_the_committed_viewer_binary_is_what_ca65_and_ld65_build_from_its_source(tmp_path):
    subprocess.run(["ca65", str(ASM / "viewer.s"), "-o", str(tmp_path / "viewer.o")], check=True)
    subprocess.run(["ld65", "-C", str(ASM / "viewer.cfg"), str(tmp_path / "viewer.o"),
                    "-o", str(tmp_path / "viewer.bin")], check=True)
    assert (tmp_path / "viewer.bin").read_bytes() == (ASM / "viewer.bin").read_bytes()


def test_the_level_block_addresses_agree_between_the_6502_source_and_python():
    source = (ASM / "viewer.s").read_text()
    defined = {m[1]: int(m[2], 16) for m in re.finditer(r"^(LEVEL_\w+)\s*=\s*\$([0-9A-F]+)", source, re.M)}
    assert defined == {name: getattr(rom, name) for name in defined} and len(defined) == 5
    assert int(re.search(r"^SPEED\s*=\s*(\d+)", source, re.M)[1]) == rom.SPEED
    cfg = (ASM / "viewer.cfg").read_text()
    assert f"start = ${rom.PROGRAM_START:04X}, size = ${rom.PROGRAM_SIZE:04X}" in cfg
    vectors = rom.program()[-6:]
    nmi, reset, irq = (int.from_bytes(vectors[i : i + 2], "little") for i in (0, 2, 4))
    assert all(rom.PROGRAM_START <= v < 0xFFFA for v in (nmi, reset, irq))


# --- an exported level --------------------------------------------------------------------------


def _export(folder: Path, indices: np.ndarray):
    tmx = write_map(folder, indices)
    return export_nes(NesConfig(tmx=tmx, out=folder / "nes"))


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """Five museum screens of 224×224 (1120 px: the ring of 64 columns wraps twice)."""
    folder = tmp_path_factory.mktemp("wide")
    indices = museum_indices(game=0, shots=range(5))
    return folder, indices, _export(folder, indices)


def test_the_rom_is_ines_nrom_256_with_vertical_mirroring(wide):
    _, _, report = wide
    data = report.rom.read_bytes()
    assert data[:4] == b"NES\x1a"
    assert (data[4], data[5]) == (2, 1)  # 2 × 16 KiB PRG, 1 × 8 KiB CHR
    assert data[6] & 1 == 1 and data[6] >> 4 == 0 and data[7] >> 4 == 0  # vertical, mapper 0
    assert len(data) == 16 + 32768 + 8192
    prg, chr_rom = rom.split_rom(data)
    assert prg[-1024:] == rom.program()
    assert chr_rom[: report.patterns * 16] == (report.out / "tiles.chr").read_bytes()
    assert prg[:16] == (report.out / "palette.pal").read_bytes()


class Screen:
    """Frames of the ROM in cynes, compared with the map's pixels under one colour mapping:
    each NES index the map shows is the same cynes RGB everywhere, and distinct indices are
    distinct RGBs (cynes has its own palette table)."""

    def __init__(self, rom_path: Path, indices: np.ndarray, top: int):
        cynes = pytest.importorskip("cynes")
        self.nes = cynes.NES(str(rom_path))
        self.indices, self.top = indices, top
        self.rgb: dict[int, tuple[int, int, int]] = {}

    def step(self, frames: int = 1) -> np.ndarray:
        frame = self.nes.step(frames=frames)
        assert not self.nes.has_crashed
        return np.array(frame)

    def view(self, x: int) -> np.ndarray:
        """(h, 256) NES indices the camera at `x` shows, the backdrop right of a narrow map."""
        h, w = self.indices.shape
        out = np.full((h, 256), -1, np.int16)
        part = self.indices[:, x : x + 256]
        out[:, : part.shape[1]] = part
        return out

    def check(self, frame: np.ndarray, x: int, backdrop: int) -> None:
        want = self.view(x)
        want[want < 0] = backdrop
        got = frame[self.top : self.top + len(want)]
        if not set(np.unique(want).tolist()) <= set(self.rgb):
            self.learn(want, got, x)
        lut = np.zeros((64, 3), np.uint8)
        for index, rgb in self.rgb.items():
            lut[index] = rgb
        if not np.array_equal(got, lut[want]):
            bad = np.argwhere((got != lut[want]).any(-1))
            raise AssertionError(f"x={x}: {len(bad)} pixels differ, the first at (row, column) "
                                 f"{(int(bad[0][0]) + self.top, int(bad[0][1]))}")

    def learn(self, want: np.ndarray, got: np.ndarray, x: int) -> None:
        for index in np.unique(want).tolist():
            colours = np.unique(got[want == index].reshape(-1, 3), axis=0)
            assert len(colours) == 1, f"x={x}: ${index:02X} shows as {len(colours)} colours"
            seen = self.rgb.setdefault(index, tuple(colours[0].tolist()))
            assert seen == tuple(colours[0].tolist()), f"x={x}: ${index:02X} changed colour"
        assert len(set(self.rgb.values())) == len(self.rgb), "two NES colours share one RGB"


def test_after_boot_the_emulator_shows_the_maps_first_screen(wide):
    folder, indices, report = wide
    screen = Screen(report.rom, indices, report.screen_top)
    frame = screen.step(BOOT_FRAMES)
    assert report.screen_top == 8 and report.scroll_y == 8  # 224 rows in the NTSC-visible 8…231
    assert (frame[:8] == frame[0, 0]).all() and (frame[232:] == frame[0, 0]).all()  # backdrop
    screen.check(frame, 0, report.backdrop)
    # the mapping is cynes's rendering of the NES palette: each RGB is perceptually nearest
    # to its own index in nesgan's table
    for index, rgb in screen.rgb.items():
        assert PALETTE.nearest(np.array([rgb], np.uint8))[0] == index


def test_holding_right_scrolls_two_pixels_a_frame_to_the_maps_end_and_left_comes_back(wide):
    folder, indices, report = wide
    screen = Screen(report.rom, indices, report.screen_top)
    screen.step(BOOT_FRAMES)
    assert report.max_x == indices.shape[1] - 256 == 864
    screen.nes.controller = RIGHT
    # a frame shows the camera the previous frame's NMI set: after n frames held, 2·(n−1)
    for n in range(1, report.max_x // rom.SPEED + 20):
        frame = screen.step()
        screen.check(frame, min(rom.SPEED * (n - 1), report.max_x), report.backdrop)
    screen.nes.controller = LEFT
    for n in range(1, report.max_x // rom.SPEED + 20):
        frame = screen.step()
        screen.check(frame, max(report.max_x - rom.SPEED * (n - 1), 0), report.backdrop)
    screen.nes.controller = 0
    screen.check(screen.step(3), 0, report.backdrop)


def test_turning_back_midway_keeps_every_frame_right(wide):
    folder, indices, report = wide
    screen = Screen(report.rom, indices, report.screen_top)
    screen.step(BOOT_FRAMES)
    x = 0
    for buttons, frames in ((RIGHT, 300), (LEFT, 37), (RIGHT, 90), (0, 5), (LEFT, 11), (RIGHT, 200)):
        screen.nes.controller = buttons
        for _ in range(frames):
            frame = screen.step()
            screen.check(frame, x, report.backdrop)
            step = rom.SPEED * ((buttons == RIGHT) - (buttons == LEFT))
            x = min(max(x + step, 0), report.max_x)


def test_a_240_row_map_fills_the_whole_picture(tmp_path):
    indices = museum_indices(game=3, shots=(0, 1), rows=15, cols=16)  # 512 px: two screens
    report = _export(tmp_path, indices)
    assert (report.screen_top, report.scroll_y, report.max_x) == (0, 0, 256)
    screen = Screen(report.rom, indices, 0)
    screen.check(screen.step(BOOT_FRAMES), 0, report.backdrop)
    screen.nes.controller = RIGHT
    frame = screen.step(200)
    screen.check(frame, 256, report.backdrop)


def test_a_map_narrower_than_a_screen_stays_put_with_the_backdrop_beside_it(tmp_path):
    indices = museum_indices(game=1, shots=(4,), rows=13, cols=10)  # 160×208 px
    report = _export(tmp_path, indices)
    assert (report.screen_top, report.scroll_y, report.max_x) == (16, 0, 0)
    screen = Screen(report.rom, indices, 16)
    screen.step(BOOT_FRAMES)
    screen.nes.controller = RIGHT
    frame = screen.step(30)
    screen.check(frame, 0, report.backdrop)
    assert (frame[:16] == screen.rgb[report.backdrop]).all()


@needs_tiled
def test_the_emulator_shows_what_tmxrasterizer_renders_pixel_for_pixel(wide):
    folder, indices, report = wide
    png = folder / "raster.png"
    subprocess.run(["tmxrasterizer", "--no-smoothing", "--scale", "1", str(folder / "level.tmx"),
                    str(png)], check=True, capture_output=True, timeout=120,
                   env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    raster = np.asarray(Image.open(png).convert("RGB"))
    # Tiled's render read back through nesgan's RGB table: every pixel is an NES colour
    table = {PALETTE.rgb[i].tobytes(): int(i) for i in EMITTABLE}
    tiled = np.array([table[p.tobytes()] for p in raster.reshape(-1, 3)]).reshape(raster.shape[:2])
    assert np.array_equal(tiled, indices)
    screen = Screen(report.rom, tiled, report.screen_top)
    screen.check(screen.step(BOOT_FRAMES), 0, report.backdrop)
    screen.nes.controller = RIGHT
    screen.check(screen.step(100), rom.SPEED * 99, report.backdrop)
