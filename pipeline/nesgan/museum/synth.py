"""A deterministic synthesizer of NES-style screens: the embedded museum's exhibits.

Screens are built the way the NES builds them (docs/nes.md and NESdev's PPU pages):

1. each game owns a pattern table (CHR) of 8×8 2-bpp tiles, drawn procedurally and varied per
   game (metatiles.py), and a vocabulary of 16×16 metatiles of 2×2 tiles, each tagged with the
   background sub-palette it uses;
2. a game has one backdrop colour ($3F00) and four sub-palettes of 3 colours from the 54
   emittable NES colours, themed (overworld, underground, castle, night, water);
3. a shot lays metatiles out on the 15×16 grid of a 256×240 screen (sky, ground with pits,
   platforms, pipes, ladders, clouds…) and writes a status bar (HUD) in 8×8 font tiles;
4. the name table and the 15×16 attribute grid become NES colour indices: a pixel shows the
   backdrop where its pattern value is 0, else colour value-1 of its cell's sub-palette. So every
   16×16 cell shows at most 4 colours and the background at most 13;
5. a few 16×16 sprites with their own palettes are drawn on top (these, like real screenshots,
   ignore the cell rule; `sprites=False` leaves them out).

Everything is a pure function of (seed, game number, shot number): same seed, same bytes.
`render_scrolled` catches a shot mid-scroll (level shifted, HUD fixed) and `frame_violations`
lists whatever in a frame breaks the rules above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nesgan.colour.palette import BLACK, CANONICAL, EMITTABLE, WHITE, Palette, srgb_to_oklab
from nesgan.errors import NesganError
from nesgan.museum import metatiles as mt
from nesgan.museum.layout import H_CELLS, W_CELLS, layout

SCREEN_H, SCREEN_W = 240, 256  # NES PPU output

_ADJ = ("Super", "Mega", "Ninja", "Cosmic", "Little", "Mighty", "Dragon", "Turbo",
        "Shadow", "Crystal", "Iron", "Magic", "Star", "Thunder", "Pixel", "Rocket")
_NOUN = ("Quest", "Warrior", "Castle", "Force", "Knight", "Island", "Legend", "Fighter",
         "Kid", "Tower", "Saga", "Hunter", "Ranger", "Blaster", "Runner", "Patrol")
_LABELS = ("SCORE", "TIME", "WORLD", "STAGE", "LIFE", "REST", "TOP", "HI", "1UP", "ROUND",
           "AREA", "COINS", "GOLD", "LEVEL", "ENERGY", "P1")


@dataclass(frozen=True)
class _Theme:
    """How one kind of level looks: palette hue choices per sub-palette role and its tiles."""

    backdrops: tuple[int, ...]
    hues: tuple[tuple[int, ...], ...]  # per role (TERRAIN, FOLIAGE, SKY, ITEMS): hue 0–12
    kinds: tuple[str, ...]  # drawings every game of this theme has
    optional: tuple[str, ...]  # drawings a game of this theme may have


THEMES: dict[str, _Theme] = {
    "overworld": _Theme(
        (0x21, 0x22, 0x31, 0x11, 0x2C, 0x32),
        ((6, 7, 8), (9, 10, 11), (0, 1, 2, 12), (6, 7, 8)),
        ("sky", "ground_top", "ground", "brick", "question", "cloud", "bush", "pipe", "coin"),
        ("stone", "trunk", "leaves", "ladder"),
    ),
    "underground": _Theme(
        (BLACK, BLACK, 0x2D, 0x0C),
        ((1, 2, 12, 3, 0), (9, 10, 11, 12), (0, 4), (6, 7, 8)),
        ("sky", "brick", "ground", "stone", "question", "pipe", "coin", "ladder"),
        ("column",),
    ),
    "castle": _Theme(
        (BLACK, BLACK, 0x2D),
        ((0, 0, 7, 8), (5, 6, 7), (0, 3, 4), (6, 7, 8)),
        ("sky", "stone", "brick", "battlement", "window", "column", "lava", "ladder"),
        ("question", "coin"),
    ),
    "night": _Theme(
        (BLACK, 0x01, 0x02, 0x0C, 0x03),
        ((7, 8, 0, 3), (9, 10, 11, 1), (0, 8), (6, 7, 8)),
        ("sky", "stars", "ground_top", "ground", "brick", "trunk", "leaves", "bush", "question"),
        ("cloud", "ladder", "coin", "stone"),
    ),
    "water": _Theme(
        (0x21, 0x11, 0x12, 0x22, 0x01, 0x1C),
        ((7, 8, 6), (9, 10, 11, 4, 5), (1, 2, 12), (7, 8, 6)),
        ("sky", "water", "ground", "stone", "seaweed", "coin", "question"),
        ("brick", "ladder"),
    ),
}
THEME_ORDER = tuple(THEMES)


def _entropy(*values: int) -> list[int]:
    """Any Python ints (negative seeds included) as SeedSequence entropy."""
    return [v % (1 << 64) for v in values]


def _ramp(rng: np.random.Generator, hue: int) -> tuple[int, int, int]:
    """Three NES colours of one hue, dark to light (rows $0x/$1x/$2x/$3x), black outlines often."""
    rows = [(0, 1, 2), (1, 2, 3), (0, 2, 3), (0, 1, 3)][int(rng.integers(4))]
    dark, mid, light = (int(CANONICAL[(r << 4) | hue]) for r in rows)
    if rng.random() < 0.4:
        dark = BLACK
    if hue == 0 and rng.random() < 0.5:
        light = WHITE
    return dark, mid, light


@dataclass(frozen=True, eq=False)
class Game:
    """One synthetic game: its tiles, palettes and layout habits."""

    seed: int
    number: int
    title: str
    slug: str  # lowercase letters and digits: safe in a URL and a file name
    theme: str
    palette_name: str  # the emulator RGB table its screenshots are taken with ("2c02", "fceux")
    backdrop: int  # NES index of the shared backdrop ($3F00)
    subpalettes: tuple[tuple[int, int, int], ...]  # 4 background sub-palettes (by role)
    sprite_palettes: tuple[tuple[int, int, int], ...]  # 4 sprite sub-palettes
    metatile_names: tuple[str, ...]
    ids: dict[str, int]  # metatile name -> metatile number
    metatiles: np.ndarray  # (M, 16, 16) uint8 pattern values 0–3
    metatile_chr: np.ndarray  # (M, 2, 2) CHR tile numbers
    metatile_role: np.ndarray  # (M,) uint8 background sub-palette number
    chr: np.ndarray  # (N, 8, 8) uint8 pattern table, N ≤ 256
    glyphs: dict[str, int]  # font char -> CHR tile on the backdrop
    panel_glyphs: dict[str, int]  # font char -> CHR tile on the HUD panel colour
    sprites: np.ndarray  # (S, 16, 16) uint8 sprite patterns, 0 = transparent
    hud_top: bool  # status bar at the top (else a panel at the bottom)
    hud_labels: tuple[str, ...]
    pit_rate: float

    def palette(self) -> Palette:
        return Palette.builtin(self.palette_name)

    def chr_bytes(self) -> bytes:
        """The pattern table in the NES CHR format: 16 bytes a tile, plane 0 then plane 1,
        most significant bit = leftmost pixel."""
        c = self.chr.astype(np.uint8)
        plane0 = np.packbits(c & 1, axis=2)[..., 0]  # (N, 8)
        plane1 = np.packbits((c >> 1) & 1, axis=2)[..., 0]  # (N, 8)
        return np.concatenate([plane0, plane1], axis=1).tobytes()


@dataclass(frozen=True, eq=False)
class Frame:
    """One rendered NES screen."""

    indices: np.ndarray  # (240, 256) uint8 NES colour indices
    backdrop: int  # NES index of the shared backdrop ($3F00)
    subpalettes: tuple[tuple[int, int, int], ...]  # 4 background sub-palettes
    attributes: np.ndarray  # (15, 16) uint8 sub-palette number per 16×16 cell
    sprite_mask: np.ndarray  # (240, 256) bool, True where a sprite pixel was drawn


def game_title(seed: int, number: int) -> str:
    """A made-up title, distinct for every number under one seed."""
    if number < 0:
        raise NesganError(f"game numbers start at 0, got {number}")
    combos = len(_ADJ) * len(_NOUN)
    k = int(np.random.default_rng(_entropy(seed, 0x7177)).permutation(combos)[number % combos])
    title = f"{_ADJ[k // len(_NOUN)]} {_NOUN[k % len(_NOUN)]}"
    return title if number < combos else f"{title} {number // combos + 1}"


def _slug(title: str) -> str:
    return "".join(c for c in title.lower() if c.isalnum())


def make_game(seed: int, number: int) -> Game:
    """The `number`-th game of the museum seeded by `seed`."""
    title = game_title(seed, number)
    base = np.random.default_rng(_entropy(seed, 0x7E3A)).integers(len(THEME_ORDER))
    theme_name = THEME_ORDER[(int(base) + number) % len(THEME_ORDER)]
    theme = THEMES[theme_name]
    rng = np.random.default_rng(_entropy(seed, number, 0x6A3E))

    backdrop = int(rng.choice(theme.backdrops))
    subpalettes = tuple(_ramp(rng, int(rng.choice(h))) for h in theme.hues)
    sprite_palettes = tuple(_ramp(rng, int(rng.integers(1, 13))) for _ in range(4))

    kinds = list(theme.kinds) + [k for k in theme.optional if rng.random() < 0.5]
    hud_top = bool(rng.random() < 0.7)
    if not hud_top:
        kinds.append("hud_panel")
    names: list[str] = []
    drawings: list[np.ndarray] = []
    roles: list[int] = []
    for kind in kinds:
        role, draw = mt.DRAWINGS[kind]
        for name, pattern in draw(rng):
            names.append(name)
            drawings.append(pattern.astype(np.uint8))
            roles.append(role)

    # The pattern table: every distinct 8×8 quarter of every metatile, then the font.
    chr_index: dict[bytes, int] = {}
    chr_tiles: list[np.ndarray] = []

    def tile_number(tile: np.ndarray) -> int:
        key = tile.tobytes()
        if key not in chr_index:
            chr_index[key] = len(chr_tiles)
            chr_tiles.append(tile)
        return chr_index[key]

    tile_number(np.zeros((8, 8), dtype=np.uint8))  # tile 0 is blank, as in most games
    metatile_chr = np.array(
        [[[tile_number(np.ascontiguousarray(d[y : y + 8, x : x + 8])) for x in (0, 8)]
          for y in (0, 8)] for d in drawings],
        dtype=np.int32,
    )  # (M, 2, 2)
    # HUD text ink: the ITEMS colour that stands out most from the backdrop (lightness in OKLab)
    lightness = srgb_to_oklab(Palette.builtin().rgb)[:, 0]  # (64,)
    ink = 1 + int(np.argmax([abs(lightness[c] - lightness[backdrop]) for c in subpalettes[mt.ITEMS]]))
    shadow = None if rng.random() < 0.5 else (1 if ink != 1 else 2)
    glyphs = {c: tile_number(mt.glyph_tile(c, ink, 0, shadow)) for c in mt.FONT_CHARS}
    panel_glyphs = (
        {} if hud_top else {c: tile_number(mt.glyph_tile(c, 3, 1, None)) for c in mt.FONT_CHARS}
    )
    if len(chr_tiles) > 256:  # a pattern table holds 256 tiles
        raise AssertionError(f"{title}: {len(chr_tiles)} CHR tiles")

    sprites = np.stack([mt.critter(rng) for _ in range(int(rng.integers(3, 6)))])
    labels = tuple(str(s) for s in rng.choice(_LABELS, size=3, replace=False))
    return Game(
        seed=seed, number=number, title=title, slug=_slug(title), theme=theme_name,
        palette_name="fceux" if rng.random() < 0.3 else "2c02",
        backdrop=backdrop, subpalettes=subpalettes, sprite_palettes=sprite_palettes,
        metatile_names=tuple(names), ids={n: i for i, n in enumerate(names)},
        metatiles=np.stack(drawings), metatile_chr=metatile_chr,
        metatile_role=np.array(roles, dtype=np.uint8), chr=np.stack(chr_tiles),
        glyphs=glyphs, panel_glyphs=panel_glyphs, sprites=sprites, hud_top=hud_top,
        hud_labels=labels, pit_rate=float(rng.uniform(0.0, 0.3)),
    )


def make_games(seed: int, count: int) -> list[Game]:
    return [make_game(seed, n) for n in range(count)]


def _hud_value(label: str, rng: np.random.Generator) -> str:
    if label in ("TIME", "ENERGY"):
        return f"{int(rng.integers(0, 400)):03d}"
    if label in ("WORLD", "STAGE", "ROUND", "AREA", "LEVEL"):
        return f"{int(rng.integers(1, 9))}-{int(rng.integers(1, 5))}"
    if label in ("LIFE", "REST", "COINS", "GOLD"):
        return f"x{int(rng.integers(0, 100)):02d}"
    return f"{int(rng.integers(0, 10000)) * 10:06d}"


def _write_hud(game: Game, rng: np.random.Generator, nametable: np.ndarray, attributes: np.ndarray) -> None:
    """Status bar text in 8×8 font tiles: labels on one line, their values on the next."""
    rows = (2, 3) if game.hud_top else (27, 28)  # name-table rows (8 px each)
    glyphs = game.glyphs if game.hud_top else game.panel_glyphs
    attributes[rows[0] // 2, :] = mt.ITEMS
    values = [_hud_value(label, rng) for label in game.hud_labels]
    for col, label, value in zip((2, 12, 22), game.hud_labels, values, strict=True):
        for row, text in zip(rows, (label, value), strict=True):
            for i, ch in enumerate(text):
                nametable[row, col + i] = glyphs[ch]


def _draw_sprites(game: Game, rng: np.random.Generator, surface: np.ndarray, indices: np.ndarray,
                  mask: np.ndarray, tick: int) -> None:
    """1–4 critters: a hero on the left, enemies on the ground to the right, maybe a flyer."""
    count = int(rng.integers(1, 5))
    for k in range(count):
        pattern = game.sprites[0 if k == 0 else int(rng.integers(1, len(game.sprites)))]
        if rng.random() < 0.5:
            pattern = pattern[:, ::-1]
        palette = np.array((0, *game.sprite_palettes[0 if k == 0 else int(rng.integers(1, 4))]), np.uint8)
        x = int(rng.integers(16, 96) if k == 0 else rng.integers(100, 232))
        x = min(SCREEN_W - 16, x + 2 * tick * (1 if k == 0 else -1))
        s = surface[min(x + 8, SCREEN_W - 1) // 16]
        if k == 3 or s < 0:  # a flyer
            y = int(rng.integers(48, 120))
        else:
            y = int(s) * 16 - 16
        y = max(0, y)
        opaque = pattern[: SCREEN_H - y] > 0  # (≤16, 16)
        region = indices[y : y + 16, x : x + 16]
        region[opaque] = palette[pattern[: SCREEN_H - y]][opaque]
        mask[y : y + 16, x : x + 16] |= opaque


def render_frame(game: Game, shot: int, sprites: bool = True, tick: int = 0) -> Frame:
    """Shot number `shot` of `game` as a 256×240 NES screen. `tick` moves the sprites along
    (consecutive animation frames); the background does not depend on `sprites` or `tick`."""
    rng = np.random.default_rng(_entropy(game.seed, game.number, shot, 0xB6))
    grid, surface = layout(game, rng)  # (15, 16) metatile numbers
    nametable = game.metatile_chr[grid].transpose(0, 2, 1, 3).reshape(30, 32)  # (30, 32) CHR
    attributes = game.metatile_role[grid].astype(np.uint8)  # (15, 16)
    _write_hud(game, rng, nametable, attributes)
    values = game.chr[nametable].transpose(0, 2, 1, 3).reshape(SCREEN_H, SCREEN_W)  # (240, 256)
    table = np.array([(game.backdrop, *sp) for sp in game.subpalettes], dtype=np.uint8)  # (4, 4)
    cell = np.repeat(np.repeat(attributes, 16, axis=0), 16, axis=1)  # (240, 256)
    indices = table[cell, values]  # (240, 256) NES colours
    mask = np.zeros((SCREEN_H, SCREEN_W), dtype=bool)
    if sprites:
        srng = np.random.default_rng(_entropy(game.seed, game.number, shot, 0x5B))
        _draw_sprites(game, srng, surface, indices, mask, tick)
    return Frame(indices=indices, backdrop=game.backdrop, subpalettes=game.subpalettes,
                 attributes=attributes, sprite_mask=mask)


def frame_rgb(frame: Frame, palette: Palette) -> np.ndarray:
    """(240, 256, 3) uint8 RGB of a frame through an emulator's palette table."""
    return palette.to_rgb(frame.indices)


def render_scrolled(game: Game, shot: int, scroll_x: int, sprites: bool = True, tick: int = 0) -> np.ndarray:
    """(240, 256) NES indices of a shot caught mid-scroll: the level is shifted left by
    `scroll_x` pixels (the next screen scrolls in), while the status bar stays put, as a
    sprite-0 split keeps it on real hardware. The level's 16×16 grid then starts at column
    (-scroll_x) mod 16 of the image: the grid phase a cropper has to find."""
    here = render_frame(game, shot, sprites, tick)
    if scroll_x % SCREEN_W == 0:
        return here.indices.copy()
    ahead = render_frame(game, shot + 20_000, sprites, tick)
    wide = np.concatenate([here.indices, ahead.indices], axis=1)  # (240, 512)
    out = wide[:, scroll_x % SCREEN_W : scroll_x % SCREEN_W + SCREEN_W].copy()  # (240, 256)
    hud = slice(0, 32) if game.hud_top else slice(SCREEN_H - 32, SCREEN_H)
    out[hud] = here.indices[hud]
    return out


def frame_violations(frame: Frame) -> list[str]:
    """Every way a frame's background breaks the NES rules (empty when legal). Sprite pixels
    (`frame.sprite_mask`) are exempt from the per-cell and 13-colour rules, as on hardware."""
    problems = []
    emittable = set(EMITTABLE.tolist())
    stray = set(np.unique(frame.indices).tolist()) - emittable
    if stray:
        problems.append(f"colours not emittable: {sorted(stray)}")
    background = frame.indices[~frame.sprite_mask]
    if len(np.unique(background)) > 13:
        problems.append(f"{len(np.unique(background))} background colours (at most 13)")
    for r in range(H_CELLS):
        for c in range(W_CELLS):
            cell = (slice(16 * r, 16 * r + 16), slice(16 * c, 16 * c + 16))
            shown = set(np.unique(frame.indices[cell][~frame.sprite_mask[cell]]).tolist())
            legal = {frame.backdrop, *frame.subpalettes[int(frame.attributes[r, c])]}
            if not shown <= legal:
                problems.append(f"cell ({r}, {c}) shows {sorted(shown - legal)} outside sub-palette "
                                f"{int(frame.attributes[r, c])} + backdrop")
    return problems
