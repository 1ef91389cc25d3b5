import numpy as np
import pytest

from nesgan.colour.palette import EMITTABLE, Palette
from nesgan.museum.synth import (
    THEMES,
    Frame,
    frame_rgb,
    frame_violations,
    game_title,
    make_game,
    make_games,
    render_frame,
    render_scrolled,
)

SEEDS_GAMES = [(seed, number) for seed in (0, 1, 7) for number in range(10)]  # 30 games
SHOTS = (0, 5, 11)


@pytest.fixture(scope="module")
def games():
    return [make_game(seed, number) for seed, number in SEEDS_GAMES]


@pytest.fixture(scope="module")
def background_frames(games):
    return [(g, render_frame(g, s, sprites=False)) for g in games for s in SHOTS]


def cell_colours(frame: Frame, row: int, col: int) -> set[int]:
    return set(np.unique(frame.indices[16 * row : 16 * row + 16, 16 * col : 16 * col + 16]).tolist())


def test_frame_has_the_ppu_shapes_and_types(games):
    f = render_frame(games[0], 0)
    assert f.indices.shape == (240, 256) and f.indices.dtype == np.uint8
    assert f.attributes.shape == (15, 16) and f.attributes.max() <= 3
    assert f.sprite_mask.shape == (240, 256) and f.sprite_mask.dtype == bool
    assert len(f.subpalettes) == 4 and all(len(sp) == 3 for sp in f.subpalettes)


def test_every_pixel_is_an_emittable_nes_colour_with_and_without_sprites(games):
    allowed = set(EMITTABLE.tolist())
    for g in games:
        assert {g.backdrop, *sum(g.subpalettes, ()), *sum(g.sprite_palettes, ())} <= allowed
        for s in SHOTS:
            for sprites in (True, False):
                assert set(np.unique(render_frame(g, s, sprites).indices).tolist()) <= allowed


def test_each_cell_shows_only_the_backdrop_and_its_own_subpalette(background_frames):
    for g, f in background_frames:
        assert not f.sprite_mask.any()
        for r in range(15):
            for c in range(16):
                legal = {f.backdrop, *f.subpalettes[f.attributes[r, c]]}
                assert cell_colours(f, r, c) <= legal, (g.title, r, c)
                assert len(cell_colours(f, r, c)) <= 4
        assert frame_violations(f) == []


def test_a_background_uses_at_most_13_colours(background_frames):
    for _, f in background_frames:
        assert len(np.unique(f.indices)) <= 13


def test_sprites_change_only_masked_pixels_and_stay_few(games):
    drew = 0
    for g in games[:10]:
        for s in SHOTS:
            with_sprites = render_frame(g, s, sprites=True)
            without = render_frame(g, s, sprites=False)
            changed = with_sprites.indices != without.indices
            assert not (changed & ~with_sprites.sprite_mask).any()
            assert np.array_equal(with_sprites.attributes, without.attributes)
            assert with_sprites.sprite_mask.sum() <= 4 * 16 * 16  # at most four 16×16 sprites
            drew += int(changed.any())
    assert drew > 0


def test_screens_look_like_levels_sky_above_ground_below(background_frames):
    bottom_busy = top_quiet = 0
    for _, f in background_frames:
        not_backdrop = f.indices != f.backdrop
        bottom_busy += not_backdrop[176:240].mean() > 0.3
        top_quiet += not_backdrop[32:112].mean() < 0.5
    n = len(background_frames)
    assert bottom_busy >= 0.8 * n and top_quiet >= 0.8 * n


def test_hud_band_holds_text_in_the_items_subpalette(background_frames):
    for g, f in background_frames:
        band = slice(16, 32) if g.hud_top else slice(216, 232)
        assert (f.attributes[band.start // 16] == 3).all()
        ink = set(np.unique(f.indices[band]).tolist()) - {f.backdrop}
        assert ink and ink <= set(f.subpalettes[3])


def test_same_seed_gives_identical_frames_and_another_seed_differs():
    a, b, c = make_game(3, 2), make_game(3, 2), make_game(4, 2)
    assert (a.title, a.backdrop, a.subpalettes) == (b.title, b.backdrop, b.subpalettes)
    assert a.chr_bytes() == b.chr_bytes()
    assert render_frame(a, 1).indices.tobytes() == render_frame(b, 1).indices.tobytes()
    assert render_frame(a, 1).indices.tobytes() != render_frame(c, 1).indices.tobytes()
    assert render_frame(a, 1).indices.tobytes() != render_frame(a, 2).indices.tobytes()


def test_games_differ_in_tiles_palettes_and_themes(games):
    chr_sets = [frozenset(t.tobytes() for t in g.chr) for g in games]
    palettes = [(g.backdrop, g.subpalettes) for g in games]
    for i in range(len(games)):
        for j in range(i + 1, len(games)):
            assert chr_sets[i] != chr_sets[j]
    assert len(set(palettes)) == len(games)
    museum = make_games(0, 8)
    assert {g.theme for g in museum} == set(THEMES)
    assert {g.palette_name for g in games} == {"2c02", "fceux"}


def test_titles_are_distinct_and_slugs_url_safe():
    museum = make_games(5, 300)  # more than the 256 word pairs: numbered sequels
    titles = [g.title for g in museum]
    assert len(set(titles)) == len(titles) == len({g.slug for g in museum})
    assert all(g.slug.isascii() and g.slug.isalnum() and g.slug.islower() for g in museum)
    assert game_title(5, 299) == museum[299].title


def test_metatiles_are_assembled_from_the_games_pattern_table(games):
    for g in games[:5]:
        assert len(g.chr) <= 256
        assert set(np.unique(g.chr).tolist()) <= {0, 1, 2, 3}
        built = g.chr[g.metatile_chr].transpose(0, 1, 3, 2, 4).reshape(-1, 16, 16)  # (M, 16, 16)
        assert np.array_equal(built, g.metatiles)


def test_chr_bytes_use_the_nes_two_plane_format(games):
    g = games[0]
    raw = np.frombuffer(g.chr_bytes(), dtype=np.uint8).reshape(-1, 16)  # 16 bytes a tile
    assert len(raw) == len(g.chr)
    bits = np.unpackbits(raw, axis=1).reshape(-1, 2, 8, 8)  # (N, plane, row, col), MSB left
    assert np.array_equal(bits[:, 0] | (bits[:, 1] << 1), g.chr)


def test_frame_rgb_renders_through_the_given_emulator_table(games):
    f = render_frame(games[0], 0)
    for name in ("2c02", "fceux"):
        pal = Palette.builtin(name)
        rgb = frame_rgb(f, pal)
        assert rgb.shape == (240, 256, 3) and rgb.dtype == np.uint8
        assert np.array_equal(rgb, pal.rgb[f.indices])
    assert not np.array_equal(frame_rgb(f, Palette.builtin("2c02")), frame_rgb(f, Palette.builtin("fceux")))


def test_negative_seeds_work_and_negative_game_numbers_are_refused():
    assert render_frame(make_game(-1, 0), 0).indices.shape == (240, 256)
    with pytest.raises(Exception, match="start at 0"):
        make_game(0, -1)


def test_scrolled_shots_keep_the_hud_and_shift_the_level_grid():
    g = make_game(2, 1)
    assert np.array_equal(render_scrolled(g, 4, 0), render_frame(g, 4).indices)
    for scroll in (5, 8, 77):
        out = render_scrolled(g, 4, scroll, sprites=False)
        level = slice(32, 240) if g.hud_top else slice(0, 208)
        hud = slice(0, 32) if g.hud_top else slice(208, 240)
        assert np.array_equal(out[hud], render_frame(g, 4, sprites=False).indices[hud])
        phase = (-scroll) % 16
        ahead = render_frame(g, 4 + 20_000, sprites=False)
        both = render_frame(g, 4, sprites=False)
        legal = [{both.backdrop, *both.subpalettes[p]} for p in range(4)]
        for y in range(level.start, level.stop, 16):
            for x in range(phase, 256 - 15, 16):
                colours = set(np.unique(out[y : y + 16, x : x + 16]).tolist())
                assert any(colours <= s for s in legal) and len(colours) <= 4
        assert not np.array_equal(out[level], both.indices[level])
        assert ahead.backdrop == both.backdrop


def test_violation_checker_passes_rendered_frames_and_names_what_breaks(games):
    f = render_frame(games[3], 2)  # with sprites: they are exempt
    assert frame_violations(f) == []
    bad = Frame(indices=f.indices.copy(), backdrop=f.backdrop, subpalettes=f.subpalettes,
                attributes=f.attributes, sprite_mask=np.zeros_like(f.sprite_mask))
    outside = next(c for c in EMITTABLE.tolist()
                   if c not in {f.backdrop, *f.subpalettes[f.attributes[14, 15]]})
    bad.indices[232, 250] = outside
    bad.indices[0, 0] = 0x0D
    found = frame_violations(bad)
    assert any("not emittable" in p for p in found)
    assert any(p.startswith("cell (14, 15)") for p in found) and any(p.startswith("cell (0, 0)") for p in found)
