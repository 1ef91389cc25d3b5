"""Read the example map's tile layer and write the grown level beside the same tilesets.

`read_example` reads the map through `nesgan.tiled.model` (finite, orthogonal, 16×16 tiles);
the layer is `--layer NAME`, else the only tile layer, else the one painted with nesgan's tilesets
(chosen as export-nes chooses). Gids keep their flip bits: a flipped tile is
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
from nesgan.tiled.model import read_map
from nesgan.tiled.tmx import TILE, TILED_VERSION, DataFormat, encode_data, xml_text


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


def read_example(path: Path, layer: str | None = None) -> Example:
    """The example map's tile layer as gids, with its tilesets, or one line saying why not. The
    map is read through `nesgan.tiled.model` (the checks and wording every command shares)."""
    tmap = read_map(path)
    if not tmap.layers:
        raise NesganError(f"{tmap.what} has no tile layer: paint the example on a tile layer in Tiled")
    if layer is None and len(tmap.layers) == 1:
        chosen = tmap.layers[0]  # the only one, whatever tilesets painted it
    else:
        chosen = tmap.pick_layer(layer, doing="grow from")
    return Example(
        path=tmap.path, layer=chosen.name, gids=chosen.gids(),
        tilesets=[ts.elem for ts in tmap.tilesets], tilewidth=TILE, tileheight=TILE,
        renderorder=tmap.root.get("renderorder", "right-down"),
        other_layers=[each.name for each in tmap.layers if each is not chosen])


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
