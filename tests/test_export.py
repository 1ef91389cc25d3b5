import json
import os
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nesgan.cli import cli
from nesgan.colour.palette import EMITTABLE, Palette
from nesgan.errors import NesganError
from nesgan.tiled.export import ExportConfig, export_report
from nesgan.tiled.tmx import DataFormat, decode_data, encode_data

needs_tiled = pytest.mark.tiled  # skipped where Tiled is not installed (conftest)


@dataclass
class FakeReport:
    """The shape of `nesgan.tiles.build.TileReport`, from numpy."""

    palette: Palette
    tiles: np.ndarray
    rows: list
    screens: list
    quantized: list


def fake_report(tiles: np.ndarray, n_screens=2, seed=0, near=lambda i: i % 5 == 0) -> FakeReport:
    rng = np.random.default_rng(seed)
    screens, quantized = [], []
    for s in range(n_screens):
        ids = rng.integers(0, len(tiles), size=(14, 14))
        screens.append((f"gen{s:03d}.png", ids))
        quantized.append(tiles[ids].swapaxes(1, 2).reshape(224, 224))  # (14,16,14,16) -> screen
    rows = [{"id": i, "key": f"k{i}", "count": int(sum((ids == i).sum() for _, ids in screens)),
             "first_seen": {"screen": "gen000.png", "x": 0, "y": 0}, "near_copy": bool(near(i)),
             "nearest": {"screen": "train 1.png", "x": 16 * i, "y": 32, "distance": i}}
            for i in range(len(tiles))]
    return FakeReport(Palette.builtin(), tiles, rows, screens, quantized)


def random_tiles(n, seed=0):
    return np.random.default_rng(seed).choice(EMITTABLE, size=(n, 16, 16)).astype(np.uint8)


def screens_rgb(report) -> np.ndarray:
    return np.concatenate([report.palette.to_rgb(q) for q in report.quantized], axis=1)


def config(tmp_path, **kw) -> ExportConfig:
    kw.setdefault("tmx", tmp_path / "level.tmx")
    return ExportConfig(tilesets_dir=tmp_path / "tilesets", tiles_dir=tmp_path / "tiles", **kw)


def atlas_tiles(png: Path) -> np.ndarray:
    img = np.asarray(Image.open(png).convert("RGB"))
    h, w = img.shape[0] // 16, img.shape[1] // 16
    return img.reshape(h, 16, w, 16, 3).swapaxes(1, 2).reshape(-1, 16, 16, 3)


def rebuild_with_pytiled_parser(tmx: Path) -> np.ndarray:
    import pytiled_parser

    m = pytiled_parser.parse_map(tmx)
    layer = next(la for la in m.layers if la.name == "nesgan")
    gids = np.array(layer.data)
    out = np.zeros((gids.shape[0] * 16, gids.shape[1] * 16, 3), np.uint8)
    firsts = sorted(m.tilesets)
    for (y, x), gid in np.ndenumerate(gids):
        first = max(f for f in firsts if f <= gid)
        ts = m.tilesets[first]
        assert ts.tile_width == 16 and ts.columns == 16
        out[y * 16:(y + 1) * 16, x * 16:(x + 1) * 16] = atlas_tiles(Path(ts.image))[gid - first]
    return out


def rebuild_with_pytmx(tmx: Path) -> np.ndarray:
    import pytmx

    m = pytmx.TiledMap(str(tmx))  # the default loader returns (file, rect, flags): no pygame
    layer = m.get_layer_by_name("nesgan")
    out = np.zeros((m.height * 16, m.width * 16, 3), np.uint8)
    atlases = {}
    for x, y, (filename, rect, _flags) in layer.tiles():
        img = atlases.setdefault(filename, np.asarray(Image.open(filename).convert("RGB")))
        rx, ry, rw, rh = rect
        out[y * 16:(y + 1) * 16, x * 16:(x + 1) * 16] = img[ry:ry + rh, rx:rx + rw]
    return out


def test_export_writes_tilesets_and_a_map_that_rebuild_every_screen(tmp_path):
    report = fake_report(random_tiles(30), n_screens=3)
    r = export_report(report, config(tmp_path))
    assert (r.tiles, r.near_copies) == (30, 6)
    assert r.new_tiles == {"nesgan": 24, "nesgan-near-copies": 6}
    expected = screens_rgb(report)  # (224, 672, 3)
    assert np.array_equal(np.asarray(Image.open(r.preview).convert("RGB")), expected)
    assert np.array_equal(rebuild_with_pytiled_parser(tmp_path / "level.tmx"), expected)
    assert np.array_equal(rebuild_with_pytmx(tmp_path / "level.tmx"), expected)


def test_tilesets_load_in_both_readers_with_the_tile_properties(tmp_path):
    import pytiled_parser

    export_report(fake_report(random_tiles(20)), config(tmp_path, tmx=None))
    assert not (tmp_path / "level.tmx").exists()
    ts = pytiled_parser.parse_tileset(tmp_path / "tilesets" / "nesgan.tsx")
    assert (ts.tile_count, ts.columns, ts.image_width) == (16, 16, 256)
    props = ts.tiles[0].properties
    assert props["near_copy"] is False and props["nearest_source"] == "train 1.png@16,32"
    assert props["distance"] == 1 and isinstance(props["count"], int)
    near = pytiled_parser.parse_tileset(tmp_path / "tilesets" / "nesgan-near-copies.tsx")
    # 4 near-copies in a 16-cell row: Tiled's count is the grid; the 12 padding cells have
    # probability 0 and no properties
    assert near.tile_count == 16 and near.tiles[1].properties["near_copy"] is True
    assert near.tiles[4].class_ == "padding" and not near.tiles[4].properties
    # the near-copies atlas holds exactly the flagged tiles (ids 0, 5, 10, 15), in order
    pal = Palette.builtin()
    assert np.array_equal(atlas_tiles(tmp_path / "tilesets" / "nesgan-near-copies.png")[:4],
                          pal.to_rgb(random_tiles(20)[[0, 5, 10, 15]]))


def test_reexport_keeps_existing_ids_and_only_appends_new_tiles(tmp_path):
    tiles = random_tiles(40)
    export_report(fake_report(tiles[:20], near=lambda i: False), config(tmp_path))
    before = atlas_tiles(tmp_path / "tilesets" / "nesgan.png")[:20]
    # a new generation: the old tiles (other ids, other order) and 20 new ones
    second = fake_report(tiles[::-1].copy(), seed=1, near=lambda i: False)
    r = export_report(second, config(tmp_path))
    assert r.new_tiles == {"nesgan": 20, "nesgan-near-copies": 0}
    after = atlas_tiles(tmp_path / "tilesets" / "nesgan.png")
    assert np.array_equal(after[:20], before) and after.shape[0] == 48
    root = ET.parse(tmp_path / "tilesets" / "nesgan.tsx").getroot()
    # tilecount is what Tiled computes from the 3-row atlas; the 8 padding cells stay out of use
    assert (root.get("columns"), root.get("tilecount")) == ("16", "48")
    typed = {int(e.get("id")): (e.get("type"), e.get("probability")) for e in root.findall("tile")}
    assert all(typed[i] == ("padding", "0") for i in range(40, 48))
    assert all(typed[i][0] is None for i in range(40))  # ids 20–31 were padding after export 1
    assert np.array_equal(rebuild_with_pytiled_parser(tmp_path / "level.tmx"), screens_rgb(second))
    # exporting the same report again changes nothing
    tsx_text = (tmp_path / "tilesets" / "nesgan.tsx").read_text()
    export_report(second, config(tmp_path))
    assert np.array_equal(atlas_tiles(tmp_path / "tilesets" / "nesgan.png"), after)
    assert (tmp_path / "tilesets" / "nesgan.tsx").read_text() == tsx_text


def test_a_tile_that_becomes_a_near_copy_keeps_its_id_and_joins_the_near_copies(tmp_path):
    tiles = random_tiles(10)
    export_report(fake_report(tiles, near=lambda i: False), config(tmp_path, tmx=None))
    report = fake_report(tiles, near=lambda i: i == 3)  # e.g. a larger K
    r = export_report(report, config(tmp_path))
    assert r.changed_verdict == 1 and r.new_tiles == {"nesgan": 0, "nesgan-near-copies": 1}
    assert r.flagged_in_main == 1
    root = ET.parse(tmp_path / "tilesets" / "nesgan.tsx").getroot()
    tile3 = root.find("tile[@id='3']")
    assert tile3.get("probability") == "0"
    assert tile3.find("properties/property[@name='near_copy']").get("value") == "true"
    assert root.find("tile[@id='2']").get("probability") is None
    assert np.array_equal(atlas_tiles(tmp_path / "tilesets" / "nesgan-near-copies.png")[0],
                          report.palette.to_rgb(tiles[3]))
    # the generated layer now paints tile 3 from the near-copies tileset
    layer = ET.parse(tmp_path / "level.tmx").getroot().find("layer/data")
    gids = decode_data(layer, 28, 14, "nesgan")
    ids = np.concatenate([s for _, s in report.screens], axis=1)
    assert (gids[ids == 3] == 17).all() and (gids[ids != 3] < 17).all()


def test_reexport_into_the_map_keeps_tiles_the_user_painted(tmp_path):
    tiles = random_tiles(60)
    export_report(fake_report(tiles[:16], near=lambda i: i < 2), config(tmp_path))
    tmx = tmp_path / "level.tmx"
    root = ET.parse(tmx).getroot()
    art = np.zeros((14, 28), np.uint32)
    art[5, 5], art[6, 6] = 1 + 3, 17 + 1  # nesgan tile 3 and near-copy tile 1
    layer = ET.SubElement(root, "layer", {"id": "7", "name": "art", "width": "28", "height": "14"})
    encode_data(ET.SubElement(layer, "data"), art, DataFormat("base64", "zlib"))
    tmx.write_text(ET.tostring(root, encoding="unicode"))
    export_report(fake_report(tiles, near=lambda i: i < 2), config(tmp_path))  # both sets grow
    root = ET.parse(tmx).getroot()
    firsts = {t.get("source"): int(t.get("firstgid")) for t in root.findall("tileset")}
    art = decode_data(root.find("layer[@name='art']/data"), 28, 14, "art")
    main, near = firsts["tilesets/nesgan.tsx"], firsts["tilesets/nesgan-near-copies.tsx"]
    assert art[5, 5] == main + 3 and art[6, 6] == near + 1


def _fake_tiles_module(report):
    mod = types.ModuleType("nesgan.tiles.build")

    @dataclass(frozen=True)
    class TileConfig:
        generated: Path
        train: Path
        tiles_dir: Path
        near_copy_pixels: int = 8
        palette_file: Path | None = None
        max_tiles: int = 256
        palettes: int | None = None
        under_sprites: bool = False

    mod.TileConfig = TileConfig
    mod.calls = []
    mod.build_tiles = lambda c: mod.calls.append(c) or report
    return mod


def test_cli_export_tiles_passes_its_options_and_summarises(tmp_path, monkeypatch):
    fake = _fake_tiles_module(fake_report(random_tiles(20)))
    monkeypatch.setitem(sys.modules, "nesgan.tiles.build", fake)
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["export-tiles", "--generated", "g", "--tmx", "maps/level.tmx",
                                   "--name", "dungeon", "--near-copy-pixels", "3", "--max-tiles", "64",
                                   "--palettes", "4", "--under-sprites"])
    assert res.exit_code == 0, res.output
    assert "20 unique tiles, 4 near-copies" in res.output
    assert fake.calls[0].near_copy_pixels == 3 and fake.calls[0].generated == Path("g")
    assert fake.calls[0].max_tiles == 64 and fake.calls[0].palettes == 4
    assert fake.calls[0].under_sprites is True
    assert (tmp_path / "tilesets" / "dungeon.tsx").exists() and (tmp_path / "maps" / "level.png").exists()
    root = ET.parse(tmp_path / "maps" / "level.tmx").getroot()
    assert root.find("tileset").get("source") == "../tilesets/dungeon.tsx"
    assert root.find("layer").get("name") == "dungeon"


def test_cli_refuses_a_name_that_is_not_a_plain_file_name(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nesgan.tiles.build", _fake_tiles_module(None))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["export-tiles", "--name", "../evil"])
    assert res.exit_code == 1 and res.output.startswith("Error: --name '../evil'")
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_an_unsafe_map_in_one_line_and_leaves_it_untouched(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nesgan.tiles.build", _fake_tiles_module(fake_report(random_tiles(8))))
    monkeypatch.chdir(tmp_path)
    text = ('<map orientation="orthogonal" width="2" height="2" tilewidth="16" tileheight="16" '
            'infinite="1"/>')
    Path("level.tmx").write_text(text)
    res = CliRunner().invoke(cli, ["export-tiles", "--tmx", "level.tmx"])
    assert res.exit_code == 1 and "infinite map" in res.output and res.output.count("\n") == 1
    assert Path("level.tmx").read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["level.tmx"]  # nothing else written


# --- Tiled itself -----------------------------------------------------------------------------


def _tiled(*args, cwd: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True, timeout=120)


def _rasterize(tmx: Path, *extra: str) -> np.ndarray:
    out = tmx.with_name(tmx.stem + "-raster.png")
    _tiled("tmxrasterizer", "--no-smoothing", "--scale", "1", *extra, str(tmx), str(out), cwd=tmx.parent)
    return np.asarray(Image.open(out).convert("RGBA"))


@needs_tiled
def test_tiled_renders_the_exported_map_pixel_for_pixel(tmp_path):
    report = fake_report(random_tiles(40), n_screens=3)
    export_report(report, config(tmp_path))
    img = _rasterize(tmp_path / "level.tmx")
    assert (img[..., 3] == 255).all()
    assert np.array_equal(img[..., :3], screens_rgb(report))
    _tiled("tiled", "--export-map", "json", "level.tmx", "level.json", cwd=tmp_path)
    assert (tmp_path / "level.json").stat().st_size > 0


USER_MAP = """<?xml version="1.0" encoding="UTF-8"?>
<map version="1.8" tiledversion="1.8.2" orientation="orthogonal" renderorder="right-down"
 width="12" height="5" tilewidth="16" tileheight="16" infinite="0" nextlayerid="4" nextobjectid="2">
 <properties><property name="level" type="int" value="7"/></properties>
 <tileset firstgid="1" name="bricks" tilewidth="16" tileheight="16" tilecount="16" columns="8">
  <image source="bricks.png" width="128" height="32"/>
 </tileset>
 <layer id="1" name="back" width="12" height="5"><data encoding="base64" compression="zlib"/></layer>
 <objectgroup id="2" name="spawns"><object id="1" name="start" x="20" y="30" width="8" height="8"/>
 </objectgroup>
 <layer id="3" name="front" width="12" height="5" opacity="0.75"><data encoding="csv"/></layer>
</map>
"""


@needs_tiled
def test_updating_a_users_map_keeps_its_own_layers_rendering_as_before(tmp_path):
    rng = np.random.default_rng(5)
    Image.fromarray(rng.integers(0, 256, (32, 128, 3), dtype=np.uint8)).save(tmp_path / "bricks.png")
    root = ET.fromstring(USER_MAP)
    back = rng.integers(0, 17, (5, 12)).astype(np.uint32)
    back[1, 1] |= 0x80000000  # flipped horizontally
    front = np.where(rng.random((5, 12)) < 0.3, rng.integers(1, 17, (5, 12)), 0).astype(np.uint32)
    encode_data(root.find("layer[@name='back']/data"), back)
    encode_data(root.find("layer[@name='front']/data"), front)
    tmx = tmp_path / "level.tmx"
    tmx.write_text(ET.tostring(root, encoding="unicode"))
    before = _rasterize(tmx)  # (80, 192, 4)

    report = fake_report(random_tiles(30), n_screens=2)
    r = export_report(report, config(tmp_path))
    assert r.map.grown_from == (12, 5) and r.map.firstgids == [17, 17 + 32]
    after_user = _rasterize(tmx, "--hide-layer", "nesgan")  # (224, 448, 4)
    assert np.array_equal(after_user[:80, :192], before)
    assert (after_user[80:, :, 3] == 0).all() and (after_user[:, 192:, 3] == 0).all()
    ours = _rasterize(tmx, "--show-layer", "nesgan")
    assert np.array_equal(ours[..., :3], screens_rgb(report))
    root = ET.parse(tmx).getroot()
    assert root.find("properties/property").get("value") == "7"
    assert root.find("objectgroup/object").get("name") == "start"
    assert root.find("layer[@name='back']/data").get("compression") == "zlib"


def test_export_with_every_tile_a_near_copy_still_writes_a_loadable_main_tileset(tmp_path):
    import pytiled_parser

    report = fake_report(random_tiles(5), near=lambda i: True)
    r = export_report(report, config(tmp_path))
    assert r.new_tiles == {"nesgan": 0, "nesgan-near-copies": 5}
    assert pytiled_parser.parse_tileset(tmp_path / "tilesets" / "nesgan.tsx").tile_count == 0
    assert np.array_equal(rebuild_with_pytmx(tmp_path / "level.tmx"), screens_rgb(report))


def test_cli_exports_real_tiles_from_generated_and_training_screens(tmp_path, monkeypatch):
    pal = Palette.builtin()
    tiles = random_tiles(24, seed=3)
    rng = np.random.default_rng(4)
    for folder, n in (("generated", 2), ("screens", 2)):
        (tmp_path / folder).mkdir()
        for s in range(n):
            ids = rng.integers(0, 24 if folder == "generated" else 12, size=(14, 14))
            screen = tiles[ids].swapaxes(1, 2).reshape(224, 224)
            Image.fromarray(pal.to_rgb(screen)).save(tmp_path / folder / f"s{s}.png")
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["export-tiles", "--generated", "generated", "--train", "screens",
                                   "--tmx", "level.tmx", "--near-copy-pixels", "0", "--max-tiles", "0"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in Path("tiles/tiles.jsonl").read_text().splitlines()]
    near = sum(r["near_copy"] for r in rows)
    assert len(rows) == 24 and near >= 1  # the training screens reuse tiles 0–11 exactly
    expected = np.concatenate([np.asarray(Image.open(f"generated/s{s}.png").convert("RGB"))
                               for s in range(2)], axis=1)
    assert np.array_equal(rebuild_with_pytiled_parser(tmp_path / "level.tmx"), expected)
    assert np.array_equal(np.asarray(Image.open("level.png").convert("RGB")), expected)
    # tiles 12–23 are noise no training screen shows: their cells invent patterns
    assert "drawing: invented patterns in" in res.output and "(training " in res.output


def test_drawing_numbers_read_the_rebuilt_map_against_the_training_screens(tmp_path):
    from nesgan.tiled.export import drawing_numbers

    report = fake_report(random_tiles(12, seed=5), n_screens=2)
    (tmp_path / "train").mkdir()
    swap = np.zeros(64, np.uint8)  # an NES palette swap: each emittable colour to another, one to one
    swap[EMITTABLE] = np.roll(EMITTABLE, 7)
    for s, q in enumerate(report.quantized):  # the training screens are the map itself, recoloured
        Image.fromarray(report.palette.to_rgb(swap[q])).save(tmp_path / "train" / f"t{s}.png")
    d = drawing_numbers(report, tmp_path / "train")
    assert d["invented"] == 0.0 and d["divergence"] == 0.0
    assert d["non_flat_original"] == sum(not r["near_copy"] for r in report.rows)
    other = fake_report(random_tiles(12, seed=6), n_screens=2)
    d = drawing_numbers(other, tmp_path / "train")
    assert d["invented"] > 0.5 and d["divergence"] > 0.5
    assert drawing_numbers(report, tmp_path / "missing") is None


@needs_tiled
def test_a_map_saved_by_tiled_takes_a_reexport_with_more_tiles(tmp_path):
    tiles = random_tiles(60)
    export_report(fake_report(tiles[:25]), config(tmp_path))
    # Tiled saves the map itself (its own writer: attribute order, tilecounts, whitespace)
    _tiled("tiled", "--export-map", "tmx", "level.tmx", "saved.tmx", cwd=tmp_path)
    report = fake_report(tiles, n_screens=3, seed=2)
    r = export_report(report, config(tmp_path, tmx=tmp_path / "saved.tmx"))
    assert not r.map.created and r.map.size == (42, 14)
    assert np.array_equal(_rasterize(tmp_path / "saved.tmx")[..., :3], screens_rgb(report))
    assert np.array_equal(rebuild_with_pytmx(tmp_path / "saved.tmx"), screens_rgb(report))


def test_the_ids_manifest_says_where_every_tile_went(tmp_path):
    tiles = random_tiles(12)
    export_report(fake_report(tiles[:8], near=lambda i: i == 0), config(tmp_path, tmx=None))
    export_report(fake_report(tiles[4:], near=lambda i: i == 0), config(tmp_path, tmx=None))
    rows = [json.loads(line) for line in (tmp_path / "tilesets" / "nesgan.ids.jsonl").open()]
    assert [r["id"] for r in rows] == list(range(8))
    # report tile 0 is old tile 4: it now counts as a near-copy, so it joins the near-copies
    assert rows[0]["tileset"] == "nesgan-near-copies" and rows[0]["status"] == "new"
    assert rows[0]["also_in"] == {"tileset": "nesgan", "tile": 3}
    assert [(r["tileset"], r["tile"], r["status"]) for r in rows[1:4]] == [
        ("nesgan", 4, "kept"), ("nesgan", 5, "kept"), ("nesgan", 6, "kept")]
    assert {r["status"] for r in rows[4:]} == {"new"} and all(r["error"] is None for r in rows)


def test_a_merged_user_map_loads_in_both_readers_with_its_layers_intact(tmp_path):
    import pytiled_parser

    Image.new("RGB", (128, 32), (9, 9, 9)).save(tmp_path / "bricks.png")
    root = ET.fromstring(USER_MAP)
    back = (np.arange(60, dtype=np.uint32).reshape(5, 12) % 16) + 1
    encode_data(root.find("layer[@name='back']/data"), back)
    encode_data(root.find("layer[@name='front']/data"), back[::-1].copy())
    (tmp_path / "level.tmx").write_text(ET.tostring(root, encoding="unicode"))
    report = fake_report(random_tiles(20))
    export_report(report, config(tmp_path))
    assert np.array_equal(rebuild_with_pytmx(tmp_path / "level.tmx"), screens_rgb(report))
    assert np.array_equal(rebuild_with_pytiled_parser(tmp_path / "level.tmx"), screens_rgb(report))
    m = pytiled_parser.parse_map(tmp_path / "level.tmx")
    layers = {la.name: la for la in m.layers}
    assert list(layers) == ["nesgan", "back", "spawns", "front"]
    assert np.array_equal(np.array(layers["back"].data)[:5, :12], back)
    assert np.array_equal(np.array(layers["front"].data)[:5, :12], back[::-1])
    assert m.properties == {"level": 7} and layers["front"].opacity == 0.75


def test_a_json_map_is_refused_with_how_to_get_a_tmx(tmp_path):
    from nesgan.tiled.export import ExportConfig

    with pytest.raises(NesganError, match="Save As"):
        ExportConfig(tmx=tmp_path / "level.tmj")
