"""Read the example map's tile layer and write the grown level beside the same tilesets.

All map reading is `read_example` (one function, so it can move onto a shared map model
later): the map must be orthogonal and finite; the layer is `--layer NAME`, else the only tile
layer, else the one painted with nesgan's tilesets (TSX files whose tiles carry nesgan's
`near_copy` property, as export-nes chooses). Gids keep their flip bits: a flipped tile is
another tile (the NES cannot flip background tiles either).

`write_level` writes a new map: the example's tilesets REFERENCED (external `source` paths
rewritten relative to the new map's folder; an embedded tileset copied with its image path
rewritten the same way), the same `firstgid`s, one CSV tile layer, written atomically.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np

from nesgan.errors import NesganError
from nesgan.files import atomic_write_text
from nesgan.tiled.tmx import (
    GID_MASK,
    TILED_VERSION,
    DataFormat,
    decode_data,
    encode_data,
    int_attr,
    parse_xml,
    xml_text,
)


@dataclass
class Example:
    """The example's chosen tile layer and what the grown map needs to reference its tiles."""

    path: Path
    layer: str
    gids: np.ndarray  # (height, width) uint32, flip bits kept; 0 = empty cell
    tilesets: list[ET.Element]  # the map's <tileset> elements as written (firstgid, source | embedded)
    tilewidth: int
    tileheight: int
    renderorder: str = "right-down"
    other_layers: list[str] = field(default_factory=list)  # tile layers not read

    @property
    def height(self) -> int:
        return int(self.gids.shape[0])

    @property
    def width(self) -> int:
        return int(self.gids.shape[1])


def _tile_layers(elem: ET.Element):
    for child in elem:
        if child.tag == "layer":
            yield child
        elif child.tag == "group":
            yield from _tile_layers(child)


def _name(el: ET.Element) -> str:
    return el.get("name") or el.get("id") or "?"


def _nesgan_firstgids(root: ET.Element, folder: Path) -> list[tuple[int, bool]]:
    """(firstgid, is one of nesgan's tilesets) per tileset, sorted by firstgid."""
    out = []
    for ts in root.findall("tileset"):
        first = int_attr(ts, "firstgid", "tileset")
        ours = False
        src = ts.get("source")
        if src is not None:
            try:
                tsx = parse_xml((folder / src).resolve(), "tileset")
            except NesganError:
                tsx = None  # unreadable: not ours; Tiled and export-nes will say more
            ours = tsx is not None and any(p.get("name") == "near_copy" for p in tsx.iter("property"))
        out.append((first, ours))
    return sorted(out)


def _uses_ours(gids: np.ndarray, firsts: list[tuple[int, bool]]) -> bool:
    bare = np.unique(gids & GID_MASK)
    for gid in bare[bare > 0].tolist():
        owner = [ours for first, ours in firsts if first <= gid]
        if owner and owner[-1]:
            return True
    return False


def read_example(path: Path, layer: str | None = None) -> Example:
    """The example map's tile layer as gids, with its tilesets, or one line saying why not."""
    path = Path(path)
    what = f"example {path}"
    root = parse_xml(path, "map")
    if root.tag != "map":
        raise NesganError(f"{what} is not a Tiled map (root <{root.tag}>)")
    if root.get("infinite") == "1":
        raise NesganError(f"{what} is an infinite map; nesgan level reads finite maps (uncheck "
                          "Map Properties > Infinite in Tiled and save)")
    orientation = root.get("orientation", "orthogonal")
    if orientation != "orthogonal":
        raise NesganError(f"{what} is {orientation}; nesgan level grows orthogonal maps (the NES "
                          "draws a square grid)")
    width, height = int_attr(root, "width", what), int_attr(root, "height", what)
    layers = list(_tile_layers(root))
    if not layers:
        raise NesganError(f"{what} has no tile layer: paint the example on a tile layer in Tiled")
    names = [_name(el) for el in layers]
    if layer is not None:
        chosen = [el for el in layers if _name(el) == layer]
        if not chosen:
            raise NesganError(f"{what} has no tile layer named {layer!r}; its tile layers: "
                              + ", ".join(repr(n) for n in names))
    else:
        chosen = layers
    grids = {}
    for el in chosen:
        data = el.find("data")
        if data is None:
            raise NesganError(f"{what}: layer {_name(el)!r} has no <data>")
        grids[id(el)] = decode_data(data, int_attr(el, "width", what, width),
                                    int_attr(el, "height", what, height),
                                    f"{what}, layer {_name(el)!r}")
    if len(chosen) > 1:
        firsts = _nesgan_firstgids(root, path.parent)
        ours = [el for el in chosen if _uses_ours(grids[id(el)], firsts)]
        if len(ours) != 1:
            raise NesganError(f"{what} has {len(chosen)} tile layers and "
                              + ("none" if not ours else f"{len(ours)}")
                              + " painted with nesgan's tilesets; pick the example with --layer "
                              "NAME (tile layers: " + ", ".join(repr(n) for n in names) + ")")
        chosen = ours
    el = chosen[0]
    return Example(
        path=path, layer=_name(el), gids=grids[id(el)], tilesets=root.findall("tileset"),
        tilewidth=int_attr(root, "tilewidth", what), tileheight=int_attr(root, "tileheight", what),
        renderorder=root.get("renderorder", "right-down"),
        other_layers=[n for n, e in zip(names, layers, strict=True) if e is not el])


def _rebase(src: str, old_dir: Path, new_dir: Path) -> str:
    """A relative path written in `old_dir`, rewritten to name the same file from `new_dir`."""
    if os.path.isabs(src) or "://" in src:
        return src
    target = (old_dir / src).resolve()
    return os.path.relpath(target, new_dir.resolve()).replace(os.sep, "/")


def level_text(example: Example, gids: np.ndarray, out: Path) -> str:
    """The grown map's TMX text: `gids` (height, width) in one CSV layer named like the
    example's, the example's tilesets referenced from `out`'s folder."""
    height, width = gids.shape
    root = ET.Element("map", {
        "version": TILED_VERSION[0], "tiledversion": TILED_VERSION[1],
        "orientation": "orthogonal", "renderorder": example.renderorder,
        "width": str(width), "height": str(height),
        "tilewidth": str(example.tilewidth), "tileheight": str(example.tileheight),
        "infinite": "0", "nextlayerid": "2", "nextobjectid": "1",
    })
    old_dir, new_dir = example.path.parent, Path(out).parent
    for ts in example.tilesets:
        ts = copy.deepcopy(ts)
        if ts.get("source") is not None:
            ts.set("source", _rebase(ts.get("source", ""), old_dir, new_dir))
        else:  # embedded: its atlas path is relative to the map
            for image in ts.iter("image"):
                if image.get("source"):
                    image.set("source", _rebase(image.get("source", ""), old_dir, new_dir))
        root.append(ts)
    layer = ET.SubElement(root, "layer", {"id": "1", "name": example.layer,
                                          "width": str(width), "height": str(height)})
    encode_data(ET.SubElement(layer, "data"), gids, DataFormat("csv", None))
    ET.indent(root, space=" ")
    return xml_text(root)


def write_level(example: Example, gids: np.ndarray, out: Path) -> None:
    """Write the grown map to `out` atomically (its folder is created)."""
    text = level_text(example, gids, out)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
