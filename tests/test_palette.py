import numpy as np
import pytest

from nesgan.colour.palette import (
    BLACK,
    CANONICAL,
    EMITTABLE,
    FORBIDDEN,
    WHITE,
    Palette,
    load_palette,
    srgb_to_oklab,
)
from nesgan.errors import NesganError


@pytest.fixture(params=["2c02", "fceux"])
def palette(request):
    return Palette.builtin(request.param)


def test_exactly_54_indices_are_ever_written():
    assert len(EMITTABLE) == 54
    assert FORBIDDEN not in EMITTABLE
    assert 0x20 not in EMITTABLE and WHITE in EMITTABLE
    for black in (0x0E, 0x1D, 0x1E, 0x1F, 0x2E, 0x2F, 0x3E, 0x3F):
        assert black not in EMITTABLE
        assert CANONICAL[black] == BLACK


def test_2c02_table_has_exactly_54_distinct_colours():
    rgb = Palette.builtin("2c02").rgb
    assert len({tuple(c) for c in rgb.tolist()}) == 54


def test_every_emittable_entry_maps_to_itself(palette):
    got = palette.nearest(palette.rgb[EMITTABLE][None, :, :])[0]
    assert got.tolist() == EMITTABLE.tolist()


def test_every_entry_maps_to_its_canonical_index(palette):
    got = palette.nearest(palette.rgb[None, :, :])[0]
    # In the FCEUX table $20 (F8F8F8) and $30 (FCFCFC) differ slightly; both must become white.
    assert got.tolist() == CANONICAL.tolist()


def test_blacker_than_black_is_never_produced_even_from_random_colours(palette):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(200_000, 3), dtype=np.uint8)
    out = palette.nearest(rgb)
    assert FORBIDDEN not in np.unique(out)
    assert set(np.unique(out).tolist()) <= set(EMITTABLE.tolist())


def test_nearest_is_the_oklab_argmin_over_emittable_colours():
    pal = Palette.builtin()
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(500, 3), dtype=np.uint8)
    lab = srgb_to_oklab(rgb)
    ref_lab = srgb_to_oklab(pal.rgb[EMITTABLE])
    expect = EMITTABLE[((lab[:, None] - ref_lab[None]) ** 2).sum(-1).argmin(1)]
    assert pal.nearest(rgb).tolist() == expect.tolist()


def test_nearest_keeps_the_image_shape():
    img = np.zeros((7, 5, 3), dtype=np.uint8)
    assert Palette.builtin().nearest(img).shape == (7, 5)
    assert (Palette.builtin().nearest(img) == BLACK).all()


def test_oklab_of_white_and_black():
    lab = srgb_to_oklab(np.array([[255, 255, 255], [0, 0, 0]]))
    assert lab[0] == pytest.approx([1.0, 0.0, 0.0], abs=1e-3)
    assert lab[1] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)


def test_pal_file_round_trip(tmp_path):
    pal = Palette.builtin("fceux")
    path = tmp_path / "fceux.pal"
    path.write_bytes(pal.to_pal_bytes())
    assert path.stat().st_size == 192
    loaded = load_palette(path)
    assert np.array_equal(loaded.rgb, pal.rgb)
    assert loaded.fingerprint == pal.fingerprint
    assert loaded.fingerprint != Palette.builtin("2c02").fingerprint


def test_pal_file_with_emphasis_variants_uses_the_first_64_colours(tmp_path):
    pal = Palette.builtin("fceux")
    path = tmp_path / "emph.pal"
    path.write_bytes(pal.to_pal_bytes() * 8)
    assert np.array_equal(load_palette(path).rgb, pal.rgb)


@pytest.mark.parametrize("size", [0, 191, 193, 1000])
def test_malformed_pal_file_is_refused_with_its_size(tmp_path, size):
    path = tmp_path / "bad.pal"
    path.write_bytes(b"\x01" * size)
    with pytest.raises(NesganError, match=f"{size} bytes"):
        load_palette(path)


def test_missing_pal_file_is_a_clear_error(tmp_path):
    with pytest.raises(NesganError, match="cannot read palette file"):
        load_palette(tmp_path / "nope.pal")


def test_unknown_builtin_palette_names_the_choices():
    with pytest.raises(NesganError, match="2c02"):
        Palette.builtin("nope")
