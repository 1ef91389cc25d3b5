"""Read one tile layer of a Tiled map as NES colour indices, pixel by pixel.

The map is orthogonal and finite with 16×16 tiles (what `nesgan export-tiles --tmx` writes and
Tiled keeps). Each gid is resolved through its tileset (external TSX or embedded, an atlas image
with any margin and spacing) to 16×16 RGBA pixels, flipped as Tiled draws it (diagonal flip
first, then horizontal, then vertical), and every opaque pixel is looked up in the NES palette's
RGB table: nesgan's atlases are written in exactly those colours. Empty cells and transparent
pixels show the backdrop, as on the NES.

The default layer is the one painted with nesgan's tilesets: external TSX files whose tiles
carry nesgan's `near_copy` property.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from PIL import Image

from nesgan.colour.palette import EMITTABLE, Palette
from nesgan.errors import NesganError
from nesgan.tiled.tmx import GID_MASK, MAX_ATLAS_PIXELS, decode_data, int_attr, parse_xml

TILE = 16
FLIP_H, FLIP_V, FLIP_D, ROTATE_120 = 0x80000000, 0x40000000, 0x20000000, 0x10000000


@dataclass
class Level:
    """A map layer as NES colour indices."""

    path: Path
    layer: str
    indices: np.ndarray  # (16·rows, 16·cols) int16 NES index, -1 where nothing is drawn
    tiles_used: int  # distinct (gid, flips) painted in the layer
    other_layers: list[str] = field(default_factory=list)  # tile layers not exported

    @property
    def size(self) -> tuple[int, int]:
        """(columns, rows) in 16×16 tiles."""
        return self.indices.shape[1] // TILE, self.indices.shape[0] // TILE


@dataclass(eq=False)
class _Tileset:
    first: int
    name: str
    root: ET.Element  # the TSX root or the embedded <tileset>
    base: Path  # folder its image path is relative to
    ours: bool  # one of nesgan's tilesets
    pixels: np.ndarray | None = None  # (N, 16, 16, 4) RGBA, loaded on first use


def _layers(elem: ET.Element):
    for child in elem:
        if child.tag == "layer":
            yield child
        elif child.tag == "group":
            yield from _layers(child)


def _tilesets(root: ET.Element, map_dir: Path, what: str) -> list[_Tileset]:
    out = []
    for ts in root.findall("tileset"):
        first = int_attr(ts, "firstgid", what)
        src = ts.get("source")
        if src is None:
            out.append(_Tileset(first, ts.get("name") or "?", ts, map_dir, False))
            continue
        path = (map_dir / src).resolve()
        tsx = parse_xml(path, "tileset")
        if tsx.tag != "tileset":
            raise NesganError(f"{what}: {src} is not a tileset (root <{tsx.tag}>)")
        ours = any(p.get("name") == "near_copy" for p in tsx.iter("property"))
        out.append(_Tileset(first, tsx.get("name") or path.stem, tsx, path.parent, ours))
    return sorted(out, key=lambda t: t.first)


def _owner(tilesets: list[_Tileset], gid: int) -> _Tileset | None:
    """Tiled's rule: the tileset with the largest firstgid not above the gid."""
    owner = None
    for ts in tilesets:
        if ts.first <= gid:
            owner = ts
    return owner


def _load_pixels(ts: _Tileset, what: str) -> np.ndarray:
    """(N, 16, 16, 4) RGBA of every tile its atlas image slices into."""
    if ts.pixels is not None:
        return ts.pixels
    where = f"tileset {ts.name!r} of {what}"
    tw, th = int_attr(ts.root, "tilewidth", where), int_attr(ts.root, "tileheight", where)
    if (tw, th) != (TILE, TILE):
        raise NesganError(f"{where} has {tw}×{th} tiles; export-nes needs 16×16 tiles (the NES "
                          "attribute area)")
    image = ts.root.find("image")
    if image is None or not image.get("source"):
        raise NesganError(f"{where} is a collection of images; export-nes reads tilesets made "
                          "from one atlas image (Tiled: New Tileset > Based on Tileset Image)")
    png = ts.base / image.get("source", "")
    margin = int_attr(ts.root, "margin", where, 0)
    spacing = int_attr(ts.root, "spacing", where, 0)
    try:
        with Image.open(png) as im:
            if im.width * im.height > MAX_ATLAS_PIXELS:
                raise NesganError(f"the image {png} of {where} is {im.width}×{im.height} px, over "
                                  f"the {MAX_ATLAS_PIXELS}-pixel cap")
            rgba = np.asarray(im.convert("RGBA")).copy()
    except (OSError, Image.DecompressionBombError) as e:
        raise NesganError(f"cannot read the image {png} of {where}: {e}") from None
    trans = image.get("trans")
    if trans:
        try:
            key = [int(trans.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)]
        except ValueError:
            raise NesganError(f"{where}: trans={trans!r} is not a colour like ff00ff") from None
        rgba[(rgba[..., :3] == key).all(-1), 3] = 0
    h, w = rgba.shape[:2]
    cols = max((w - 2 * margin + spacing) // (TILE + spacing), 0)
    rows = max((h - 2 * margin + spacing) // (TILE + spacing), 0)
    tiles = np.zeros((rows * cols, TILE, TILE, 4), np.uint8)
    for k in range(rows * cols):
        y = margin + (k // cols) * (TILE + spacing)
        x = margin + (k % cols) * (TILE + spacing)
        tiles[k] = rgba[y : y + TILE, x : x + TILE]
    ts.pixels = tiles
    return tiles


def _flip(tile: np.ndarray, gid: int) -> np.ndarray:
    """Tiled's order: the diagonal flip (swap x and y) first, then horizontal, then vertical."""
    if gid & FLIP_D:
        tile = tile.swapaxes(0, 1)
    if gid & FLIP_H:
        tile = tile[:, ::-1]
    if gid & FLIP_V:
        tile = tile[::-1]
    return tile


def _layer_name(el: ET.Element) -> str:
    return el.get("name") or el.get("id") or "?"


def _pick_layer(layers: list[ET.Element], gids: dict[int, np.ndarray], tilesets: list[_Tileset],
                name: str | None, what: str) -> ET.Element:
    names = [_layer_name(el) for el in layers]
    if name is not None:
        for el in layers:
            if _layer_name(el) == name:
                return el
        raise NesganError(f"{what} has no tile layer named {name!r}; its tile layers: "
                          + (", ".join(repr(n) for n in names) or "none"))

    def uses(el: ET.Element) -> tuple[bool, bool]:  # (uses ours, only ours)
        owners = {_owner(tilesets, int(g)) for g in np.unique(gids[id(el)] & GID_MASK) if g}
        ours = {o is not None and o.ours for o in owners}
        return True in ours, ours == {True}

    using = [el for el in layers if uses(el)[0]]
    if len(using) > 1:
        only = [el for el in using if uses(el)[1]]
        own_names = {t.name for t in tilesets if t.ours}
        named = [el for el in only if _layer_name(el) in own_names]
        using = named if len(named) == 1 else only if len(only) == 1 else using
    if len(using) == 1:
        return using[0]
    if using:
        raise NesganError(f"{what}: several tile layers use nesgan's tilesets ("
                          + ", ".join(repr(_layer_name(el)) for el in using)
                          + "); pick the one to export with --layer NAME")
    raise NesganError(f"no tile layer of {what} is painted with nesgan's tilesets; pick the layer "
                      "to export with --layer NAME (tile layers: "
                      + (", ".join(repr(n) for n in names) or "none") + ")")


def read_level(path: Path, palette: Palette, layer: str | None = None,
               check_size: Callable[[int, int], None] | None = None) -> Level:
    """The chosen layer of the map at `path` as NES colour indices. `check_size(columns, rows)`
    may refuse the layer's size before any tile is read."""
    path = Path(path)
    what = f"map {path}"
    root = parse_xml(path, "map")
    if root.tag != "map":
        raise NesganError(f"{what} is not a Tiled map (root <{root.tag}>)")
    if root.get("infinite") == "1":
        raise NesganError(f"{what} is an infinite map; export-nes needs a finite one (uncheck "
                          "Map Properties > Infinite in Tiled)")
    if root.get("orientation", "orthogonal") != "orthogonal":
        raise NesganError(f"{what} is {root.get('orientation')}; the NES draws an orthogonal grid")
    tw, th = int_attr(root, "tilewidth", what), int_attr(root, "tileheight", what)
    if (tw, th) != (TILE, TILE):
        raise NesganError(f"{what} has {tw}×{th} tiles; export-nes needs a 16×16 map (the NES "
                          "attribute area)")
    width, height = int_attr(root, "width", what), int_attr(root, "height", what)
    layers = list(_layers(root))
    if not layers:
        raise NesganError(f"{what} has no tile layer")
    gids: dict[int, np.ndarray] = {}
    for el in layers:
        data = el.find("data")
        if data is None:
            raise NesganError(f"{what}: layer {_layer_name(el)!r} has no <data>")
        gids[id(el)] = decode_data(data, int_attr(el, "width", what, width),
                                   int_attr(el, "height", what, height),
                                   f"{what}, layer {_layer_name(el)!r}")
    tilesets = _tilesets(root, path.parent.resolve(), what)
    chosen = _pick_layer(layers, gids, tilesets, layer, what)
    name = _layer_name(chosen)
    grid = gids[id(chosen)]
    if check_size is not None:
        check_size(grid.shape[1], grid.shape[0])
    return Level(path, name, _paint(grid, tilesets, palette, f"layer {name!r} of {what}"),
                 int(len(np.unique(grid[grid != 0]))),
                 [_layer_name(el) for el in layers if el is not chosen])


def _paint(grid: np.ndarray, tilesets: list[_Tileset], palette: Palette, what: str) -> np.ndarray:
    """(rows, cols) gids -> (16·rows, 16·cols) int16 NES indices (-1: nothing drawn)."""
    rows, cols = grid.shape
    rgb = palette.rgb[EMITTABLE].astype(np.int64)
    packed_pal = (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]
    keys, first = np.unique(packed_pal, return_index=True)  # the canonical index where RGBs coincide
    values = EMITTABLE[first].astype(np.int16)
    uniq, inverse = np.unique(grid, return_inverse=True)
    tiles = np.full((len(uniq), TILE, TILE), -1, np.int16)  # uniq[0] may be 0: an empty cell
    for k, gid in enumerate(uniq.tolist()):
        if gid == 0:
            continue
        r, c = (int(v[0]) for v in np.nonzero(grid == gid))
        at = f"column {c}, row {r} of {what}"
        if gid & ROTATE_120:
            raise NesganError(f"the tile at {at} has the hexagonal 120° rotation flag; the map "
                              "must be orthogonal")
        bare = gid & GID_MASK
        ts = _owner(tilesets, bare)
        if ts is None:
            raise NesganError(f"the tile at {at} has gid {bare}, which no tileset of the map holds")
        pixels = _load_pixels(ts, what)
        local = bare - ts.first
        if local >= len(pixels):
            raise NesganError(f"the tile at {at} is tile {local} of tileset {ts.name!r}, which has "
                              f"{len(pixels)} tiles")
        rgba = _flip(pixels[local], gid).astype(np.int64)
        alpha = rgba[..., 3]
        if ((alpha > 0) & (alpha < 255)).any():
            raise NesganError(f"tile {local} of tileset {ts.name!r} (first at {at}) is partly "
                              "transparent; an NES pixel is either a colour or the backdrop")
        packed = (rgba[..., 0] << 16) | (rgba[..., 1] << 8) | rgba[..., 2]
        pos = np.clip(np.searchsorted(keys, packed), 0, len(keys) - 1)
        known = keys[pos] == packed
        stray = (alpha == 255) & ~known
        if stray.any():
            bad = int(packed[stray][0])
            raise NesganError(
                f"tile {local} of tileset {ts.name!r} (first at {at}) has colour #{bad:06x}, "
                f"which is not in the NES palette table {palette.name!r}; nesgan's tilesets use "
                "its colours exactly: quantize the tileset's image onto it (`nesgan quantize`), "
                "or pass the .pal file its colours come from with --palette")
        tiles[k] = np.where(alpha == 255, values[pos], -1)
    cells = tiles[inverse.reshape(rows, cols)]  # (rows, cols, 16, 16)
    return cells.swapaxes(1, 2).reshape(rows * TILE, cols * TILE)
