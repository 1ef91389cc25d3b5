"""A Tiled map as every nesgan command reads it: the map, its tilesets and its tile layers.

One reading, one set of checks, one wording, used by export-tiles (merging into a map),
export-nes and level. Names follow the TMX reference (and pytmx): `firstgid`, `source`,
`tilewidth`, `margin`, `spacing`, `trans`. The map must be finite and orthogonal with 16×16 tiles
(what nesgan writes; a 16×16 tile is one NES attribute area). Everything is read lazily and
cached: a tileset's TSX when first asked for, a layer's gids when first decoded, an atlas's
pixels when first painted, so a command reads only what it uses, and an unreadable part is an
error only where it is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from nesgan.errors import NesganError
from nesgan.tiled.tmx import (
    GID_MASK,
    MAX_CELLS,
    TILE,
    decode_data,
    int_attr,
    parse_xml,
    read_png,
    tileset_extent,
)

FLIP_H, FLIP_V, FLIP_D, ROTATE_120 = 0x80000000, 0x40000000, 0x20000000, 0x10000000
OWN_PROPERTY = "near_copy"  # every tile of nesgan's tilesets carries it: how a map's tilesets are told apart


def check_map(root: ET.Element, what: str) -> tuple[int, int]:
    """The map's (width, height) in tiles, or one line saying why nesgan cannot read it."""
    if root.tag != "map":
        raise NesganError(f"{what} is not a Tiled map (root <{root.tag}>)")
    if root.get("infinite") == "1":
        raise NesganError(f"{what} is an infinite map; nesgan reads finite maps (uncheck Map "
                          "Properties > Infinite in Tiled)")
    if root.get("orientation", "orthogonal") != "orthogonal":
        raise NesganError(f"{what} is {root.get('orientation')}; nesgan reads orthogonal maps "
                          "(the NES draws an orthogonal grid)")
    tw, th = int_attr(root, "tilewidth", what), int_attr(root, "tileheight", what)
    if (tw, th) != (TILE, TILE):
        raise NesganError(f"{what} has {tw}×{th} tiles; nesgan reads maps of 16×16 tiles (one NES "
                          "attribute area each)")
    w, h = int_attr(root, "width", what), int_attr(root, "height", what)
    if not (0 < w and 0 < h and w * h <= MAX_CELLS):
        raise NesganError(f"{what} is {w}×{h} tiles, outside 1…{MAX_CELLS} cells")
    return w, h


def flip_tile(tile: np.ndarray, gid: int) -> np.ndarray:
    """A tile's pixels as Tiled draws the gid: diagonal flip (swap x and y) first, then
    horizontal, then vertical."""
    if gid & FLIP_D:
        tile = tile.swapaxes(0, 1)
    if gid & FLIP_H:
        tile = tile[:, ::-1]
    if gid & FLIP_V:
        tile = tile[::-1]
    return tile


@dataclass(eq=False)
class Tileset:
    """One `<tileset>` of a map: external (`source`, a TSX file) or embedded."""

    elem: ET.Element  # the map's own <tileset> element
    firstgid: int
    map_dir: Path  # the folder `source` (or an embedded tileset's image) is relative to
    _root: ET.Element | NesganError | None = field(default=None, repr=False)
    _pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def source(self) -> str | None:
        return self.elem.get("source")

    @property
    def path(self) -> Path | None:
        """The TSX file, resolved; None for an embedded tileset."""
        return None if self.source is None else (self.map_dir / self.source).resolve()

    @property
    def base(self) -> Path:
        """The folder its image's path is relative to."""
        return self.map_dir if self.path is None else self.path.parent

    def root(self, required: bool = True) -> ET.Element | None:
        """The TSX root, or the embedded `<tileset>`; a TSX that cannot be read raises, or gives
        None when not `required`."""
        if self._root is None:
            if self.path is None:
                self._root = self.elem
            else:
                try:
                    tsx = parse_xml(self.path, "tileset")
                    if tsx.tag != "tileset":
                        raise NesganError(f"{self.source} is not a tileset (root <{tsx.tag}>)")
                    self._root = tsx
                except NesganError as e:
                    self._root = e
        if isinstance(self._root, NesganError):
            if required:
                raise self._root
            return None
        return self._root

    @property
    def name(self) -> str:
        root = self.root(required=False)
        name = root.get("name") if root is not None else None
        return name or (self.path.stem if self.path is not None else "?")

    @property
    def ours(self) -> bool:
        """One of nesgan's tilesets: an external TSX whose tiles carry nesgan's properties."""
        root = self.root(required=False) if self.path is not None else None
        return root is not None and any(p.get("name") == OWN_PROPERTY for p in root.iter("property"))

    def extent(self) -> int | None:
        """Gids it occupies (`tmx.tileset_extent`); None when its TSX cannot be read."""
        root = self.root(required=False)
        return None if root is None else tileset_extent(root, f"tileset {self.source or self.name}")

    def pixels(self, what: str) -> np.ndarray:
        """(N, 16, 16, 4) RGBA of every tile its atlas image slices into (margin, spacing and
        `trans` applied), read once."""
        if self._pixels is not None:
            return self._pixels
        where = f"tileset {self.name!r} of {what}"
        root = self.root()
        tw, th = int_attr(root, "tilewidth", where), int_attr(root, "tileheight", where)
        if (tw, th) != (TILE, TILE):
            raise NesganError(f"{where} has {tw}×{th} tiles; nesgan reads 16×16 tiles (one NES "
                              "attribute area each)")
        image = root.find("image")
        if image is None or not image.get("source"):
            raise NesganError(f"{where} is a collection of images; nesgan reads tilesets made "
                              "from one atlas image (Tiled: New Tileset > Based on Tileset Image)")
        rgba = read_png(self.base / image.get("source", ""), f"the image of {where}", "RGBA").copy()
        trans = image.get("trans")
        if trans:
            try:
                key = [int(trans.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4)]
            except ValueError:
                raise NesganError(f"{where}: trans={trans!r} is not a colour like ff00ff") from None
            rgba[(rgba[..., :3] == key).all(-1), 3] = 0
        margin, spacing = int_attr(root, "margin", where, 0), int_attr(root, "spacing", where, 0)
        h, w = rgba.shape[:2]
        cols = max((w - 2 * margin + spacing) // (TILE + spacing), 0)
        rows = max((h - 2 * margin + spacing) // (TILE + spacing), 0)
        tiles = np.zeros((rows * cols, TILE, TILE, 4), np.uint8)
        for k in range(rows * cols):
            y = margin + (k // cols) * (TILE + spacing)
            x = margin + (k % cols) * (TILE + spacing)
            tiles[k] = rgba[y : y + TILE, x : x + TILE]
        self._pixels = tiles
        return tiles


@dataclass(eq=False)
class TileLayer:
    """One `<layer>` (also inside groups), its gids decoded on first use."""

    elem: ET.Element
    width: int
    height: int
    what: str  # "map PATH", for messages
    _gids: np.ndarray | NesganError | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.elem.get("name") or self.elem.get("id") or "?"

    def gids(self, required: bool = True) -> np.ndarray | None:
        """(height, width) uint32 gids, flip flags kept; a layer that cannot be decoded (zstd
        without the library) raises, or gives None when not `required`."""
        if self._gids is None:
            data = self.elem.find("data")
            try:
                if data is None:
                    raise NesganError(f"{self.what}: layer {self.name!r} has no <data>")
                self._gids = decode_data(data, self.width, self.height,
                                         f"{self.what}, layer {self.name!r}")
            except NesganError as e:
                self._gids = e
        if isinstance(self._gids, NesganError):
            if required:
                raise self._gids
            return None
        return self._gids


def _walk(elem: ET.Element, tag: str):
    """Layers of one kind (`layer`, `objectgroup`), also inside groups; never a tileset's
    per-tile collision shapes."""
    for child in elem:
        if child.tag == tag:
            yield child
        elif child.tag == "group":
            yield from _walk(child, tag)


class TiledMap:
    """A finite orthogonal map of 16×16 tiles: its tilesets (document order) and tile layers."""

    def __init__(self, root: ET.Element, path: Path):
        self.path = Path(path)
        self.root = root
        self.what = f"map {self.path}"
        self.width, self.height = check_map(root, self.what)
        self.map_dir = self.path.parent.resolve()
        self.tilesets: list[Tileset] = []
        for ts in root.findall("tileset"):
            first = int_attr(ts, "firstgid", self.what)
            if first < 1:
                raise NesganError(f"{self.what}: a tileset has firstgid={first}; gids start at 1")
            self.tilesets.append(Tileset(ts, first, self.map_dir))
        self.layers = [TileLayer(el, int_attr(el, "width", self.what, self.width),
                                 int_attr(el, "height", self.what, self.height), self.what)
                       for el in _walk(root, "layer")]

    @property
    def object_layers(self) -> list[ET.Element]:
        return list(_walk(self.root, "objectgroup"))

    def layer(self, name: str) -> TileLayer | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def owner(self, gid: int) -> Tileset | None:
        """Tiled's rule: the tileset with the largest firstgid not above the (bare) gid."""
        gid &= GID_MASK
        owner = None
        for ts in self.tilesets:
            if ts.firstgid <= gid and (owner is None or ts.firstgid > owner.firstgid):
                owner = ts
        return owner

    def pick_layer(self, name: str | None, doing: str = "export") -> TileLayer:
        """The layer named `name`, or else the one painted with nesgan's tilesets (preferring a
        layer that uses only them, then one named like one of them); one line when there is no
        clear one, `doing` naming the command's verb in it."""
        names = [layer.name for layer in self.layers]
        if not self.layers:
            raise NesganError(f"{self.what} has no tile layer")
        if name is not None:
            chosen = self.layer(name)
            if chosen is None:
                raise NesganError(f"{self.what} has no tile layer named {name!r}; its tile "
                                  "layers: " + ", ".join(repr(n) for n in names))
            return chosen

        def uses(layer: TileLayer) -> tuple[bool, bool]:  # (uses ours, only ours)
            owners = {self.owner(int(g)) for g in np.unique(layer.gids() & GID_MASK) if g}
            ours = {o is not None and o.ours for o in owners}
            return True in ours, ours == {True}

        using = [layer for layer in self.layers if uses(layer)[0]]
        if len(using) > 1:
            only = [layer for layer in using if uses(layer)[1]]
            own_names = {t.name for t in self.tilesets if t.ours}
            named = [layer for layer in only if layer.name in own_names]
            using = named if len(named) == 1 else only if len(only) == 1 else using
        if len(using) == 1:
            return using[0]
        if using:
            raise NesganError(f"{self.what}: several tile layers use nesgan's tilesets ("
                              + ", ".join(repr(layer.name) for layer in using)
                              + f"); pick the one to {doing} with --layer NAME")
        raise NesganError(f"no tile layer of {self.what} is painted with nesgan's tilesets; pick "
                          f"the layer to {doing} with --layer NAME (tile layers: "
                          + ", ".join(repr(n) for n in names) + ")")


def read_map(path: Path) -> TiledMap:
    """Parse (safely: `tmx.parse_xml`) and check the map at `path`."""
    path = Path(path)
    return TiledMap(parse_xml(path, "map"), path)
