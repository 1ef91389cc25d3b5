"""nesgan.tiles.sprites (the sprite reading of `--under-sprites`: a training sprite, seen at some
pixel offset in a training screen, standing on a training tile) and the index it reads."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from nesgan.colour.palette import Palette
from nesgan.tiles import nearcopy
from nesgan.tiles import sprites as sp
from nesgan.tiles.occlusion import OcclusionSearch
from nesgan.tiles.tile import open_screen

PAL = Palette.builtin()
FOUR = np.array([0x0F, 0x16, 0x27, 0x30], np.uint8)  # the background's colours
BODY = np.array([0x11, 0x2B], np.uint8)  # the critter's own colours; its outline is 0x0F


@pytest.fixture(scope="module", autouse=True)
def cache(isolated_lut_cache):
    """Every test here builds LUTs in a private cache folder."""


def _tile(seed: int) -> np.ndarray:
    small = np.random.default_rng(seed).choice(FOUR, size=(4, 4))
    return np.kron(small, np.ones((4, 4), np.uint8)).astype(np.uint8)


def _critter(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(16, 16) colours and opaque mask: a speckled body in BODY colours, outlined in black (a
    colour the tiles use too, so the tile reading cannot tell the outline from the tile)."""
    yy, xx = np.indices((16, 16))
    body = ((yy - 8) ** 2 / 49 + (xx - 7.5) ** 2 / 36) <= 1.0
    rng = np.random.default_rng(seed)
    colours = np.where(rng.random((16, 16)) < 0.3, BODY[1], BODY[0]).astype(np.uint8)
    edge = body & ~(np.roll(body, 1, 0) & np.roll(body, -1, 0) & np.roll(body, 1, 1) & np.roll(body, -1, 1))
    colours[edge] = 0x0F
    return colours, body


def _draw(canvas: np.ndarray, sprite: tuple[np.ndarray, np.ndarray], x: int, y: int) -> np.ndarray:
    """The sprite drawn with its top-left at (x, y), clipped to the canvas; returns its mask."""
    colours, body = sprite
    mask = np.zeros(canvas.shape, bool)
    h, w = canvas.shape
    for r in range(16):
        for c in range(16):
            if body[r, c] and 0 <= y + r < h and 0 <= x + c < w:
                canvas[y + r, x + c] = colours[r, c]
                mask[y + r, x + c] = True
    return mask


TILES = [_tile(s) for s in range(30)]
HERO = _critter(1)
SPRITE_AT = (37, 21)  # where the hero stands in training screen a.png: off the 16-px grid


def _screen(ids: list[int]) -> np.ndarray:
    """A 224×224 screen: 14×14 cells of TILES, ids[i % len(ids)] row by row."""
    return np.block([[TILES[ids[(14 * r + c) % len(ids)]] for c in range(14)] for r in range(14)]).astype(np.uint8)


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> nearcopy.TileIndex:
    """Two training screens written as PNGs and indexed the way export-tiles indexes them; the
    hero stands in the first, at SPRITE_AT."""
    folder = tmp_path_factory.mktemp("train")
    a = _screen(list(range(25)))
    _draw(a, HERO, *SPRITE_AT)
    b = _screen([(i * 7) % 30 for i in range(25)])
    lines = []
    for name, img in (("a.png", a), ("b.png", b)):
        Image.fromarray(PAL.to_rgb(img)).save(folder / name)
        assert np.array_equal(open_screen(folder / name, PAL), img)  # colours survive the round trip
        lines.append(f'{{"path": "{name}", "grid_phase": [0, 0], "status": "ok"}}\n')
    (folder / "manifest.jsonl").write_text("".join(lines))  # the grid as the cropper records it
    return nearcopy.build_index(folder, PAL)


def _stood_on(tile: np.ndarray, sprite=HERO, dx: int = 3) -> tuple[np.ndarray, np.ndarray]:
    q = tile.copy()
    return q, _draw(q, sprite, dx, 0)


def test_block_codes_are_palette_free_and_flat_blocks_are_zero():
    img = np.random.default_rng(0).choice(FOUR, size=(9, 11)).astype(np.uint8)
    lut = np.arange(64, dtype=np.uint8)
    lut[FOUR] = [0x01, 0x2A, 0x0D, 0x36]
    assert np.array_equal(sp.block_codes(img), sp.block_codes(lut[img]))  # a recolouring: same codes
    codes = sp.block_codes(img)
    assert codes.shape == (7, 9)
    # equal codes <=> the two 3×3 blocks are the same drawing up to a one-to-one recolouring
    blocks = np.lib.stride_tricks.sliding_window_view(img, (3, 3)).reshape(-1, 9)
    for i, j in [(0, 1), (2, 30), (5, 5), (10, 40)]:
        same = len({(a, b) for a, b in zip(blocks[i], blocks[j], strict=True)}) == len(set(blocks[i])) == len(set(blocks[j]))
        assert (codes.ravel()[i] == codes.ravel()[j]) == same
    assert (sp.block_codes(np.full((5, 5), 0x21, np.uint8)) == 0).all()


def test_the_index_keeps_every_cell_so_the_training_screens_can_be_rebuilt(index):
    images, ids = sp.screen_images(index.tiles, index.cells, index.cell_screen, index.cell_xy, len(index.screens))
    a = _screen(list(range(25)))
    _draw(a, HERO, *SPRITE_AT)
    assert np.array_equal(images[index.screens.index("a.png")], a)
    assert len(ids[index.screens.index("b.png")]) == len({(i * 7) % 30 for i in range(25)})
    assert len(ids[index.screens.index("a.png")]) == 25 + 4  # and the four cells the hero stands on


def test_the_index_cache_round_trips_its_cells_and_an_index_without_them_is_rebuilt(index, tmp_path):
    path = tmp_path / "i.npz"
    nearcopy.save_index(index, path)
    back = nearcopy.load_index(path)
    assert back is not None
    for name in ("cells", "cell_screen", "cell_xy", "tiles"):
        assert np.array_equal(getattr(back, name), getattr(index, name))
    with np.load(path) as z:
        old = {k: z[k] for k in z.files if not k.startswith("cell")}
    np.savez(path, **old)  # an index of the old layout: no cells
    assert nearcopy.load_index(path) is None


def test_a_training_sprite_over_most_of_a_training_tile_is_flagged_and_says_where_the_sprite_was(index):
    tile = TILES[13]  # a tile of screen a.png, where the hero was seen
    query, body = _stood_on(tile)
    covered = body & (query != tile)
    assert covered.sum() > 48  # beyond the tile reading's reach (MAX_EXCUSED)
    assert not OcclusionSearch(index.tiles, 4).search(query[None]).matches[0]
    assert nearcopy.verdicts(index, query[None], 4).verdict == ["original"]
    v = nearcopy.verdicts(index, query[None], 4, occluded=True)
    assert v.verdict == ["near_copy"] and v.match == ["occluded"]
    assert np.array_equal(index.tiles[v.found.train_id[0]], tile)
    assert np.array_equal(v.excused[0], covered)  # exactly the sprite's pixels are not counted
    row = v.nearest_row(0, index)
    assert row["match"] == "occluded" and row["excused"] == int(covered.sum())
    # the training window that shows the sprite the same way: the hero's position, less dx
    assert row["sprite_from"] == {"screen": "a.png", "x": SPRITE_AT[0] - 3, "y": SPRITE_AT[1]}


def test_a_sprite_copy_is_found_under_every_flip_and_recolouring_of_the_tile(index):
    lut = np.arange(64, dtype=np.uint8)
    lut[[0x16, 0x27, 0x30]] = [0x2A, 0x0D, 0x36]  # the tile re-paletted (black stays: the outline's)
    query, body = _stood_on(lut[TILES[8][::-1]], dx=-4)  # upside down, recoloured, sprite at the left
    v = nearcopy.verdicts(index, query[None], 4, occluded=True)
    assert v.verdict == ["near_copy"] and v.match == ["occluded"]
    assert np.array_equal(index.tiles[v.found.train_id[0]], TILES[8])
    assert nearcopy.FLIPS[int(v.found.flip[0])] == "v"
    assert v.excused[0].sum() > 4 and not (v.excused[0] & ~body).any()


def test_a_sprite_training_never_showed_is_not_excused(index):
    query, _ = _stood_on(TILES[13], sprite=_critter(2))  # the same shape, another speckle
    stranger = query.copy()
    stranger[query == BODY[0]] = 0x1A  # and other colours: a critter of its own
    v = nearcopy.verdicts(index, stranger[None], 4, occluded=True)
    assert v.verdict == ["original"]


def test_a_training_sprite_over_a_tile_training_never_showed_is_not_flagged(index):
    new = _tile(99)
    assert nearcopy.verdicts(index, new[None], 4).found.distance[0] > 8  # far from every training tile
    query, _ = _stood_on(new)
    v = nearcopy.verdicts(index, query[None], 4, occluded=True)
    assert v.verdict == ["original"]


def test_a_window_found_elsewhere_does_not_explain_the_sprite_pixels(index, monkeypatch):
    """ANCHORED: the pixels only the window explains must lie where its blocks matched."""
    tile = TILES[13]
    query, body = _stood_on(tile)
    search = index.sprites(4)
    assert search is not None and search.read(query) is not None
    real = search.windows

    def far_away(q):  # the same windows, but as if found through blocks in the cell's far corner
        out = real(q)
        for w in out:
            w.anchor = np.zeros((16, 16), bool)
            w.anchor[13:, 13:] = True
        return out

    monkeypatch.setattr(search, "windows", far_away)
    assert search.read(query) is None


def test_without_the_screens_cells_only_the_tile_reading_runs():
    bare = nearcopy.TileIndex(tiles=np.stack(TILES), screen=np.zeros(30, np.int32), xy=np.zeros((30, 2), np.int32),
                              screens=["t.png"], fingerprint="test")
    assert bare.sprites(4) is None
    query, _ = _stood_on(TILES[13])
    assert nearcopy.verdicts(bare, query[None], 4, occluded=True).verdict == ["original"]


def test_two_training_halves_side_by_side_are_not_a_sprite_over_a_tile(tmp_path, monkeypatch):
    """A training screen shows tile Y's bottom half off the grid (as if a sprite); a cell made of
    tile A's top half and Y's bottom half is two training halves, not A under a sprite."""
    a = TILES[3]
    y = np.random.default_rng(5).choice(FOUR, size=(16, 16)).astype(np.uint8)  # a busy texture
    screen = _screen(list(range(25)))
    screen[160:176, 160:176] = y  # tile Y on the grid
    screen[72:80, 40:56] = y[8:]  # and its bottom half at an off-grid place
    folder = tmp_path / "train"
    folder.mkdir()
    Image.fromarray(PAL.to_rgb(screen)).save(folder / "a.png")
    (folder / "manifest.jsonl").write_text('{"path": "a.png", "grid_phase": [0, 0], "status": "ok"}\n')
    index = nearcopy.build_index(folder, PAL)
    collage = a.copy()
    collage[8:] = y[8:]
    assert nearcopy.verdicts(index, collage[None], 4).verdict == ["original"]  # neither tile alone
    assert nearcopy.verdicts(index, collage[None], 4, occluded=True).verdict == ["original"]
    monkeypatch.setattr(sp, "COLLAGES", False)  # without the check, Y's half passes for a sprite
    index = nearcopy.build_index(folder, PAL)
    v = nearcopy.verdicts(index, collage[None], 4, occluded=True)
    assert v.verdict == ["near_copy"] and v.excused[0][:8].sum() == 0
