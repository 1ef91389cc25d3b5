"""nesgan level: windows counted right, every window and tile of a grown level is the
example's, seeds repeat, the level plays on an NES and opens in Tiled, and bad input gets one
line with nothing written."""

import shutil
import subprocess
from collections import Counter
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nes_maps import set_layer
from nesgan.bench.level_bench import museum_example
from nesgan.cli import cli
from nesgan.colour.palette import Palette
from nesgan.errors import NesganError
from nesgan.level import LevelConfig, grow_level
from nesgan.level.example import read_example
from nesgan.level.grow import build_model, grow
from nesgan.level.patterns import (
    longest_copied_run,
    row_tiles,
    strips,
    symmetric_kl,
    violations,
    windows,
)
from nesgan.nes import NesConfig, export_nes
from nesgan.nes.level import read_level

needs_tiled = pytest.mark.tiled  # skipped where Tiled is not installed (conftest)
FLIP_H = 0x80000000


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    """Four 15-row screens of a museum game painted from its own tiles (the bench's example)."""
    return museum_example(tmp_path_factory.mktemp("example"))


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def layer_gids(tmx: Path) -> np.ndarray:
    root = ET.parse(tmx).getroot()
    (layer,) = root.iter("layer")
    text = layer.find("data").text
    rows = [r.strip().rstrip(",") for r in text.strip().splitlines()]
    return np.array([[int(v) for v in r.split(",")] for r in rows], dtype=np.int64)


def positioned_windows(grid: np.ndarray, n: int) -> set[tuple[int, tuple[int, ...]]]:
    """(top row, the window's tiles row-major) for every n×n window: written independently of
    the package's column-major reading."""
    h, w = grid.shape
    return {(y, tuple(grid[y : y + n, x : x + n].reshape(-1).tolist()))
            for y in range(h - n + 1) for x in range(w - n + 1)}


# --- counting -----------------------------------------------------------------------------------


def test_windows_of_a_known_example_are_counted_column_by_column():
    grid = np.array([[1, 2, 1, 2],
                     [3, 4, 3, 4],
                     [1, 2, 1, 2]])
    assert windows(grid, 2) == Counter({(1, 3, 2, 4): 2, (2, 4, 1, 3): 1,
                                        (3, 1, 4, 2): 2, (4, 2, 3, 1): 1})
    assert windows(grid, 3) == Counter({(1, 3, 1, 2, 4, 2, 1, 3, 1): 1,
                                        (2, 4, 2, 1, 3, 1, 2, 4, 2): 1})
    assert strips(grid, 2) == Counter({(1, 2): 4, (2, 1): 2, (3, 4): 2, (4, 3): 1})  # 1×2, rows 0–2
    assert row_tiles(grid) == [{1, 2}, {3, 4}, {1, 2}]


def test_symmetric_kl_is_zero_for_equal_proportions_symmetric_and_large_when_disjoint():
    p, q = Counter({"a": 2, "b": 6}), Counter({"a": 1, "b": 3})
    assert symmetric_kl(p, q) == pytest.approx(0, abs=1e-12)
    r = Counter({"a": 3, "b": 1})
    # (¼, ¾) against (¾, ¼): both directions ¼·ln ⅓ + ¾·ln 3 = ½·ln 3
    assert symmetric_kl(p, r) == pytest.approx(symmetric_kl(r, p)) == pytest.approx(0.5 * np.log(3))
    assert symmetric_kl(Counter({"a": 1}), Counter({"b": 1})) > 10  # log(1/1e-7) ≈ 16


def test_a_copied_run_counts_whole_columns_in_order():
    ex = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert longest_copied_run(ex, ex[:, [1, 2, 3, 0, 1]]) == 3
    assert longest_copied_run(ex.astype(np.int64), ex[:, [1, 2, 3]].astype(np.uint32)) == 3
    assert longest_copied_run(ex, np.array([[9], [9]])) == 0


# --- growing ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3])
def test_every_window_of_a_grown_level_is_in_the_example_on_the_same_rows(example, tmp_path, n):
    out = tmp_path / "level.tmx"
    report = grow_level(LevelConfig(example=example, out=out, screens=12, pattern=n, seed=4,
                                    quiet=True))
    ex, level = layer_gids(example), layer_gids(out)
    assert level.shape == (ex.shape[0], 12 * 16) and report.size == (192, 15)
    assert positioned_windows(level, n) <= positioned_windows(ex, n)
    for y in range(ex.shape[0]):  # ground stays at the bottom, the status bar at the top
        assert set(level[y].tolist()) <= set(ex[y].tolist())
    assert violations(ex, level, n) == []
    assert report.longest_copy < 32  # not a copy: under two screens of example columns in a row
    assert report.kl[2] < 0.5


def test_the_same_seed_grows_the_same_level_and_another_seed_another(example, tmp_path):
    texts = []
    for seed, name in ((7, "a"), (7, "b"), (8, "c")):
        out = tmp_path / f"{name}.tmx"
        grow_level(LevelConfig(example=example, out=out, screens=6, seed=seed, quiet=True))
        texts.append(out.read_text())
    assert texts[0] == texts[1] != texts[2]


def test_a_dead_end_backtracks_and_the_level_still_keeps_every_window():
    # column 0 (1 over 2) continues only into column 1 (3 over 4), which ends the example:
    # the solver must never stay there, and backtracking must find the 5/6 loop
    grid = np.array([[5, 5, 1, 3, 5, 5, 5],
                     [6, 6, 2, 4, 6, 6, 6]])
    model = build_model(grid, 2)
    for seed in range(20):
        level = grow(model, 40, seed).level
        assert violations(grid, level, 2) == []


def test_flipped_tiles_are_tiles_of_their_own_and_are_kept(tmp_path):
    folder = tmp_path / "ex"
    tmx = museum_example(folder, shots=(0, 1))
    flags = np.zeros((15, 32), np.uint32)
    flags[:, 16:] = FLIP_H  # the second screen painted mirrored
    set_layer(tmx, "museum", lambda g: np.where(g > 0, g | flags, 0).astype(np.uint32))
    out = tmp_path / "level.tmx"
    grow_level(LevelConfig(example=tmx, out=out, screens=8, seed=1, quiet=True))
    ex, level = layer_gids(tmx), layer_gids(out)
    assert set(np.unique(level).tolist()) <= set(np.unique(ex).tolist())
    assert (level & FLIP_H).any()
    assert positioned_windows(level, 2) <= positioned_windows(ex, 2)


def test_the_level_references_the_examples_tilesets_from_its_own_folder(example, tmp_path):
    out = tmp_path / "deeper" / "level.tmx"
    grow_level(LevelConfig(example=example, out=out, screens=2, quiet=True))
    root = ET.parse(out).getroot()
    (ts,) = root.findall("tileset")
    assert ts.get("firstgid") == "1" and ts.find("image") is None  # referenced, not copied
    assert (out.parent / ts.get("source")).resolve() == (example.parent / "tilesets" / "museum.tsx").resolve()
    assert root.get("orientation") == "orthogonal" and root.get("infinite") == "0"


def test_pytmx_loads_the_level(example, tmp_path):
    pytmx = pytest.importorskip("pytmx")
    out = tmp_path / "level.tmx"
    grow_level(LevelConfig(example=example, out=out, screens=3, quiet=True))
    tm = pytmx.TiledMap(str(out))
    assert (tm.width, tm.height) == (48, 15)
    layer = tm.get_layer_by_name("museum")
    level = layer_gids(out)
    # pytmx renumbers gids; equal raw gids must stay equal and distinct ones distinct
    pairs = {(int(a), int(b)) for a, b in zip(level.reshape(-1), np.array(layer.data).reshape(-1),
                                              strict=True)}
    assert len({a for a, _ in pairs}) == len(pairs) == len({b for _, b in pairs})


@needs_tiled
def test_tmxrasterizer_draws_every_level_cell_as_the_example_draws_that_tile(example, tmp_path):
    out = tmp_path / "level.tmx"
    grow_level(LevelConfig(example=example, out=out, screens=4, seed=2, quiet=True))
    pictures = []
    for tmx in (example, out):
        png = tmp_path / f"{tmx.stem}.png"
        subprocess.run(["tmxrasterizer", "--no-smoothing", str(tmx), str(png)], check=True,
                       capture_output=True, env={"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"})
        pictures.append(np.asarray(Image.open(png).convert("RGBA")))
    ex_img, level_img = pictures
    ex, level = layer_gids(example), layer_gids(out)
    assert level_img.shape[:2] == (16 * 15, 16 * 64)
    first = {}
    for (y, x), gid in np.ndenumerate(ex):
        first.setdefault(int(gid), (y, x))
    for (y, x), gid in np.ndenumerate(level):
        ey, ex_x = first[int(gid)]
        assert np.array_equal(level_img[16 * y : 16 * y + 16, 16 * x : 16 * x + 16],
                              ex_img[16 * ey : 16 * ey + 16, 16 * ex_x : 16 * ex_x + 16])


def test_export_nes_runs_a_grown_level_and_the_emulator_shows_its_first_screen(example, tmp_path):
    out = tmp_path / "level.tmx"
    result = run("level", str(example), "--out", str(out), "--screens", "4", "--pattern", "3")
    assert result.exit_code == 0, result.output
    assert f"play it: nesgan export-nes {out}" in result.output
    report = export_nes(NesConfig(tmx=out, out=tmp_path / "nes"))
    assert report.size == (64, 15) and report.patterns <= 256
    indices = read_level(out, Palette.builtin()).indices  # (240, 1024) NES colours
    cynes = pytest.importorskip("cynes")
    nes = cynes.NES(str(report.rom))
    frame = np.array(nes.step(frames=8))  # boot: the first NMI turns rendering on
    assert not nes.has_crashed
    shown = frame[report.screen_top : report.screen_top + 240, :256].reshape(-1, 3)
    want = indices[:, :256].reshape(-1)
    want = np.where(want < 0, report.backdrop, want)
    colours = {}
    for index in np.unique(want).tolist():
        rgbs = np.unique(shown[want == index], axis=0)
        assert len(rgbs) == 1, f"${index:02X} shows as {len(rgbs)} colours"
        colours[index] = tuple(rgbs[0].tolist())
    assert len(set(colours.values())) == len(colours)  # one colour per NES index and back


def test_a_level_wider_than_nrom_says_export_nes_will_not_take_it(example, tmp_path):
    result = run("level", str(example), "--out", str(tmp_path / "wide.tmx"), "--screens", "32")
    assert result.exit_code == 0, result.output
    assert "512 columns is wider than export-nes takes (494" in result.output
    assert (tmp_path / "wide.tmx").exists()


def test_the_layer_painted_with_nesgans_tiles_is_chosen_and_layer_picks_another(example, tmp_path):
    folder = tmp_path / "two"
    shutil.copytree(example.parent, folder)
    tmx = folder / "example.tmx"
    root = ET.parse(tmx).getroot()
    layer = root.find("layer")
    other = ET.fromstring(ET.tostring(layer))
    other.set("name", "notes")
    other.set("id", "9")
    other.find("data").text = ",".join(["0"] * (64 * 15))
    root.append(other)
    ET.ElementTree(root).write(tmx)
    assert read_example(tmx).layer == "museum"
    assert read_example(tmx, "notes").layer == "notes"
    result = run("level", str(tmx), "--out", str(tmp_path / "x.tmx"), "--screens", "1",
                 "--layer", "nope")
    assert result.exit_code == 1 and "no tile layer named 'nope'" in result.output


# --- refusals: one line, nothing written --------------------------------------------------------


def small_map(folder: Path, gids: np.ndarray, **attrs: str) -> Path:
    h, w = gids.shape
    rows = ",\n".join(",".join(str(int(v)) for v in row) for row in gids)
    head = {"version": "1.8", "orientation": "orthogonal", "renderorder": "right-down",
            "width": str(w), "height": str(h), "tilewidth": "16", "tileheight": "16",
            "infinite": "0"} | attrs
    text = ("<map " + " ".join(f'{k}="{v}"' for k, v in head.items()) + ">"
            '<tileset firstgid="1" name="t" tilewidth="16" tileheight="16" tilecount="64" '
            'columns="8"><image source="t.png" width="128" height="128"/></tileset>'
            f'<layer id="1" name="ground" width="{w}" height="{h}"><data encoding="csv">{rows}'
            "</data></layer></map>")
    folder.mkdir(parents=True, exist_ok=True)
    tmx = folder / "ex.tmx"
    tmx.write_text(text)
    return tmx


REFUSALS = {
    "no tile layer": (lambda f: _no_layer(f), "has no tile layer"),
    "smaller than the pattern": (lambda f: small_map(f, np.array([[1, 2, 3]])),
                                 "smaller than the 2×2 pattern"),
    "cannot tile": (lambda f: small_map(f, np.arange(1, 7).reshape(2, 3)),
                    "patterns cannot tile"),
    "infinite": (lambda f: small_map(f, np.ones((4, 4), int), infinite="1"), "infinite map"),
    "isometric": (lambda f: small_map(f, np.ones((4, 4), int), orientation="isometric"),
                  "is isometric"),
}


def _no_layer(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tmx = folder / "ex.tmx"
    tmx.write_text('<map version="1.8" orientation="orthogonal" width="4" height="4" '
                   'tilewidth="16" tileheight="16" infinite="0"><objectgroup id="1" name="o"/></map>')
    return tmx


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_bad_examples_get_one_line_and_nothing_is_written(tmp_path, case):
    make, words = REFUSALS[case]
    tmx = make(tmp_path / "in")
    out = tmp_path / "out" / "level.tmx"
    result = run("level", str(tmx), "--out", str(out), "--screens", "2")
    assert result.exit_code == 1, result.output
    assert words in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not out.parent.exists()


def test_the_refusal_of_patterns_that_cannot_tile_names_a_window_that_ends_the_example(tmp_path):
    tmx = small_map(tmp_path, np.arange(1, 7).reshape(2, 3))
    with pytest.raises(NesganError, match=r"window at column 1, row 0, tiles 2 3 / 5 6"):
        grow_level(LevelConfig(example=tmx, out=tmp_path / "l.tmx", screens=1, quiet=True))


def test_writing_over_the_example_is_refused(example):
    with pytest.raises(NesganError, match="is the example itself"):
        LevelConfig(example=example, out=example, screens=1)


def test_an_embedded_tileset_is_copied_with_its_image_path_rewritten_for_the_new_folder(tmp_path):
    tmx = small_map(tmp_path / "in", np.array([[1, 1, 2, 1, 1, 2, 1, 1],
                                               [3, 3, 3, 3, 3, 3, 3, 3]]))
    out = tmp_path / "elsewhere" / "deep" / "level.tmx"
    grow_level(LevelConfig(example=tmx, out=out, screens=1, quiet=True))
    image = ET.parse(out).getroot().find("tileset").find("image")
    assert (out.parent / image.get("source")).resolve() == (tmp_path / "in" / "t.png").resolve()
    assert layer_gids(out)[1].tolist() == [3] * 16


def test_a_refusal_suggests_the_smaller_pattern_only_where_there_is_one(tmp_path):
    tmx = small_map(tmp_path, np.arange(1, 7).reshape(2, 3))
    with pytest.raises(NesganError) as two:
        grow_level(LevelConfig(example=tmx, out=tmp_path / "l.tmx", screens=1, quiet=True))
    assert "--pattern 2" not in str(two.value), "2×2 is already the smallest pattern"
