"""nesgan.tiles.occlusion (the opt-in occluded reading: a training tile with a sprite over it) and
its use in nesgan.tiles.nearcopy.verdicts and the contact sheets."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nesgan.colour.palette import Palette
from nesgan.tiles import nearcopy
from nesgan.tiles.contact import SCALE, write_contact_sheets
from nesgan.tiles.occlusion import OcclusionSearch, occluded_reading

PAL = Palette.builtin()
FOUR = np.array([0x0F, 0x16, 0x27, 0x30], np.uint8)
SPRITE = np.array([0x11, 0x2B, 0x38], np.uint8)  # a sprite palette: none of the tile's colours


@pytest.fixture(scope="module", autouse=True)
def cache(isolated_lut_cache):
    """Every test here builds LUTs in a private cache folder."""


def _tile(seed: int) -> np.ndarray:
    small = np.random.default_rng(seed).choice(FOUR, size=(4, 4))
    return np.kron(small, np.ones((4, 4), np.uint8)).astype(np.uint8)


def _swap(tile: np.ndarray) -> np.ndarray:
    lut = np.arange(64, dtype=np.uint8)
    lut[FOUR] = [0x01, 0x2A, 0x0D, 0x36]
    return lut[tile]


def _critter(x0: int) -> tuple[np.ndarray, np.ndarray]:
    """A 16-row sprite whose left edge is at column x0 of the cell: (colours, opaque mask), with
    transparent pixels around its body and a 1-pixel outline."""
    yy, xx = np.indices((16, 16))
    body = ((yy - 8) ** 2 / 49 + (xx - (x0 + 7)) ** 2 / 25) <= 1.0
    colours = np.where((yy + xx) % 3 == 0, SPRITE[1], SPRITE[2]).astype(np.uint8)
    edge = body & ~(np.roll(body, 1, 0) & np.roll(body, -1, 0) & np.roll(body, 1, 1) & np.roll(body, -1, 1))
    colours[edge] = SPRITE[0]
    return colours, body & (xx >= 0)


def _index(train: np.ndarray) -> nearcopy.TileIndex:
    n = len(train)
    return nearcopy.TileIndex(tiles=train, screen=np.zeros(n, np.int32), xy=np.zeros((n, 2), np.int32),
                              screens=["t.png"], fingerprint="test")


TRAIN = np.stack([_tile(s) for s in range(40)])


def _stood_on(i: int = 12, x0: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Training tile i, re-paletted, with a critter standing over its right side."""
    q = _swap(TRAIN[i])
    colours, body = _critter(x0)
    q[body] = colours[body]
    return q, body


def test_a_sprite_over_a_training_tile_is_flagged_only_with_the_occluded_reading():
    query, body = _stood_on()
    assert body.sum() > 20  # far more than K pixels covered: the plain readings cannot see the copy
    plain = nearcopy.verdicts(_index(TRAIN), query[None], 4)
    assert plain.verdict == ["original"] and plain.found.distance[0] > 4
    v = nearcopy.verdicts(_index(TRAIN), query[None], 4, occluded=True)
    assert v.verdict == ["near_copy"] and v.match == ["occluded"]
    assert v.found.train_id[0] == 12 and v.found.distance[0] <= 4
    assert np.array_equal(v.excused[0], body)  # exactly the sprite's pixels are not counted
    row = v.nearest_row(0, _index(TRAIN))
    assert row["match"] == "occluded" and row["excused"] == int(body.sum()) and row["exact"] is False
    # the training tile is shown recoloured by the visible pixels, so it equals the query there
    assert np.array_equal(v.shown[0][~body], query[~body])


def test_a_mirrored_sprite_copy_reports_the_excused_pixels_in_the_tiles_own_orientation():
    query, body = _stood_on(7, x0=-8)  # the critter on the left edge (47 px of it)
    query, body = query[::-1], body[::-1]  # and the whole cell upside down
    found = OcclusionSearch(TRAIN, 4).search(query[None])
    assert found.matches[0] and found.train_id[0] == 7
    assert np.array_equal(found.excused[0], body)


def test_a_tile_sharing_only_half_a_drawing_with_a_training_tile_is_not_flagged():
    # left half of training tile 3, right half another drawing in the same four colours: the
    # differing half has no colour the training tile cannot explain, so nothing is excused
    half = TRAIN[3].copy()
    half[:, 8:] = np.kron(np.random.default_rng(99).choice(FOUR, size=(4, 2)), np.ones((4, 4), np.uint8))
    assert (half[:, 8:] != TRAIN[3][:, 8:]).sum() > 32
    v = nearcopy.verdicts(_index(TRAIN), half[None], 4, occluded=True)
    assert v.verdict == ["original"] and v.match == [None]
    r = occluded_reading(half[None], TRAIN[3][None], 4)
    assert not r.matches[0] and r.distance[0] > 4


def test_a_sprite_covering_more_than_half_the_tile_is_not_excused():
    q = _swap(TRAIN[5])
    q[:, 3:] = SPRITE[1]  # 208 pixels of sprite: too little of the tile left to call it a copy
    r = occluded_reading(q[None], _swap(TRAIN[5])[None], 4)
    assert not r.matches[0]


def test_flat_tiles_stay_trivial_and_plain_copies_keep_their_reading_with_the_option_on():
    flat = np.full((16, 16), 0x21, np.uint8)
    flat[3, 3] = 0x30
    merged = TRAIN[21].copy()
    merged[merged == 0x27] = 0x0F
    v = nearcopy.verdicts(_index(TRAIN), np.stack([flat, _swap(TRAIN[4]), merged, TRAIN[9]]), 4, occluded=True)
    assert v.verdict == ["trivial", "near_copy", "near_copy", "near_copy"]
    assert v.match[1:] == ["recolour", "merge", "exact"]
    assert not v.excused[1:].any()


def test_the_contact_sheet_hatches_the_pixels_an_occluded_match_did_not_count(tmp_path):
    query, body = _stood_on()
    v = nearcopy.verdicts(_index(TRAIN), query[None], 4, occluded=True)
    rows = [{"id": 0, "verdict": v.verdict[0], "nearest": v.nearest_row(0, _index(TRAIN))}]
    [path] = write_contact_sheets(tmp_path, query[None], v.shown, rows, PAL, v.excused)
    img = np.asarray(Image.open(path).convert("RGB"))
    t = 16 * SCALE
    shown = img[6 : 6 + t, 6 + t + 6 : 6 + 2 * t + 6]  # the training tile beside the query
    magenta = (shown == (255, 0, 255)).all(-1)
    cells = magenta.reshape(16, SCALE, 16, SCALE).any((1, 3))
    assert np.array_equal(cells, body)  # hatched exactly where the sprite stands
    plain = np.kron(PAL.to_rgb(v.shown[0]), np.ones((SCALE, SCALE, 1), np.uint8))
    assert np.array_equal(shown[~np.kron(body, np.ones((SCALE, SCALE), bool))],
                          plain[~np.kron(body, np.ones((SCALE, SCALE), bool))])


def test_a_sprite_outlined_in_a_colour_the_tile_also_uses_is_excused_with_its_outline():
    q = _swap(TRAIN[12])
    colours, body = _critter(9)
    colours[colours == SPRITE[0]] = 0x01  # the outline in the tile's own darkest colour
    q[body] = colours[body]
    outline = body & (colours == 0x01)
    assert (q[outline] != _swap(TRAIN[12])[outline]).sum() > 4  # more than K outline pixels differ
    v = nearcopy.verdicts(_index(TRAIN), q[None], 4, occluded=True)
    assert v.verdict == ["near_copy"] and v.match == ["occluded"] and v.found.train_id[0] == 12
    assert v.excused[0][body & (q != _swap(TRAIN[12]))].all()


def test_differences_far_from_the_sprite_are_not_excused():
    query, body = _stood_on()
    far = np.zeros((16, 16), bool)
    far[1:7, 0:5] = True
    patch = query.copy()
    patch[far] = np.where(_swap(TRAIN[12])[far] == 0x01, 0x36, 0x01)  # tile colours, changed
    assert (patch[far] != _swap(TRAIN[12])[far]).sum() > 4
    r = occluded_reading(patch[None], _swap(TRAIN[12])[None], 4)
    assert not r.matches[0] and not r.excused[0][far].any()


def test_two_training_halves_side_by_side_are_not_a_tile_under_a_sprite(monkeypatch):
    # a half is more than the tile reading excuses (MAX_EXCUSED); lift that limit here, so what
    # rejects the collage below is the collage check itself
    import nesgan.tiles.occlusion as occlusion

    monkeypatch.setattr(occlusion, "MAX_EXCUSED", 256)
    colours = np.array([0x11, 0x2B, 0x38, 0x05], np.uint8)  # none the first tile can explain
    other = np.kron(np.random.default_rng(77).choice(colours, size=(8, 8)), np.ones((2, 2), np.uint8))
    collage = TRAIN[12].copy()
    collage[:, 8:] = other[:, 8:]  # the right half of another training tile
    train = np.concatenate([TRAIN, other[None]])
    assert nearcopy.verdicts(_index(train), collage[None], 4).verdict == ["original"]
    # two training halves: not flagged; the same cell with the second tile unknown: a sprite
    assert nearcopy.verdicts(_index(train), collage[None], 4, occluded=True).verdict == ["original"]
    assert nearcopy.verdicts(_index(TRAIN), collage[None], 4, occluded=True).verdict == ["near_copy"]
    monkeypatch.setattr(occlusion, "MAX_EXCUSED", 48)  # as shipped: 128 px is too large a sprite
    assert nearcopy.verdicts(_index(TRAIN), collage[None], 4, occluded=True).verdict == ["original"]


def test_a_blob_spread_over_the_whole_tile_is_not_a_sprite():
    q = _swap(TRAIN[12])
    spread = np.zeros((16, 16), bool)
    spread[::5, ::5] = True  # 16 specks all over the cell: no sprite's corner or band
    q[spread] = SPRITE[1]
    r = occluded_reading(q[None], _swap(TRAIN[12])[None], 4)
    assert r.distance[0] == 0 and not r.matches[0]


def test_export_stage_flags_a_training_cell_with_a_sprite_over_it_only_with_under_sprites(tmp_path):
    import json

    from nesgan.museum.synth import make_game, render_frame
    from nesgan.tiles.build import TileConfig, build_tiles

    screen = render_frame(make_game(0, 1), 1, sprites=False).indices[16:240, 16:240].copy()  # on the grid
    cells = screen.reshape(14, 16, 14, 16).swapaxes(1, 2)
    drawing = np.array([[256 - np.bincount(c.ravel()).max() for c in row] for row in cells])
    r, c = np.unravel_index(drawing.argmax(), drawing.shape)  # the cell with the most drawing
    generated = screen.copy()
    colours, body = _critter(9)
    cell = generated[16 * r : 16 * r + 16, 16 * c : 16 * c + 16]
    cell[body] = colours[body]
    for folder, img in (("train", screen), ("gen", generated)):
        (tmp_path / folder).mkdir()
        Image.fromarray(PAL.to_rgb(img)).save(tmp_path / folder / "s.png")
    rows = {}
    for on in (False, True):
        out = tmp_path / f"tiles-{on}"
        report = build_tiles(TileConfig(tmp_path / "gen", tmp_path / "train", out, max_tiles=0, under_sprites=on))
        rows[on] = report.rows[int(report.screens[0][1][r, c])]
        on_disk = [json.loads(line) for line in (out / "tiles.jsonl").read_text().splitlines()]
        assert on_disk[rows[on]["id"]]["nearest"] == rows[on]["nearest"]
    assert rows[False]["verdict"] == "original"
    assert rows[True]["verdict"] == "near_copy" and rows[True]["nearest"]["match"] == "occluded"
    assert rows[True]["nearest"]["excused"] == int(body.sum())
    assert (rows[True]["nearest"]["x"], rows[True]["nearest"]["y"]) == (16 * c, 16 * r)
