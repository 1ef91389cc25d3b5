"""Contact sheets: each generated tile beside its nearest training tile, for checking by eye, and
the tile sheet's pages (`sheet-NNN.png`: each tile with its use count and a few cells it stands for).

Every entry shows the generated tile and its nearest training tile *as it matched*: mirrored the
way they match and recoloured by the best map from its colours onto the generated tile's
(`nearcopy.as_matched`), so the two look alike when they are — a palette swap shows in the same
colours, and a merge shows as two of the training tile's colours drawn in one. Enlarged by an integer factor with nearest-neighbour
pixels, above a bar coloured by verdict (red near-copy, grey trivial, green original), a white
line whose length grows with the distance (full at 64 px), and the tile id and distance in a 3×5
bitmap font. Pixels an occluded match (`--under-sprites`) did not count are hatched in magenta on
the training tile: there the sprite hides it. Near-copies come first, then originals from the closest up, then trivial tiles.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from nesgan.colour.palette import Palette
from nesgan.files import atomic_write_bytes
from nesgan.images import encode_png
from nesgan.tiles.tile import TILE

SCALE = 4  # 16 px tiles shown 64 px wide: pixels readable, 8 entries fit a 1200 px screen
COLUMNS = 8  # entries per sheet row
ROWS = 12  # sheet rows: 96 entries a sheet
MAX_SHEETS = 50  # 4,800 tiles; near-copies come first so they are always on a sheet
FONT_SCALE = 2
BAR_FULL = 64  # distance at which the bar is full width
_PAD = 6
_VERDICT_RGB = {"near_copy": (220, 40, 40), "trivial": (120, 120, 120), "original": (40, 170, 70)}
_BG = (24, 24, 28)
_HATCH = (255, 0, 255)  # lines over the pixels an occluded match did not count

# 3×5 glyphs, one string of 15 bits per character, rows top to bottom.
_GLYPHS = {
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001010010", "8": "111101111101111",
    "9": "111101111001111", "#": "101111101111101", "d": "001001111101111",
    " ": "000000000000000", "-": "000000111000000", "=": "000111000111000",
}


def draw_text(img: np.ndarray, x: int, y: int, text: str, rgb: tuple[int, int, int], scale: int = FONT_SCALE) -> None:
    """Draw `text` (digits, '#', 'd', ' ', '-', '=') into an (H, W, 3) image at (x, y), in place."""
    for ch in text:
        bits = np.array([int(b) for b in _GLYPHS.get(ch, _GLYPHS[" "])], dtype=bool).reshape(5, 3)
        glyph = np.kron(bits, np.ones((scale, scale), dtype=bool))  # (5s, 3s)
        h, w = glyph.shape
        region = img[y : y + h, x : x + w]
        region[glyph[: region.shape[0], : region.shape[1]]] = rgb
        x += 4 * scale


def _canvas(n: int, columns: int, cell_w: int, cell_h: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A blank sheet for n entries in rows of `columns` cells, and each entry's top-left (x, y)."""
    n_rows = -(-n // columns)
    img = np.empty((max(n_rows, 1) * cell_h + _PAD, columns * cell_w + _PAD, 3), np.uint8)
    img[:] = _BG
    return img, [(_PAD + c * cell_w, _PAD + r * cell_h) for r, c in (divmod(s, columns) for s in range(n))]


def _write_pages(tiles_dir: Path, stem: str, pages: list[list[int]],
                 render: Callable[[list[int]], np.ndarray]) -> list[Path]:
    """Write tiles_dir/<stem>-000.png, … one page per entry list; stale pages of an earlier run go."""
    tiles_dir.mkdir(parents=True, exist_ok=True)
    for old in tiles_dir.glob(f"{stem}-[0-9][0-9][0-9].png"):
        old.unlink()
    out = []
    for n, entries in enumerate(pages):
        path = tiles_dir / f"{stem}-{n:03d}.png"
        atomic_write_bytes(path, encode_png(render(entries)))
        out.append(path)
    return out


def _order(rows: list[dict]) -> list[int]:
    rank = {"near_copy": 0, "original": 1, "trivial": 2}

    def key(i: int) -> tuple:
        d = (rows[i].get("nearest") or {}).get("distance")
        return (rank.get(rows[i]["verdict"], 3), d if d is not None else 10**6, i)

    return sorted(range(len(rows)), key=key)


def render_sheet(entries: list[int], tiles: np.ndarray, nearest: np.ndarray | None, rows: list[dict],
                 palette: Palette, excused: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 sheet for the given tile ids; nearest[i] is tile i's nearest training tile,
    as it matched; excused[i] (16, 16) bool the pixels an occluded match did not count (hatched
    on the training tile: where the sprite hides it)."""
    t = TILE * SCALE
    text_h = 5 * FONT_SCALE
    img, corners = _canvas(len(entries), COLUMNS, 2 * t + 3 * _PAD, t + 4 * _PAD + text_h + 6)
    for i, (x0, y0) in zip(entries, corners, strict=True):
        row = rows[i]
        near = row.get("nearest") or {}
        gen = tiles[i]
        big = np.kron(palette.to_rgb(gen), np.ones((SCALE, SCALE, 1), np.uint8))  # (64, 64, 3)
        img[y0 : y0 + t, x0 : x0 + t] = big
        if nearest is not None and near.get("distance") is not None:
            src = nearest[i]  # already mirrored and recoloured the way it matched
            big = np.kron(palette.to_rgb(src), np.ones((SCALE, SCALE, 1), np.uint8))
            if excused is not None and excused[i].any():
                big[hatch_mask(excused[i])] = _HATCH
            img[y0 : y0 + t, x0 + t + _PAD : x0 + 2 * t + _PAD] = big
        d = near.get("distance")
        colour = _VERDICT_RGB.get(row["verdict"], (200, 200, 200))
        bar_y = y0 + t + _PAD
        full = 2 * t + _PAD
        length = full if d is None else max(2, int(round(full * min(d, BAR_FULL) / BAR_FULL)))
        img[bar_y : bar_y + 4, x0 : x0 + full] = colour  # the verdict, full width
        img[bar_y + 4 : bar_y + 6, x0 : x0 + length] = (235, 235, 235)  # the distance, as a length
        label = f"#{i} d{d if d is not None else '-'}"
        draw_text(img, x0, bar_y + 9, label, colour)
    return img


def hatch_mask(pixels: np.ndarray) -> np.ndarray:
    """(16, 16) bool -> (16·SCALE, 16·SCALE) bool: diagonal lines over the marked pixels."""
    big = np.kron(pixels, np.ones((SCALE, SCALE), bool))
    yy, xx = np.indices(big.shape)
    return big & ((yy + xx) % SCALE == 0)


def write_contact_sheets(tiles_dir: Path, tiles: np.ndarray, nearest: np.ndarray | None, rows: list[dict],
                         palette: Palette, excused: np.ndarray | None = None) -> list[Path]:
    """Write tiles_dir/contact-000.png, … (near-copies first); stale sheets of an earlier run go.

    tiles: (N, 16, 16) generated; nearest: (N, 16, 16) each one's nearest training tile as it
    matched (`nearcopy.Verdicts.shown`), or None; excused: (N, 16, 16) bool pixels an occluded
    match did not count (`nearcopy.Verdicts.excused`), hatched, or None.
    """
    order = _order(rows)
    per = COLUMNS * ROWS
    pages = [order[s : s + per] for s in range(0, min(len(order), per * MAX_SHEETS), per)]
    return _write_pages(tiles_dir, "contact", pages,
                        lambda entries: render_sheet(entries, tiles, nearest, rows, palette, excused))


MEMBER_SCALE = 2  # members shown 32 px wide beside the 64 px tile
MEMBER_COLUMNS = 6  # entries per row of a sheet-NNN.png


def render_member_sheet(entries: list[int], tiles: np.ndarray, rows: list[dict], members: list[np.ndarray],
                        palette: Palette) -> np.ndarray:
    """(H, W, 3) uint8: each sheet tile enlarged, its colours as swatches, its id and use count,
    and beside it up to three of the generated cells it stands for (the one it was drawn from, a
    typical one, the farthest)."""
    t, m = TILE * SCALE, TILE * MEMBER_SCALE
    text_h = 5 * FONT_SCALE
    img, corners = _canvas(len(entries), MEMBER_COLUMNS, t + m + 3 * _PAD,
                           max(t, 3 * m + 2 * 2) + 3 * _PAD + text_h + 8)
    for i, (x0, y0) in zip(entries, corners, strict=True):
        img[y0 : y0 + t, x0 : x0 + t] = np.kron(palette.to_rgb(tiles[i]), np.ones((SCALE, SCALE, 1), np.uint8))
        for k, cell in enumerate(members[i][:3]):
            yy = y0 + k * (m + 2)
            img[yy : yy + m, x0 + t + _PAD : x0 + t + _PAD + m] = np.kron(
                palette.to_rgb(cell), np.ones((MEMBER_SCALE, MEMBER_SCALE, 1), np.uint8))
        sy = y0 + max(t, 3 * m + 4) + _PAD // 2
        for k, colour in enumerate(rows[i].get("palette") or []):  # the tile's colours, backdrop first
            img[sy : sy + 6, x0 + 10 * k : x0 + 10 * k + 8] = palette.rgb[colour]
        colour = _VERDICT_RGB.get(rows[i].get("verdict"), (200, 200, 200))
        draw_text(img, x0, sy + 9, f"#{i} {int(rows[i]['count'])}", colour)
    return img


def write_member_sheets(tiles_dir: Path, tiles: np.ndarray, rows: list[dict], members: list[np.ndarray],
                        palette: Palette) -> list[Path]:
    """Write tiles_dir/sheet-000.png, …: the tile sheet in id order (by sub-palette, then use) with
    each tile's use count, colours and a few of its member cells; stale pages of an earlier run go."""
    per = MEMBER_COLUMNS * ROWS
    pages = [list(range(s, min(s + per, len(tiles)))) for s in range(0, min(len(tiles), per * MAX_SHEETS), per)]
    return _write_pages(tiles_dir, "sheet", pages,
                        lambda entries: render_member_sheet(entries, tiles, rows, members, palette))
