"""Procedural 16×16 metatiles, an 8×8 font and sprite critters for the synthetic NES games.

Every drawing is a small uint8 array of 2-bit *pattern values* 0–3, exactly what CHR stores:
0 shows the shared backdrop ($3F00), 1–3 the three colours of whichever background sub-palette
the 16×16 cell's attribute picks. Colours are chosen later (synth.py), so one drawing can be
painted with a game's overworld, underground or castle palettes. Drawings are randomised by the
caller's `numpy.random.Generator`, which is how two games get different tile sets.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# Sub-palette roles: a metatile's role is the number of the background sub-palette it uses.
TERRAIN, FOLIAGE, SKY, ITEMS = 0, 1, 2, 3

Pieces = list[tuple[str, np.ndarray]]  # (name, (16, 16) uint8 pattern values 0–3)

# A 5×7 font in 8×8 cells, rows top to bottom, 1 = ink.
_FONT_5X7 = {
    "A": "01110 10001 10001 11111 10001 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11110 10001 10001 10001 10001 10001 11110",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 10001 01010 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    "x": "00000 00000 10001 01010 00100 01010 10001",
    "?": "01110 10001 00001 00010 00100 00000 00100",
    "!": "00100 00100 00100 00100 00100 00000 00100",
    ".": "00000 00000 00000 00000 00000 01100 01100",
    ":": "00000 01100 01100 00000 01100 01100 00000",
    " ": "00000 00000 00000 00000 00000 00000 00000",
}
FONT_CHARS = "".join(_FONT_5X7)


def glyph_ink(char: str) -> np.ndarray:
    """(7, 5) bool ink of one font character."""
    rows = _FONT_5X7[char].split()
    return np.array([[c == "1" for c in row] for row in rows], dtype=bool)


def glyph_tile(char: str, ink: int = 3, paper: int = 0, shadow: int | None = None) -> np.ndarray:
    """(8, 8) pattern tile of one character: 5×7 ink at (1, 0), optional drop shadow at (+1, +1)."""
    t = np.full((8, 8), paper, dtype=np.uint8)
    g = np.zeros((8, 8), dtype=bool)
    g[0:7, 1:6] = glyph_ink(char)
    if shadow is not None:
        s = np.zeros((8, 8), dtype=bool)
        s[1:8, 2:7] = g[0:7, 1:6]
        t[s & ~g] = shadow
    t[g] = ink
    return t


# ---- helpers -------------------------------------------------------------------------------


def _bevel(t: np.ndarray, light: int = 3, dark: int = 1, width: int = 1) -> np.ndarray:
    """Lit top/left edges, shaded bottom/right edges, in place."""
    for k in range(width):
        t[k, k : 16 - k] = light
        t[k : 16 - k, k] = light
        t[15 - k, k : 16 - k] = dark
        t[k : 16 - k, 15 - k] = dark
    return t


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of `mask` with a 4-neighbour outside it (the image border counts as outside)."""
    p = np.pad(mask, 1, constant_values=False)
    inner = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return mask & ~inner


def _blob(rng: np.random.Generator, width: int, flat_bottom: bool) -> np.ndarray:
    """(16, width) bool union of 2–4 discs: a cloud (floating) or a bush (standing)."""
    yy, xx = np.mgrid[0:16, 0:width]
    mask = np.zeros((16, width), dtype=bool)
    n = int(rng.integers(2, 5))
    for i in range(n):
        cx = (i + 0.5) * width / n + rng.uniform(-1.5, 1.5)
        r = rng.uniform(5.0, 7.5) if i in (0, n - 1) else rng.uniform(6.5, 8.5)
        cy = (16.0 if flat_bottom else 9.0) - (0 if flat_bottom else rng.uniform(0, 2))
        mask |= (xx - cx) ** 2 + ((yy - cy) * (1.0 if flat_bottom else 1.3)) ** 2 <= r * r
    mask[:, 0] = mask[:, -1] = False  # keep a gap so neighbouring blobs read as two
    return mask


def _shade_blob(mask: np.ndarray, rng: np.random.Generator, cloud: bool) -> np.ndarray:
    t = np.zeros(mask.shape, dtype=np.uint8)
    t[mask] = 3 if cloud else 2
    if cloud:
        low = np.zeros_like(mask)
        low[11:, :] = True
        t[mask & low] = 2
    else:  # leafy highlights
        spots = rng.random(mask.shape) < 0.12
        t[mask & spots] = 3
    t[_outline(mask)] = 1
    return t


def _speckle(rng: np.random.Generator, base: int, p1: float, p3: float) -> np.ndarray:
    t = np.full((16, 16), base, dtype=np.uint8)
    r = rng.random((16, 16))
    t[r < p1] = 1
    t[r > 1 - p3] = 3
    return t


def _profile(width: int, rng: np.random.Generator) -> np.ndarray:
    """Column shading of a pipe (left lit, right shaded), length `width`."""
    p = np.full(width, 2, dtype=np.uint8)
    p[0] = p[-1] = 1
    hl = int(rng.integers(2, 4))
    p[hl : hl + int(rng.integers(2, 5))] = 3
    p[-int(rng.integers(3, 6)) : -1] = 1
    if rng.random() < 0.5:  # a second thin highlight stripe
        p[width // 2 - 2] = 3
    return p


# ---- metatile drawings: each returns [(name, (16, 16) uint8)] ------------------------------


def sky(rng: np.random.Generator) -> Pieces:
    return [("sky", np.zeros((16, 16), dtype=np.uint8))]


def stars(rng: np.random.Generator) -> Pieces:
    t = np.zeros((16, 16), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 3))):
        y, x = rng.integers(1, 15, size=2)
        t[y, x] = 3
        if rng.random() < 0.5:
            t[y - 1, x] = t[y + 1, x] = t[y, x - 1] = t[y, x + 1] = 1
    return [("stars", t)]


def brick(rng: np.random.Generator) -> Pieces:
    bh = int(rng.choice([4, 8]))
    bw = int(rng.choice([8, 16]))
    lit = rng.random() < 0.7
    t = np.full((16, 16), 2, dtype=np.uint8)
    for course, y0 in enumerate(range(0, 16, bh)):
        t[y0, :] = 1
        off = (course % 2) * (bw // 2)
        joints = [(off + k * bw) % 16 for k in range(16 // bw + 1)]
        for x in joints:
            t[y0 : y0 + bh, x] = 1
        if lit and bh > 2:
            row = t[y0 + 1]
            row[row == 2] = 3
    return [("brick", t)]


def stone(rng: np.random.Generator) -> Pieces:
    style = rng.choice(["bevel", "rivet", "cracked", "quad"])
    t = np.full((16, 16), 2, dtype=np.uint8)
    if style == "quad":  # four 8×8 bevelled blocks
        for y0 in (0, 8):
            for x0 in (0, 8):
                q = t[y0 : y0 + 8, x0 : x0 + 8]
                q[0, :] = 3
                q[:, 0] = 3
                q[7, :] = 1
                q[:, 7] = 1
    else:
        _bevel(t, width=int(rng.integers(1, 3)))
    if style == "rivet":
        for y, x in ((3, 3), (3, 12), (12, 3), (12, 12)):
            t[y, x] = 1
            t[y - 1, x - 1] = 3
    if style == "cracked":
        y, x = int(rng.integers(3, 7)), int(rng.integers(4, 12))
        for _ in range(8):
            t[y, x] = 1
            y, x = min(y + 1, 13), int(np.clip(x + rng.integers(-1, 2), 2, 13))
    return [("stone", t)]


def ground(rng: np.random.Generator) -> Pieces:
    style = rng.choice(["speckle", "blocks", "strata"])
    if style == "speckle":
        t = _speckle(rng, 2, rng.uniform(0.06, 0.18), rng.uniform(0.0, 0.05))
    elif style == "blocks":
        t = np.full((16, 16), 2, dtype=np.uint8)
        t[0, :] = 3
        t[:, 0] = 3
        t[8, :] = 1
        t[0:8, 9] = 1
        t[8:16, 4] = 1
        t[15, :] = 1
    else:
        t = np.full((16, 16), 2, dtype=np.uint8)
        phase = rng.uniform(0, 2 * np.pi)
        for k, y0 in enumerate((3, 8, 13)):
            ys = (y0 + np.round(np.sin(np.arange(16) * 2 * np.pi / 16 + phase + k)).astype(int)) % 16
            t[ys, np.arange(16)] = 1
        t[rng.random((16, 16)) < 0.04] = 3
    return [("ground", t)]


def ground_top(rng: np.random.Generator) -> Pieces:
    t = _speckle(rng, 2, rng.uniform(0.05, 0.15), 0.0)
    heights = rng.integers(2, 6, size=16)
    heights = np.maximum(heights, np.roll(heights, 1) - 1)  # blades lean on each other
    for x in range(16):
        t[: heights[x], x] = 3
        t[heights[x], x] = 1
    t[0, rng.random(16) < 0.3] = 0  # ragged grass tips show the sky
    return [("ground_top", t)]


def question(rng: np.random.Generator) -> Pieces:
    t = np.full((16, 16), 2, dtype=np.uint8)
    t[0, :] = t[15, :] = t[:, 0] = t[:, 15] = 1
    for y, x in ((2, 2), (2, 13), (13, 2), (13, 13)):
        t[y, x] = 1
    char = str(rng.choice(["?", "!"]))
    g = np.zeros((16, 16), dtype=bool)
    g[4:11, 5:10] = glyph_ink(char)
    sh = np.zeros_like(g)
    sh[5:12, 6:11] = g[4:11, 5:10]
    t[sh & ~g] = 1
    t[g] = 3
    return [("question", t)]


def coin(rng: np.random.Generator) -> Pieces:
    yy, xx = np.mgrid[0:16, 0:16]
    rx, ry = rng.uniform(3.0, 4.5), rng.uniform(5.0, 6.5)
    mask = ((xx - 7.5) / rx) ** 2 + ((yy - 7.5) / ry) ** 2 <= 1.0
    t = np.zeros((16, 16), dtype=np.uint8)
    t[mask] = 3
    t[mask & (np.abs(xx - 7.5) < 1)] = 2
    t[_outline(mask)] = 1
    return [("coin", t)]


def ladder(rng: np.random.Generator) -> Pieces:
    t = np.zeros((16, 16), dtype=np.uint8)
    a = int(rng.integers(1, 4))
    for x0 in (a, 14 - a):
        t[:, x0] = 3
        t[:, x0 + 1] = 1
    gap = int(rng.choice([4, 8]))
    for y in range(int(rng.integers(1, gap)), 16, gap):
        t[y, a + 2 : 14 - a] = 2
        t[y + 1 if y < 15 else y, a + 2 : 14 - a] = 1
    return [("ladder", t)]


def pipe(rng: np.random.Generator) -> Pieces:
    lip = _profile(32, rng)
    body = _profile(28, rng)
    top = np.tile(lip, (16, 1))
    top[0, :] = 1
    top[-1, :] = 1
    top[1, 1:-1] = np.where(top[1, 1:-1] == 1, 1, 3) if rng.random() < 0.5 else top[1, 1:-1]
    bot = np.zeros((16, 32), dtype=np.uint8)
    bot[:, 2:30] = body
    return [("pipe_top_l", top[:, :16]), ("pipe_top_r", top[:, 16:]),
            ("pipe_l", bot[:, :16]), ("pipe_r", bot[:, 16:])]


def cloud(rng: np.random.Generator) -> Pieces:
    t = _shade_blob(_blob(rng, 32, flat_bottom=False), rng, cloud=True)
    return [("cloud_l", t[:, :16]), ("cloud_r", t[:, 16:])]


def bush(rng: np.random.Generator) -> Pieces:
    t = _shade_blob(_blob(rng, 32, flat_bottom=True), rng, cloud=False)
    return [("bush_l", t[:, :16]), ("bush_r", t[:, 16:])]


def _waves(rng: np.random.Generator, crest: bool) -> np.ndarray:
    t = np.full((16, 16), 2, dtype=np.uint8)
    x = np.arange(16)
    if crest:
        period = int(rng.choice([8, 16]))
        ys = 4 + np.round(2 * np.sin(2 * np.pi * x / period + rng.uniform(0, 2 * np.pi))).astype(int)
        for xi, y in zip(x, ys, strict=True):
            t[:y, xi] = 0
            t[y, xi] = 3
    for _ in range(int(rng.integers(3, 7))):  # ripples
        y, x0 = int(rng.integers(7 if crest else 1, 15)), int(rng.integers(0, 12))
        t[y, x0 : x0 + int(rng.integers(2, 5))] = int(rng.choice([1, 3]))
    return t


def water(rng: np.random.Generator) -> Pieces:
    return [("water_top", _waves(rng, True)), ("water", _waves(rng, False))]


def lava(rng: np.random.Generator) -> Pieces:
    t = _waves(rng, True)
    t[(t == 2) & (rng.random((16, 16)) < 0.15)] = 1
    return [("lava", t)]


def battlement(rng: np.random.Generator) -> Pieces:
    t = brick(rng)[0][1].copy()
    w = int(rng.choice([4, 8]))
    depth = int(rng.integers(4, 8))
    for x0 in range(0, 16, 2 * w):
        t[:depth, x0 + w : x0 + 2 * w] = 0
    t[depth, :] = 1
    return [("battlement", t)]


def window(rng: np.random.Generator) -> Pieces:
    t = stone(rng)[0][1].copy()
    yy, xx = np.mgrid[0:16, 0:16]
    half = rng.uniform(2.5, 4.0)
    arch = (np.abs(xx - 7.5) <= half) & (yy >= 4) & (yy <= 13)
    arch &= ~((yy < 4 + half) & ((xx - 7.5) ** 2 + (yy - 4 - half) ** 2 > half * half))
    t[arch] = 1
    t[_outline(arch) & (yy < 8)] = 3 if rng.random() < 0.5 else 1
    return [("window", t)]


def column(rng: np.random.Generator) -> Pieces:
    m = int(rng.integers(1, 4))
    p = np.zeros(16, dtype=np.uint8)
    p[m : 16 - m] = 2
    p[m] = p[15 - m] = 1
    p[m + 1 : m + 3] = 3
    p[12 - m : 15 - m] = 1
    t = np.tile(p, (16, 1))
    if rng.random() < 0.5:  # fluting
        t[:, 8] = 1
    return [("column", t)]


def trunk(rng: np.random.Generator) -> Pieces:
    t = np.zeros((16, 16), dtype=np.uint8)
    a = int(rng.integers(4, 6))
    t[:, a : 16 - a] = 2
    t[:, a] = t[:, 15 - a] = 1
    t[(rng.random((16, 16)) < 0.12) & (t == 2)] = 1
    return [("trunk", t)]


def leaves(rng: np.random.Generator) -> Pieces:
    t = _speckle(rng, 2, 0.15, 0.2)
    t[:, 0][rng.random(16) < 0.5] = 0
    t[:, 15][rng.random(16) < 0.5] = 0
    return [("leaves", t)]


def seaweed(rng: np.random.Generator) -> Pieces:
    t = np.zeros((16, 16), dtype=np.uint8)
    for x0 in rng.choice(np.arange(2, 14), size=int(rng.integers(2, 4)), replace=False):
        phase = rng.uniform(0, 2 * np.pi)
        top = int(rng.integers(0, 8))
        for y in range(top, 16):
            x = int(np.clip(x0 + round(1.5 * np.sin(y / 2.5 + phase)), 0, 15))
            t[y, x] = 3 if y % 3 else 2
            if x + 1 < 16:
                t[y, x + 1] = 1
    return [("seaweed", t)]


def hud_panel(rng: np.random.Generator) -> Pieces:
    return [("hud_panel", np.ones((16, 16), dtype=np.uint8))]


# name of a drawing -> (sub-palette role, drawing function)
DRAWINGS: dict[str, tuple[int, Callable[[np.random.Generator], Pieces]]] = {
    "sky": (SKY, sky),
    "stars": (SKY, stars),
    "cloud": (SKY, cloud),
    "water": (SKY, water),
    "brick": (TERRAIN, brick),
    "stone": (TERRAIN, stone),
    "ground": (TERRAIN, ground),
    "ground_top": (TERRAIN, ground_top),
    "battlement": (TERRAIN, battlement),
    "window": (TERRAIN, window),
    "column": (TERRAIN, column),
    "pipe": (FOLIAGE, pipe),
    "bush": (FOLIAGE, bush),
    "trunk": (FOLIAGE, trunk),
    "leaves": (FOLIAGE, leaves),
    "seaweed": (FOLIAGE, seaweed),
    "lava": (FOLIAGE, lava),
    "question": (ITEMS, question),
    "coin": (ITEMS, coin),
    "ladder": (ITEMS, ladder),
    "hud_panel": (ITEMS, hud_panel),
}


def critter(rng: np.random.Generator) -> np.ndarray:
    """(16, 16) uint8 sprite pattern, 0 transparent: a mirrored random creature with eyes."""
    # column 0 of `half` sits on the vertical axis: denser there and in the head/body
    yy, xx = np.mgrid[0:16, 0:8]
    p = 0.9 - 0.1 * xx - 0.02 * np.abs(yy - 7)
    half = rng.random((16, 8)) < p
    half[2:12, 0:3] = True  # a solid core so every critter reads as one body
    half[13:, 0] = False  # gap between the legs
    half[13:, 4:] = False
    half[:, 7] = False  # room for the outline
    body = np.concatenate([half[:, ::-1], half], axis=1)  # left half mirrors the right
    t = np.zeros((16, 16), dtype=np.uint8)
    t[body] = 2
    t[body & (rng.random((16, 16)) < 0.25)] = 3
    t[_outline(body)] = 1
    ey = int(rng.integers(3, 6))
    t[ey, 5] = t[ey, 10] = 3
    t[ey + 1, 5] = t[ey + 1, 10] = 1
    return t
