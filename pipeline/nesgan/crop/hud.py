"""Status bars (HUDs): find the score/time/lives band of a game's screens, to crop around it.

A status bar is background like the level, but it does not scroll (a sprite-0 split or a second
nametable keeps it still), and it is written in 8×8 font tiles: one ink colour on one paper
colour, many different glyphs side by side. Level art is the opposite: it moves between
screenshots, and where it is still (the ground of an unscrolled level) it repeats one or two
tiles across the screen. So a band near the top or bottom edge is a status bar when:

1. its pixels are stable across a game's screenshots (the same colour in ≥ `STABLE_SHARE` of the
   shots that cover the pixel), measured on a common 256×240 canvas (a 256×224 shot is the
   frame minus 8 lines top and bottom, so it sits 8 rows down), when a game has at least
   `MIN_SHOTS` shots; a game with fewer, or whose shots share no bar (a folder that mixes
   games), is judged shot by shot on step 2 alone, more strictly;
2. one of its 8-row strips, within `EDGE_STRIPS` strips of the edge, holds at least
   `MIN_GLYPHS` distinct text-like 8×8 tiles: two or three colours (ink, maybe a drop shadow)
   on the strip's most common colour (the paper), with a paper row or column on one edge (the
   gap between letters), all in the same colours (one font), in a strip where at least a
   quarter of the tiles are blank paper (the spaces around words).

The band then runs from the edge to the furthest such strip, widened to the 16-px attribute
grid (a HUD owns whole attribute rows). Measured on the embedded museum, whose games put a
32-px status bar at the top or a panel at the bottom (`crop_bench`): see docs/benchmarks.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CANVAS_H, CANVAS_W = 240, 256  # the PPU frame every native shot is a part of
STRIP = 8  # font tiles are 8×8 nametable tiles
GRID = 16  # attribute rows: a status bar owns whole ones
EDGE_STRIPS = 6  # a status bar's text lies within 48 px of the top or bottom edge
STABLE_SHARE = 0.8  # a pixel is still when this share of the shots covering it agree
MIN_SHOTS = 3  # fewer shots of a game: each shot is judged alone (glyph statistics only)
MIN_GLYPHS = 5  # distinct text-like tiles a still strip needs (shortest museum labels: 5)
MIN_GLYPHS_ALONE = 6  # the same for one shot judged alone (its values are text too)
MIN_INK, MAX_INK = 4, 48  # ink (and shadow) pixels of a glyph tile, of 64: strokes, not a blob
SAMPLE = 64  # shots of a game the stability statistics read (evenly spread)


@dataclass(frozen=True)
class Hud:
    """Rows of one frame that hold a status bar: [0, top) and [bottom, height)."""

    top: int = 0
    bottom: int | None = None  # None: no bar at the bottom
    source: str = "none"  # "shots" (still across a game's shots), "glyphs" (one shot), "none"

    def rows(self, height: int) -> tuple[int, int]:
        """(rows at the top, rows at the bottom) of a frame `height` tall."""
        return self.top, 0 if self.bottom is None else height - self.bottom

    @property
    def found(self) -> bool:
        return self.top > 0 or self.bottom is not None


NO_HUD = Hud()


def placement(height: int, width: int) -> tuple[int, int]:
    """(row, column) where a native frame of this size sits on the 256×240 canvas: centred, as
    overscan trimming cuts both sides alike (256×224 shots are rows 8–231)."""
    return (CANVAS_H - height) // 2, (CANVAS_W - width) // 2


def _packed(rgb: np.ndarray) -> np.ndarray:
    a = rgb.astype(np.uint32)
    return (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]


def glyph_counts(image: np.ndarray, still: np.ndarray | None = None) -> np.ndarray:
    """(H, W) packed colours -> (H // 8,) distinct text-like 8×8 tiles per 8-row strip (tiles on
    columns ≡ 0 mod 8). `still`, a (H, W) bool, restricts them to tiles that are all still."""
    h, w = image.shape
    ns, nt = h // STRIP, w // STRIP
    tiles = image[: ns * STRIP, : nt * STRIP].reshape(ns, STRIP, nt, STRIP)
    tiles = tiles.transpose(0, 2, 1, 3).reshape(ns, nt, STRIP * STRIP)  # (strips, tiles, 64)
    ordered = np.sort(tiles, axis=2)
    colours = 1 + (ordered[..., 1:] != ordered[..., :-1]).sum(axis=2)  # (strips, tiles)
    flat = np.sort(tiles, axis=None)  # the paper: each strip's commonest colour
    uniq = flat[np.r_[True, flat[1:] != flat[:-1]]]
    inverse = np.searchsorted(uniq, tiles)  # np.unique(return_inverse=True) is ~10× slower
    counts = np.bincount((np.arange(ns)[:, None] * len(uniq) + inverse.reshape(ns, -1)).ravel(),
                         minlength=ns * len(uniq)).reshape(ns, len(uniq))
    paper = uniq[counts.argmax(axis=1)]  # (strips,)
    is_paper = tiles == paper[:, None, None]  # (strips, tiles, 64)
    ink = STRIP * STRIP - is_paper.sum(axis=2)  # (strips, tiles)
    grid = is_paper.reshape(ns, nt, STRIP, STRIP)
    margin = (grid[:, :, 0].all(-1) | grid[:, :, -1].all(-1)
              | grid[:, :, :, 0].all(-1) | grid[:, :, :, -1].all(-1))  # a gap beside the letter
    textlike = (colours >= 2) & (colours <= 3) & (ink >= MIN_INK) & (ink <= MAX_INK) & margin
    textlike &= ((ink == 0).sum(axis=1) >= nt // 4)[:, None]  # words have spaces between them
    if still is not None:
        textlike &= still[: ns * STRIP, : nt * STRIP].reshape(ns, STRIP, nt, STRIP).all(axis=(1, 3))
    # one font: count distinct glyphs among the tiles drawn in the same colours (≤ 3: min,
    # max and whatever else), distinct tiles by a polynomial hash of their 64 pixels
    lo, hi = ordered[..., 0], ordered[..., -1]
    mid = np.where((ordered != lo[..., None]) & (ordered != hi[..., None]), ordered, 0).max(axis=2)
    weights = np.random.default_rng(0).integers(1, 2**62, STRIP * STRIP, dtype=np.uint64) | np.uint64(1)
    with np.errstate(over="ignore"):
        shape = (tiles.astype(np.uint64) * weights).sum(axis=2)  # (strips, tiles)
    out = np.zeros(ns, dtype=int)
    for s in np.flatnonzero(textlike.any(axis=1)):
        by_colours: dict[tuple[int, int, int], set[int]] = {}
        for t in np.flatnonzero(textlike[s]):
            key = (int(lo[s, t]), int(mid[s, t]), int(hi[s, t]))
            by_colours.setdefault(key, set()).add(int(shape[s, t]))
        out[s] = max(len(v) for v in by_colours.values())
    return out


def _band(counts: np.ndarray, need: int, phase: int, height: int) -> tuple[int, int | None]:
    """Status bar rows [0, top) and [bottom, height) from per-strip glyph counts, widened to
    the 16-px grid whose rows start at y ≡ phase (mod 16)."""
    ns = len(counts)
    top, bottom = 0, None
    near_top = [s for s in range(min(EDGE_STRIPS, ns)) if counts[s] >= need]
    if near_top:
        end = (max(near_top) + 1) * STRIP
        top = min(height, end + (phase - end) % GRID)
    near_bottom = [s for s in range(max(0, ns - EDGE_STRIPS), ns) if counts[s] >= need]
    if near_bottom:
        start = min(near_bottom) * STRIP
        bottom = max(top, start - (start - phase) % GRID)
        if bottom >= height:
            bottom = None
    return top, bottom


def detect_alone(frame: np.ndarray, phase_y: int = 0) -> Hud:
    """A status bar in one (H, W, 3) frame by glyph statistics alone (no other shots)."""
    counts = glyph_counts(_packed(frame))
    top, bottom = _band(counts, MIN_GLYPHS_ALONE, phase_y % GRID, frame.shape[0])
    if top == 0 and bottom is None:
        return NO_HUD
    return Hud(top, bottom, "glyphs")


@dataclass(frozen=True)
class GameHud:
    """A game's status bar on the 256×240 canvas: rows [0, top) and [bottom, 240)."""

    top: int
    bottom: int | None

    def for_frame(self, frame: np.ndarray, phase_y: int = 0) -> Hud:
        """The bar's rows in one native frame of this game (`phase_y` is unused: the bar's
        place comes from the game's shots)."""
        h = frame.shape[0]
        oy = placement(*frame.shape[:2])[0]
        top = min(h, max(0, self.top - oy))
        bottom = None if self.bottom is None else max(top, self.bottom - oy)
        if bottom is not None and bottom >= h:
            bottom = None
        return Hud(top, bottom, "shots") if top or bottom is not None else NO_HUD


def game_hud(frames: list[np.ndarray], phases_y: list[int] | None = None) -> GameHud | None:
    """The status bar still across `frames` (≥ `MIN_SHOTS` native (H, W, 3) shots of one game,
    the first `SAMPLE` read), or None. `phases_y`: each frame's vertical grid phase."""
    phases = list(phases_y) if phases_y is not None else [_unscrolled_phase(f.shape[0]) for f in frames]
    frames, phases = frames[:SAMPLE], phases[:SAMPLE]
    if len(frames) < MIN_SHOTS:
        return None
    missing = np.uint32(0xFFFFFFFF)  # no 24-bit colour packs to this: sorts after every colour
    canvas = np.full((len(frames), CANVAS_H, CANVAS_W), missing, dtype=np.uint32)  # (N, 240, 256)
    for i, f in enumerate(frames):
        oy, ox = placement(*f.shape[:2])
        canvas[i, oy: oy + f.shape[0], ox: ox + f.shape[1]] = _packed(f)
    covered = (canvas != missing).sum(axis=0)  # (240, 256) shots that show each pixel
    ordered = np.sort(canvas, axis=0)
    middle = np.maximum(covered - 1, 0) // 2  # the median among the shots that show a pixel
    median = np.take_along_axis(ordered, middle[None], axis=0)[0]  # (240, 256)
    agree = (canvas == median[None]).sum(axis=0)
    still = (covered >= MIN_SHOTS) & (agree >= STABLE_SHARE * covered)
    # the canvas grid phase: each frame's phase moved by its placement; the commonest wins
    canvas_phase = Counter((p + placement(*f.shape[:2])[0]) % GRID
                           for p, f in zip(phases, frames, strict=True)).most_common(1)[0][0]
    top, bottom = _band(glyph_counts(median, still), MIN_GLYPHS, canvas_phase, CANVAS_H)
    return GameHud(top, bottom)


def hud_finder(frames: list[np.ndarray], phases_y: list[int] | None = None) -> Callable[[np.ndarray, int], Hud]:
    """How to find the status bar in any frame of the game these shots come from: the bar
    still across them, or, with fewer than `MIN_SHOTS` shots or no bar still across them (a
    game without one, or a folder mixing games), each frame's glyphs alone."""
    game = game_hud(frames, phases_y)
    if game is None or (game.top == 0 and game.bottom is None):
        return detect_alone  # few shots, or several games in one folder: each shot's glyphs
    return game.for_frame


def detect_shots(frames: list[np.ndarray], phases_y: list[int] | None = None) -> list[Hud]:
    """One `Hud` per native (H, W, 3) frame of one game (see the module doc). `phases_y`: the
    vertical grid phase found in each frame (default: that of an unscrolled frame)."""
    phases = list(phases_y) if phases_y is not None else [_unscrolled_phase(f.shape[0]) for f in frames]
    find = hud_finder(frames, phases)
    return [find(f, p) for f, p in zip(frames, phases, strict=True)]


def _unscrolled_phase(height: int) -> int:
    return (CANVAS_H - height) // 2 % GRID  # 224 lines: the grid sits 8 rows down


def choose_window(length: int, phase: int, hud: Hud, size: int) -> tuple[int, int, int]:
    """(start, bar rows left at the window's top, at its bottom) for a window of `size` rows
    in a frame `length` tall: among starts on the grid (start ≡ phase mod 16; every start when
    none is), the fewest status-bar rows inside, then nearest the centre of the rows between
    the bars, then the smaller start."""
    top = hud.top
    bottom = length if hud.bottom is None else hud.bottom
    slack = length - size
    starts = [s for s in range(slack + 1) if (s - phase) % GRID == 0] or list(range(slack + 1))
    centre = (top + bottom - size) / 2

    def inside(s: int) -> tuple[int, int]:
        return max(0, min(top, s + size) - s), max(0, s + size - max(bottom, s))

    best = min(starts, key=lambda s: (sum(inside(s)), abs(s - centre), s))
    return (best, *inside(best))
