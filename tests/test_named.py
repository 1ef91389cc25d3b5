"""The museum's named drawings against a sheet: exact in any colours, near by pixels, never by chance."""

import numpy as np
import pytest

from nesgan.museum.named import (
    colour_codes,
    holding,
    mismatch,
    museum_drawings,
    partition,
    seen_in,
    sheet_tiles,
)


@pytest.fixture(scope="module")
def drawings():
    return museum_drawings(seed=0, games=3)


def test_drawings_are_named_non_flat_and_painted_in_their_games_colours(drawings):
    kinds = {d.kind for d in drawings}
    assert {"brick", "question", "ground"} <= kinds and not any(k[-1].isdigit() for k in kinds)
    for d in drawings:
        assert d.drawing.shape == (16, 16) and d.drawing.min() < d.drawing.max()
        assert d.rgb.shape == (16, 16, 3)
        # one colour per pattern value: the painting keeps the drawing's partition
        assert np.array_equal(partition(d.drawing), partition(colour_codes(d.rgb)))


def test_partition_numbers_colours_by_first_appearance():
    t = np.full((16, 16), 7)
    t[0, 1], t[5, 5], t[0, 2] = 3, 9, 3
    p = partition(t)
    assert p[0] == 0 and p[1] == 1 and p[2] == 1 and p[5 * 16 + 5] == 2 and p.max() == 2


def test_a_recoloured_drawing_is_held_exactly_and_a_retouched_one_by_its_pixels(drawings):
    brick = next(d for d in drawings if d.kind == "brick")
    recoloured = (3 - brick.drawing) * 11 + 5  # other colour codes, the same partition
    retouched = brick.drawing.copy()
    retouched[2:4, 2:4] = (retouched[2:4, 2:4] + 1) % 4  # 4 pixels to another of its colours
    flat = np.zeros((16, 16), dtype=np.int64)
    assert mismatch(partition(brick.drawing), partition(np.stack([recoloured]))).tolist() == [0]
    px = int(mismatch(partition(brick.drawing), partition(np.stack([retouched])))[0])
    assert 1 <= px <= 4
    h = holding(np.stack([flat, recoloured]), [brick])
    assert h.nearest.tolist() == [1] and h.pixels.tolist() == [0] and h.held(0) == 1


def test_a_sheet_without_the_drawings_holds_none_and_more_than_four_colours_never_match(drawings):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 4, (20, 16, 16))
    h = holding(noise, drawings)
    assert h.held() == 0 and h.pixels.min() > 8
    many = drawings[0].drawing.astype(np.int64).copy()
    many[0, :4] = [10, 11, 12, 13]  # five colours or more: not an NES tile
    assert mismatch(partition(drawings[0].drawing), partition(np.stack([many])))[0] == 256
    assert holding(np.zeros((0, 16, 16), dtype=np.int64), drawings).held() == 0


def test_the_kinds_table_counts_held_drawings_per_kind(drawings):
    tiles = np.stack([d.drawing for d in drawings if d.kind in ("brick", "ground")])
    kinds = holding(tiles, drawings).kinds()
    assert kinds["brick"][0] == kinds["brick"][1] >= 1
    assert kinds["ground"][0] == kinds["ground"][1] >= 1
    assert kinds["question"][0] < kinds["question"][1]  # unless a question block draws like them


def test_seen_in_keeps_only_the_drawings_some_screen_cell_shows(drawings):
    brick, question = (next(d for d in drawings if d.kind == k) for k in ("brick", "question"))
    screen = np.zeros((1, 48, 64), dtype=np.int64)
    screen[0, 16:32, 0:16] = brick.drawing + 20  # on the grid, recoloured
    screen[0, 2:18, 36:52] = question.drawing  # off the grid: no cell shows it
    seen = seen_in(screen, drawings)
    assert brick in seen and question not in seen


def test_sheet_tiles_reads_an_atlas_row_by_row_without_its_empty_slots():
    atlas = np.zeros((32, 48, 3), dtype=np.uint8)
    atlas[:] = (255, 0, 255)
    atlas[0:16, 0:16] = (1, 2, 3)
    atlas[0:16, 16:32, 0] = np.arange(16)[None, :]
    atlas[16:32, 0:16] = (4, 5, 6)
    tiles = sheet_tiles(atlas)
    assert tiles.shape == (3, 16, 16)
    assert (tiles[0] == (1 << 16) | (2 << 8) | 3).all() and len(np.unique(tiles[1])) == 16
    assert (tiles[2] == (4 << 16) | (5 << 8) | 6).all()
