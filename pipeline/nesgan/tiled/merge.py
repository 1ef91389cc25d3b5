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
from nesgan.tiled.model import TiledMap, TileLayer, Tileset
from nesgan.tiled.tmx import (
    FLIP_FLAGS,
    GID_MASK,
    TILE,
    TILED_VERSION,
    DataFormat,
    encode_data,
    int_attr,
    parse_xml,
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
    tileset: Tileset
    own: int | None  # index into the OwnTileset list

    @property
    def elem(self) -> ET.Element:
        return self.tileset.elem

    @property
    def first(self) -> int:
        return self.tileset.firstgid


def new_map_root(width: int, height: int) -> ET.Element:
    return ET.Element("map", {
        "version": TILED_VERSION[0], "tiledversion": TILED_VERSION[1],
        "orientation": "orthogonal", "renderorder": "right-down",
        "width": str(width), "height": str(height),
        "tilewidth": str(TILE), "tileheight": str(TILE), "infinite": "0",
        "nextlayerid": "1", "nextobjectid": "1",
    })


def _entries(tmap: TiledMap, own: list[OwnTileset], what: str) -> list[_Entry]:
    own_paths = [t.tsx.resolve() for t in own]
    own_names = {t.name for t in own}
    entries: list[_Entry] = []
    for ts in tmap.tilesets:
        if ts.path is None:
            if ts.elem.get("name") in own_names:
                raise NesganError(
                    f"{what} embeds a tileset named {ts.elem.get('name')!r}, like nesgan's; rename it "
                    "in Tiled or export with another --name; it was left untouched")
            entries.append(_Entry(ts, None))
            continue
        if ts.path in own_paths:
            k = own_paths.index(ts.path)
            if any(e.own == k for e in entries):
                raise NesganError(f"{what} references {ts.source} twice; it was left untouched")
            entries.append(_Entry(ts, k))
            continue
        entries.append(_Entry(ts, None))  # missing or unreadable TSX: extent bounded by the gids used
    return entries


class _Layers:
    """The map's tile layers other than nesgan's; a layer that cannot be decoded (zstd without
    the library) is an error only when it has to be read."""

    def __init__(self, layers: list[TileLayer]):
        self.elems = layers

    def get(self, layer: TileLayer, required: bool = True) -> np.ndarray | None:
        try:
            return layer.gids(required)
        except NesganError as e:
            raise NesganError(f"{e}; the map was left untouched") from None

    def max_gid(self) -> int:
        gids = [int((a & GID_MASK).max()) for layer in self.elems
                if (a := self.get(layer, required=False)) is not None and a.size]
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
        extent = e.tileset.extent()
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
    rewrites: list[tuple[TileLayer, np.ndarray]] = []
    for layer in layers.elems:
        if not (grow or shift.any()):
            break
        gids = layers.get(layer)
        new = _remap(gids, old_firsts, shift) if shift.any() else gids
        if grow:
            padded = np.zeros((nh, nw), np.uint32)
            padded[: new.shape[0], : new.shape[1]] = new
            new = padded
        if grow or not np.array_equal(new, gids):
            rewrites.append((layer, new))
    if shift.any():
        for o in tile_objects:
            gid = np.array([int_attr(o, "gid", what)], dtype=np.uint32)
            o.set("gid", str(int(_remap(gid, old_firsts, shift)[0])))
    for layer, new in rewrites:
        encode_data(layer.elem.find("data"), new)
        layer.elem.set("width", str(new.shape[1]))
        layer.elem.set("height", str(new.shape[0]))
        update.rewritten_layers.append(layer.name)
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
    try:
        tmap = TiledMap(root, path)
    except NesganError as e:
        raise NesganError(f"{e}; it was left untouched") from None
    mw, mh = tmap.width, tmap.height
    map_dir = tmap.map_dir
    entries = _entries(tmap, own, what)
    ours = tmap.layer(layer_name)
    layers = _Layers([layer for layer in tmap.layers if layer is not ours])
    tile_objects = [o for group in tmap.object_layers for o in group.iter("object")
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
    _write_our_layer(root, None if ours is None else ours.elem, layer_name, gids, what)
    # 4. nesgan's tilesets, external, in firstgid order among the map's tilesets
    _place_our_tilesets(root, entries, own, new_firsts, map_dir)
    ET.indent(root, space=" ")  # only whitespace-only text is touched; layer data stays as is
    return update, xml_text(root)
