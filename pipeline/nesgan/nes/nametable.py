"""Background palettes, attribute tables and nametables, as the PPU reads them.

A nametable is 32×30 pattern indices (960 bytes, row by row) followed by a 64-byte attribute
table: byte 8·r + c covers the 32×32 pixels at (32·c, 32·r); its bits 1–0 pick the sub-palette of
the top-left 16×16 quadrant, 3–2 top-right, 5–4 bottom-left, 7–6 bottom-right (row 7's bottom
quadrants fall below the 240 visible rows). The background palette ($3F00, 16 bytes) is the
backdrop, then 4 sub-palettes of 3 colours (entries 4, 8, 12 are never shown; we repeat the
backdrop there, as NES tools do).

`choose_palettes` finds a backdrop and at most 4 sub-palettes under which every 16×16 area's
colours fit one sub-palette plus the backdrop:

1. an area with more than 4 colours fits none (refused, naming the area);
2. backdrop candidates are the map's colours, most common first; a candidate is feasible when
   every area has at most 3 colours besides it;
3. the areas' colour sets (backdrop removed) that are no subset of another must be packed into
   4 sets of at most 3 colours: an exact backtracking search (feasible only with at most 12 such
   sets, since a 3-colour sub-palette holds at most 3 incomparable sets: its 3 pairs);
4. the first candidate that packs wins. Each sub-palette lists its colours dark to light.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nesgan.colour.palette import BLACK, Palette, srgb_to_oklab
from nesgan.errors import NesganError

AREA = 16  # one sub-palette per 16×16 pixels
SUBPALETTES = 4
SUB_COLOURS = 3
NT_COLS, NT_ROWS = 32, 30  # tiles in a nametable
NT_BYTES = NT_COLS * NT_ROWS  # 960
ATTR_BYTES = 64
NAMETABLE_FILE_BYTES = NT_BYTES + ATTR_BYTES  # 1024: what a .nam file holds
SCREEN_W, SCREEN_H = 256, 240


@dataclass(frozen=True)
class BackgroundPalette:
    backdrop: int  # NES index at $3F00
    subpalettes: tuple[tuple[int, ...], ...]  # 1–4 sub-palettes of 1–3 NES indices

    def pal_bytes(self) -> bytes:
        """The 16 bytes for $3F00–$3F0F; unused entries repeat the backdrop."""
        out = [self.backdrop] * 16
        for k, sub in enumerate(self.subpalettes):
            for j, colour in enumerate(sub):
                out[4 * k + 1 + j] = colour
        return bytes(out)


def hexes(colours) -> str:
    return ", ".join(f"${c:02X}" for c in sorted(colours))


def _pack(sets: list[frozenset[int]], limit: int) -> list[set[int]] | None:
    """Pack colour sets into at most `limit` bins of at most 3 colours, each set inside one bin
    (exact backtracking; `sets` must be an antichain of at most 3 * limit sets)."""
    if len(sets) > SUB_COLOURS * limit or len(frozenset().union(*sets)) > SUB_COLOURS * limit:
        return None
    order = sorted(sets, key=lambda s: (-len(s), sorted(s)))
    bins: list[set[int]] = []

    def place(i: int) -> bool:
        if i == len(order):
            return True
        s = order[i]
        seen: set[frozenset[int]] = set()
        for b in bins:
            key = frozenset(b)
            if key in seen or len(b | s) > SUB_COLOURS:
                continue
            seen.add(key)
            added = s - b
            b |= added
            if place(i + 1):
                return True
            b -= added
        if len(bins) < limit:
            bins.append(set(s))
            if place(i + 1):
                return True
            bins.pop()
        return False

    return bins if place(0) else None


def _maximal(sets: set[frozenset[int]]) -> list[frozenset[int]]:
    """The sets that are no proper subset of another (empty sets dropped)."""
    ordered = sorted((s for s in sets if s), key=len, reverse=True)
    keep: list[frozenset[int]] = []
    for s in ordered:
        if not any(s <= k for k in keep):
            keep.append(s)
    return keep


def area_colours(indices: np.ndarray) -> dict[frozenset[int], tuple[int, int]]:
    """(H, W) NES indices (-1: nothing, shows the backdrop) with H, W multiples of 16 -> each
    distinct colour set of a 16×16 area and the (column, row) of the first area that has it."""
    h, w = indices.shape
    areas = indices.reshape(h // AREA, AREA, w // AREA, AREA).swapaxes(1, 2)
    found: dict[frozenset[int], tuple[int, int]] = {}
    for (r, c) in np.ndindex(h // AREA, w // AREA):
        colours = frozenset(int(v) for v in np.unique(areas[r, c]) if v >= 0)
        found.setdefault(colours, (c, r))
    return found


def choose_palettes(indices: np.ndarray, palette: Palette, what: str, where) -> BackgroundPalette:
    """The background palette for (H, W) NES indices (-1 = backdrop) of `what` (a map layer);
    `where((col, row))` names a 16×16 area in messages (e.g. "the tile at column 3, row 2")."""
    sets = area_colours(indices)
    for colours, at in sets.items():
        if len(colours) > SUB_COLOURS + 1:
            raise NesganError(
                f"{what}: {where(at)} shows {len(colours)} colours ({hexes(colours)}); an NES "
                "background shows at most 4 in each 16×16 area (the backdrop and one 3-colour "
                "sub-palette): repaint it, or export tiles with --palettes 4")
    values, counts = np.unique(indices[indices >= 0], return_counts=True)
    candidates = [int(v) for v, _ in sorted(zip(values, counts, strict=True),
                                            key=lambda vc: (-vc[1], vc[0]))] or [BLACK]
    fewest: tuple[int, int] | None = None  # (sub-palette colours needed, backdrop) of the best miss
    for backdrop in candidates:
        rest = {s - {backdrop} for s in sets}
        if any(len(s) > SUB_COLOURS for s in rest):
            continue
        maximal = _maximal(rest)
        bins = _pack(maximal, SUBPALETTES)
        if bins is not None:
            return BackgroundPalette(backdrop, tuple(_dark_to_light(b, palette)
                                                     for b in sorted(bins, key=sorted)))
        need = len(frozenset().union(*maximal))
        if fewest is None or need < fewest[0]:
            fewest = (need, backdrop)
    if fewest is None:  # every candidate leaves some 4-colour area with 4 colours besides it
        four = [(s, at) for s, at in sets.items() if len(s) == SUB_COLOURS + 1]
        a, at_a = four[0]
        b, at_b = min(four[1:], key=lambda x: len(x[0] & a))
        raise NesganError(
            f"{what}: {where(at_a)} ({hexes(a)}) and {where(at_b)} ({hexes(b)}) show 4 colours "
            "each, and no colour is in every 4-colour area; on the NES each of them must include "
            "the one backdrop colour: repaint one, or export tiles with --palettes 4")
    need, backdrop = fewest
    raise NesganError(
        f"{what}: its 16×16 areas need more than {SUBPALETTES} sub-palettes of 3 colours: with "
        f"the backdrop ${backdrop:02X} they use {need} other colours in combinations that no "
        f"{SUBPALETTES} sub-palettes cover; repaint with tiles that share colours, or export "
        "tiles with --palettes 4")


def _dark_to_light(colours: set[int], palette: Palette) -> tuple[int, ...]:
    lightness = srgb_to_oklab(palette.to_rgb(np.array(sorted(colours))))[:, 0]
    return tuple(c for _, c in sorted(zip(lightness.tolist(), sorted(colours), strict=True)))


def area_subpalettes(indices: np.ndarray, bg: BackgroundPalette) -> np.ndarray:
    """(H, W) NES indices -> (H/16, W/16) sub-palette number of each 16×16 area (0 where the
    area shows only the backdrop)."""
    h, w = indices.shape
    areas = indices.reshape(h // AREA, AREA, w // AREA, AREA).swapaxes(1, 2)
    out = np.zeros((h // AREA, w // AREA), np.uint8)
    subs = [set(s) for s in bg.subpalettes]
    for (r, c) in np.ndindex(*out.shape):
        colours = {int(v) for v in np.unique(areas[r, c]) if v >= 0} - {bg.backdrop}
        out[r, c] = next((k for k, s in enumerate(subs) if colours <= s), 0)
    return out


def pixel_values(indices: np.ndarray, bg: BackgroundPalette, attrs: np.ndarray) -> np.ndarray:
    """(H, W) NES indices -> (H, W) 2-bit values: 0 for the backdrop (and -1), else 1 + the
    colour's place in its area's sub-palette."""
    lookup = np.zeros((SUBPALETTES, 64), np.uint8)  # (sub-palette, NES index) -> value
    for k, sub in enumerate(bg.subpalettes):
        for j, colour in enumerate(sub):
            lookup[k, colour] = j + 1
    lookup[:, bg.backdrop] = 0
    cell = np.repeat(np.repeat(attrs, AREA, axis=0), AREA, axis=1)
    return np.where(indices >= 0, lookup[cell, np.clip(indices, 0, 63)], 0).astype(np.uint8)


def pack_attributes(attrs: np.ndarray) -> bytes:
    """(15, 16) sub-palette numbers of one nametable's 16×16 areas -> its 64 attribute bytes."""
    grid = np.zeros((16, 16), np.uint8)  # an 8th row of 32×32 blocks is half off-screen
    grid[: attrs.shape[0]] = attrs
    q = grid.reshape(8, 2, 8, 2)  # (block row, top/bottom, block column, left/right)
    packed = q[:, 0, :, 0] | (q[:, 0, :, 1] << 2) | (q[:, 1, :, 0] << 4) | (q[:, 1, :, 1] << 6)
    return packed.astype(np.uint8).tobytes()


def unpack_attributes(data: bytes) -> np.ndarray:
    """64 attribute bytes -> (15, 16) sub-palette numbers of the visible 16×16 areas."""
    b = np.frombuffer(data, dtype=np.uint8).reshape(8, 8)
    q = np.stack([np.stack([b & 3, (b >> 2) & 3], -1), np.stack([(b >> 4) & 3, b >> 6], -1)], 1)
    return q.reshape(16, 16)[:15]  # (8, 2, 8, 2) -> (16, 16)


def nametable_bytes(tiles: np.ndarray, attrs: np.ndarray) -> bytes:
    """(30, 32) pattern indices and (15, 16) sub-palette numbers -> 1024 bytes ($2000–$23FF)."""
    if tiles.shape != (NT_ROWS, NT_COLS) or attrs.shape != (15, 16):
        raise ValueError(f"a nametable is 30×32 tiles and 15×16 areas, got {tiles.shape}, {attrs.shape}")
    return tiles.astype(np.uint8).tobytes() + pack_attributes(attrs)
