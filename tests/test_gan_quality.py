"""The quality numbers of generated screens (`nesgan.gan.quality`) and the metrics.png plot."""

import numpy as np
import pytest

from nesgan.colour.palette import Palette
from nesgan.gan import quality
from nesgan.gan.data import fake_screens, nes_indices
from nesgan.gan.plot import PANELS, metrics_image


def test_orphan_rate_counts_pixels_unlike_all_four_neighbours():
    flat = np.zeros((1, 16, 16), np.uint8)
    assert quality.orphan_rate(flat) == 0.0
    checker = (np.indices((16, 16)).sum(0) % 2).astype(np.uint8)[None]
    assert quality.orphan_rate(checker) == 1.0
    speck = flat.copy()
    speck[0, 5, 5] = 3
    assert quality.orphan_rate(speck) == pytest.approx(1 / 14 ** 2)  # interior pixels only
    stripe = flat.copy()
    stripe[0, 5, :] = 3  # a 1-px line: its pixels have like neighbours left and right
    assert quality.orphan_rate(stripe) == 0.0


def test_distinct_tile_share_and_colours_per_cell_read_16_pixel_cells():
    screen = np.zeros((1, 32, 32), np.uint8)  # 4 cells
    screen[0, :16, :16] = 1  # one cell differs
    screen[0, 16, 16] = 2  # another gets a second colour
    assert quality.distinct_tile_share(screen) == 0.75
    assert quality.colours_per_cell(screen) == 1.0
    screen[0, 0, 16] = 3
    screen[0, 17, 0] = 4
    assert quality.colours_per_cell(screen) == 2.0


def test_diversity_is_zero_for_one_screen_repeated_and_coverage_finds_the_missing_modes():
    screens = fake_screens(24, seed=0)
    ref = quality.reference(screens, count=8, seed=0)
    assert ref.diversity == pytest.approx(1.0, abs=0.15)
    same = quality.measure(np.repeat(screens[:1], 8, axis=0), ref)
    assert same["diversity"] == 0.0
    assert same["coverage"] <= 1 / len(ref.centroids) + 1e-4  # one cluster at most
    varied = quality.measure(screens[:16], ref)
    assert varied["diversity"] > 0.8 and varied["coverage"] > same["coverage"]
    assert set(quality.Reference.row(ref)) <= set(varied)  # the training values ride along


def test_noise_reads_as_speckle_and_real_screens_do_not():
    screens = fake_screens(8, seed=1)
    ref = quality.reference(screens, count=8, seed=0)
    noise = np.random.default_rng(0).integers(0, 256, (8, 224, 224, 3), dtype=np.uint8)
    m = quality.measure(noise, ref)
    assert m["orphan"] > 0.5 and m["tile_share"] == 1.0 and m["colours_per_cell"] > 20
    assert m["orphan"] > 2 * ref.orphan and ref.colours_per_cell <= 4 and ref.tile_share < 0.1
    assert m["invented"] == 1.0 and m["divergence"] > 1.0
    same = quality.measure(screens, ref)  # the training screens themselves
    assert same["invented"] == 0.0 and same["divergence"] == 0.0


def test_nes_indices_match_the_palettes_own_nearest_colour():
    rgb = np.random.default_rng(2).integers(0, 256, (500, 3), dtype=np.uint8)
    assert (nes_indices(rgb) == Palette.builtin().nearest(rgb)).all()


def test_metrics_png_has_a_panel_per_number_and_copes_with_rows_without_samples():
    rows = [{"step": 20, "swd": None},
            {"step": 200, "swd": 300.0, "orphan": 0.4, "orphan_train": 0.01, "diversity": 0.5,
             "diversity_train": 1.0},
            {"step": 400, "swd": 200.0, "orphan": 0.1, "orphan_train": 0.01, "diversity": 0.8,
             "diversity_train": 1.0}]
    img = metrics_image(rows)
    assert img.size == (900, 170 * ((len(PANELS) + 2) // 3)) and img.mode == "RGB"
    px = np.asarray(img)
    assert ((px[..., 0] > 150) & (px[..., 1] < 90)).sum() > 50, "the run's line is drawn"
    assert metrics_image([]).size == img.size
