import numpy as np
import pytest

from nes_maps import spec_attribute
from nesgan.colour.palette import EMITTABLE, Palette
from nesgan.errors import NesganError
from nesgan.nes.nametable import (
    BackgroundPalette,
    area_subpalettes,
    choose_palettes,
    nametable_bytes,
    pack_attributes,
    pixel_values,
)

PAL = Palette.builtin()


def areas_image(sets: list[list[int]], per_row: int = 4) -> np.ndarray:
    """16×16 areas in rows of `per_row`, each showing its colours in vertical stripes; a
    missing area at the end shows nothing (-1)."""
    rows = -(-len(sets) // per_row)
    img = np.full((16 * rows, 16 * per_row), -1, np.int16)
    for k, colours in enumerate(sets):
        r, c = divmod(k, per_row)
        stripes = np.array(colours, np.int16)[np.arange(16) % len(colours)]
        img[16 * r : 16 * r + 16, 16 * c : 16 * c + 16] = stripes[None, :]
    return img


def where(at):
    return f"area {at}"


def assert_legal(img: np.ndarray, bg: BackgroundPalette) -> None:
    assert len(bg.subpalettes) <= 4 and all(1 <= len(s) <= 3 for s in bg.subpalettes)
    attrs = area_subpalettes(img, bg)
    for (r, c), k in np.ndenumerate(attrs):
        shown = {int(v) for v in np.unique(img[16 * r : 16 * r + 16, 16 * c : 16 * c + 16]) if v >= 0}
        assert shown <= {bg.backdrop, *bg.subpalettes[k]}


def test_attribute_bytes_put_each_16px_quadrant_in_its_two_bits():
    attrs = np.zeros((15, 16), np.uint8)
    attrs[0, 0], attrs[0, 1], attrs[1, 0], attrs[1, 1] = 1, 2, 3, 0
    attrs[14, 15] = 2  # the last visible row: the top half of attribute row 7
    data = pack_attributes(attrs)
    assert len(data) == 64 and data[0] == 0b00_11_10_01 and data[63] == 0b10_00
    rng = np.random.default_rng(0)
    attrs = rng.integers(0, 4, (15, 16)).astype(np.uint8)
    data = pack_attributes(attrs)
    assert all(spec_attribute(data, r, c) == attrs[r, c] for r in range(15) for c in range(16))


def test_a_nametable_is_960_tile_bytes_row_by_row_then_64_attribute_bytes():
    tiles = np.arange(960).reshape(30, 32) % 256
    data = nametable_bytes(tiles, np.zeros((15, 16), np.uint8))
    assert len(data) == 1024 and data[33] == 33 and data[959] == 959 % 256


def test_palettes_cover_four_random_subpalettes_whatever_the_order_of_areas():
    rng = np.random.default_rng(3)
    for _ in range(30):
        colours = [int(c) for c in rng.choice(EMITTABLE, 13, replace=False)]
        backdrop, subs = colours[0], [colours[1 + 3 * k : 4 + 3 * k] for k in range(4)]
        sets = []
        for _ in range(24):  # random subsets of a random sub-palette, mostly with the backdrop
            sub = subs[int(rng.integers(4))]
            pick = list(rng.choice(sub, int(rng.integers(1, 4)), replace=False))
            sets.append([int(c) for c in pick] + [backdrop] * int(rng.integers(0, 3)))
        img = areas_image(sets, per_row=6)
        bg = choose_palettes(img, PAL, "test", where)
        assert_legal(img, bg)


def test_the_commonest_colour_becomes_the_backdrop_and_subpalettes_run_dark_to_light():
    img = areas_image([[0x21, 0x30, 0x0F], [0x21, 0x1A], [0x21, 0x16, 0x27, 0x37]])
    bg = choose_palettes(img, PAL, "test", where)
    assert bg.backdrop == 0x21
    assert (0x16, 0x27, 0x37) in bg.subpalettes
    assert_legal(img, bg)
    assert bg.pal_bytes()[0] == bg.pal_bytes()[4] == 0x21 and len(bg.pal_bytes()) == 16


def test_pixel_values_are_zero_for_the_backdrop_and_one_to_three_within_the_subpalette():
    img = areas_image([[0x21, 0x16, 0x27, 0x37], [0x21]])
    bg = choose_palettes(img, PAL, "test", where)
    values = pixel_values(img, bg, area_subpalettes(img, bg))
    assert values[0, :4].tolist() == [0, 1, 2, 3] and (values[:, 16:] == 0).all()


def test_an_area_with_five_colours_is_refused_by_name():
    img = areas_image([[0x21, 0x30], [0x21, 0x16, 0x27, 0x37, 0x0F]])
    with pytest.raises(NesganError, match=r"^test: area \(1, 0\) shows 5 colours .*at most 4"):
        choose_palettes(img, PAL, "test", where)


def test_four_colour_areas_without_a_common_colour_are_refused():
    img = areas_image([[0x21, 0x16, 0x27, 0x37], [0x0F, 0x1A, 0x2A, 0x3A]])
    with pytest.raises(NesganError, match="no colour is in every 4-colour area"):
        choose_palettes(img, PAL, "test", where)


def test_more_than_four_subpalettes_are_refused():
    subs = [[0x01, 0x11, 0x21], [0x06, 0x16, 0x26], [0x09, 0x19, 0x29], [0x04, 0x14, 0x24],
            [0x07, 0x17, 0x27]]
    img = areas_image([[0x0F, *s] for s in subs])
    with pytest.raises(NesganError, match=r"more than 4 sub-palettes.*\$0F they use 15 other"):
        choose_palettes(img, PAL, "test", where)
