"""The whole pipeline on a tiny embedded museum: every stage chained the way `nesgan demo` runs it."""

import json
import os
import subprocess

import numpy as np
import pytest
import pytmx
from click.testing import CliRunner
from PIL import Image

from nesgan.cli import cli
from nesgan.colour.palette import EMITTABLE, Palette
from nesgan.demo import DemoConfig, run_demo
from nesgan.files import read_jsonl

GENERATED = 6  # screens the smoke-size demo generates


def SMALL_DEMO(workdir):  # noqa: N802 - reads as the config it builds
    """The demo at smoke-test size: 3 games, 3 training steps, 6 generated screens and a 64-tile
    sheet. An untrained generator draws noise; `level` must grow 8 screens from the map, and from
    3 screens of noise (42 columns) it found dead ends everywhere, from 6 it does not."""
    return DemoConfig(workdir=workdir, games=3, screens_per_game=6, steps=3, generate=GENERATED,
                      max_tiles=64, quiet=True)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    run_demo(SMALL_DEMO(workdir=work), cli)
    return work


def test_demo_scrapes_the_museum_into_raw_originals_and_224_crops(demo):
    raw = read_jsonl(demo / "data" / "raw" / "manifest.jsonl")
    assert raw and all(r["status"] in ("ok", "duplicate") for r in raw)
    screens = [r for r in read_jsonl(demo / "data" / "screens" / "manifest.jsonl") if r["status"] == "ok"]
    assert len(screens) >= 10
    for row in screens:
        with Image.open(demo / "data" / "screens" / row["path"]) as im:
            assert im.size == (224, 224) and im.mode == "RGB"


def test_demo_trains_a_run_that_can_resume_and_generates_screens(demo):
    run = demo / "runs" / "demo"
    assert (run / "checkpoints" / "last.pt").exists()
    assert read_jsonl(run / "metrics.jsonl")
    generated = sorted((demo / "data" / "generated").glob("*.png"))
    assert len(generated) == GENERATED
    assert all(Image.open(p).size == (224, 224) for p in generated)


def test_demo_map_rebuilds_every_generated_screen_on_the_nes_palette(demo):
    tmx = demo / "level.tmx"
    tiled = pytmx.TiledMap(str(tmx))
    assert (tiled.width, tiled.height, tiled.tilewidth, tiled.tileheight) == (GENERATED * 14, 14, 16, 16)
    preview = np.asarray(Image.open(demo / "level.png").convert("RGB"))
    assert preview.shape == (224, GENERATED * 224, 3)
    nes_rgb = {tuple(c) for c in Palette.builtin().rgb[EMITTABLE].tolist()}
    assert {tuple(c) for c in np.unique(preview.reshape(-1, 3), axis=0).tolist()} <= nes_rgb
    rows = read_jsonl(demo / "tiles" / "tiles.jsonl")
    assert rows and all("near_copy" in r and "nearest" in r for r in rows)
    assert (demo / "tilesets" / "nesgan.tsx").exists()
    # the demo's sheet is NES-exportable: within budget, ≤ 4 colours a tile, one backdrop + ≤ 4 sub-palettes
    assert len(rows) <= 64 and all(len(r["colours"]) <= 4 for r in rows)
    assert len({r["palette"][0] for r in rows}) == 1 and len({r["subpalette"] for r in rows}) <= 4


def test_demo_writes_an_nes_rom_whose_pattern_table_and_nametables_rebuild_the_map(demo):
    from nesgan.nes.export import vertical_placement

    rom = (demo / "level.nes").read_bytes()
    assert rom[:4] == b"NES\x1a" and rom[4] == 2 and rom[5] == 1  # 32 KiB PRG, 8 KiB CHR, NROM
    chr_bytes = (demo / "tiles.chr").read_bytes()
    assert rom[16 + 2 * 16384:] == chr_bytes.ljust(8192, b"\0")
    pal = (demo / "palette.pal").read_bytes()
    assert len(pal) == 16 and set(pal) <= set(EMITTABLE.tolist())
    # decode the first screen's nametable + attributes with the NES rules and compare to the map
    nam = (demo / "screen-00.nam").read_bytes()
    assert len(nam) == 1024
    planes = np.frombuffer(chr_bytes, np.uint8).reshape(-1, 2, 8)
    bits = np.unpackbits(planes, axis=2)  # (tiles, plane, 64): MSB first = leftmost pixel
    pattern = (bits[:, 0] | (bits[:, 1] << 1)).reshape(-1, 8, 8)
    names = np.frombuffer(nam[:960], np.uint8).reshape(30, 32)
    attrs = np.frombuffer(nam[960:], np.uint8).reshape(8, 8)
    screen = np.zeros((240, 256), np.uint8)
    for ty in range(30):
        for tx in range(32):
            quad = ((ty % 4) // 2) * 2 + (tx % 4) // 2
            sub = (attrs[ty // 4, tx // 4] >> (2 * quad)) & 3
            px = pattern[names[ty, tx]]
            screen[ty * 8:(ty + 1) * 8, tx * 8:(tx + 1) * 8] = np.where(px == 0, pal[0], np.array(list(pal))[4 * sub + px])
    rgb = Palette.builtin().rgb[screen]
    preview = np.asarray(Image.open(demo / "level.png").convert("RGB"))
    _, top, _ = vertical_placement(224)  # the nametable rows the 224-row map occupies
    assert np.array_equal(rgb[top:top + 224], preview[:, :256])


@pytest.mark.tiled
def test_tiled_renders_the_demo_map_exactly_as_the_preview(demo, tmp_path):
    out = tmp_path / "render.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    subprocess.run(["tmxrasterizer", "--no-smoothing", "--scale", "1", str(demo / "level.tmx"), str(out)],
                   check=True, env=env, capture_output=True, timeout=120)
    rendered = np.asarray(Image.open(out).convert("RGB"))
    preview = np.asarray(Image.open(demo / "level.png").convert("RGB"))
    assert np.array_equal(rendered, preview)


def test_demo_rerun_resumes_instead_of_starting_over(demo):
    before = json.loads((demo / "runs" / "demo" / "config.json").read_text())
    run_demo(SMALL_DEMO(workdir=demo), cli)
    after = json.loads((demo / "runs" / "demo" / "config.json").read_text())
    assert before == after
    assert len(read_jsonl(demo / "data" / "raw" / "manifest.jsonl")) == len(
        {r["url"] for r in read_jsonl(demo / "data" / "raw" / "manifest.jsonl")})


def test_export_tiles_copes_with_generated_screens_that_are_one_flat_colour(demo, tmp_path):
    gen = tmp_path / "flat"
    gen.mkdir()
    rgb = Palette.builtin().rgb[0x21]
    Image.fromarray(np.broadcast_to(rgb, (224, 224, 3)).copy()).save(gen / "a.png")
    result = CliRunner().invoke(cli, [
        "export-tiles", "--generated", str(gen), "--train", str(demo / "data" / "screens"),
        "--tilesets", str(tmp_path / "ts"), "--tiles", str(tmp_path / "tiles"),
        "--tmx", str(tmp_path / "flat.tmx")])
    assert result.exit_code == 0, result.output
    rows = read_jsonl(tmp_path / "tiles" / "tiles.jsonl")
    assert len(rows) == 1 and rows[0]["count"] == 196


def test_demo_grows_a_level_from_its_map_and_exports_it_for_the_nes(demo):
    from xml.etree import ElementTree as ET

    from nesgan.level.patterns import violations
    from nesgan.tiled.tmx import decode_data

    def gids(tmx):
        layer = ET.parse(tmx).getroot().find("layer")
        return decode_data(layer.find("data"), int(layer.get("width")), int(layer.get("height")), "t")

    example, grown = gids(demo / "level.tmx"), gids(demo / "grown.tmx")
    assert grown.shape == (example.shape[0], 8 * 16)
    assert violations(example, grown, 2) == []
    assert pytmx.TiledMap(str(demo / "grown.tmx")).width == 128
    rom = (demo / "grown-nes" / "level.nes").read_bytes()
    assert rom[:4] == b"NES\x1a" and len(sorted((demo / "grown-nes").glob("screen-*.nam"))) == 8
