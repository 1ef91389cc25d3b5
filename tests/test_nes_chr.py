import numpy as np
import pytest

from nesgan.nes.chr import decode_chr, dedupe_patterns, encode_chr, from_tiles, to_tiles

# NESdev wiki's pattern-table example, a "½": pixel values, and its 16 CHR bytes.
HALF = """
.1.....3
11....3.
.1...3..
.1..3...
...3.22.
..3....2
.3....2.
3....222
"""
HALF_BYTES = bytes([0x41, 0xC2, 0x44, 0x48, 0x10, 0x20, 0x40, 0x80,
                    0x01, 0x02, 0x04, 0x08, 0x16, 0x21, 0x42, 0x87])


def half_tile() -> np.ndarray:
    rows = HALF.split()
    return np.array([[0 if ch == "." else int(ch) for ch in row] for row in rows], np.uint8)


def test_chr_encodes_plane_0_then_plane_1_leftmost_pixel_in_the_high_bit():
    assert encode_chr(half_tile()[None]) == HALF_BYTES


def test_chr_decodes_back_to_the_same_pixel_values():
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 4, (300, 8, 8)).astype(np.uint8)
    data = encode_chr(tiles)
    assert len(data) == 300 * 16
    assert np.array_equal(decode_chr(data), tiles)
    assert np.array_equal(decode_chr(HALF_BYTES)[0], half_tile())


def test_chr_refuses_values_outside_two_bits_and_torn_data():
    with pytest.raises(ValueError):
        encode_chr(np.full((1, 8, 8), 4, np.uint8))
    with pytest.raises(ValueError):
        decode_chr(b"\0" * 17)


def test_dedupe_numbers_patterns_by_first_appearance_and_rebuilds_the_picture():
    rng = np.random.default_rng(1)
    pool = rng.integers(0, 4, (5, 8, 8)).astype(np.uint8)
    pick = rng.integers(0, 5, (6, 9))
    pick[0, 0] = 3  # pattern 3 appears first, so it becomes pattern 0
    values = from_tiles(pool[pick])
    patterns, index = dedupe_patterns(values)
    assert len(patterns) == len(np.unique(pick))
    assert np.array_equal(patterns[0], pool[3])
    assert np.array_equal(from_tiles(patterns[index]), values)
    firsts = [int(np.flatnonzero(index.reshape(-1) == k)[0]) for k in range(len(patterns))]
    assert firsts == sorted(firsts)
    assert np.array_equal(to_tiles(values)[2, 4], pool[pick[2, 4]])
