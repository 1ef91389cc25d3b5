"""crop/hud.py: status bars found on the embedded museum's games, and windows chosen around them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nesgan.crop.frame import crop_image
from nesgan.crop.hud import NO_HUD, Hud, choose_window, detect_alone, detect_shots
from nesgan.crop.screens import MANIFEST, CropConfig, crop_folder
from nesgan.files import read_jsonl

site = pytest.importorskip("nesgan.museum.site")


def truth(game, height: int) -> tuple[int, int]:
    """(bar rows at the top, at the bottom) of a museum frame `height` tall: the top bar owns
    cell rows 0–1 (32 px), the bottom panel rows 13–14; a 224-line shot is rows 8–231."""
    cut = (240 - height) // 2
    return (32 - cut, 0) if game.hud_top else (0, 32 - cut)


@pytest.fixture(scope="module")
def museum_raw(tmp_path_factory):
    """A scraped-looking folder of museum shots (one folder per game) and its truth."""
    museum = site.Museum(games=14, screens_per_game=8, seed=5, scroll_rate=0.4)
    games = {g.slug: g for g in museum.games}
    src = tmp_path_factory.mktemp("raw")
    for path in museum.screenshot_urls():
        e = museum.exhibit(path)
        (src / e.game).mkdir(exist_ok=True)
        (src / e.game / path.rsplit("/", 1)[1]).write_bytes(museum.get("/" + path)[1])
    return museum, games, src


def test_status_bars_of_museum_games_are_found_in_at_least_95_percent_of_shots(museum_raw, tmp_path):
    museum, games, src = museum_raw
    crop_folder(CropConfig(src=src, out=tmp_path / "screens"))
    rows = [r for r in read_jsonl(tmp_path / "screens" / MANIFEST) if r["status"] in ("ok", "duplicate")]
    assert len(rows) >= 90
    right = 0
    for r in rows:
        game = games[r["file"].split("/")[0]]
        h = r["height"] // (r["scale"] or 1)
        right += tuple(r["hud_rows"] or (0, 0)) == truth(game, h)
    assert right / len(rows) >= 0.95, f"{right} of {len(rows)}"
    assert {r["hud_source"] for r in rows} == {"shots"}


def test_the_window_keeps_the_level_and_wipes_only_the_bar_rows_it_cannot_avoid(museum_raw, tmp_path):
    museum, games, src = museum_raw
    crop_folder(CropConfig(src=src, out=tmp_path / "screens"))
    seen = set()
    for r in read_jsonl(tmp_path / "screens" / MANIFEST):
        if r["status"] != "ok" or r["scale"] != 1:
            continue
        game = games[r["file"].split("/")[0]]
        with Image.open(src / r["file"]) as img:
            img.seek(0)
            frame = np.asarray(img.convert("RGB"))
        crop = np.asarray(Image.open(tmp_path / "screens" / r["path"]).convert("RGB"))
        left, top, right, bottom = r["box"]
        window = frame[top:bottom, left:right]
        wipe_top, wipe_bottom = r["hud_wiped"]
        # the level rows are the frame's own pixels; the wiped rows are one colour: no text
        assert np.array_equal(crop[wipe_top: 224 - wipe_bottom], window[wipe_top: 224 - wipe_bottom])
        for band in (crop[:wipe_top], crop[224 - wipe_bottom:]):
            if len(band):
                assert len(np.unique(band.reshape(-1, 3), axis=0)) == 1
        height = frame.shape[0]
        if height == 240:  # a full frame: the window moves off the bar as far as the grid allows
            assert (top, bottom) == ((16, 240) if game.hud_top else (0, 224))
            assert (wipe_top, wipe_bottom) == ((16, 0) if game.hud_top else (0, 16))
        seen.add((height, game.hud_top))
    assert seen == {(240, True), (240, False), (224, True), (224, False)}


def test_hud_keep_crops_as_before_and_records_no_bar(museum_raw, tmp_path):
    _museum, _games, src = museum_raw
    crop_folder(CropConfig(src=src, out=tmp_path / "screens", hud="keep"))
    rows = [r for r in read_jsonl(tmp_path / "screens" / MANIFEST) if r["status"] == "ok"]
    assert rows and all(r["hud_rows"] is None and r["hud_wiped"] is None for r in rows)
    assert all(r["box"][1] == 0 for r in rows)  # 240 lines: offsets 0 and 16 tie, the smaller


def test_one_shot_alone_is_judged_by_its_glyphs(museum_raw):
    museum, games, _src = museum_raw
    right = total = 0
    for g in museum.games:
        for shot in range(4):
            frame = g.palette().to_rgb(site.render_frame(g, shot).indices)  # (240, 256, 3)
            hud = detect_alone(frame)
            right += hud.rows(240) == truth(g, 240)
            total += 1
    assert right / total >= 0.95, f"{right} of {total}"
    r = crop_image(Image.fromarray(frame))  # crop_image looks for glyphs by default
    assert r.hud_source == "glyphs" and r.hud_rows == truth(g, 240)


def test_level_shots_without_a_bar_get_none(museum_raw):
    museum, _games, _src = museum_raw
    g = museum.games[0]
    frames = []
    for shot in range(6):  # the level part only, scrolled: no bar anywhere
        full = g.palette().to_rgb(site.render_scrolled(g, shot, 37 * shot))
        frames.append(full[32:] if g.hud_top else full[:208])
    frames = [np.concatenate([f, f[: 240 - len(f)]]) for f in frames]  # back to 240 lines
    assert detect_shots(frames) == [NO_HUD] * 6


def test_choose_window_moves_off_a_bar_on_the_grid_and_reports_the_rows_left():
    assert choose_window(240, 0, NO_HUD, 224) == (0, 0, 0)  # as before: a tie, the smaller
    assert choose_window(240, 0, Hud(16), 224) == (16, 0, 0)  # a 16-px bar: left out entirely
    assert choose_window(240, 0, Hud(32), 224) == (16, 16, 0)  # 32 px: half of it cannot go
    assert choose_window(240, 0, Hud(0, 224), 224) == (0, 0, 0)
    assert choose_window(240, 0, Hud(0, 208), 224) == (0, 0, 16)
    assert choose_window(224, 8, Hud(24), 224) == (0, 24, 0)  # 224 lines: no choice at all
    assert choose_window(240, 4, Hud(8), 224) == (4, 4, 0)  # grid first: 4 or 20 > 16 slack


def test_a_folder_mixing_games_falls_back_to_each_shots_glyphs(museum_raw, tmp_path):
    _museum, games, src = museum_raw
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for p in sorted(src.rglob("*.*")):
        (mixed / p.name).write_bytes(p.read_bytes())
    crop_folder(CropConfig(src=mixed, out=tmp_path / "screens"))
    rows = [r for r in read_jsonl(tmp_path / "screens" / MANIFEST) if r["status"] in ("ok", "duplicate")]
    right = sum(tuple(r["hud_rows"] or (0, 0)) == truth(games[r["file"].rsplit("-", 1)[0]],
                                                          r["height"] // (r["scale"] or 1))
                for r in rows)
    assert right / len(rows) >= 0.95, f"{right} of {len(rows)}"
