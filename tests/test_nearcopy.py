"""nesgan.tiles.nearcopy (index, cache, verdicts), nesgan.tiles.distance and search, nesgan.tiles.contact;
nesgan.bench.reference (the slow distances the search is checked against)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from nesgan.bench.reference import brute_nearest_merge, exact_distances, merge_exact_distances
from nesgan.colour.palette import EMITTABLE, Palette
from nesgan.errors import NesganError
from nesgan.tiles import nearcopy
from nesgan.tiles.contact import write_contact_sheets
from nesgan.tiles.search import TileSearch, coarsenings, plan_blocks
from nesgan.tiles.tile import flips

PAL = Palette.builtin()
FOUR = np.array([0x0F, 0x16, 0x27, 0x30], np.uint8)


@pytest.fixture(scope="module", autouse=True)
def cache(isolated_lut_cache):
    """Every test here builds LUTs in a private cache folder."""


def _tile(seed: int, colours: np.ndarray = FOUR) -> np.ndarray:
    """A random 16×16 drawing in blobs of 4×4 (so it has structure, like NES art)."""
    small = np.random.default_rng(seed).choice(colours, size=(4, 4))
    return np.kron(small, np.ones((4, 4), np.uint8)).astype(np.uint8)


def _edit(tile: np.ndarray, pixels: list[tuple[int, int]]) -> np.ndarray:
    out = tile.copy()
    for y, x in pixels:
        out[y, x] = FOUR[(list(FOUR).index(out[y, x]) + 1) % 4] if out[y, x] in FOUR else FOUR[0]
    return out


def _swap(tile: np.ndarray) -> np.ndarray:
    lut = np.arange(64, dtype=np.uint8)
    lut[FOUR] = [0x01, 0x2A, 0x0F, 0x36]
    return lut[tile]


def test_distance_is_zero_for_palette_swaps_and_mirrors():
    t = _tile(1)
    others = np.stack([t, _swap(t), t[:, ::-1], _swap(t)[::-1, ::-1]])
    d, _ = exact_distances(others, np.stack([t] * 4))
    assert d.tolist() == [0, 0, 0, 0]


def test_distance_counts_changed_pixels_under_the_best_bijection():
    t = _tile(2)
    d, _ = exact_distances(np.stack([_edit(t, [(0, 0)]), _swap(_edit(t, [(0, 0), (5, 9), (15, 15)]))]),
                           np.stack([t, t]))
    assert d.tolist() == [1, 3]


def _third_colour_merged() -> tuple[np.ndarray, np.ndarray]:
    """A two-colour tile with 16 pixels of a third colour, and the same with those merged away."""
    t = np.zeros((16, 16), np.uint8) + 0x0F
    t[:, 8:] = 0x16
    t[:4, :4] = 0x27  # 16 pixels of a third colour
    merged = t.copy()
    merged[merged == 0x27] = 0x0F
    return t, merged


def test_distance_of_a_colour_merge_counts_the_smaller_colour():
    t, merged = _third_colour_merged()
    d, _ = exact_distances(merged[None], t[None])
    assert d.tolist() == [16]


def test_distance_handles_tiles_with_more_colours_than_the_vectorised_matcher():
    rng = np.random.default_rng(3)
    a = rng.choice(EMITTABLE[:30], size=(16, 16)).astype(np.uint8)
    lut = np.arange(64, dtype=np.uint8)
    lut[EMITTABLE[:30]] = EMITTABLE[24:54]
    b = _edit(lut[a], [(1, 1), (2, 2)])
    d, _ = exact_distances(b[None], a[None])
    assert d[0] <= 2


def test_search_finds_every_tile_within_k_that_brute_force_finds():
    rng = np.random.default_rng(4)
    train = np.stack([_tile(s) for s in range(300)])
    queries = []
    for i in range(120):
        t = train[rng.integers(300)]
        n = int(rng.integers(0, 14))
        px = [(int(y), int(x)) for y, x in rng.integers(0, 16, size=(n, 2))]
        t = _edit(t, px)
        queries.append(flips(t[None])[int(rng.integers(4)), 0] if i % 2 else _swap(t))
    queries = np.stack(queries)
    k = 8
    found = TileSearch(train, k).search(queries)
    for i, qt in enumerate(queries):
        d, _ = exact_distances(np.repeat(qt[None], len(train), 0), train)
        truth = int(d.min())
        if truth <= k:
            assert found.distance[i] == truth and found.exact[i]
        else:
            assert found.distance[i] >= truth


def test_block_plan_keeps_the_pigeonhole_guarantee():
    for k in range(0, 32):
        assert plan_blocks(k) == k + 1  # K + 1 groups: a tile within K matches ≥ 1 of them
    assert plan_blocks(32) == 0  # blocks too small: brute force


def test_blocks_are_indexed_under_every_coarser_partition_up_to_four_colours():
    # Bell numbers minus the flat partition: 1, 1, 4, 14; then identity + each colour merged
    # into the first; above 8 colours, identity only
    assert [len(coarsenings(c)) for c in range(1, 10)] == [1, 1, 4, 14, 5, 6, 7, 8, 1]
    assert coarsenings(4)[0].tolist() == [0, 1, 2, 3]


def test_large_k_falls_back_to_comparing_with_everything():
    train = np.stack([_tile(s) for s in range(30)])
    query = _edit(train[7], [(y, y) for y in range(16)] + [(y, 15 - y) for y in range(16)])
    found = TileSearch(train, 40).search(query[None])
    d, _ = exact_distances(np.repeat(query[None], 30, 0), train)
    assert found.distance[0] == d.min() and found.exact[0]


def test_near_flat_tiles_are_trivial_not_near_copies():
    flat = np.full((16, 16), 0x21, np.uint8)
    star = flat.copy()
    star[4, 4] = star[10, 11] = 0x30
    drawn = _tile(9)
    assert nearcopy.trivial_mask(np.stack([flat, star, drawn]), 8).tolist() == [True, True, False]



def test_a_tile_near_a_near_flat_training_tile_is_trivial_but_edited_drawings_stay_flagged():
    # From the demo: grey tiles with 5 specks were "near-copies" of a blue tile with 2 dots.
    specks = [(2, 3), (5, 9), (8, 1), (11, 12), (14, 6)]
    dotted = np.full((16, 16), 0x21, np.uint8)  # training: blue, 2 dots
    for y, x in specks[:2]:
        dotted[y, x] = 0x30
    grey = np.full((16, 16), 0x00, np.uint8)  # generated: grey, 5 specks (not trivial at K=4)
    for y, x in specks:
        grey[y, x] = 0x0F
    drawn = _tile(4)
    train = np.stack([dotted, drawn])
    index = nearcopy.TileIndex(tiles=train, screen=np.zeros(2, np.int32),
                               xy=np.array([[0, 0], [16, 0]], np.int32), screens=["t.png"],
                               fingerprint="test")
    queries = np.stack([grey, _edit(drawn, [(0, 0), (7, 7)])])
    v = nearcopy.verdicts(index, queries, 4)
    assert nearcopy.trivial_mask(grey[None], 4).tolist() == [False]
    assert v.found.distance.tolist() == [3, 2]
    assert v.verdict == ["trivial", "near_copy"]

def _write_screens(folder, n: int, seed: int = 0) -> None:
    from nesgan.museum.synth import make_game, render_frame

    folder.mkdir(parents=True, exist_ok=True)
    for s in range(n):
        idx = render_frame(make_game(seed, s % 3), s)
        Image.fromarray(PAL.to_rgb(idx.indices[:224, :224])).save(folder / f"s{s}.png")


def test_index_is_cached_and_rebuilt_when_a_training_file_changes(tmp_path, capsys):
    train = tmp_path / "screens"
    _write_screens(train, 3)
    first = nearcopy.load_or_build_index(train, PAL)
    assert "no tile index yet" in capsys.readouterr().err
    assert nearcopy.index_path(train, PAL).exists()
    again = nearcopy.load_or_build_index(train, PAL)
    assert capsys.readouterr().err == ""
    assert np.array_equal(first.tiles, again.tiles)
    # change one training screen: the index notices and rebuilds
    path = train / "s1.png"
    Image.fromarray(PAL.to_rgb(np.full((224, 224), 0x16, np.uint8))).save(path)
    os.utime(path, ns=(1, 1))
    rebuilt = nearcopy.load_or_build_index(train, PAL)
    assert "training screens changed" in capsys.readouterr().err
    assert rebuilt.fingerprint != first.fingerprint and len(rebuilt.tiles) != len(first.tiles)


def test_index_uses_the_grid_phase_from_the_screens_manifest(tmp_path):
    train = tmp_path / "screens"
    _write_screens(train, 1)
    (train / "manifest.jsonl").write_text('{"path": "s0.png", "grid_phase": [4, 12], "status": "ok"}\n')
    index = nearcopy.build_index(train, PAL)
    assert {tuple(p) for p in (index.xy % 16).tolist()} == {(4, 12)}
    assert index.xy[:, 0].max() <= 224 - 16 and index.xy[:, 1].max() <= 224 - 16


def test_a_damaged_index_cache_is_rebuilt(tmp_path, capsys):
    train = tmp_path / "screens"
    _write_screens(train, 2)
    nearcopy.load_or_build_index(train, PAL)
    nearcopy.index_path(train, PAL).write_bytes(b"PK\x03\x04 torn")
    capsys.readouterr()
    index = nearcopy.load_or_build_index(train, PAL)
    assert "damaged" in capsys.readouterr().err and len(index.tiles) > 0


def test_a_training_folder_that_changes_during_indexing_is_an_error(tmp_path, monkeypatch):
    train = tmp_path / "screens"
    _write_screens(train, 2)
    real = nearcopy.open_screen

    def touching(path, palette, **kw):
        out = real(path, palette, **kw)
        (train / "late.png").write_bytes((train / "s0.png").read_bytes())  # a writer adds a file
        return out

    monkeypatch.setattr(nearcopy, "open_screen", touching)
    with pytest.raises(NesganError, match="changed while nesgan was indexing it"):
        nearcopy.build_index(train, PAL)


def test_an_empty_training_folder_is_an_error(tmp_path):
    (tmp_path / "screens").mkdir()
    with pytest.raises(NesganError, match="no training screens"):
        nearcopy.load_or_build_index(tmp_path / "screens", PAL)


def test_flags_reach_098_precision_and_recall_on_a_planted_benchmark():
    from nesgan.bench.nearcopy_bench import make_benchmark, score

    bench = make_benchmark(3000, 300, seed=7, train_games=6, held_out_games=2)
    figures = score(bench)
    assert figures["queries_scored"] > 250
    assert figures["precision"] >= 0.98 and figures["recall"] >= 0.98
    assert figures["flag_rate_by_kind"]["edit3"] == 1.0 and figures["flag_rate_by_kind"]["heavy64"] == 0.0


def test_contact_sheets_put_near_copies_first_beside_their_nearest_tile(tmp_path):
    tiles = np.stack([_tile(1), _tile(2), _tile(3)])
    shown = np.stack([_tile(11), _tile(2), _tile(13)])  # nearest tiles as they matched
    rows = [
        {"id": 0, "verdict": "original", "nearest": {"distance": 70, "flip": "none"}},
        {"id": 1, "verdict": "near_copy", "nearest": {"distance": 0, "flip": "h"}},
        {"id": 2, "verdict": "trivial", "nearest": {"distance": 5, "flip": "none"}},
    ]
    paths = write_contact_sheets(tmp_path, tiles, shown, rows, PAL)
    assert [p.name for p in paths] == ["contact-000.png"]
    img = np.asarray(Image.open(paths[0]).convert("RGB"))
    # first entry: tile 1 at 4×, and its nearest beside it
    big = np.kron(PAL.to_rgb(tiles[1]), np.ones((4, 4, 1), np.uint8))
    assert np.array_equal(img[6:70, 6:70], big)
    assert np.array_equal(img[6:70, 76:140], big)
    assert tuple(img[76, 8]) == (220, 40, 40)  # the red near-copy bar under it


def test_the_matched_training_tile_is_shown_mirrored_and_recoloured_the_way_it_matched():
    t = _tile(21)
    merged = t.copy()
    merged[merged == 0x27] = 0x0F  # two colours became one
    query = _swap(merged)[:, ::-1]  # then re-paletted and mirrored
    index = nearcopy.TileIndex(tiles=t[None], screen=np.zeros(1, np.int32), xy=np.zeros((1, 2), np.int32),
                               screens=["t.png"], fingerprint="test")
    v = nearcopy.verdicts(index, query[None], 4)
    assert v.verdict == ["near_copy"] and v.match == ["merge"]
    assert np.array_equal(v.shown[0], query)  # the training tile drawn as the copy shows it


def test_a_huge_k_on_a_big_training_set_is_refused_rather_than_run_for_hours(monkeypatch):
    import nesgan.tiles.search as ns

    monkeypatch.setattr(ns, "BRUTE_PAIRS", 1000)
    train = np.stack([_tile(s) for s in range(300)])
    with pytest.raises(NesganError, match="--near-copy-pixels 40 is too large"):
        TileSearch(train, 40).search(np.stack([_tile(1)]))


def _index(tiles: np.ndarray) -> nearcopy.TileIndex:
    n = len(tiles)
    return nearcopy.TileIndex(tiles=tiles, screen=np.zeros(n, np.int32),
                              xy=np.stack([np.arange(n) * 16, np.zeros(n)], 1).astype(np.int32),
                              screens=["t.png"], fingerprint="test")


def test_a_copy_with_colours_merged_is_flagged_and_says_merge():
    # the night palette: the hill's outline (0x27) takes the backdrop colour (0x0F)
    train = np.stack([_tile(s) for s in range(40)])
    t = train[17]
    merged = t.copy()
    merged[merged == 0x27] = 0x0F
    assert exact_distances(merged[None], t[None])[0][0] > 4  # one-to-one alone misses it
    double = _swap(t)
    double[np.isin(double, [0x2A, 0x36])] = 0x01  # two colours merged into a third
    queries = np.stack([merged, _edit(merged, [(3, 3), (9, 12)])[::-1], double, t, _swap(t), _edit(t, [(0, 0)])])
    v = nearcopy.verdicts(_index(train), queries, 4)
    assert v.verdict == ["near_copy"] * 6
    assert v.found.train_id.tolist() == [17] * 6
    assert v.found.distance.tolist() == [0, 2, 0, 0, 0, 1]
    assert v.match == ["merge", "merge", "merge", "exact", "recolour", "exact"]
    rows = [v.nearest_row(i, _index(train)) for i in range(6)]
    assert rows[0]["match"] == "merge" and rows[1]["flip"] == "v"


def test_merge_distance_counts_pixels_no_many_to_one_map_can_explain():
    t, merged = _third_colour_merged()
    assert merge_exact_distances(merged[None], t[None])[0].tolist() == [0]
    # the other way round the map cannot split one colour in two: the 16 pixels differ
    assert merge_exact_distances(t[None], merged[None])[0].tolist() == [16]


def test_search_finds_every_merged_copy_within_k_that_brute_force_finds():
    rng = np.random.default_rng(5)
    train = np.stack([_tile(s) for s in range(200)])
    queries = []
    for i in range(100):
        t = train[rng.integers(200)].copy()
        a, b = rng.choice(np.unique(t), 2, replace=False)
        t[t == a] = b  # merge two colours
        if i % 3 == 0 and len(np.unique(t)) > 2:
            a, b = rng.choice(np.unique(t), 2, replace=False)
            t[t == a] = b  # and two more
        n = int(rng.integers(0, 9))
        t = _edit(t, [(int(y), int(x)) for y, x in rng.integers(0, 16, size=(n, 2))])
        queries.append(flips(t[None])[i % 4, 0])
    queries = np.stack(queries)
    k = 6
    found = TileSearch(train, k).search(queries)
    within = 0
    for i, qt in enumerate(queries):
        truth, _ = brute_nearest_merge(qt, train)
        if truth <= k:
            within += 1
            assert found.distance[i] == truth and found.exact[i]
        else:
            assert found.distance[i] >= truth
    assert within > 50


def test_several_training_folders_make_one_index_cached_outside_them(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _write_screens(a, 2, seed=0)
    _write_screens(b, 2, seed=5)
    both = nearcopy.load_or_build_index([a, b], PAL)
    only_a = nearcopy.load_or_build_index(a, PAL)
    assert len(both.tiles) > len(only_a.tiles)
    assert both.screens == [str(a / "s0.png"), str(a / "s1.png"), str(b / "s0.png"), str(b / "s1.png")]
    assert only_a.screens == ["s0.png", "s1.png"]
    path = nearcopy.index_path([a, b], PAL)
    assert path.exists() and path != nearcopy.index_path(a, PAL)
    assert tmp_path not in path.parents  # the cache lives in $XDG_CACHE_HOME/nesgan, not the data
    assert sorted(p.name for p in a.iterdir()) == ["s0.png", "s1.png"]
    assert sorted(p.name for p in b.iterdir()) == ["s0.png", "s1.png"]


def test_a_tile_with_a_sprites_edge_over_it_is_flagged_and_a_flat_tile_stays_trivial():
    # the default reading tolerates K covered pixels: a sprite's toe over a ground tile
    train = np.stack([_tile(s) for s in range(30)])
    ground = _swap(train[12])
    stood_on = ground.copy()
    stood_on[0, 5:8] = 0x16  # three pixels of the critter's feet, in a colour of its own palette
    stood_on[1, 6] = 0x16
    flat = np.full((16, 16), 0x21, np.uint8)
    flat[3, 3] = 0x30
    v = nearcopy.verdicts(_index(train), np.stack([stood_on, flat]), 4)
    assert v.verdict == ["near_copy", "trivial"]
    assert v.found.train_id[0] == 12 and v.found.distance[0] <= 4


def test_export_tiles_takes_several_training_folders(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from nesgan.cli import cli

    _write_screens(tmp_path / "world1", 2, seed=0)
    _write_screens(tmp_path / "world2", 2, seed=9)
    (tmp_path / "generated").mkdir()
    for s in range(2):  # the generated screens are world 2's screens, re-paletted
        src = np.asarray(Image.open(tmp_path / "world2" / f"s{s}.png").convert("RGB"))
        Image.fromarray(src[:, :, ::-1].copy()).save(tmp_path / "generated" / f"g{s}.png")
    monkeypatch.chdir(tmp_path)
    runs = {}
    for name, trains in (("one", ["world1"]), ("both", ["world1", "world2"])):
        args = ["export-tiles", "--generated", "generated", "--tiles", f"tiles-{name}",
                "--tilesets", f"sets-{name}"]
        for t in trains:
            args += ["--train", t]
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
        runs[name] = [json.loads(line) for line in (tmp_path / f"tiles-{name}" / "tiles.jsonl").open()]
    flagged = {n: sum(r["near_copy"] for r in rows) for n, rows in runs.items()}
    assert flagged["both"] > flagged["one"]
    assert any(r["nearest"]["screen"].startswith("world2") and r["near_copy"] for r in runs["both"])
    assert sorted(p.name for p in (tmp_path / "world1").iterdir()) == ["s0.png", "s1.png"]


def test_the_copy_share_counts_only_tiles_of_two_or_more_colours():
    from nesgan.tiles.nearcopy import copy_share

    flat = np.full((16, 16), 0x21, np.uint8)
    drawn = flat.copy()
    drawn[4:8, 4:8] = 0x0F
    tiles = np.stack([flat, drawn, drawn, drawn, flat])
    verdict = ["near_copy", "near_copy", "original", "trivial", "trivial"]
    assert copy_share(tiles, verdict) == pytest.approx(1 / 3)  # the flat near-copy is not counted
    assert copy_share(tiles[[0, 4]], verdict[:1] + verdict[4:]) == 0.0
