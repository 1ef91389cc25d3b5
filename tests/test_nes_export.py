"""export-nes end to end: the files it writes decode back to the map, and every NES rule a map
can break gets one line with nothing written."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nes_maps import (
    PALETTE,
    decode_nametable,
    museum_indices,
    set_layer,
    tiled_flip,
    write_map,
)
from nesgan.cli import cli
from nesgan.colour.palette import EMITTABLE
from nesgan.nes import NesConfig, export_nes
from nesgan.nes.chr import decode_chr
from nesgan.nes.export import MAX_MAP_COLUMNS, vertical_placement

needs_tiled = pytest.mark.tiled  # skipped where Tiled is not installed (conftest)


def decoded_map(out: Path, height: int, width: int) -> np.ndarray:
    """The map's rows as the .nam files + tiles.chr + palette.pal show them."""
    chr_data, pal = (out / "tiles.chr").read_bytes(), (out / "palette.pal").read_bytes()
    screens = sorted(out.glob("screen-*.nam"))
    wide = np.concatenate([decode_nametable(p.read_bytes(), chr_data, pal) for p in screens], axis=1)
    _, nt_top, _ = vertical_placement(height)
    return wide[nt_top : nt_top + height, :width]


def run(*args: str):
    return CliRunner().invoke(cli, ["export-nes", *args])


def test_cli_writes_pattern_table_nametables_palette_and_rom_that_decode_to_the_map(tmp_path):
    indices = museum_indices(game=2, shots=(0, 1, 2))  # 672×224 px: three 256-px nametables
    tmx = write_map(tmp_path, indices)
    res = run(str(tmx), "--out", str(tmp_path / "nes"))
    assert res.exit_code == 0, res.output
    out = tmp_path / "nes"
    assert sorted(p.name for p in out.iterdir()) == [
        "level.nes", "palette.pal", "screen-00.nam", "screen-01.nam", "screen-02.nam", "tiles.chr"]
    assert len((out / "palette.pal").read_bytes()) == 16
    chr_size = len((out / "tiles.chr").read_bytes())
    assert chr_size % 16 == 0 and 0 < chr_size <= 256 * 16
    assert np.array_equal(decoded_map(out, 224, 672), indices)
    assert "layer 'nesgan': 42×14 tiles" in res.output and "rows 8–231" in res.output
    assert f"open {out / 'level.nes'} in any NES emulator" in res.output


def test_each_pattern_is_stored_once_and_the_palette_is_backdrop_then_three_per_subpalette(tmp_path):
    indices = museum_indices(game=5, shots=(0, 1))
    report = export_nes(NesConfig(tmx=write_map(tmp_path, indices), out=tmp_path / "nes"))
    patterns = decode_chr((tmp_path / "nes" / "tiles.chr").read_bytes())
    assert len(np.unique(patterns.reshape(len(patterns), -1), axis=0)) == len(patterns) == report.patterns
    pal = (tmp_path / "nes" / "palette.pal").read_bytes()
    assert pal[0] == pal[4] == pal[8] == pal[12] == report.backdrop
    assert set(pal) <= set(EMITTABLE.tolist()) and 0x0D not in pal
    shown = {int(v) for v in np.unique(indices)}
    assert shown <= set(pal)


def flipped_map(tmp_path):
    indices = museum_indices(game=4, shots=(3,), rows=15, cols=16)
    rng = np.random.default_rng(2)
    flags = rng.choice([0, 0x80000000, 0x40000000, 0x20000000, 0xE0000000], size=(15, 16))
    empty = rng.random((15, 16)) < 0.1
    tmx = write_map(tmp_path, indices, flags=flags.astype(np.uint32), empty=empty)
    expected = np.full(indices.shape, -1, np.int16)
    for (r, c), flag in np.ndenumerate(flags):
        if not empty[r, c]:
            tile = indices[16 * r : 16 * r + 16, 16 * c : 16 * c + 16]
            expected[16 * r : 16 * r + 16, 16 * c : 16 * c + 16] = tiled_flip(tile, int(flag))
    return tmx, expected


def test_flipped_tiles_become_their_own_patterns_and_empty_cells_show_the_backdrop(tmp_path):
    tmx, expected = flipped_map(tmp_path)
    report = export_nes(NesConfig(tmx=tmx, out=tmp_path / "nes"))
    got = decoded_map(tmp_path / "nes", 240, 256)
    assert np.array_equal(got[expected >= 0], expected[expected >= 0])
    assert (got[expected < 0] == report.backdrop).all()


@needs_tiled
def test_flips_mean_what_tmxrasterizer_draws(tmp_path):
    tmx, expected = flipped_map(tmp_path)
    export_nes(NesConfig(tmx=tmx, out=tmp_path / "nes"))
    png = tmp_path / "raster.png"
    subprocess.run(["tmxrasterizer", "--no-smoothing", "--scale", "1", str(tmx), str(png)],
                   check=True, capture_output=True, timeout=120,
                   env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    raster = np.asarray(Image.open(png).convert("RGBA"))
    drawn = raster[..., 3] == 255
    assert np.array_equal(drawn, expected >= 0)
    got = decoded_map(tmp_path / "nes", 240, 256)
    assert np.array_equal(PALETTE.to_rgb(got)[drawn], raster[..., :3][drawn])


def test_the_default_layer_is_the_one_painted_with_nesgans_tiles_and_others_are_named(tmp_path):
    tmx = write_map(tmp_path, museum_indices(game=1, shots=(0,)))
    text = tmx.read_text().replace("</map>", '<layer id="9" name="notes" width="14" height="14">'
                                   '<data encoding="csv">' + ",".join(["0"] * 196) + "</data></layer></map>")
    tmx.write_text(text)
    res = run(str(tmx), "--out", str(tmp_path / "nes"))
    assert res.exit_code == 0, res.output
    assert "layer 'nesgan'" in res.output and "not exported" in res.output and "'notes'" in res.output
    res = run(str(tmx), "--out", str(tmp_path / "nes2"), "--layer", "notes")
    assert res.exit_code == 0, res.output  # an empty layer: the backdrop alone
    res = run(str(tmx), "--layer", "nope")
    assert res.exit_code == 1 and "no tile layer named 'nope'" in res.output
    assert "'nesgan', 'notes'" in res.output


def test_a_rerun_for_a_narrower_map_removes_the_old_extra_screens(tmp_path):
    out = tmp_path / "nes"
    export_nes(NesConfig(tmx=write_map(tmp_path, museum_indices(shots=(0, 1, 2))), out=out))
    assert len(list(out.glob("screen-*.nam"))) == 3
    (out / "notes.txt").write_text("mine")
    (tmp_path / "narrow").mkdir()
    narrow = write_map(tmp_path / "narrow", museum_indices(shots=(0,)))
    export_nes(NesConfig(tmx=narrow, out=out))
    assert sorted(p.name for p in out.glob("screen-*.nam")) == ["screen-00.nam"]
    assert (out / "notes.txt").read_text() == "mine"


# --- refusals: one line, exit 1, nothing written ------------------------------------------------


def refused(tmp_path: Path, tmx: Path, *args: str) -> str:
    out = tmp_path / "nes"
    res = run(str(tmx), "--out", str(out), *args)
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and res.output.count("\n") == 1, res.output
    assert not out.exists()
    return res.output


def four_colour_tiles(n: int, colours, seed: int = 0) -> np.ndarray:
    """(16, 16·n) indices: n random 16×16 tiles, each using the 4 given colours."""
    rng = np.random.default_rng(seed)
    return np.array(colours, np.uint8)[rng.integers(0, 4, (16, 16 * n))]


def test_more_than_256_patterns_is_refused_with_a_max_tiles_that_fits(tmp_path):
    tmx = write_map(tmp_path, four_colour_tiles(80, [0x0F, 0x16, 0x27, 0x30]))
    line = refused(tmp_path, tmx)
    # 80 tiles × 4 quarters, plus the blank pattern of the rows below the 16-px-tall map
    assert "needs 321 distinct 8×8 patterns" in line and "--max-tiles 63" in line


def test_a_tile_with_five_colours_is_refused_naming_where_it_is(tmp_path):
    indices = four_colour_tiles(3, [0x0F, 0x16, 0x27, 0x30])
    indices[5, 40] = 0x1A  # tile column 2
    line = refused(tmp_path, write_map(tmp_path, indices))
    assert "the tile at column 2, row 0" in line and "5 colours" in line


def test_five_subpalettes_are_refused(tmp_path):
    colours = [[0x0F, 0x01, 0x11, 0x21], [0x0F, 0x06, 0x16, 0x26], [0x0F, 0x09, 0x19, 0x29],
               [0x0F, 0x04, 0x14, 0x24], [0x0F, 0x07, 0x17, 0x27]]
    indices = np.concatenate([four_colour_tiles(1, c, seed=k) for k, c in enumerate(colours)], 1)
    line = refused(tmp_path, write_map(tmp_path, indices))
    assert "more than 4 sub-palettes" in line


def test_a_map_taller_than_a_screen_is_refused(tmp_path):
    indices = museum_indices(game=0, shots=(0,), rows=15)
    tall = np.concatenate([indices, indices[:16]], axis=0)  # 16 rows
    line = refused(tmp_path, write_map(tmp_path, tall))
    assert "16 tiles (256 px) tall" in line and "at most 15 tiles" in line


def test_a_map_wider_than_nrom_holds_is_refused(tmp_path):
    indices = np.tile(museum_indices(game=0, shots=(0,), cols=1), (1, MAX_MAP_COLUMNS + 1))
    line = refused(tmp_path, write_map(tmp_path, indices))
    assert f"{MAX_MAP_COLUMNS + 1} tiles" in line and f"holds {MAX_MAP_COLUMNS}" in line


def test_a_colour_outside_the_nes_palette_is_refused(tmp_path):
    tmx = write_map(tmp_path, museum_indices(game=0, shots=(0,)))
    png = tmp_path / "tilesets" / "nesgan.png"
    img = np.asarray(Image.open(png).convert("RGB")).copy()
    img[3, 3] = (1, 2, 3)
    Image.fromarray(img).save(png)
    line = refused(tmp_path, tmx)
    assert "#010203" in line and "not in the NES palette" in line


def test_a_map_without_nesgans_tilesets_asks_for_a_layer(tmp_path):
    tmx = write_map(tmp_path, museum_indices(game=0, shots=(0,)), ours=False)
    assert "--layer NAME" in refused(tmp_path, tmx)
    res = run(str(tmx), "--out", str(tmp_path / "nes"), "--layer", "nesgan")
    assert res.exit_code == 0, res.output


def test_malformed_and_foreign_maps_are_one_line(tmp_path):
    bad = tmp_path / "bad.tmx"
    bad.write_text("<map><layer")
    assert "not well-formed XML" in refused(tmp_path, bad)
    bad.write_text('<map orientation="isometric" width="1" height="1" tilewidth="16" tileheight="16"/>')
    assert "isometric" in refused(tmp_path, bad)
    bad.write_text('<map orientation="orthogonal" width="1" height="1" tilewidth="8" tileheight="8">'
                   '<layer name="a" width="1" height="1"><data encoding="csv">0</data></layer></map>')
    assert "8×8 tiles" in refused(tmp_path, bad)
    tmx = write_map(tmp_path, museum_indices(game=0, shots=(0,)))
    set_layer(tmx, "nesgan", lambda g: g | 0x10000000)
    assert "hexagonal" in refused(tmp_path, tmx)
    (tmp_path / "level.tmj").write_text("{}")
    assert "JSON map" in refused(tmp_path, tmp_path / "level.tmj")


def test_a_refused_export_leaves_an_earlier_export_as_it_was(tmp_path):
    out = tmp_path / "nes"
    export_nes(NesConfig(tmx=write_map(tmp_path, museum_indices(game=0, shots=(0, 1))), out=out))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    tmx = write_map(tmp_path, four_colour_tiles(80, [0x0F, 0x16, 0x27, 0x30]))
    res = run(str(tmx), "--out", str(out))
    assert res.exit_code == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_help_states_the_width_limit_the_code_enforces():
    res = CliRunner().invoke(cli, ["export-nes", "--help"])
    assert f"at most {MAX_MAP_COLUMNS} tiles" in " ".join(res.output.split())


def test_a_map_written_by_export_tiles_exports_and_decodes_to_its_generated_screens(
        tmp_path, monkeypatch, isolated_lut_cache):
    from nesgan.museum import synth

    monkeypatch.chdir(tmp_path)
    screens = []
    for folder, game in (("gen", 0), ("train", 5)):
        Path(folder).mkdir()
        g = synth.make_game(0, game)
        for k in range(2):
            shot = synth.render_frame(g, k, sprites=False).indices[16:, :224]  # on the 16-px grid
            Image.fromarray(PALETTE.to_rgb(shot)).save(f"{folder}/s-{k}.png")
            if folder == "gen":
                screens.append(shot)
    res = CliRunner().invoke(cli, ["export-tiles", "--generated", "gen", "--train", "train",
                                   "--tmx", "level.tmx", "--max-tiles", "0"])  # the screens as they are
    assert res.exit_code == 0, res.output
    res = run("level.tmx")
    assert res.exit_code == 0, res.output
    assert np.array_equal(decoded_map(Path("nes"), 224, 448), np.concatenate(screens, axis=1))
    preview = np.asarray(Image.open("level.png").convert("RGB"))  # export-tiles' render of the map
    assert np.array_equal(PALETTE.to_rgb(decoded_map(Path("nes"), 224, 448)), preview)


def test_every_map_height_sits_centred_on_the_attribute_grid_and_scrolls_into_place():
    for rows in range(1, 16):
        h = 16 * rows
        screen_top, nt_top, scroll_y = vertical_placement(h)
        assert nt_top % 16 == 0 and nt_top + h <= 240  # whole attribute areas, inside a nametable
        assert scroll_y in (0, 8) and screen_top == nt_top - scroll_y and screen_top % 8 == 0
        assert abs((240 - h - screen_top) - screen_top) <= 8  # centred to the 8-px row
    assert vertical_placement(224) == (8, 16, 8) and vertical_placement(240) == (0, 0, 0)
