"""Which of the museum's named drawings a tile sheet holds: a number behind "drawings one can name".

Each game of the embedded museum is drawn from named 16×16 metatiles (brick, question, pipe_top_l,
cloud_l, ladder, …; `nesgan.museum.synth.Game.metatile_names`). A level designer looking at a
sheet asks whether a brick, a `?` block or a pipe is in it. This module asks the same of the
tiles themselves: for every named drawing, the sheet tile nearest to it, read as partitions
(which pixels share a colour, as `nesgan.patterns` reads windows), so a recoloured tile counts:

    mismatch(drawing, tile) = 256 − the most pixels that agree under one relabelling

(a one-to-one map of the drawing's ≤ 4 colours onto the tile's). 0 is the drawing itself, in any
colours; a drawing is *held* within `near` pixels. Flat drawings (sky) are left out: every sheet
holds a fill. Only the embedded museum has names, so this reads the demo and the README's
pictures (`make pictures`), not a user's own screenshots.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np

CELL = 16
LABELS = 4  # an NES tile shows at most 4 colours
NEAR = 8  # pixels (3 % of a tile): "the same drawing" to the eye
_PERMS = np.array(list(itertools.permutations(range(LABELS))))  # (24, 4)


def partition(tiles: np.ndarray) -> np.ndarray:
    """(..., 16, 16) colour tiles (any integer colour code) → (..., 256) int8: each pixel's colour
    relabelled 0, 1, 2, … in order of first appearance (row-major)."""
    t = np.asarray(tiles)
    flat = t.reshape(-1, CELL * CELL)
    out = np.empty(flat.shape, dtype=np.int8)
    for i, row in enumerate(flat):
        _, first, inverse = np.unique(row, return_index=True, return_inverse=True)
        rank = np.argsort(np.argsort(first))  # colour → order of first appearance
        out[i] = rank[inverse]
    return out.reshape(t.shape[:-2] + (CELL * CELL,))


def mismatch(drawing: np.ndarray, tiles: np.ndarray) -> np.ndarray:
    """A partition (256,) against partitions (N, 256) → (N,) pixels that disagree under the best
    one-to-one relabelling; a tile of more than 4 colours never matches (256)."""
    tiles = np.asarray(tiles).reshape(-1, CELL * CELL)
    if len(tiles) == 0:
        return np.zeros(0, dtype=np.int64)
    legal = tiles.max(1) < LABELS
    t = np.where(legal[:, None], tiles, 0).astype(np.int64)
    d = np.asarray(drawing, dtype=np.int64)
    if d.max() >= LABELS:
        return np.full(len(tiles), CELL * CELL)
    counts = np.zeros((len(t), LABELS, LABELS), dtype=np.int64)  # (N, drawing label, tile label)
    np.add.at(counts, (np.arange(len(t))[:, None], d[None, :], t), 1)
    agree = counts[:, np.arange(LABELS), _PERMS].sum(-1).max(-1)  # (N,): best of the 24 maps
    return np.where(legal, CELL * CELL - agree, CELL * CELL)


@dataclass(frozen=True, eq=False)
class Named:
    """One named drawing of one museum game."""

    game: int
    kind: str  # the name without its game's number: "brick", "pipe_top_l", …
    drawing: np.ndarray  # (16, 16) pattern values 0-3
    rgb: np.ndarray  # (16, 16, 3) uint8 as the game paints it


def museum_drawings(seed: int = 0, games: int = 12) -> list[Named]:
    """The non-flat named metatiles of the museum `nesgan demo` serves (same seed and size)."""
    from nesgan.museum.synth import make_game

    out = []
    for g in range(games):
        game = make_game(seed, g)
        rgb = game.palette().rgb
        for name, drawing, role in zip(game.metatile_names, game.metatiles, game.metatile_role, strict=True):
            if drawing.min() == drawing.max():
                continue
            colours = np.array([game.backdrop, *game.subpalettes[int(role)]])
            out.append(Named(g, re.sub(r"_?\d+$", "", name), drawing, rgb[colours[drawing]].astype(np.uint8)))
    return out


@dataclass(frozen=True)
class Holding:
    """How near a sheet comes to each named drawing."""

    drawings: list[Named]
    nearest: np.ndarray  # (D,) index of the nearest sheet tile
    pixels: np.ndarray  # (D,) its mismatch

    def held(self, near: int = NEAR) -> int:
        return int(np.sum(self.pixels <= near))

    def kinds(self, near: int = NEAR) -> dict[str, tuple[int, int]]:
        """kind → (drawings held within `near`, drawings of that kind)."""
        out: dict[str, tuple[int, int]] = {}
        for d, px in zip(self.drawings, self.pixels, strict=True):
            held, total = out.get(d.kind, (0, 0))
            out[d.kind] = (held + int(px <= near), total + 1)
        return dict(sorted(out.items()))


def holding(tiles: np.ndarray, drawings: list[Named]) -> Holding:
    """Sheet tiles (N, 16, 16) in any integer colour code → the nearest tile to each drawing."""
    parts = partition(tiles) if len(tiles) else np.zeros((0, CELL * CELL), dtype=np.int8)
    nearest, pixels = [], []
    for d in drawings:
        m = mismatch(partition(d.drawing), parts)
        k = int(np.argmin(m)) if len(m) else -1
        nearest.append(k)
        pixels.append(int(m[k]) if len(m) else CELL * CELL)
    return Holding(drawings, np.array(nearest), np.array(pixels))


def seen_in(screens: np.ndarray, drawings: list[Named]) -> list[Named]:
    """The drawings that some 16×16 cell of `screens` (N, H, W colour codes, cut on the grid)
    shows exactly (any colours): what the training screens could teach."""
    from nesgan.patterns import screen_cells

    cells = screen_cells(screens).reshape(-1, CELL, CELL)
    keys = {p.tobytes() for p in partition(np.unique(cells.reshape(len(cells), -1), axis=0).reshape(-1, CELL, CELL))}
    return [d for d in drawings if partition(d.drawing).tobytes() in keys]


def colour_codes(rgb: np.ndarray) -> np.ndarray:
    """RGB (..., 3) → (...) int64, one integer a colour (0xRRGGBB), for `partition`."""
    a = np.asarray(rgb).astype(np.int64)
    return (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]


def sheet_tiles(atlas: np.ndarray, empty: tuple[int, int, int] = (255, 0, 255)) -> np.ndarray:
    """An RGB tileset atlas (H, W, 3), 16×16 tiles row by row → (N, 16, 16) colour codes,
    leaving out slots that are all `empty` (the TSX's transparent colour)."""
    code = colour_codes(atlas)
    h, w = code.shape[0] // CELL, code.shape[1] // CELL
    tiles = code[: h * CELL, : w * CELL].reshape(h, CELL, w, CELL).transpose(0, 2, 1, 3).reshape(-1, CELL, CELL)
    return tiles[~(tiles == colour_codes(np.array(empty))).all(axis=(1, 2))]
