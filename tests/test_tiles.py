"""nesgan.tiles.tile: slicing, shape keys, dedupe and the tile stage `build_tiles`."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from nesgan.colour.palette import EMITTABLE, Palette
from nesgan.errors import NesganError
from nesgan.tiles.build import TileConfig, build_tiles
from nesgan.tiles.tile import (
    dedupe,
    flips,
    shape_keys,
    shape_labels,
    slice_tiles,
)

PAL = Palette.builtin()


@pytest.fixture(scope="module", autouse=True)
def cache(isolated_lut_cache):
    """Every test here builds LUTs in a private cache folder."""


def _frame(game: int, shot: int) -> np.ndarray:
    from nesgan.museum.synth import make_game, render_frame

    return render_frame(make_game(0, game), shot).indices  # (240, 256)


def _save(path, idx: np.ndarray, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(PAL.to_rgb(idx)).convert(mode).save(path)


@pytest.fixture
def dirs(tmp_path):
    """Training screens of games 0–1 cut off the grid by 8 rows; generated: a new game's screen
    plus a training screen with its colours swapped."""
    train, gen = tmp_path / "screens", tmp_path / "generated"
    for g in range(2):
        for s in range(2):
            _save(train / f"g{g}s{s}.png", _frame(g, s)[8:232, 16:240])  # grid phase (0, 8)
    _save(gen / "a_new.png", _frame(5, 0)[:224, :224])
    swap = np.arange(64, dtype=np.uint8)
    colours = np.unique(_frame(1, 1))
    swap[colours] = np.roll(colours, 1)
    _save(gen / "b_swapped_copy.png", swap[_frame(1, 1)[16:240, 16:240]])
    return train, gen, tmp_path / "tiles"


def test_slice_cuts_whole_cells_on_the_phase_and_drops_partial_ones():
    idx = np.arange(224 * 224, dtype=np.int64).reshape(224, 224) % 64
    tiles, pos = slice_tiles(idx.astype(np.uint8), (3, 8))
    assert tiles.shape == (13 * 13, 16, 16)
    assert pos[0].tolist() == [3, 8] and pos[1].tolist() == [19, 8] and pos[13].tolist() == [3, 24]
    assert np.array_equal(tiles[14], idx[24:40, 19:35])


def test_shape_key_is_shared_by_palette_swaps_and_mirrors_but_not_other_drawings():
    rng = np.random.default_rng(0)
    tile = rng.choice(EMITTABLE[:4], size=(1, 16, 16)).astype(np.uint8)
    lut = np.arange(64, dtype=np.uint8)
    lut[EMITTABLE[:4]] = EMITTABLE[10:14]
    variants = np.concatenate([tile, lut[tile], flips(tile)[1], flips(lut[tile])[3]])
    other = tile.copy()
    other[0, 5, 5] = EMITTABLE[(list(EMITTABLE).index(other[0, 5, 5]) + 1) % 4]
    keys = shape_keys(np.concatenate([variants, other]))
    assert len(set(keys[:4].tolist())) == 1 and keys[4] != keys[0]


def test_shape_labels_number_colours_in_order_of_first_appearance():
    tile = np.full((1, 16, 16), 0x21, np.uint8)
    tile[0, 0, 0] = 0x16
    tile[0, 3, 3] = 0x0F
    labels = shape_labels(tile)[0]
    assert labels[0] == 0 and labels[1] == 1 and labels[3 * 16 + 3] == 2 and labels.max() == 2


def test_dedupe_keeps_first_appearance_order_counts_and_inverse():
    a, b = np.zeros((16, 16), np.uint8), np.ones((16, 16), np.uint8)
    uniq, inverse, counts = dedupe(np.stack([b, a, b, b, a]))
    assert np.array_equal(uniq[0], b) and np.array_equal(uniq[1], a)
    assert inverse.tolist() == [0, 1, 0, 0, 1] and counts.tolist() == [3, 2]


def test_max_tiles_0_keeps_every_distinct_quantized_cell_and_rebuilds_every_screen_exactly(dirs):
    train, gen, out = dirs
    report = build_tiles(TileConfig(generated=gen, train=train, tiles_dir=out, max_tiles=0))
    assert [n for n, _ in report.screens] == ["a_new.png", "b_swapped_copy.png"]
    for (_, ids), quantized in zip(report.screens, report.quantized, strict=True):
        assert ids.shape == (14, 14)
        rebuilt = report.tiles[ids].transpose(0, 2, 1, 3).reshape(224, 224)
        assert np.array_equal(rebuilt, quantized)
    assert sum(r["count"] for r in report.rows) == 2 * 196
    assert all(r["id"] == i and len(r["occurrences"]) == r["count"] for i, r in enumerate(report.rows))
    assert report.sheet is None and report.differing == [0, 0]
    # today's tiles: exactly the distinct cells, in order of first appearance
    cells = np.concatenate([slice_tiles(q)[0] for q in report.quantized])
    assert np.array_equal(report.tiles, dedupe(cells)[0])


def test_tiles_jsonl_has_sorted_keys_and_the_nearest_training_tile_for_every_tile(dirs):
    train, gen, out = dirs
    report = build_tiles(TileConfig(generated=gen, train=train, tiles_dir=out))
    lines = (out / "tiles.jsonl").read_text().splitlines()
    assert len(lines) == len(report.tiles)
    for line in lines:
        row = json.loads(line)
        assert list(row) == sorted(row)
        assert {"id", "key", "shape_group", "count", "first_seen", "near_copy", "nearest"} <= set(row)
        assert row["nearest"]["screen"].startswith("g") and row["nearest"]["distance"] >= 0
        assert row["nearest"]["y"] % 16 == 8  # training tiles are cut on the screens' phase


def test_build_tiles_flags_a_palette_swapped_copy_of_a_training_screen(dirs):
    train, gen, out = dirs
    report = build_tiles(TileConfig(generated=gen, train=train, tiles_dir=out, max_tiles=0))
    copy_ids = set(report.screens[1][1].ravel().tolist())
    verdicts = {report.rows[i]["verdict"] for i in copy_ids}
    assert verdicts <= {"near_copy", "trivial"}
    near = [report.rows[i] for i in copy_ids if report.rows[i]["verdict"] == "near_copy"]
    assert len(near) >= 20
    assert all(r["near_copy"] and r["nearest"]["distance"] == 0 for r in near)
    assert any(r["nearest"]["screen"] == "g1s1.png" for r in near)
    assert report.contact_sheets and all(p.exists() for p in report.contact_sheets)


def test_palette_swaps_and_mirrors_share_a_shape_group(tmp_path):
    rng = np.random.default_rng(5)
    tile = rng.choice(np.array([0x0F, 0x16, 0x27, 0x30], np.uint8), size=(16, 16))
    lut = np.arange(64, dtype=np.uint8)
    lut[[0x0F, 0x16, 0x27, 0x30]] = [0x01, 0x11, 0x21, 0x0F]
    screen = np.full((224, 224), 0x21, np.uint8)
    screen[:16, :16] = tile
    screen[:16, 16:32] = lut[tile][:, ::-1]
    _save(tmp_path / "gen" / "s.png", screen)
    _save(tmp_path / "train" / "t.png", np.full((224, 224), 0x0F, np.uint8))
    report = build_tiles(TileConfig(tmp_path / "gen", tmp_path / "train", tmp_path / "tiles", max_tiles=0))
    a, b = report.rows[report.screens[0][1][0, 0]], report.rows[report.screens[0][1][0, 1]]
    assert a["id"] != b["id"] and a["key"] == b["key"] and a["shape_group"] == b["shape_group"]


def test_generated_screens_of_the_wrong_size_are_refused_in_one_line(dirs):
    train, gen, out = dirs
    _save(gen / "c_small.png", np.zeros((200, 224), np.uint8))
    with pytest.raises(NesganError, match=r"c_small.png is 224×200; the tile stage needs 224×224"):
        build_tiles(TileConfig(generated=gen, train=train, tiles_dir=out))


def test_generated_screens_of_an_unusable_mode_are_refused(dirs):
    train, gen, out = dirs
    Image.new("LA", (224, 224)).save(gen / "c_grey_alpha.png")
    with pytest.raises(NesganError, match="'LA' image"):
        build_tiles(TileConfig(generated=gen, train=train, tiles_dir=out))


def test_palette_mode_and_rgba_generated_screens_are_accepted(dirs):
    train, gen, out = dirs
    idx = _frame(3, 0)[:224, :224]
    im = Image.fromarray(idx, "P")
    im.putpalette(PAL.pil_palette())
    im.save(gen / "c_palette.png")
    _save(gen / "d_rgba.png", idx, mode="RGBA")
    report = build_tiles(TileConfig(generated=gen, train=train, tiles_dir=out))
    assert np.array_equal(report.quantized[2], report.quantized[3])


def test_an_empty_generated_folder_is_an_error_that_says_what_to_run(dirs, tmp_path):
    train, _, out = dirs
    (tmp_path / "empty").mkdir()
    with pytest.raises(NesganError, match="no images in .*nesgan generate"):
        build_tiles(TileConfig(generated=tmp_path / "empty", train=train, tiles_dir=out))


def test_a_missing_training_folder_is_an_error(dirs, tmp_path):
    _, gen, out = dirs
    with pytest.raises(NesganError, match="training folder .* does not exist"):
        build_tiles(TileConfig(generated=gen, train=tmp_path / "nope", tiles_dir=out))


def test_a_malformed_pal_file_is_an_error(dirs, tmp_path):
    train, gen, out = dirs
    bad = tmp_path / "x.pal"
    bad.write_bytes(b"abc")
    with pytest.raises(NesganError, match="3 bytes; a NES .pal file is 192 bytes"):
        build_tiles(TileConfig(generated=gen, train=train, tiles_dir=out, palette_file=bad))


def test_near_copy_pixels_outside_0_to_256_is_refused(dirs):
    train, gen, out = dirs
    with pytest.raises(NesganError, match="0–256"):
        TileConfig(generated=gen, train=train, tiles_dir=out, near_copy_pixels=300)


def test_flat_tiles_are_trivial_not_near_copies_but_keep_their_nearest(dirs):
    train, gen, out = dirs
    report = build_tiles(TileConfig(generated=gen, train=train, tiles_dir=out))
    flat = [r for r in report.rows if len(r["colours"]) == 1]
    assert flat, "the museum screens have sky"
    for r in flat:
        assert r["verdict"] == "trivial" and r["near_copy"] is False
        assert r["nearest"]["screen"] is not None and r["nearest"]["distance"] >= 0
    assert report.trivial == sum(r["verdict"] == "trivial" for r in report.rows)
