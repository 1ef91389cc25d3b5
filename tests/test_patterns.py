"""nesgan.patterns: the invented-pattern share and the tile-pattern divergence (issue 21)."""

import numpy as np
import pytest

from nesgan import patterns


def _blocky(seed: int, count: int = 6) -> np.ndarray:
    """Screens of 8×8 blocks of 4 colours: a small vocabulary of partitions."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4, (count, 14, 14)).repeat(8, 1).repeat(8, 2).astype(np.uint8)


def test_identical_sets_give_zero():
    a = _blocky(0)
    assert patterns.divergence(a, a) == 0.0
    assert patterns.invented_share(a, a) == 0.0


def test_a_recoloured_copy_gives_zero():
    a = _blocky(0)
    recolour = np.array([41, 7, 12, 30], dtype=np.uint8)  # a one-to-one map of the colours
    assert patterns.divergence(a, recolour[a]) == 0.0
    assert patterns.invented_share(a, recolour[a]) == 0.0


def test_a_speckled_copy_gives_more():
    a = _blocky(0)
    b = a.copy()
    rng = np.random.default_rng(1)
    spots = rng.random(b.shape) < 0.01
    b[spots] = 9  # a colour the blocks never use, alone among them
    assert patterns.divergence(a, b) > 0.1
    assert 0.3 < patterns.invented_share(a, b) < 1.0  # the cells with a spot, not the others


def test_a_known_example_counts():
    screen = np.zeros((1, 16, 16), dtype=np.uint8)
    screen[0, :, 8:] = 5  # left half one colour, right half another
    keys, counts = patterns.window_counts(screen, 2)
    # 15×15 windows: 15 straddle the edge (pixels 0, 2 one colour; 1, 3 the other), 210 do not
    straddle = (1 << 4) | (0 << 8) | (1 << 12)
    assert dict(zip(keys.tolist(), counts.tolist(), strict=True)) == {0: 210, straddle: 15}
    # the same partition however the colours are numbered, and from the window copies too
    windows = patterns.cell_windows(screen, 2)
    assert set(patterns.partition_keys(windows).ravel().tolist()) == {0, straddle}
    assert patterns.partition_keys(np.array([[3, 7, 3, 7]])).tolist() == [straddle]


def test_window_keys_read_each_distinct_cell_once_and_give_every_cell_its_own_keys():
    rng = np.random.default_rng(3)
    screens = _blocky(4, count=3)  # cells repeat across the screens, as sky and brick do
    screens[1, 16:32, 48:64] = rng.integers(0, 6, (16, 16))  # one cell all its own
    screens[2] = screens[2, :, ::-1]  # a mirrored screen: the same cells' colours, new windows
    for n in (2, 3, 4):
        keys = patterns.window_keys(screens, n)
        m = 17 - n
        assert keys.shape == (3, 49, m, m)  # 112×112 screens
        from_copies = patterns.partition_keys(patterns.cell_windows(screens, n))
        assert np.array_equal(keys.reshape(-1), from_copies.reshape(-1))
    one = patterns.window_keys(screens[:1, :16, :16], 3)  # a single cell
    assert np.array_equal(one.reshape(-1), patterns.partition_keys(patterns.cell_windows(screens[:1, :16, :16], 3)).reshape(-1))


def test_symmetric_kl_on_tile_ids():
    p = (np.array([1, 2]), np.array([10, 10]))
    assert patterns.symmetric_kl(p, p) == 0.0
    q = (np.array([1, 3]), np.array([10, 10]))  # half the mass on an id P lacks
    assert patterns.symmetric_kl(p, q) == pytest.approx(0.5 * np.log(10 / 1e-7) * 2 * 0.5, rel=0.01)
    assert patterns.symmetric_kl(p, q) == patterns.symmetric_kl(q, p)


def test_reference_measures_as_the_functions_do():
    a, b = _blocky(0), _blocky(2)
    b[:, 3, 3] = 9
    ref = patterns.Reference(a)
    assert ref.invented(b) == patterns.invented_share(a, b) > 0
    assert ref.divergence(b) == pytest.approx(patterns.divergence(a, b))


def test_floor_holds_out_a_quarter():
    f = patterns.floor(_blocky(0, 8), seed=0)
    assert set(f) == {"invented", "divergence"} and f["divergence"] >= 0.0


class _Reader:
    """Screens that slice like an array and remember the most they were asked for at once."""

    def __init__(self, screens):
        self.screens, self.most = screens, 0

    def __len__(self):
        return len(self.screens)

    def __getitem__(self, index):
        out = self.screens[index]
        self.most = max(self.most, len(out))
        return out


def test_a_reference_read_a_chunk_at_a_time_counts_and_floors_as_one_read_whole():
    a = np.concatenate([_blocky(s, 4) for s in range(5)])  # 20 screens
    a[3, 5, 5] = 7  # a speckle in one screen: something to invent
    whole = patterns.Reference(a, seed=2, chunk=len(a))
    reader = _Reader(a)
    chunked = patterns.Reference(reader, seed=2, chunk=3)
    assert reader.most == 3, "never more than one chunk of screens in memory"
    for n in (2, 3, 4):
        assert np.array_equal(whole.counts[n][0], chunked.counts[n][0])
        assert np.array_equal(whole.counts[n][1], chunked.counts[n][1])
        assert whole.counts[n][1].sum() == len(a) * patterns.screen_cells(a).shape[1] * (17 - n) ** 2
    assert whole.floor() == chunked.floor() == patterns.floor(a, seed=2)
    assert patterns.Reference(a[:1]).floor() == {"invented": 0.0, "divergence": 0.0}


def test_closest_subset_keeps_the_set_that_covers_the_training_art_not_copies_of_one_screen():
    y, x = np.mgrid[0:224, 0:224]
    blocks = np.random.default_rng(0).integers(0, 4, (28, 28)).repeat(8, 0).repeat(8, 1).astype(np.uint8)
    stripes = ((x // 2) % 2).astype(np.uint8)
    checks, diagonals = (((x // 4) + (y // 4)) % 2).astype(np.uint8), (((x + y) // 3) % 3).astype(np.uint8)
    ref = patterns.Reference(np.stack([blocks, stripes, checks, diagonals]))
    speckled = blocks.copy()
    speckled[np.random.default_rng(2).random(blocks.shape) < 0.02] = 9
    drawn = np.stack([blocks, blocks, speckled, stripes, blocks, checks, diagonals, speckled])
    chosen = ref.closest_subset(drawn, 4)
    picked = {int(i) for i in chosen}
    assert {3, 5, 6} <= picked and len(picked & {0, 1, 4}) == 1, "each style once, the blocks once"
    assert ref.divergence(drawn[chosen]) < ref.divergence(drawn[:4]) and ref.divergence(drawn[chosen]) < 0.05
    assert list(chosen) == sorted(chosen)
    assert list(ref.closest_subset(drawn, 8)) == list(range(8)) == list(ref.closest_subset(drawn, 9))


def test_closest_subset_adds_each_time_the_screen_the_whole_divergence_ranks_best():
    """The greedy choice reads only each screen's own windows; it must be the choice that
    measuring the whole set's divergence with every candidate added would make, step by step."""
    rng = np.random.default_rng(5)
    art = rng.integers(0, 3, (10, 12, 12)).repeat(2, 1).repeat(2, 2).astype(np.uint8)
    ref = patterns.Reference(art)
    drawn = art[rng.integers(0, 10, 14)].copy()
    drawn[rng.random(drawn.shape) < 0.04] = 5  # speckle, more on some screens than on others
    drawn[3:6] = np.roll(drawn[3:6], 1, axis=2)
    k = 6
    chosen = ref.closest_subset(drawn, k)
    greedy: list[int] = []
    for _ in range(k):
        left = [j for j in range(len(drawn)) if j not in greedy]
        greedy.append(min(left, key=lambda j: ref.divergence(drawn[greedy + [j]])))
    assert list(chosen) == sorted(greedy)


def _drawn(options: np.ndarray, choice, mass) -> np.ndarray:
    """The one-cell screens a choice draws: group g's option, mass[g] times."""
    return np.concatenate([np.repeat(options[c][None], m, axis=0) for c, m in zip(choice, mass, strict=True)])


def test_closest_choice_ends_where_no_single_group_can_do_better_as_divergence_measures_it():
    rng = np.random.default_rng(4)
    art = rng.integers(0, 3, (12, 8, 8)).repeat(2, 1).repeat(2, 2).astype(np.uint8)  # 2×2-pixel blocks
    ref = patterns.Reference(art)
    noisy = art.copy()
    noisy[rng.random(noisy.shape) < 0.05] = 7
    shifted = np.roll(art, 1, axis=2)  # the same drawings, half a block off: new 3×3 and 4×4 windows
    options = np.concatenate([noisy[:6], shifted[:6], art[:6]])  # 18 options, 6 groups of 3
    groups = [np.array([g, 6 + g, 12 + g]) for g in range(6)]
    mass = np.array([5, 1, 3, 2, 4, 1])
    start = np.arange(6)  # every group starts noisy
    chosen = ref.closest_choice(options, groups, mass, start)
    assert all(c in grp for c, grp in zip(chosen, groups, strict=True))
    best = ref.divergence(_drawn(options, chosen, mass))
    assert best < ref.divergence(_drawn(options, start, mass))
    for g, grp in enumerate(groups):  # a local minimum of the real measure, not only of its own sums
        for other in grp:
            alt = chosen.copy()
            alt[g] = other
            assert ref.divergence(_drawn(options, alt, mass)) >= best - 1e-9
    assert list(chosen) == [12 + g for g in range(6)], "each group shows the art's own drawing"


def test_closest_choice_keeps_a_group_where_it_has_one_option_or_no_use():
    art = _blocky(0, 2)[:, :16, :16]
    ref = patterns.Reference(art)
    options = np.stack([art[0], 9 - art[0], art[1]]).astype(np.uint8)
    chosen = ref.closest_choice(options, [np.array([0]), np.array([1, 2])], np.array([3.0, 0.0]), np.array([0, 1]))
    assert list(chosen) == [0, 1]


def test_cells_divergence_is_the_divergence_of_the_map_they_draw():
    art = _blocky(0, 4)
    ref = patterns.Reference(art)
    drawn = _blocky(5, 3)
    cells = patterns.screen_cells(drawn).reshape(-1, 16, 16)
    uniq, inverse = np.unique(cells.reshape(len(cells), -1), axis=0, return_inverse=True)
    uses = np.bincount(inverse.ravel())
    assert ref.cells_divergence(uniq.reshape(-1, 16, 16), uses) == pytest.approx(ref.divergence(drawn), abs=1e-9)
    own = patterns.screen_cells(art).reshape(-1, 16, 16)
    assert ref.cells_divergence(own, np.ones(len(own))) == 0.0


def test_the_patterns_benchmark_reads_the_same_keys_three_ways_and_reuses_repeated_cells(tmp_path):
    from nesgan.bench import patterns_bench

    figures = patterns_bench.run(tmp_path, quick=True)  # asserts the three readings' keys equal
    museum, distinct = figures["museum"], figures["all cells distinct"]
    assert museum["distinct_cells"] < museum["cells"] // 4  # museum screens repeat their cells
    assert distinct["distinct_cells"] == distinct["cells"]
