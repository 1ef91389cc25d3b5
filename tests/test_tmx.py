import base64
import gzip
import zlib
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest

from nesgan.errors import NesganError
from nesgan.tiled.merge import OwnTileset, update_map
from nesgan.tiled.model import read_map
from nesgan.tiled.tmx import (
    PAD_RGB,
    DataFormat,
    decode_data,
    empty_atlas,
    encode_data,
    read_atlas,
    write_atlas,
)

FORMATS = [DataFormat("csv", None), DataFormat("base64", None), DataFormat("base64", "zlib"),
           DataFormat("base64", "gzip"), DataFormat(None, None)]


def _atlas(tmp_path: Path, name: str, n: int, seed: int = 0) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(seed)
    atlas = empty_atlas(name, 16)
    tiles = rng.integers(0, 200, size=(n, 16, 16, 3), dtype=np.uint8)
    for t in tiles:
        atlas.append(t)
    atlas.props = {i: {"count": i + 1, "near_copy": False} for i in range(n)}
    tsx = tmp_path / "tilesets" / f"{name}.tsx"
    write_atlas(tsx, atlas)
    return tsx, tiles


ZLIB = DataFormat("base64", "zlib")


def _user_map(tmp_path: Path, width=10, height=6, layer_fmt=ZLIB,
              user_tiles=40) -> tuple[Path, np.ndarray]:
    """A map as Tiled saves it: a user tileset, an encoded tile layer, objects, properties."""
    gids = (np.arange(width * height, dtype=np.uint32).reshape(height, width) % user_tiles) + 1
    gids[0, 0] |= 0x80000000  # a horizontally flipped tile
    root = ET.fromstring(f"""<map version="1.8" tiledversion="1.8.2" orientation="orthogonal"
 renderorder="right-down" width="{width}" height="{height}" tilewidth="16" tileheight="16"
 infinite="0" backgroundcolor="#102030" nextlayerid="4" nextobjectid="3">
 <properties><property name="author" value="me"/></properties>
 <tileset firstgid="1" name="mine" tilewidth="16" tileheight="16" tilecount="{user_tiles}" columns="8">
  <image source="mine.png" width="128" height="{16 * (user_tiles // 8)}"/>
 </tileset>
 <layer id="1" name="ground" width="{width}" height="{height}" opacity="0.5"><data/></layer>
 <objectgroup id="2" name="things"><object id="1" x="3" y="4" width="5" height="6"/>
  <object id="2" gid="3" x="16" y="32" width="16" height="16"/></objectgroup>
</map>""")
    encode_data(root.find("layer/data"), gids, layer_fmt)
    path = tmp_path / "level.tmx"
    path.write_text(ET.tostring(root, encoding="unicode"))
    return path, gids


def _layer(root: ET.Element, name: str) -> np.ndarray:
    el = next(e for e in root.iter("layer") if e.get("name") == name)
    return decode_data(el.find("data"), int(el.get("width")), int(el.get("height")), name)


def _ours(n_main=20, n_near=3, width=28, near=True):
    """nesgan's layer: (which tileset, local id) per cell; the first 3 columns near-copies."""
    which = np.zeros((14, width), np.int64)
    which[:, :3] = 1 if near else 0
    local = np.arange(14 * width).reshape(14, width) % n_main
    local[:, :3] %= n_near
    return which, local


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.label)
def test_layer_data_round_trips_in_every_encoding_keeping_flip_flags(fmt):
    gids = np.arange(12, dtype=np.uint32).reshape(3, 4)
    gids[1, 2] |= 0xE0000000
    data = ET.Element("data")
    encode_data(data, gids, fmt)
    assert (data.get("encoding"), data.get("compression")) == (fmt.encoding, fmt.compression)
    parsed = ET.fromstring(ET.tostring(data))
    assert np.array_equal(decode_data(parsed, 4, 3, "t"), gids)


def test_decoding_refuses_a_zlib_bomb_without_inflating_it():
    data = ET.Element("data", {"encoding": "base64", "compression": "zlib"})
    data.text = base64.b64encode(zlib.compress(bytes(200 << 20))).decode()
    with pytest.raises(NesganError, match="expected 4×3"):
        decode_data(data, 4, 3, "t")


def test_decoding_refuses_layer_data_of_the_wrong_length():
    data = ET.Element("data", {"encoding": "csv"})
    data.text = "1,2,3"
    with pytest.raises(NesganError, match="holds 3 gids"):
        decode_data(data, 2, 2, "t")


def test_atlas_round_trips_and_tiled_style_padding_tiles_are_trimmed(tmp_path):
    tsx, tiles = _atlas(tmp_path, "set", 19)
    again = read_atlas(tsx, "set", 16)
    assert np.array_equal(again.tiles, tiles) and again.columns == 16
    # Tiled re-saves the TSX with tilecount = the whole grid (32): padding is not a tile
    tsx.write_text(tsx.read_text().replace('tilecount="19"', 'tilecount="32"'))
    assert read_atlas(tsx, "set", 16).tilecount == 19
    png = np.asarray(__import__("PIL.Image").Image.open(tsx.with_suffix(".png")).convert("RGB"))
    assert png.shape == (32, 256, 3) and (png[16:, 3 * 16:] == PAD_RGB).all()


def test_tsx_update_keeps_what_the_user_added_in_tiled(tmp_path):
    tsx, tiles = _atlas(tmp_path, "set", 4)
    text = tsx.read_text().replace(
        '<tile id="1">', '<tile id="1" type="wall"><objectgroup draworder="index"/>').replace(
        "</tileset>", '<wangsets><wangset name="w" type="corner" tile="-1"/></wangsets></tileset>')
    tsx.write_text(text.replace('<property name="count"', '<property name="mine" value="x"/><property name="count"', 1))
    atlas = read_atlas(tsx, "set", 16)
    atlas.append(tiles[0] // 2)
    atlas.props = {0: {"count": 9, "near_copy": True}, 4: {"count": 1, "near_copy": False}}
    write_atlas(tsx, atlas, zero_probability={0})
    root = ET.parse(tsx).getroot()
    assert root.get("tilecount") == "16" and root.find("wangsets/wangset").get("name") == "w"
    t0, t1, t4 = (root.find(f"tile[@id='{i}']") for i in (0, 1, 4))
    props0 = {p.get("name"): p.get("value") for p in t0.iter("property")}
    assert props0 == {"mine": "x", "count": "9", "near_copy": "true"}
    assert t0.get("probability") == "0" and t1.get("type") == "wall"
    assert [int(t.get("id")) for t in root.findall("tile")] == list(range(16))  # 11 padding cells
    assert all(root.find(f"tile[@id='{i}']").get("type") == "padding" for i in range(5, 16))


def test_new_map_places_nesgan_tilesets_at_gid_1_and_writes_a_csv_layer(tmp_path):
    main, _ = _atlas(tmp_path, "nesgan", 20)
    near, _ = _atlas(tmp_path, "nesgan-near-copies", 3)
    which, local = _ours()
    up = update_map(tmp_path / "level.tmx", [OwnTileset(main, "nesgan", 32),
                                             OwnTileset(near, "nesgan-near-copies", 16)],
                    "nesgan", which, local)
    assert up.created and up.firstgids == [1, 33]
    root = ET.parse(tmp_path / "level.tmx").getroot()
    assert [t.get("source") for t in root.findall("tileset")] == [
        "tilesets/nesgan.tsx", "tilesets/nesgan-near-copies.tsx"]
    assert root.find("layer/data").get("encoding") == "csv"
    assert np.array_equal(_layer(root, "nesgan"), np.where(which == 1, 33, 1) + local)


def test_merge_places_nesgan_after_the_users_gids_and_keeps_everything_else(tmp_path):
    path, gids = _user_map(tmp_path, width=40, height=20)
    main, _ = _atlas(tmp_path, "nesgan", 20)
    before = ET.parse(path).getroot()
    up = update_map(path, [OwnTileset(main, "nesgan", 32)], "nesgan", *_ours(width=28, near=False))
    root = ET.parse(path).getroot()
    assert up.firstgids == [41] and up.grown_from is None and up.rewritten_layers == []
    assert root.find("tileset").get("firstgid") == "1"
    assert root.find("properties/property").get("value") == "me"
    assert root.get("backgroundcolor") == "#102030" and root.get("nextlayerid") == "5"
    # the user's layer is byte-for-byte the same, and nesgan's layer sits below it
    assert root.find("layer[@name='ground']/data").text == before.find("layer/data").text
    assert [e.get("name") for e in root if e.tag in ("layer", "objectgroup")] == [
        "nesgan", "ground", "things"]
    ours = _layer(root, "nesgan")
    assert ours.shape == (20, 40) and (ours[14:] == 0).all() and (ours[:, 28:] == 0).all()


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.label)
def test_merge_grows_a_small_map_padding_other_layers_in_their_own_encoding(tmp_path, fmt):
    path, gids = _user_map(tmp_path, width=10, height=6, layer_fmt=fmt)
    main, _ = _atlas(tmp_path, "nesgan", 20)
    up = update_map(path, [OwnTileset(main, "nesgan", 32)], "nesgan", *_ours(width=28, near=False))
    assert up.grown_from == (10, 6) and up.size == (28, 14) and up.rewritten_layers == ["ground"]
    root = ET.parse(path).getroot()
    data = root.find("layer[@name='ground']/data")
    assert (data.get("encoding"), data.get("compression")) == (fmt.encoding, fmt.compression)
    ground = _layer(root, "ground")
    assert ground.shape == (14, 28) and np.array_equal(ground[:6, :10], gids)
    assert ground[6:].sum() == 0 and ground[:, 10:].sum() == 0
    assert (root.get("width"), root.get("height")) == ("28", "14")
    assert root.find("layer[@name='ground']").get("opacity") == "0.5"


def test_merge_moves_a_grown_nesgan_tileset_and_renumbers_tiles_painted_from_it(tmp_path):
    main, _ = _atlas(tmp_path, "nesgan", 10)
    near, _ = _atlas(tmp_path, "nesgan-near-copies", 3)
    own = [OwnTileset(main, "nesgan", 16), OwnTileset(near, "nesgan-near-copies", 16)]
    path = tmp_path / "level.tmx"
    update_map(path, own, "nesgan", *_ours(n_main=10))
    # the user paints near-copy tile 2 (flipped) and nesgan tile 5, and places a tile object
    root = ET.parse(path).getroot()
    painted = np.zeros((14, 28), np.uint32)
    painted[0, 0] = (17 + 2) | 0x40000000
    painted[0, 1] = 1 + 5
    layer = ET.SubElement(root, "layer", {"id": "9", "name": "art", "width": "28", "height": "14"})
    encode_data(ET.SubElement(layer, "data"), painted, DataFormat("base64", "gzip"))
    ET.SubElement(ET.SubElement(root, "objectgroup", {"id": "10"}), "object",
                  {"id": "1", "gid": str(17 + 1), "x": "0", "y": "16"})
    path.write_text(ET.tostring(root, encoding="unicode"))
    # nesgan's tileset grew past the near-copies' firstgid: it moves, nothing else does
    own[0] = OwnTileset(main, "nesgan", 48)
    up = update_map(path, own, "nesgan", *_ours(n_main=40))
    assert up.firstgids == [33, 17] and up.moved == ["nesgan"] and up.rewritten_layers == ["art"]
    root = ET.parse(path).getroot()
    art = _layer(root, "art")
    assert art[0, 0] == (17 + 2) | 0x40000000 and art[0, 1] == 33 + 5
    assert root.find("objectgroup/object").get("gid") == str(17 + 1)
    assert [int(t.get("firstgid")) for t in root.findall("tileset")] == [17, 33]
    assert gzip.decompress(base64.b64decode(root.find("layer[@name='art']/data").text))


@pytest.mark.parametrize("case, message", [
    ('<map orientation="orthogonal" width="4" height="4" tilewidth="16" tileheight="16" '
     'infinite="1"/>', "infinite"),
    ('<map orientation="isometric" width="4" height="4" tilewidth="16" tileheight="16"/>', "orthogonal"),
    ('<map orientation="orthogonal" width="4" height="4" tilewidth="32" tileheight="32"/>', "16×16"),
    ('<map orientation="orthogonal" width="4" height="4" tilewidth="16" tileheight="16">'
     '<tileset firstgid="1" name="nesgan" tilewidth="16" tileheight="16" tilecount="1" columns="1"/>'
     '</map>', "embeds a tileset named 'nesgan'"),
    ('<map orientation="orthogonal" width="4"', "not well-formed"),
    ('<map orientation="orthogonal" width="1" height="1" tilewidth="16" tileheight="16">'
     '<layer name="z" width="1" height="1"><data encoding="base64" compression="lzma">AA==</data>'
     '</layer></map>', "unsupported layer data format"),
], ids=["infinite", "isometric", "32px", "embedded-namesake", "malformed", "lzma"])
def test_unsafe_merges_are_refused_and_leave_the_map_untouched(tmp_path, case, message):
    main, _ = _atlas(tmp_path, "nesgan", 4)
    path = tmp_path / "level.tmx"
    path.write_text(case)
    with pytest.raises(NesganError, match=message):
        update_map(path, [OwnTileset(main, "nesgan", 16)], "nesgan", *_ours(n_main=4, width=2, near=False))
    assert path.read_text() == case


def test_a_billion_laughs_map_is_refused_without_expanding_entities(tmp_path):
    main, _ = _atlas(tmp_path, "nesgan", 4)
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10 if i else "lol"}">' for i in range(10))
    case = (f'<?xml version="1.0"?><!DOCTYPE map [{lol}]><map orientation="orthogonal" width="1" '
            f'height="1" tilewidth="16" tileheight="16"><properties><property name="p" '
            f'value="&l9;"/></properties></map>')
    path = tmp_path / "level.tmx"
    path.write_text(case)
    with pytest.raises(NesganError, match="entities"):
        update_map(path, [OwnTileset(main, "nesgan", 16)], "nesgan", *_ours(n_main=4, width=2, near=False))
    assert path.read_text() == case


def test_zstd_layers_stay_verbatim_unless_they_must_be_rewritten(tmp_path):
    text = base64.b64encode(b"not really zstd").decode()
    path, _ = _user_map(tmp_path, width=40, height=20)
    raw = path.read_text().replace("<layer id=\"1\"", f'<layer id="7" name="z" width="40" height="20">'
                                   f'<data encoding="base64" compression="zstd">{text}</data></layer>'
                                   '<layer id="1"', 1)
    path.write_text(raw)
    main, _ = _atlas(tmp_path, "nesgan", 4)
    own = [OwnTileset(main, "nesgan", 16)]
    update_map(path, own, "nesgan", *_ours(n_main=4, width=28, near=False))
    root = ET.parse(path).getroot()
    assert root.find("layer[@name='z']/data").text == text  # no rewrite needed: kept as is
    # growing the map needs the zstd layer decoded: refused (corrupt here, or no zstandard)
    before = path.read_text()
    with pytest.raises(NesganError, match="zstd"):
        update_map(path, own, "nesgan", *_ours(n_main=4, width=56, near=False))
    assert path.read_text() == before


def test_a_tileset_file_that_is_not_nesgans_is_refused_not_overwritten(tmp_path):
    tsx = tmp_path / "nesgan.tsx"
    text = ('<tileset name="x" tilewidth="32" tileheight="32" tilecount="1" columns="1">'
            '<image source="x.png" width="32" height="32"/></tileset>')
    tsx.write_text(text)
    with pytest.raises(NesganError, match="tilewidth=32"):
        read_atlas(tsx, "nesgan", 16)
    assert tsx.read_text() == text


def test_merge_reads_old_tiled_maps_with_a_doctype_and_grows_layers_inside_groups(tmp_path):
    path = tmp_path / "old.tmx"
    data = ET.Element("data")
    encode_data(data, np.full((2, 3), 5, np.uint32), DataFormat("base64", "gzip"))
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE map SYSTEM "http://mapeditor.org/dtd/1.0/map.dtd">\n'
        '<map version="1.0" orientation="orthogonal" width="3" height="2" tilewidth="16" '
        'tileheight="16"><tileset firstgid="1" source="missing.tsx"/>'
        f'<group name="g"><layer name="inner" width="3" height="2">{ET.tostring(data, "unicode")}'
        '</layer></group></map>')
    main, _ = _atlas(tmp_path, "nesgan", 4)
    up = update_map(path, [OwnTileset(main, "nesgan", 16)], "nesgan", *_ours(n_main=4, width=14, near=False))
    # the missing tileset's range is bounded by the gids painted from it (1…5)
    assert up.firstgids == [6] and up.rewritten_layers == ["inner"]
    root = ET.parse(path).getroot()
    inner = _layer(root, "inner")
    assert inner.shape == (14, 14) and (inner[:2, :3] == 5).all() and inner.sum() == 30
    assert root.find("layer").get("id") is None  # the old map numbers no layers: neither do we


def test_read_map_gives_tilesets_in_gid_order_its_layers_and_each_gids_owner(tmp_path):
    main, tiles = _atlas(tmp_path, "nesgan", 20)
    path, gids = _user_map(tmp_path, user_tiles=40)
    update_map(path, [OwnTileset(main, "nesgan", 32)], "nesgan", *_ours(n_main=20, near=False))
    tmap = read_map(path)
    assert [t.firstgid for t in tmap.tilesets] == [1, 41]
    assert [t.ours for t in tmap.tilesets] == [False, True]
    assert tmap.owner(40).firstgid == 1 and tmap.owner(41 | 0x80000000).firstgid == 41
    assert [layer.name for layer in tmap.layers] == ["nesgan", "ground"]
    assert np.array_equal(tmap.layer("ground").gids()[:6, :10], gids)  # the map grew to 28×14
    own = tmap.tilesets[1].pixels("test")
    assert own.shape == (32, 16, 16, 4) and np.array_equal(own[:20, ..., :3], tiles)
    assert (own[20:, ..., 3] == 0).all()  # the atlas's padding cells are transparent (trans)


def test_a_missing_tileset_file_is_an_error_only_where_its_pixels_are_needed(tmp_path):
    path, _ = _user_map(tmp_path)
    root = ET.parse(path).getroot()
    ET.SubElement(root, "tileset", {"firstgid": "100", "source": "gone.tsx"})
    root.insert(len(root) - 1, root[-1])
    path.write_text(ET.tostring(root, encoding="unicode"))
    tmap = read_map(path)
    gone = tmap.owner(100)
    assert gone.source == "gone.tsx" and gone.extent() is None and not gone.ours
    with pytest.raises(NesganError, match="cannot read tileset"):
        gone.pixels("test")


@pytest.mark.parametrize("orientation, infinite, message", [
    ("orthogonal", "1", "infinite map; nesgan reads finite maps"),
    ("hexagonal", "0", "hexagonal; nesgan reads orthogonal maps"),
])
def test_merge_and_export_nes_refuse_a_map_in_the_same_words(tmp_path, orientation, infinite, message):
    text = (f'<map orientation="{orientation}" width="2" height="2" tilewidth="16" tileheight="16" '
            f'infinite="{infinite}"/>')
    path = tmp_path / "level.tmx"
    path.write_text(text)
    with pytest.raises(NesganError, match=message):
        read_map(path)
    main, _ = _atlas(tmp_path, "nesgan", 4)
    with pytest.raises(NesganError, match=message + r".*left untouched"):
        update_map(path, [OwnTileset(main, "nesgan", 16)], "nesgan", *_ours(n_main=4, width=2, near=False))
    from nesgan.colour.palette import load_palette
    from nesgan.nes.level import read_level
    with pytest.raises(NesganError, match=message):
        read_level(path, load_palette())
