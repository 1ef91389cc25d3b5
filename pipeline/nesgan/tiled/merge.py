"""Write nesgan's layer and tilesets into a Tiled map, new or made by the user, safely.

The user's map keeps everything that is not nesgan's: its tilesets keep their `firstgid`s,
layers keep their encoding (csv, base64, base64+zlib/gzip/zstd, `<tile>` elements), objects,
properties and attributes stay as they were. nesgan owns the tilesets whose `source` resolves to
its own TSX files and the tile layer named like its tileset. Rules:

1. Each of nesgan's tilesets keeps its `firstgid` while its (grown) range still fits; otherwise it
   moves after the highest gid in use, and every gid of it in every layer and tile object is
   renumbered, so tiles the user painted from it stay the same tiles.
2. A map narrower or shorter than nesgan's layer grows; the other tile layers are re-encoded in
   their own format, padded with 0 (empty) to the right and bottom. Objects keep their pixels.
3. nesgan's layer (CSV) goes below all other layers, so the user's art stays on top.
4. Anything that cannot be merged safely (infinite map, non-orthogonal or non-16×16 map,
   malformed XML, entities, an embedded tileset named like nesgan's, a zstd layer that must be
   rewritten without `zstandard`) is refused with one line, and the file is left untouched:
   the new text is built in memory and written atomically only when complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from nesgan.errors import NesganError
from nesgan.files import atomic_write_text
from nesgan.tiled.tmx import (
    FLIP_FLAGS,
    GID_MASK,
    MAX_CELLS,
    TILE,
    TILED_VERSION,
    DataFormat,
    decode_data,
    encode_data,
    int_attr,
    parse_xml,
    tileset_extent,
    xml_text,
)

LAYER_TAGS = ("layer", "objectgroup", "imagelayer", "group")


@dataclass(frozen=True)
class OwnTileset:
    """One of nesgan's tilesets as the map sees it."""

    tsx: Path  # the TSX file; the map references it by a path relative to the map
    name: str  # its `name`: an embedded tileset with this name makes a merge unsafe
    extent: int  # gids it needs (its whole atlas grid)


@dataclass
class MapUpdate:
    """What `update_map` did, for the CLI summary and tests."""

    path: Path
    created: bool
    firstgids: list[int]  # per OwnTileset, in the order given
    size: tuple[int, int]  # map width, height in tiles after the update
    grown_from: tuple[int, int] | None = None  # the old size when the map had to grow
    moved: list[str] = field(default_factory=list)  # own tilesets that got a new firstgid
    rewritten_layers: list[str] = field(default_factory=list)  # user layers re-encoded


@dataclass
class _Entry:
    elem: ET.Element
    first: int
    extent: int | None  # None: the external TSX could not be read
    own: int | None  # index into the OwnTileset list


def new_map_root(width: int, height: int) -> ET.Element:
    return ET.Element("map", {
        "version": TILED_VERSION[0], "tiledversion": TILED_VERSION[1],
        "orientation": "orthogonal", "renderorder": "right-down",
        "width": str(width), "height": str(height),
        "tilewidth": str(TILE), "tileheight": str(TILE), "infinite": "0",
        "nextlayerid": "1", "nextobjectid": "1",
    })


def _layers(elem: ET.Element, tag: str):
    """Layers of one kind (`layer`, `objectgroup`), also inside groups; never a tileset's
    per-tile collision shapes."""
    for child in elem:
        if child.tag == tag:
            yield child
        elif child.tag == "group":
            yield from _layers(child, tag)


def _tile_layers(elem: ET.Element):
    return _layers(elem, "layer")


def _object_layers(elem: ET.Element):
    return _layers(elem, "objectgroup")


def _check_map(root: ET.Element, what: str) -> tuple[int, int]:
    if root.tag != "map":
        raise NesganError(f"{what} is not a Tiled map (root <{root.tag}>); it was left untouched")
    if root.get("infinite") == "1":
        raise NesganError(f"{what} is an infinite map; nesgan only merges into finite maps "
                          "(uncheck Map Properties > Infinite in Tiled); it was left untouched")
    if root.get("orientation", "orthogonal") != "orthogonal":
        raise NesganError(f"{what} is {root.get('orientation')}; nesgan's layer needs an "
                          "orthogonal map; it was left untouched")
    tw, th = int_attr(root, "tilewidth", what), int_attr(root, "tileheight", what)
    if (tw, th) != (TILE, TILE):
        raise NesganError(f"{what} has {tw}×{th} tiles; nesgan's layer needs a 16×16 map; "
                          "it was left untouched")
    w, h = int_attr(root, "width", what), int_attr(root, "height", what)
    if not (0 < w and 0 < h and w * h <= MAX_CELLS):
        raise NesganError(f"{what} is {w}×{h} tiles, outside 1…{MAX_CELLS} cells")
    return w, h


def _entries(root: ET.Element, map_dir: Path, own: list[OwnTileset], what: str) -> list[_Entry]:
    own_paths = [t.tsx.resolve() for t in own]
    own_names = {t.name for t in own}
    entries: list[_Entry] = []
    for ts in root.findall("tileset"):
        first = int_attr(ts, "firstgid", what)
        if first < 1:
            raise NesganError(f"{what}: a tileset has firstgid={first}; gids start at 1")
        src = ts.get("source")
        if src is None:
            if ts.get("name") in own_names:
                raise NesganError(
                    f"{what} embeds a tileset named {ts.get('name')!r}, like nesgan's; rename it "
                    "in Tiled or export with another --name; it was left untouched")
            entries.append(_Entry(ts, first, tileset_extent(ts, what), None))
            continue
        resolved = (map_dir / src).resolve()
        if resolved in own_paths:
            k = own_paths.index(resolved)
            if any(e.own == k for e in entries):
                raise NesganError(f"{what} references {src} twice; it was left untouched")
            entries.append(_Entry(ts, first, None, k))
            continue
        try:
            extent = tileset_extent(parse_xml(resolved, "tileset"), f"tileset {resolved}")
        except NesganError:
            extent = None  # missing or unreadable: bounded by the gids the layers use
        entries.append(_Entry(ts, first, extent, None))
    return entries


class _Layers:
    """Tile layers decoded on demand; a layer that cannot be decoded (zstd without the
    library) is an error only when it has to be read."""

    def __init__(self, root: ET.Element, skip: ET.Element | None, size: tuple[int, int], what: str):
        self.elems = [el for el in _tile_layers(root) if el is not skip]
        self.size = size
        self.what = what
        self._cache: dict[int, np.ndarray | NesganError] = {}

    def name(self, el: ET.Element) -> str:
        return el.get("name") or el.get("id") or "?"

    def get(self, el: ET.Element, required: bool = True) -> np.ndarray | None:
        key = id(el)
        if key not in self._cache:
            w = int_attr(el, "width", self.what, self.size[0])
            h = int_attr(el, "height", self.what, self.size[1])
            data = el.find("data")
            try:
                if data is None:
                    raise NesganError(f"{self.what}: layer {self.name(el)!r} has no <data>")
                self._cache[key] = decode_data(data, w, h, f"{self.what}, layer {self.name(el)!r}")
            except NesganError as e:
                self._cache[key] = e
        value = self._cache[key]
        if isinstance(value, NesganError):
            if required:
                raise NesganError(f"{value}; the map was left untouched")
            return None
        return value

    def max_gid(self) -> int:
        gids = [int((a & GID_MASK).max()) for el in self.elems
                if (a := self.get(el, required=False)) is not None and a.size]
        return max(gids, default=0)


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _place(entries: list[_Entry], own: list[OwnTileset], layers: _Layers, objects_max: int,
           what: str) -> list[int]:
    """New firstgid per own tileset: kept where its range still fits, else after everything."""
    firsts = sorted(e.first for e in entries)
    fixed = []
    for e in entries:
        if e.own is not None:
            continue
        extent = e.extent
        if extent is None:  # unreadable external TSX: its range reaches its highest used gid
            nxt = [f for f in firsts if f > e.first]
            used = [int(g) for el in layers.elems
                    for g in np.unique(layers.get(el) & GID_MASK)
                    if e.first <= g < (nxt[0] if nxt else 1 << 32)]
            extent = max(used, default=e.first) - e.first + 1
        fixed.append((e.first, e.first + extent))
    current = {e.own: e.first for e in entries if e.own is not None}
    placed: dict[int, int] = {}
    for k, ts in enumerate(own):
        others = fixed + [(f, f + own[j].extent) for j, f in placed.items()]
        others += [(f, f + own[j].extent) for j, f in current.items() if j != k and j not in placed]
        if k in current and not any(_overlaps((current[k], current[k] + ts.extent), o) for o in others):
            placed[k] = current[k]
            continue
        top = max([layers.max_gid(), objects_max] + [b - 1 for _, b in others])
        placed[k] = top + 1
    return [placed[k] for k in range(len(own))]


def _remap(gids: np.ndarray, old_firsts: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Add `shift[owner]` to every gid whose owner (the tileset with the largest firstgid ≤ gid,
    Tiled's rule) moved; flip flags are kept."""
    flags, bare = gids & FLIP_FLAGS, gids & GID_MASK
    owner = np.searchsorted(old_firsts, bare, side="right") - 1
    delta = np.where((bare > 0) & (owner >= 0), shift[np.clip(owner, 0, None)], 0)
    return (flags | (bare.astype(np.int64) + delta).astype(np.uint32)).astype(np.uint32)


def update_map(path: Path, own: list[OwnTileset], layer_name: str,
               which: np.ndarray, local: np.ndarray) -> MapUpdate:
    """Write (or refresh) nesgan's tilesets and its layer in the map at `path`.

    `which` (H, W) holds an index into `own` per cell (-1: empty) and `local` (H, W) the tile id
    within that tileset.
    """
    update, text = plan_map_update(path, own, layer_name, which, local)
    atomic_write_text(path, text)
    return update


def _renumber_and_grow(root: ET.Element, layers: _Layers, tile_objects: list[ET.Element],
                       old_firsts: np.ndarray, shift: np.ndarray, update: MapUpdate,
                       old_size: tuple[int, int], what: str) -> None:
    """Renumber the user's uses of moved tilesets (layers and tile objects) and grow the other
    layers to the map's new size, in memory; records what it rewrote in `update`."""
    (mw, mh), (nw, nh) = old_size, update.size
    grow = (nw, nh) != (mw, mh)
    if grow:
        update.grown_from = (mw, mh)
    rewrites: list[tuple[ET.Element, np.ndarray]] = []
    for el in layers.elems:
        if not (grow or shift.any()):
            break
        gids = layers.get(el)
        new = _remap(gids, old_firsts, shift) if shift.any() else gids
        if grow:
            padded = np.zeros((nh, nw), np.uint32)
            padded[: new.shape[0], : new.shape[1]] = new
            new = padded
        if grow or not np.array_equal(new, gids):
            rewrites.append((el, new))
    if shift.any():
        for o in tile_objects:
            gid = np.array([int_attr(o, "gid", what)], dtype=np.uint32)
            o.set("gid", str(int(_remap(gid, old_firsts, shift)[0])))
    for el, new in rewrites:
        encode_data(el.find("data"), new)
        el.set("width", str(new.shape[1]))
        el.set("height", str(new.shape[0]))
        update.rewritten_layers.append(layers.name(el))
    if grow:
        root.set("width", str(nw))
        root.set("height", str(nh))


def _write_our_layer(root: ET.Element, ours: ET.Element | None, layer_name: str, gids: np.ndarray,
                     what: str) -> None:
    """nesgan's layer as CSV, created at the bottom of the layer stack when the map has none."""
    if ours is None:
        ours = ET.Element("layer")
        if root.get("nextlayerid") is not None:
            next_id = int_attr(root, "nextlayerid", what)
            ours.set("id", str(next_id))
            root.set("nextlayerid", str(next_id + 1))
        ours.set("name", layer_name)
        children = list(root)
        first_layer = next((i for i, c in enumerate(children) if c.tag in LAYER_TAGS), len(children))
        root.insert(first_layer, ours)
    ours.set("width", str(gids.shape[1]))
    ours.set("height", str(gids.shape[0]))
    data = ours.find("data")
    if data is None:
        data = ET.SubElement(ours, "data")
    encode_data(data, gids, DataFormat("csv", None))


def _place_our_tilesets(root: ET.Element, entries: list, own: list[OwnTileset],
                        new_firsts: list[int], map_dir: Path) -> None:
    """nesgan's tilesets as external references, in firstgid order among the map's tilesets."""
    for e in entries:
        if e.own is not None:
            root.remove(e.elem)
    for k, ts in enumerate(own):
        elem = next((e.elem for e in entries if e.own == k), None)
        if elem is None:
            elem = ET.Element("tileset")
        elem.attrib.clear()
        elem.set("firstgid", str(new_firsts[k]))
        elem.set("source", os.path.relpath(ts.tsx.resolve(), map_dir).replace(os.sep, "/"))
        children = list(root)
        later = [c for c in children if c.tag == "tileset" and int(c.get("firstgid", "0")) > new_firsts[k]]
        if later:
            index = children.index(later[0])
        else:
            tilesets = [i for i, c in enumerate(children) if c.tag == "tileset"]
            index = tilesets[-1] + 1 if tilesets else next(
                i for i, c in enumerate(children) if c.tag in LAYER_TAGS)
        root.insert(index, elem)


def plan_map_update(path: Path, own: list[OwnTileset], layer_name: str,
                    which: np.ndarray, local: np.ndarray) -> tuple[MapUpdate, str]:
    """`update_map` without the write: what it would do and the map's new text. Every refusal
    happens here, so a caller can check the map before writing anything else."""
    path = Path(path)
    what = f"map {path}"
    height, width = which.shape
    created = not path.exists()
    root = new_map_root(width, height) if created else parse_xml(path, "map")
    mw, mh = _check_map(root, what)
    map_dir = path.parent.resolve()
    entries = _entries(root, map_dir, own, what)
    ours = next((el for el in _tile_layers(root) if el.get("name") == layer_name), None)
    layers = _Layers(root, ours, (mw, mh), what)
    tile_objects = [o for group in _object_layers(root) for o in group.iter("object")
                    if o.get("gid") is not None]
    objects_max = max((int_attr(o, "gid", what) & GID_MASK for o in tile_objects), default=0)

    # 1. firstgids: keep ours where they fit, move them after the highest used gid where not
    new_firsts = _place(entries, own, layers, objects_max, what)
    update = MapUpdate(path, created, new_firsts, (max(mw, width), max(mh, height)))
    order = sorted(range(len(entries)), key=lambda i: entries[i].first)
    old_firsts = np.array([entries[i].first for i in order], dtype=np.int64)
    shift = np.array([new_firsts[entries[i].own] - entries[i].first
                      if entries[i].own is not None else 0 for i in order], dtype=np.int64)
    update.moved = [own[e.own].name for e in entries
                    if e.own is not None and new_firsts[e.own] != e.first]
    # 2. renumber the user's uses of moved tilesets and grow the other layers, in memory
    _renumber_and_grow(root, layers, tile_objects, old_firsts, shift, update, (mw, mh), what)
    # 3. nesgan's layer, CSV, at the bottom of the layer stack
    nw, nh = update.size
    firsts = np.array(new_firsts, dtype=np.int64)
    gids = np.zeros((nh, nw), np.uint32)
    gids[:height, :width] = np.where(which >= 0, firsts[np.clip(which, 0, None)] + local, 0)
    _write_our_layer(root, ours, layer_name, gids, what)
    # 4. nesgan's tilesets, external, in firstgid order among the map's tilesets
    _place_our_tilesets(root, entries, own, new_firsts, map_dir)
    ET.indent(root, space=" ")  # only whitespace-only text is touched; layer data stays as is
    return update, xml_text(root)
