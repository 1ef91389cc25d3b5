"""nesgan.tiles.sheet: noisy cells -> at most N NES-legal tiles that rebuild the screens."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nesgan.bench.sheet_bench import cells_of, clean_screens, rebuild, spoil
from nesgan.cli import cli
from nesgan.colour.palette import Palette
from nesgan.errors import NesganError
from nesgan.tiled.export import ExportConfig, export_tiles
from nesgan.tiles.build import TileConfig, build_tiles
from nesgan.tiles.sheet import SheetConfig, build_sheet, colours_per_tile, orphan_rate
from nesgan.tiles.tile import dedupe

PAL = Palette.builtin()


@pytest.fixture(scope="module", autouse=True)
def cache(isolated_lut_cache):
    """Every test here builds LUTs in a private cache folder."""


@pytest.fixture(scope="module")
def spoiled_case():
    """One museum game's clean screens (one backdrop, 4 sub-palettes) and a spoiled copy."""
    clean = clean_screens(1, 4, seed=3)
    return clean, spoil(clean, PAL, np.random.default_rng(0))


def _save_screens(folder, screens) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(screens):
        Image.fromarray(PAL.to_rgb(s)).save(folder / f"s{i:02d}.png")


def _atlas(png) -> np.ndarray:
    img = np.asarray(Image.open(png).convert("RGB"))
    h, w = img.shape[0] // 16, img.shape[1] // 16
    return img.reshape(h, 16, w, 16, 3).swapaxes(1, 2).reshape(-1, 16, 16, 3)


def _tilecount(ids_jsonl) -> int:
    """Tiles in the main tileset, from the export's ids manifest (the atlas pads its last row)."""
    rows = [json.loads(x) for x in open(ids_jsonl).read().splitlines()]
    return 1 + max(r["tile"] for r in rows if r["tileset"] == "nesgan")


def test_a_spoiled_case_with_a_known_answer_is_recovered(spoiled_case):
    clean, spoiled = spoiled_case
    assert (spoiled == clean).mean() < 0.85  # the spoiling is heavy
    truth = dedupe(cells_of(clean))[0]
    sheet = build_sheet(cells_of(spoiled), None, PAL, SheetConfig(max_tiles=len(truth), palettes=4))
    rebuilt = rebuild(sheet.tiles, sheet.labels, len(clean))
    cells_equal = (cells_of(rebuilt) == cells_of(clean)).reshape(len(sheet.labels), -1).all(1)
    assert (rebuilt == clean).mean() >= 0.97
    assert cells_equal.mean() >= 0.85
    assert orphan_rate(rebuilt) <= 1.5 * orphan_rate(clean) + 0.002 < orphan_rate(spoiled)


def test_a_group_of_different_clean_drawings_shows_one_of_them_not_a_blend():
    # three clean drawings the budget must put in one tile: the vote of their pixels would be a
    # fourth picture (colours between theirs); the sheet shows the commonest drawing as it is
    rng = np.random.default_rng(1)
    colours = np.array([0x0F, 0x16, 0x27, 0x30], np.uint8)  # one backdrop and 3 colours
    drawings = [np.kron(colours[rng.integers(0, 4, size=(4, 4))], np.ones((4, 4), np.uint8))
                for _ in range(3)]  # 4×4-pixel blocks: nothing for the lone-pixel penalty
    cells = np.stack([drawings[0]] * 6 + [drawings[1]] * 5 + [drawings[2]] * 5)
    sheet = build_sheet(cells, None, PAL, SheetConfig(max_tiles=1))
    assert len(sheet.tiles) == 1
    assert np.array_equal(sheet.tiles[0], drawings[0])
    assert np.array_equal(cells[sheet.members[0][0]], drawings[0])  # the cell it was drawn from


def test_given_the_training_patterns_a_tile_is_drawn_from_a_cell_that_invents_none():
    from nesgan.patterns import invented_share, known_keys

    rng = np.random.default_rng(2)
    colours = np.array([0x0F, 0x16, 0x27, 0x30], np.uint8)
    odd = np.kron(colours[rng.integers(0, 4, size=(4, 4))], np.ones((4, 4), np.uint8))
    plain = np.kron(colours[np.tile([0, 1, 0, 1], (4, 1))], np.ones((4, 4), np.uint8))  # stripes
    known = known_keys(plain[None])  # the training art: vertical stripes only
    assert invented_share(known, odd[None]) == 1.0 and invented_share(known, plain[None]) == 0.0
    cells = np.stack([odd] * 6 + [plain] * 5)
    without = build_sheet(cells, None, PAL, SheetConfig(max_tiles=1))
    assert np.array_equal(without.tiles[0], odd)  # the commonest drawing, as before
    sheet = build_sheet(cells, None, PAL, SheetConfig(max_tiles=1), known=known)
    assert np.array_equal(sheet.tiles[0], plain)
    assert np.array_equal(cells[sheet.members[0][0]], plain)


def _marked(colours, *marks):
    """A 16×16 drawing of 2×2-pixel blocks: a ring round an inside, and marked blocks."""
    g = np.full((8, 8), 2)
    g[0, :] = g[-1, :] = g[:, 0] = g[:, -1] = 1
    for y, x in marks:
        g[y, x] = 3
    return np.kron(colours[g], np.ones((2, 2), np.uint8))


@pytest.mark.parametrize("uses, shown", [((6, 5), "art"), ((12, 2), "commoner")])
def test_given_the_training_windows_a_group_shows_the_member_closest_to_the_art_if_it_draws_the_group_as_well(
        uses, shown):
    from nesgan.patterns import Reference

    colours = np.array([0x0F, 0x16, 0x27, 0x30], np.uint8)
    art = _marked(colours, (2, 2), (2, 3), (3, 2))  # the training drawing
    variant = _marked(colours, (4, 4), (4, 5), (5, 5))  # the same vocabulary, marks elsewhere
    reference = Reference(np.stack([art, np.full((16, 16), 0x0F, np.uint8)]))
    cells = np.stack([variant, art])
    use = np.array(uses)
    without = build_sheet(cells, use, PAL, SheetConfig(max_tiles=1))
    assert np.array_equal(without.tiles[0], variant)  # the medoid: the commoner drawing
    sheet = build_sheet(cells, use, PAL, SheetConfig(max_tiles=1), reference=reference)
    # 6 against 5 uses: the art costs the group 6/5 of the medoid's pixels, within CLOSEST_RATIO
    # (3); 12 against 2: 6 times, so the commoner drawing stays
    assert np.array_equal(sheet.tiles[0], art if shown == "art" else variant)
    assert np.array_equal(cells[sheet.members[0][0]], sheet.tiles[0])


def test_one_cells_stray_mark_is_never_put_on_every_cell_of_its_group(monkeypatch):
    # a plain group whose 12 other members each carry a dot somewhere else: the dot in the top
    # left corner is common in the training art, so showing it on every cell would bring the map
    # closer to the art's windows — but it draws only 1 of the group's 13 cells better than the
    # plain medoid does, so the plain drawing stays
    import nesgan.tiles.sheet as sheet_module
    from nesgan.patterns import Reference

    plain = np.full((16, 16), 0x21, np.uint8)
    dotted = []
    for y, x in [(a, b) for a in (0, 4, 8, 12) for b in (0, 4, 8)]:
        d = plain.copy()
        d[y : y + 2, x : x + 2] = 0x0F
        dotted.append(d)
    cells = np.stack([plain, *dotted])
    reference = Reference(np.stack([dotted[0]] * 5 + [plain] * 5))

    def shown():
        return build_sheet(cells, None, PAL, SheetConfig(max_tiles=1), reference=reference).tiles[0]

    assert np.array_equal(shown(), plain)
    monkeypatch.setattr(sheet_module, "CLOSEST_SUPPORT", 0.0)  # without the test of support
    assert np.array_equal(shown(), dotted[0])


def test_a_rare_whole_training_drawing_keeps_a_tile_where_a_rare_fragment_would():
    from nesgan.tiles.tile import partition_hashes

    colours = np.array([0x0F, 0x16, 0x27, 0x30], np.uint8)  # backdrop, ring, inside, mark

    def block(*marks):  # 8×8 grid of 2×2-pixel blocks: a ring round an inside, marked blocks
        g = np.full((8, 8), 2)
        g[0, :] = g[-1, :] = g[:, 0] = g[:, -1] = 1
        for y, x in marks:
            g[y, x] = 3
        return np.kron(colours[g], np.ones((2, 2), np.uint8))

    plain, question = block(), block((2, 3), (3, 3), (3, 4))  # a training drawing: an L of 3 blocks
    fragment = block((4, 2), (4, 3), (4, 4))  # 3 blocks in a row: the same cost to lose, no drawing
    stripes = np.kron(colours[np.tile([0, 3], (8, 4))], np.ones((2, 2), np.uint8))
    cells = np.stack([plain, stripes, question, fragment])
    use = np.array([20, 20, 2, 3])  # one of the two rare cells must merge into the plain block

    def kept(sheet):
        return [any(np.array_equal(t, c) for t in sheet.tiles) for c in (question, fragment)]

    assert kept(build_sheet(cells, use, PAL, SheetConfig(max_tiles=3))) == [False, True], "the rarer goes"
    drawings = np.unique(partition_hashes(np.stack([plain, stripes, question[:, ::-1]])))  # mirrored in training
    sheet = build_sheet(cells, use, PAL, SheetConfig(max_tiles=3), drawings=drawings)
    assert kept(sheet) == [True, False], "the whole drawing outweighs the fragment"
    assert sheet.labels[3] == sheet.labels[0] != sheet.labels[2], "the fragment is drawn as the plain block"


def test_shared_sub_palettes_recolour_a_drawing_instead_of_merging_its_colours():
    # 4 games, each with its own backdrop and palettes, folded into one backdrop and 4
    # sub-palettes: every tile keeps the shape (which pixels share a colour) of the cell it was
    # drawn from, and the rebuilt screens keep the training art's pattern statistics
    from nesgan.patterns import divergence
    from nesgan.tiles.tile import shape_labels

    clean = clean_screens(4, 2, seed=5)
    cells = cells_of(clean)
    distinct = len(dedupe(cells)[0])
    sheet = build_sheet(cells, None, PAL, SheetConfig(max_tiles=distinct, palettes=4))
    drawn_from = np.stack([cells[m[0]] for m in sheet.members])
    few = (colours_per_tile(drawn_from) <= 4)
    assert few.mean() > 0.9
    assert np.array_equal(shape_labels(sheet.tiles[few]), shape_labels(drawn_from[few]))
    rebuilt = rebuild(sheet.tiles, sheet.labels, len(clean))
    assert divergence(clean, rebuilt) < 0.05
    assert len({tuple(np.unique(t)) for t in sheet.tiles}) > 1  # recoloured, not all one colour set


def test_the_budget_is_respected_and_every_tile_shows_at_most_4_colours(spoiled_case):
    _, spoiled = spoiled_case
    cells = cells_of(spoiled)
    for budget in (1, 7, 40):
        sheet = build_sheet(cells, None, PAL, SheetConfig(max_tiles=budget))
        assert 1 <= len(sheet.tiles) <= budget
        assert sheet.labels.shape == (len(cells),) and sheet.labels.max() < len(sheet.tiles)
        assert colours_per_tile(sheet.tiles).max() <= 4
        assert sheet.counts.sum() == len(cells) and (sheet.counts > 0).all()


def test_with_palettes_4_the_sheet_uses_one_backdrop_and_at_most_4_sub_palettes(spoiled_case):
    _, spoiled = spoiled_case
    sheet = build_sheet(cells_of(spoiled), None, PAL, SheetConfig(max_tiles=30, palettes=4))
    assert sheet.backdrop is not None and len(sheet.subpalettes) <= 4
    for tile, sub in zip(sheet.tiles, sheet.tile_sub.tolist(), strict=True):
        assert set(np.unique(tile).tolist()) <= {sheet.backdrop, *sheet.subpalettes[sub]}
        assert len(sheet.subpalettes[sub]) <= 3
    # grouped by sub-palette, most used first within each
    assert (np.diff(sheet.tile_sub) >= 0).all()
    for s in range(len(sheet.subpalettes)):
        assert (np.diff(sheet.counts[sheet.tile_sub == s]) <= 0).all()
    assert sheet.patterns_8x8() <= 4 * len(sheet.tiles)


def test_orphan_rate_counts_pixels_unlike_all_four_neighbours():
    img = np.zeros((5, 5), np.uint8)
    img[2, 2] = 1  # one lone pixel among 9 interior ones
    assert orphan_rate([img]) == pytest.approx(1 / 9)
    img[2, 3] = 1  # now it has a like neighbour
    assert orphan_rate([img]) == 0


@pytest.mark.parametrize("max_tiles, palettes, says", [
    (-1, None, "--max-tiles must be 0"),
    (2, 4, "--max-tiles 2 is smaller than --palettes 4"),
    (0, 4, "--palettes needs a tile budget"),
    (16, 5, "--palettes must be 1–4"),
])
def test_impossible_budgets_are_refused_in_one_line(max_tiles, palettes, says):
    with pytest.raises(NesganError, match=says):
        SheetConfig(max_tiles=max_tiles, palettes=palettes)


@pytest.mark.parametrize("args, says", [
    (["--max-tiles", "-1"], "--max-tiles must be 0"),
    (["--max-tiles", "3", "--palettes", "4"], "smaller than --palettes 4"),
])
def test_cli_refuses_bad_budgets_before_reading_anything(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["export-tiles", *args])
    assert res.exit_code == 1 and says in res.output and res.output.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_build_tiles_with_a_budget_writes_a_sheet_the_map_rebuilds_from(tmp_path, spoiled_case):
    clean, spoiled = spoiled_case
    _save_screens(tmp_path / "gen", spoiled)
    _save_screens(tmp_path / "train", clean_screens(2, 1, seed=9))
    out = tmp_path / "tiles"
    report = build_tiles(TileConfig(tmp_path / "gen", tmp_path / "train", out, max_tiles=24, palettes=4))
    assert len(report.tiles) <= 24 and colours_per_tile(report.tiles).max() <= 4
    rebuilt = [report.tiles[ids].swapaxes(1, 2).reshape(224, 224) for _, ids in report.screens]
    assert report.differing == [int((r != q).sum()) for r, q in zip(rebuilt, report.quantized, strict=True)]
    assert report.orphan_rebuilt < report.orphan_quantized / 5
    rows = [json.loads(x) for x in (out / "tiles.jsonl").read_text().splitlines()]
    assert sum(r["count"] for r in rows) == len(spoiled) * 196
    assert all(1 <= len(r["members"]) <= 3 and len(r["palette"]) <= 4 for r in rows)
    shares = [json.loads(x) for x in (out / "rebuild.jsonl").read_text().splitlines()]
    assert [s["differing_pixels"] for s in shares] == report.differing
    picture = Image.open(out / "rebuild-diff.png")
    assert picture.width == 3 * 224 + 8 and (out / "sheet-000.png").exists()


def test_reexport_keeps_every_tile_id_and_pixels_and_prints_the_sheet_numbers(tmp_path, spoiled_case, monkeypatch):
    clean, spoiled = spoiled_case
    _save_screens(tmp_path / "gen", spoiled[:2])
    _save_screens(tmp_path / "train", clean_screens(2, 1, seed=9))
    monkeypatch.chdir(tmp_path)
    args = ["export-tiles", "--generated", "gen", "--train", "train", "--tmx", "level.tmx",
            "--max-tiles", "20", "--palettes", "4"]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "sub-palette(s)" in res.output and "% of pixels differ" in res.output
    first, count = _atlas("tilesets/nesgan.png"), _tilecount("tilesets/nesgan.ids.jsonl")
    again = CliRunner().invoke(cli, args)  # the same screens: the same sheet, nothing new
    assert again.exit_code == 0 and "(nesgan +0, nesgan-near-copies +0 new)" in again.output, again.output
    _save_screens(tmp_path / "gen", spoiled)  # more screens: a new vote, new tiles appended
    report = export_tiles(ExportConfig(generated=tmp_path / "gen", train=tmp_path / "train",
                                       tilesets_dir=tmp_path / "tilesets", tiles_dir=tmp_path / "tiles",
                                       tmx=tmp_path / "level.tmx", max_tiles=20, palettes=4))
    second = _atlas("tilesets/nesgan.png")
    differ = [i for i in range(count) if not np.array_equal(second[i], first[i])]
    assert differ == [], (count, differ, len(first), len(second))  # old ids keep their pixels
    assert report.new_tiles["nesgan"] >= 1  # the new vote drew some tiles differently: appended
    assert report.sheet["subpalettes"] <= 4 and report.tiles <= 20


def test_a_sheet_with_palettes_4_and_64_tiles_exports_to_the_nes_as_export_tiles_drew_it(tmp_path, spoiled_case,
                                                                                          monkeypatch):
    from nes_maps import decode_nametable
    from nesgan.nes.export import vertical_placement

    clean, spoiled = spoiled_case
    _save_screens(tmp_path / "gen", spoiled[:2])
    _save_screens(tmp_path / "train", clean_screens(2, 1, seed=9))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(cli, ["export-tiles", "--generated", "gen", "--train", "train", "--tmx", "level.tmx",
                                   "--max-tiles", "64", "--palettes", "4"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["export-nes", "level.tmx", "--out", "nes"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "nes"
    chr_data, pal = (out / "tiles.chr").read_bytes(), (out / "palette.pal").read_bytes()
    wide = np.concatenate([decode_nametable(p.read_bytes(), chr_data, pal)
                           for p in sorted(out.glob("screen-*.nam"))], axis=1)
    top = vertical_placement(224)[1]
    preview = np.asarray(Image.open("level.png").convert("RGB"))
    assert np.array_equal(PAL.to_rgb(wide[top : top + 224, :448]), preview)


def test_with_palettes_the_sheet_fits_one_nes_pattern_table_by_lowering_the_budget():
    from nesgan.tiles.sheet import PATTERN_TABLE, build_fitting_sheet

    rng = np.random.default_rng(4)
    colours = np.array([0x0F, 0x16, 0x27, 0x30], np.uint8)  # one backdrop + one sub-palette
    noise = colours[rng.integers(0, 4, (300, 16, 16))]  # every quarter its own pattern
    sheet, budget = build_fitting_sheet(noise, None, PAL, SheetConfig(200, 4))
    assert build_sheet(noise, None, PAL, SheetConfig(200, 4)).patterns_8x8() > PATTERN_TABLE
    assert sheet.patterns_8x8() < PATTERN_TABLE, "one pattern spare for the blank one export-nes may add"
    assert budget < 200 and len(sheet.tiles) <= budget
    assert len(sheet.tiles) > 50, "lowered only as far as needed"
    blocks = np.repeat(np.repeat(colours[rng.integers(0, 4, (300, 2, 2))], 8, 1), 8, 2)  # few patterns
    sheet, budget = build_fitting_sheet(blocks, None, PAL, SheetConfig(200, 4))
    assert budget == 200 and sheet.patterns_8x8() <= 4
    _, unbounded = build_fitting_sheet(noise, None, PAL, SheetConfig(200, None))
    assert unbounded == 200, "without shared sub-palettes there is no NES pattern table to fit"


def test_where_the_closest_members_cannot_fit_the_pattern_table_the_medoids_at_the_budget_do(monkeypatch):
    import nesgan.tiles.sheet as sheet_module
    from nesgan.patterns import Reference

    colours = np.array([0x0F, 0x16, 0x27, 0x30], np.uint8)
    flat = np.full((16, 16), 0x16, np.uint8)  # one 8×8 pattern
    busy = np.kron(colours[np.arange(16).reshape(4, 4) % 4], np.ones((4, 4), np.uint8))  # four
    busy[0, 0] = 0x16
    cells = np.stack([flat, busy])
    monkeypatch.setattr(sheet_module, "PATTERN_TABLE", 3)  # room for two patterns
    monkeypatch.setattr(sheet_module, "_closest_members", lambda cells, *a: np.array([1]))  # the busy one
    reference = Reference(cells)
    config = SheetConfig(1, 1)
    assert sheet_module.build_sheet(cells, np.array([10, 1]), PAL, config, reference=reference).patterns_8x8() > 2
    sheet, budget = sheet_module.build_fitting_sheet(cells, np.array([10, 1]), PAL, config, reference=reference)
    assert budget == 1 and np.array_equal(sheet.tiles[0], flat)


def test_the_summary_says_when_the_budget_was_lowered_to_fit_the_pattern_table():
    from nesgan.tiled.export import ExportReport

    def first_line(fitted):
        sheet = {"max_tiles": 200, "fitted": fitted, "cells": 300, "backdrop": 0x0F, "subpalettes": 4,
                 "max_colours": 4, "patterns_8x8": 250}
        return ExportReport(tiles=60, near_copies=0, new_tiles={"nesgan": 60}, changed_verdict=0,
                            sheet=sheet).summary_lines()[0]

    assert "budget 200, lowered to 62 to fit one NES pattern table" in first_line(62)
    assert "(budget 200, from 300 cells)" in first_line(200) and "lowered" not in first_line(None)


def test_with_the_training_art_the_sheet_is_the_seeding_whose_map_comes_closest_to_it():
    # three museum games' clean screens, every other one as the art and the rest as the screens
    # to draw: which rare cells keep a tile of their own depends on the k-means seeding
    from nesgan.patterns import Reference
    from nesgan.tiles.sheet import (
        SHEET_TRIES,
        TRY_CELLS,
        _fitting_sheet,
        _tries,
        build_fitting_sheet,
    )

    clean = clean_screens(3, 6, seed=3)
    reference = Reference(clean[::2])
    cells, _, counts = dedupe(cells_of(clean[1::2]))
    assert _tries(len(cells)) == SHEET_TRIES
    tried = [_fitting_sheet(cells, counts, PAL, SheetConfig(8, 4, seed), reference=reference)[0]
             for seed in range(SHEET_TRIES)]
    scores = [reference.cells_divergence(s.tiles, s.counts) for s in tried]
    assert max(scores) > min(scores) + 0.01, "the seedings differ here, so the choice is tested"
    sheet, budget = build_fitting_sheet(cells, counts, PAL, SheetConfig(8, 4), reference=reference)
    assert budget == 8
    assert np.array_equal(sheet.tiles, tried[int(np.argmin(scores))].tiles)
    again, _ = build_fitting_sheet(cells, counts, PAL, SheetConfig(8, 4), reference=reference)
    assert np.array_equal(again.tiles, sheet.tiles) and np.array_equal(again.labels, sheet.labels)
    # without the art there is nothing to choose by: the one seeding asked for
    plain, _ = build_fitting_sheet(cells, counts, PAL, SheetConfig(8, 4, 2))
    assert np.array_equal(plain.tiles, _fitting_sheet(cells, counts, PAL, SheetConfig(8, 4, 2))[0].tiles)
    # many cells: fewer tries, one from TRY_CELLS on (10,000 screens cost what they did)
    assert _tries(TRY_CELLS // 2) == 2 and _tries(TRY_CELLS) == 1 and _tries(10 * TRY_CELLS) == 1


def test_a_sheet_with_too_many_copies_is_drawn_again_with_whole_drawings_weighing_less(monkeypatch):
    # twelve of the art's drawings as they are (used once each) beside twelve new ones (the art's
    # cells with their halves swapped, used 3 times each): how much the whole drawings weigh
    # decides how many copies the 12-tile sheet shows
    import nesgan.tiles.sheet as sheet_module
    from nesgan.patterns import Reference
    from nesgan.tiles.sheet import DRAWING_WEIGHT, LIGHTER_DRAWINGS, build_fitting_sheet
    from nesgan.tiles.tile import partition_hashes

    clean = clean_screens(3, 6, seed=3)
    reference = Reference(clean)
    art, _, _ = dedupe(cells_of(clean))
    drawings = np.unique(partition_hashes(art))
    drawn = art[(art.reshape(len(art), -1) != art.reshape(len(art), -1)[:, :1]).any(1)]
    order = np.random.default_rng(0).permutation(len(drawn))
    swapped = np.concatenate([drawn[order[12:48], 8:], drawn[order[12:48], :8]], 1)
    new = swapped[~np.isin(partition_hashes(swapped), drawings)][:12]
    cells = np.concatenate([drawn[order[:12]], new])
    counts = np.array([1] * 12 + [3] * len(new))

    def share(tiles):  # the judge: tiles of two or more colours that are a training drawing
        flat = tiles.reshape(len(tiles), -1)
        return float(np.isin(partition_hashes(tiles), drawings)[(flat != flat[:, :1]).any(1)].mean())

    def sheet(weight=DRAWING_WEIGHT, copies=None):
        return build_fitting_sheet(cells, counts, PAL, SheetConfig(12, 4, drawing_weight=weight), drawings=drawings,
                                   reference=reference, copies=copies)[0]

    weights = (DRAWING_WEIGHT, *LIGHTER_DRAWINGS)
    shares = {w: share(sheet(w).tiles) for w in weights}
    assert shares[DRAWING_WEIGHT] > min(shares.values()), "the weight changes the copies here, so the choice is tested"
    asked = []

    def judge(tiles):
        asked.append(len(tiles))
        return share(tiles)

    # within the bound: the sheet as before, judged once
    monkeypatch.setattr(sheet_module, "COPY_SHARE", shares[DRAWING_WEIGHT])
    assert np.array_equal(sheet(copies=judge).tiles, sheet().tiles) and len(asked) == 1
    # over it: the first lighter weight whose sheet is within
    cap = (shares[DRAWING_WEIGHT] + min(shares.values())) / 2
    monkeypatch.setattr(sheet_module, "COPY_SHARE", cap)
    first = next(w for w in weights if shares[w] <= cap)
    assert np.array_equal(sheet(copies=judge).tiles, sheet(first).tiles)
    # none within: the sheet with the fewest copies
    monkeypatch.setattr(sheet_module, "COPY_SHARE", -1.0)
    fewest = min(weights, key=lambda w: shares[w])
    assert np.array_equal(sheet(copies=judge).tiles, sheet(fewest).tiles)


def test_export_judges_the_sheet_with_the_near_copy_verdicts_it_reports(tmp_path, spoiled_case, monkeypatch):
    # the copies bound must read the sheet as tiles.jsonl will: the same verdicts, the same share
    import nesgan.tiles.build as build_module
    from nesgan.tiles.nearcopy import copy_share

    clean, spoiled = spoiled_case
    _save_screens(tmp_path / "gen", spoiled)
    _save_screens(tmp_path / "train", clean)  # the art itself: many of the sheet's tiles copy it
    judges = []

    def spy(*args, copies=None, **kwargs):
        judges.append(copies)
        return real(*args, copies=copies, **kwargs)

    real = build_module.build_fitting_sheet
    monkeypatch.setattr(build_module, "build_fitting_sheet", spy)
    report = build_tiles(TileConfig(tmp_path / "gen", tmp_path / "train", tmp_path / "tiles", max_tiles=24,
                                    palettes=4))
    reported = copy_share(report.tiles, [r["verdict"] for r in report.rows])
    assert reported > 0, "near-copies here, so the judge is tested on them"
    assert len(judges) == 1 and judges[0] is not None
    assert judges[0](report.tiles) == reported
