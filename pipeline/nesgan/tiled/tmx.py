"""Tiled tilesets (TSX + PNG atlas), map layer data codecs and safe XML, in the TMX vocabulary.

Reference: https://doc.mapeditor.org/en/stable/reference/tmx-map-format/ . A gid is a tileset's
`firstgid` plus the tile's local id, with flip flags in bits 31/30/29 (and 28 for hexagonal
120° rotation). A tile layer's `<data>` is CSV, base64 of little-endian uint32 gids (raw, zlib,
gzip or zstd compressed), or deprecated `<tile gid>` children.

Atlas layout (nesgan's own tilesets): `columns` fixed when the tileset is first written (16), tile
id k at row k // columns, column k % columns, no margin or spacing. The last row is padded with
magenta cells that the TSX declares transparent (`<image trans="ff00ff">`, a colour the NES
palette never produces) and marks `<tile type="padding" probability="0">`. `tilecount` says what
Tiled computes from the image, the whole grid (`Atlas.extent`), so Tiled and nesgan agree on the
gid range; `read_atlas` trims the padding cells off the end again.
"""

from __future__ import annotations

import base64
import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from PIL import Image

from nesgan.errors import NesganError
from nesgan.files import atomic_write_bytes, atomic_write_text
from nesgan.images import TILE, encode_png

FLIP_FLAGS = 0xF0000000  # horizontal, vertical, diagonal flip and hexagonal 120° rotation
GID_MASK = 0x0FFFFFFF
PAD_RGB = (255, 0, 255)  # padding cells of the atlas; not an NES colour in any common table
PAD_HEX = "ff00ff"
PAD_TYPE = "padding"  # the <tile type> of the atlas's padding cells (probability 0)
MAX_XML_BYTES = 64 << 20  # a TMX/TSX larger than this is not a hand-made map; refuse
MAX_CELLS = 1 << 24  # cells in one layer (a 4096×4096 map); bounds decompressed layer data
MAX_ATLAS_PIXELS = 1 << 26  # 4096 × 16384 px: 262,144 tiles, far beyond a GAN's output
TILED_VERSION = ("1.8", "1.8.2")  # format version / the Tiled we verify against
OUR_PROPERTIES = ("count", "near_copy", "nearest_source", "distance")


# ---------------------------------------------------------------------------------------------
# XML


def parse_xml(path: Path, what: str) -> ET.Element:
    """Parse an untrusted TMX/TSX with defusedxml (no entities, no external references),
    keeping comments so a rewrite changes only what nesgan means to change."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise NesganError(f"cannot read {what} {path}: {e.strerror}") from None
    if size > MAX_XML_BYTES:
        raise NesganError(f"{what} {path} is {size} bytes; nesgan reads at most {MAX_XML_BYTES}")
    parser = DefusedXMLParser(target=ET.TreeBuilder(insert_comments=True))
    try:
        parser.feed(path.read_bytes())
        return parser.close()
    except DefusedXmlException as e:
        raise NesganError(
            f"{what} {path} uses XML entities or external references ({type(e).__name__}); "
            "Tiled never writes those: re-save it from Tiled; it was left untouched"
        ) from None
    except ET.ParseError as e:
        raise NesganError(f"{what} {path} is not well-formed XML ({e}); it was left untouched") from None


def xml_text(root: ET.Element) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def int_attr(elem: ET.Element, name: str, what: str, default: int | None = None) -> int:
    value = elem.get(name)
    if value is None:
        if default is None:
            raise NesganError(f"{what}: <{elem.tag}> has no {name!r} attribute")
        return default
    try:
        return int(value)
    except ValueError:
        raise NesganError(f"{what}: <{elem.tag} {name}={value!r}> is not an integer") from None


# ---------------------------------------------------------------------------------------------
# Layer data


@dataclass(frozen=True)
class DataFormat:
    """How a `<data>` element is written: encoding None (`<tile>` children), csv or base64."""

    encoding: str | None
    compression: str | None

    @property
    def label(self) -> str:
        return "+".join(x for x in (self.encoding or "xml", self.compression) if x)


def data_format(data: ET.Element) -> DataFormat:
    fmt = DataFormat(data.get("encoding"), data.get("compression"))
    if fmt.encoding not in (None, "csv", "base64"):
        raise NesganError(f"unsupported layer encoding {fmt.encoding!r} (Tiled writes csv or base64)")
    if fmt.compression not in (None, "zlib", "gzip", "zstd") or (
        fmt.compression and fmt.encoding != "base64"
    ):
        raise NesganError(f"unsupported layer data format {fmt.label!r}")
    return fmt


def _zstd():
    try:
        import zstandard
    except ImportError:
        raise NesganError(
            "a layer is zstd-compressed and nesgan needs to rewrite it; "
            "`pip install zstandard`, or in Tiled set Map Properties > Tile Layer Format to "
            "Base64 (zlib compressed) and save"
        ) from None
    return zstandard


def _decompress(raw: bytes, compression: str | None, limit: int) -> bytes:
    """Decompress at most `limit + 1` bytes, so a decompression bomb costs nothing."""
    if compression is None:
        return raw
    if compression in ("zlib", "gzip"):
        d = zlib.decompressobj(zlib.MAX_WBITS | (16 if compression == "gzip" else 0))
        try:
            return d.decompress(raw, limit + 1)
        except zlib.error as e:
            raise NesganError(f"corrupt {compression} layer data: {e}") from None
    z = _zstd()
    try:
        return z.ZstdDecompressor().decompressobj().decompress(raw)[: limit + 1]
    except z.ZstdError as e:
        raise NesganError(f"corrupt zstd layer data: {e}") from None


def _compress(raw: bytes, compression: str | None) -> bytes:
    if compression is None:
        return raw
    if compression == "zlib":
        return zlib.compress(raw, 9)
    if compression == "gzip":
        return gzip.compress(raw, 9, mtime=0)
    return _zstd().ZstdCompressor().compress(raw)


def decode_data(data: ET.Element, width: int, height: int, what: str) -> np.ndarray:
    """A layer's `<data>` -> (height, width) uint32 gids, flip flags included."""
    n = width * height
    if not 0 < n <= MAX_CELLS:
        raise NesganError(f"{what}: a {width}×{height} layer is outside 1…{MAX_CELLS} cells")
    if data.find("chunk") is not None:
        raise NesganError(f"{what} has chunks (an infinite map); nesgan needs a finite map")
    fmt = data_format(data)
    text = (data.text or "").strip()
    if fmt.encoding is None:
        values = [int_attr(t, "gid", what, default=0) for t in data.findall("tile")]
        gids = np.array(values, dtype=np.int64)
    elif fmt.encoding == "csv":
        try:
            gids = np.array([int(v) for v in text.replace("\n", "").split(",") if v.strip()],
                            dtype=np.int64)
        except ValueError:
            raise NesganError(f"{what}: CSV layer data holds something other than numbers") from None
    else:
        try:
            raw = base64.b64decode("".join(text.split()), validate=True)
        except ValueError:
            raise NesganError(f"{what}: layer data is not valid base64") from None
        raw = _decompress(raw, fmt.compression, 4 * n)
        if len(raw) != 4 * n:
            raise NesganError(f"{what}: layer data holds {len(raw) // 4} gids, expected {width}×{height}")
        gids = np.frombuffer(raw, dtype="<u4").astype(np.int64)
    if gids.size != n:
        raise NesganError(f"{what}: layer data holds {gids.size} gids, expected {width}×{height}")
    if gids.min() < 0 or gids.max() > 0xFFFFFFFF:
        raise NesganError(f"{what}: a gid is outside 0…2³²−1")
    return gids.astype(np.uint32).reshape(height, width)


def encode_data(data: ET.Element, gids: np.ndarray, fmt: DataFormat | None = None) -> None:
    """Write (H, W) gids into `data` in place, in `fmt` (default: the element's own format),
    keeping the whitespace around the text so the file diffs like one Tiled saved."""
    fmt = fmt or data_format(data)
    gids = np.ascontiguousarray(gids, dtype=np.uint32)
    text = data.text or ""
    stripped = text.strip()
    lead = text[: len(text) - len(text.lstrip())] if stripped else "\n"
    trail = text[len(text.rstrip()):] if stripped else "\n"
    for child in list(data):
        data.remove(child)
    for key in ("encoding", "compression"):
        data.attrib.pop(key, None)
    if fmt.encoding is not None:
        data.set("encoding", fmt.encoding)
    if fmt.compression is not None:
        data.set("compression", fmt.compression)
    if fmt.encoding == "csv":
        rows = [",".join(str(int(v)) for v in row) for row in gids]
        data.text = "\n" + ",\n".join(rows) + "\n"
    elif fmt.encoding == "base64":
        raw = _compress(gids.astype("<u4").tobytes(), fmt.compression)
        data.text = lead + base64.b64encode(raw).decode("ascii") + trail
    else:
        data.text = "\n  "
        for i, v in enumerate(gids.reshape(-1)):
            tile = ET.SubElement(data, "tile")
            if v:
                tile.set("gid", str(int(v)))
            tile.tail = "\n  " if i + 1 < gids.size else "\n "


# ---------------------------------------------------------------------------------------------
# Tilesets (nesgan's own: TSX + PNG atlas)


@dataclass
class Atlas:
    """One of nesgan's tilesets: its tiles' RGB pixels by id, and the TSX tree to update."""

    name: str
    columns: int
    base: np.ndarray  # (N, 16, 16, 3) uint8 RGB, tile id = index (see `tiles`)
    root: ET.Element | None = None  # the existing TSX, updated in place to keep user edits
    props: dict[int, dict[str, object]] = field(default_factory=dict)  # our properties per id
    added: list[np.ndarray] = field(default_factory=list)  # appended (16, 16, 3) tiles

    @property
    def tiles(self) -> np.ndarray:
        """(N, 16, 16, 3) uint8 RGB of every tile, old and appended, by id."""
        if self.added:  # concatenated once, not per append
            self.base = np.concatenate([self.base, np.stack(self.added)])
            self.added = []
        return self.base

    @property
    def tilecount(self) -> int:
        return len(self.base) + len(self.added)

    @property
    def rows(self) -> int:
        return -(-self.tilecount // self.columns)

    @property
    def extent(self) -> int:
        """Gids the tileset occupies in a map: the whole grid, as Tiled slices the image."""
        return max(self.rows, 1) * self.columns

    def append(self, rgb: np.ndarray) -> int:
        self.added.append(np.asarray(rgb, dtype=np.uint8))
        return self.tilecount - 1


def empty_atlas(name: str, columns: int) -> Atlas:
    return Atlas(name, columns, np.zeros((0, TILE, TILE, 3), np.uint8))


def read_atlas(tsx: Path, name: str, columns: int) -> Atlas:
    """nesgan's tileset at `tsx` (a fresh empty one when absent), checked to be ours in shape."""
    if not tsx.exists():
        return empty_atlas(name, columns)
    what = f"tileset {tsx}"
    root = parse_xml(tsx, "tileset")
    if root.tag != "tileset":
        raise NesganError(f"{what} is not a TSX (root <{root.tag}>); move it away or pick another --name")
    for key, want in (("tilewidth", TILE), ("tileheight", TILE), ("spacing", 0), ("margin", 0)):
        if int_attr(root, key, what, default=0 if key in ("spacing", "margin") else None) != want:
            raise NesganError(f"{what} has {key}={root.get(key)}, nesgan writes {want}; "
                              "move it away or pick another --name")
    cols = int_attr(root, "columns", what)
    count = int_attr(root, "tilecount", what)
    image = root.find("image")
    if image is None or not image.get("source"):
        raise NesganError(f"{what} has no atlas <image>; move it away or pick another --name")
    png = tsx.parent / image.get("source", "")
    if cols < 1 or count < 0:
        raise NesganError(f"{what} declares columns={cols}, tilecount={count}")
    tiles = np.zeros((0, TILE, TILE, 3), np.uint8)
    if count:
        rgb = read_png(png, f"atlas of {what}")
        h, w = rgb.shape[:2]
        if w != cols * TILE or h < -(-count // cols) * TILE:
            raise NesganError(f"{what}: atlas {png.name} is {w}×{h} px, too small for "
                              f"{count} tiles in {cols} columns; move both away to start over")
        grid = rgb[: h // TILE * TILE].reshape(h // TILE, TILE, cols, TILE, 3).swapaxes(1, 2)
        tiles = np.ascontiguousarray(grid.reshape(-1, TILE, TILE, 3)[:count])
        # Tiled, saving the TSX, counts the padding cells as tiles: trim all-padding tiles off
        # the end again (no NES tile is solid PAD_RGB) so ids keep following the real tiles.
        while len(tiles) and (tiles[-1] == PAD_RGB).all():
            tiles = tiles[:-1]
    atlas = Atlas(root.get("name") or name, cols, tiles, root)
    return atlas


def read_png(path: Path, what: str, mode: str = "RGB") -> np.ndarray:
    """(H, W, channels) uint8 of a tileset's image in `mode` (RGB or RGBA), refusing
    decompression bombs before decoding."""
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_ATLAS_PIXELS:
                raise NesganError(f"{what} {path} is {im.width}×{im.height} px, over the "
                                  f"{MAX_ATLAS_PIXELS}-pixel cap")
            return np.asarray(im.convert(mode))
    except (OSError, Image.DecompressionBombError) as e:
        raise NesganError(f"cannot read {what} {path}: {e}") from None


def atlas_png_bytes(atlas: Atlas) -> bytes:
    """The atlas as an RGB PNG: tiles row-major in `columns`, the last row padded in PAD_RGB."""
    rows, cols = max(atlas.rows, 1), atlas.columns
    grid = np.empty((rows * cols, TILE, TILE, 3), np.uint8)
    grid[:] = PAD_RGB
    grid[: atlas.tilecount] = atlas.tiles
    # (rows*cols, 16, 16, 3) -> (rows, 16, cols, 16, 3) -> (rows*16, cols*16, 3)
    img = grid.reshape(rows, cols, TILE, TILE, 3).swapaxes(1, 2).reshape(rows * TILE, cols * TILE, 3)
    return encode_png(img, indexed=True)


def _property_value(value: object) -> tuple[str | None, str]:
    if isinstance(value, bool):
        return "bool", "true" if value else "false"
    if isinstance(value, int):
        return "int", str(value)
    if isinstance(value, float):
        return "float", repr(value)
    return None, str(value)


def tsx_root(atlas: Atlas, png_name: str, zero_probability: set[int]) -> ET.Element:
    """The TSX for `atlas`: the existing tree with nesgan's attributes and per-tile properties
    refreshed (other elements and properties, e.g. wang sets made in Tiled, are kept)."""
    root = atlas.root
    if root is None:
        root = ET.Element("tileset", {"version": TILED_VERSION[0], "tiledversion": TILED_VERSION[1],
                                      "name": atlas.name})
    root.set("tilewidth", str(TILE))
    root.set("tileheight", str(TILE))
    # What Tiled computes from the image: the whole grid, padding cells included (they are marked
    # below so nothing paints with them); `read_atlas` trims them off again.
    root.set("tilecount", str(atlas.extent if atlas.tilecount else 0))
    root.set("columns", str(atlas.columns))
    image = root.find("image")
    if image is None:
        image = ET.Element("image")
        root.insert(0, image)
    image.attrib.clear()
    image.set("source", png_name)
    image.set("trans", PAD_HEX)
    image.set("width", str(atlas.columns * TILE))
    image.set("height", str(max(atlas.rows, 1) * TILE))

    old_tiles = root.findall("tile")
    tiles = {int_attr(t, "id", "tileset"): t for t in old_tiles}
    for tid in atlas.props:
        tiles.setdefault(tid, ET.Element("tile", {"id": str(tid)}))
    for tid, tile in tiles.items():  # a padding cell that has become a real tile
        if tid < atlas.tilecount and tile.get("type") == PAD_TYPE:
            del tile.attrib["type"]
    if atlas.tilecount:
        for tid in range(atlas.tilecount, atlas.extent):  # padding: typed, never painted at random
            tiles[tid] = ET.Element("tile", {"id": str(tid), "type": PAD_TYPE, "probability": "0"})
    # <tile> elements in id order, where the first one was (or right after <image>)
    children = list(root)
    at = children.index(old_tiles[0]) if old_tiles else children.index(image) + 1
    for t in old_tiles:
        root.remove(t)
    for offset, tid in enumerate(sorted(tiles)):
        root.insert(at + offset, tiles[tid])
    for tid in sorted(atlas.props):
        tile = tiles[tid]
        if tid in zero_probability:
            tile.set("probability", "0")
        else:
            tile.attrib.pop("probability", None)
        props = tile.find("properties")
        if props is None:
            props = ET.SubElement(tile, "properties")
        existing = {p.get("name"): p for p in props.findall("property")}
        for key, value in atlas.props[tid].items():
            prop = existing.get(key)
            if prop is None:
                prop = ET.SubElement(props, "property", {"name": key})
            kind, text = _property_value(value)
            prop.attrib.clear()  # name, type, value: the order Tiled writes
            prop.set("name", key)
            if kind:
                prop.set("type", kind)
            prop.set("value", text)
    ET.indent(root, space=" ")  # Tiled's style; only whitespace-only text is touched
    return root


def write_atlas(tsx: Path, atlas: Atlas, zero_probability: set[int] = frozenset()) -> None:
    """Write `tsx` and its atlas PNG (beside it, `<stem>.png`) atomically, PNG first: the old TSX
    still describes a prefix of the new atlas if a kill comes between the two."""
    png = tsx.with_suffix(".png")
    atomic_write_bytes(png, atlas_png_bytes(atlas))
    root = tsx_root(atlas, png.name, set(zero_probability))
    atomic_write_text(tsx, xml_text(root))
    atlas.root = root


def tileset_extent(root: ET.Element, what: str) -> int:
    """Gids a tileset (a TSX root or an embedded `<tileset>`) occupies: tilecount, or the grid
    its image slices into when that is larger, or one past its highest `<tile id>`."""
    count = int_attr(root, "tilecount", what, default=0)
    image = root.find("image")
    if image is not None and image.get("width") and image.get("height"):
        tw, th = int_attr(root, "tilewidth", what, 1), int_attr(root, "tileheight", what, 1)
        sp, mg = int_attr(root, "spacing", what, 0), int_attr(root, "margin", what, 0)
        w, h = int_attr(image, "width", what), int_attr(image, "height", what)
        cols = max((w - 2 * mg + sp) // max(tw + sp, 1), 0)
        rows = max((h - 2 * mg + sp) // max(th + sp, 1), 0)
        count = max(count, cols * rows)
    ids = [int_attr(t, "id", what) for t in root.findall("tile")]
    return max([count] + [i + 1 for i in ids])
