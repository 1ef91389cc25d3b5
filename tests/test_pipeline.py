"""The whole pipeline on a tiny embedded museum: every stage chained the way `nesgan demo` runs it."""

import json
import os
import shutil
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


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    work = tmp_path_factory.mktemp("demo")
    run_demo(DemoConfig(workdir=work, games=3, screens_per_game=6, steps=3, generate=3, quiet=True), cli)
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
    assert len(generated) == 3
    assert all(Image.open(p).size == (224, 224) for p in generated)


def test_demo_map_rebuilds_every_generated_screen_on_the_nes_palette(demo):
    tmx = demo / "level.tmx"
    tiled = pytmx.TiledMap(str(tmx))
    assert (tiled.width, tiled.height, tiled.tilewidth, tiled.tileheight) == (3 * 14, 14, 16, 16)
    preview = np.asarray(Image.open(demo / "level.png").convert("RGB"))
    assert preview.shape == (224, 3 * 224, 3)
    nes_rgb = {tuple(c) for c in Palette.builtin().rgb[EMITTABLE].tolist()}
    assert {tuple(c) for c in np.unique(preview.reshape(-1, 3), axis=0).tolist()} <= nes_rgb
    rows = read_jsonl(demo / "tiles" / "tiles.jsonl")
    assert rows and all("near_copy" in r and "nearest" in r for r in rows)
    assert (demo / "tilesets" / "nesgan.tsx").exists()
    # the demo's sheet is NES-exportable: ≤ 64 tiles of ≤ 4 colours, one backdrop + ≤ 4 sub-palettes
    assert len(rows) <= 64 and all(len(r["colours"]) <= 4 for r in rows)
    assert len({r["palette"][0] for r in rows}) == 1 and len({r["subpalette"] for r in rows}) <= 4


@pytest.mark.tiled
@pytest.mark.skipif(not shutil.which("tmxrasterizer"), reason="Tiled is not installed (`make tiled`)")
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
    run_demo(DemoConfig(workdir=demo, games=3, screens_per_game=6, steps=3, generate=3, quiet=True), cli)
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
