"""nesgan.colour.quantize (LUT quantization, `nesgan quantize`) and nesgan.colour.attributes (NES rules)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nesgan import images
from nesgan.cli import cli
from nesgan.colour import lut as q_lut
from nesgan.colour import quantize as q
from nesgan.colour.attributes import solve_attributes
from nesgan.colour.palette import BLACK, EMITTABLE, FORBIDDEN, WHITE, Palette, srgb_to_oklab


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private XDG cache with the built-in palette's table built once for this module."""
    root = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root))
        q_lut._LUTS.clear()
        q_lut.load_lut(Palette.builtin(), verbose=False)
        yield root
    q_lut._LUTS.clear()


def _rgb(idx: np.ndarray, palette: Palette | None = None) -> np.ndarray:
    return (palette or Palette.builtin()).to_rgb(idx)


def test_lut_agrees_with_palette_nearest_on_random_colours(cache):
    pal = Palette.builtin()
    lut = q_lut.load_lut(pal)
    rgb = np.random.default_rng(0).integers(0, 256, (30000, 3), dtype=np.uint8)
    packed = (rgb[:, 0].astype(np.int64) << 16) | (rgb[:, 1].astype(np.int64) << 8) | rgb[:, 2]
    ours, exact = lut[packed], pal.nearest_unique(rgb)
    differ = np.nonzero(ours != exact)[0]
    # The table is built in float32, the reference in float64: a colour that sits on a tie between
    # two palette entries may go either way (a few per million, CPU-dependent). Anything else is a bug.
    assert len(differ) <= 3
    lab = srgb_to_oklab(rgb[differ])
    d_ours = ((lab - srgb_to_oklab(pal.rgb[ours[differ]])) ** 2).sum(-1)
    d_exact = ((lab - srgb_to_oklab(pal.rgb[exact[differ]])) ** 2).sum(-1)
    np.testing.assert_allclose(d_ours, d_exact, rtol=1e-4, atol=1e-7)


def test_lut_is_cached_under_xdg_cache_home_by_palette_fingerprint(cache):
    path = q_lut.lut_path(Palette.builtin())
    assert path.parent == cache / "nesgan"
    assert path.name == f"lut-{Palette.builtin().fingerprint}.npy"
    assert path.stat().st_size > 1 << 24


def test_damaged_lut_file_is_rebuilt(cache, capsys):
    pal = Palette.builtin()
    path = q_lut.lut_path(pal)
    good = path.read_bytes()
    path.write_bytes(good[:1000])  # torn file
    q_lut._LUTS.clear()
    lut = q_lut.load_lut(pal)
    assert "damaged" in capsys.readouterr().err
    assert lut.shape == (1 << 24,) and path.read_bytes() == good


def test_quantize_never_writes_forbidden_black_or_alias_indices(cache):
    pal = Palette.builtin()
    every = np.arange(64, dtype=np.uint8).reshape(8, 8)
    out = q_lut.quantize_rgb(_rgb(every), pal)
    assert FORBIDDEN not in out
    assert set(np.unique(out)) <= set(EMITTABLE.tolist())
    assert out[0x0D // 8, 0x0D % 8] == BLACK and out[0x1F // 8, 0x1F % 8] == BLACK
    assert out[0x20 // 8, 0x20 % 8] == WHITE


def test_quantize_maps_each_emittable_colour_to_itself(cache):
    pal = Palette.builtin()
    out = q_lut.quantize_rgb(_rgb(EMITTABLE.reshape(6, 9)), pal)
    assert np.array_equal(out, EMITTABLE.reshape(6, 9))


def test_quantize_folder_writes_palette_pngs_whose_index_is_the_nes_colour(cache, tmp_path):
    src = tmp_path / "shots"
    (src / "sub").mkdir(parents=True)
    idx = np.random.default_rng(1).choice(EMITTABLE, size=(40, 50)).astype(np.uint8)
    Image.fromarray(_rgb(idx)).save(src / "a.png")
    Image.fromarray(_rgb(idx[:20])).save(src / "sub" / "b.gif")
    (src / "notes.png").write_bytes(b"not a png")
    report = q.quantize_path(q.QuantizeConfig(src=src))
    assert report.out == tmp_path / "shots-quantized"
    with Image.open(report.out / "a.png") as im:
        assert im.mode == "P" and im.size == (50, 40)
        assert np.array_equal(np.asarray(im), idx)
        assert im.getpalette()[: 64 * 3] == Palette.builtin().rgb.reshape(-1).tolist()
    assert (report.out / "sub_b.png").exists()
    rows = [json.loads(line) for line in (report.out / "manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "error", "ok"]
    assert "not a readable image" in rows[1]["error"]


def test_quantize_refuses_decompression_bombs_before_decoding(cache, tmp_path):
    path = tmp_path / "huge.png"
    Image.new("RGB", (300, 300)).save(path)
    with pytest.raises(q.NesganError, match="pixel limit"):
        images.open_rgb(path, max_pixels=300 * 299)


def test_attribute_solver_reproduces_a_screen_that_already_obeys_the_rules(cache):
    from nesgan.museum.synth import make_game, render_frame

    frame = render_frame(make_game(0, 2), 1, sprites=False)
    sol = solve_attributes(_rgb(frame.indices), Palette.builtin())
    assert np.array_equal(sol.indices, Palette.builtin().nearest(_rgb(frame.indices)))
    assert sol.error == pytest.approx(0.0, abs=1e-6)


def test_attribute_solver_output_could_be_shown_by_a_real_nes(cache):
    rng = np.random.default_rng(3)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    rgb = np.asarray(Image.fromarray(small).resize((200, 180), Image.BILINEAR))  # not a multiple of 16
    sol = solve_attributes(rgb, Palette.builtin())
    idx = sol.indices
    assert idx.shape == (180, 200) and FORBIDDEN not in idx
    assert len(np.unique(idx)) <= 13 and len(sol.subpalettes) <= 4
    for cy in range(0, 180, 16):
        for cx in range(0, 200, 16):
            cell = set(np.unique(idx[cy : cy + 16, cx : cx + 16]).tolist())
            allowed = {sol.backdrop, *sol.subpalettes[sol.cell_palette[cy // 16, cx // 16]]}
            assert cell <= allowed and len(allowed) <= 4
    free = q_lut.quantize_rgb(rgb, Palette.builtin())
    assert len(np.unique(free)) > 13  # the test image needed the rules to be enforced


def test_quantize_command_writes_pngs_and_says_how_many(cache, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(src / "x.png")
    result = CliRunner().invoke(cli, ["quantize", str(src), "--out", str(tmp_path / "o"), "--nes-attributes"])
    assert result.exit_code == 0, result.output
    assert "quantized 1 image" in result.output
    with Image.open(tmp_path / "o" / "x.png") as im:
        assert im.mode == "P"


def test_quantize_command_rejects_a_malformed_pal_file_in_one_line(cache, tmp_path):
    pal = tmp_path / "bad.pal"
    pal.write_bytes(b"\x00" * 100)
    img = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(img)
    result = CliRunner().invoke(cli, ["quantize", str(img), "--palette", str(pal)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {pal} is 100 bytes; a NES .pal file is 192 bytes (64 colours × R, G, B) or 1536 "
        "with emphasis variants"
    ]


def test_a_users_pal_file_gets_its_own_table(cache, tmp_path):
    pal = Palette.builtin("fceux")
    path = tmp_path / "fceux.pal"
    path.write_bytes(pal.to_pal_bytes())
    img = tmp_path / "x.png"
    Image.fromarray(_rgb(np.full((4, 4), 0x3D, np.uint8), pal)).save(img)  # FCEUX's pink $3D
    report = q.quantize_path(q.QuantizeConfig(src=img, out=tmp_path / "o", palette_file=path))
    with Image.open(report.out / "x.png") as im:
        assert np.asarray(im)[0, 0] == 0x3D
    assert q_lut.lut_path(pal).exists()


def test_a_single_file_goes_to_a_folder_named_after_it_beside_it(cache, tmp_path):
    img = tmp_path / "shot.gif"
    Image.new("RGB", (20, 10), (0, 0, 0)).save(img)
    report = q.quantize_path(q.QuantizeConfig(src=img))
    assert report.out == tmp_path / "shot-quantized"
    with Image.open(report.out / "shot.png") as im:
        assert np.asarray(im).tolist() == np.full((10, 20), BLACK).tolist()


def test_quantize_command_fails_when_no_image_could_be_quantized(cache, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "fake.png").write_text("not a png")
    result = CliRunner().invoke(cli, ["quantize", str(src), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "none of the 1 image(s)" in result.output and "Traceback" not in result.output


def test_an_output_folder_that_is_a_file_is_one_line_not_a_traceback(cache, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (16, 16), (0, 0, 0)).save(src / "a.png")
    (tmp_path / "taken").write_text("a file")
    result = CliRunner().invoke(cli, ["quantize", str(src), "--out", str(tmp_path / "taken")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # not a crash
    assert "taken: a file is in the way" in result.output
