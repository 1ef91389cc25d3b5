"""nesgan crop: pixel-exact 224×224 crops, exact scale reduction, grid phase, manifest rows."""

from __future__ import annotations

import io
import itertools
import os
import re

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from nesgan.cli import cli
from nesgan.colour.palette import EMITTABLE, Palette
from nesgan.crop.frame import choose_offset, crop_bytes, crop_image
from nesgan.crop.load import load_screens
from nesgan.crop.screens import MANIFEST, CropConfig, crop_folder
from nesgan.errors import NesganError
from nesgan.files import read_jsonl
from nesgan.gan.data import nes_indices
from nesgan.grid import REPEAT_WEIGHT, detect_grid_phase, phase_scores

NES_RGB = Palette.builtin().rgb[EMITTABLE]  # (54, 3) distinct NES colours


def nes_frame(seed: int, w: int = 256, h: int = 240, shift: tuple[int, int] = (0, 0),
              vocab: int | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """An NES-like (h, w, 3) frame: 16×16 cells of ≤ 4 colours (a shared backdrop + one of 4
    sub-palettes), random cells or, with `vocab`, a few metatiles repeated. `shift` scrolls the
    picture by (sx, sy) pixels; returns the frame and its grid phase."""
    rng = np.random.default_rng(seed)
    colours = NES_RGB[rng.choice(len(NES_RGB), 13, replace=False)]
    subs = np.stack([np.concatenate([colours[:1], colours[1 + 3 * i: 4 + 3 * i]]) for i in range(4)])
    sx, sy = shift
    gh, gw = (h + sy) // 16 + 2, (w + sx) // 16 + 2
    if vocab is None:
        pixels = rng.integers(0, 4, (gh, gw, 16, 16))  # a 2-bit pattern per cell
        pal = rng.integers(0, 4, (gh, gw))
    else:
        metas = rng.integers(0, 4, (vocab, 16, 16))
        metas[0] = 0  # sky: backdrop only
        grid = rng.choice(vocab, (gh, gw), p=[0.5] + [0.5 / (vocab - 1)] * (vocab - 1))
        pixels, pal = metas[grid], rng.integers(0, 4, vocab)[grid]
    nes = subs[pal[:, :, None, None], pixels]  # (gh, gw, 16, 16, 3)
    big = nes.transpose(0, 2, 1, 3, 4).reshape(gh * 16, gw * 16, 3).astype(np.uint8)
    return np.ascontiguousarray(big[sy: sy + h, sx: sx + w]), ((-sx) % 16, (-sy) % 16)


def png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


def colour_set(a: np.ndarray) -> set[tuple[int, ...]]:
    return set(map(tuple, a.reshape(-1, 3).tolist()))


def check_window(src: np.ndarray, result) -> None:
    left, top, right, bottom = result.box
    assert (right - left, bottom - top) == (224, 224)
    assert result.crop.shape == (224, 224, 3) and result.crop.dtype == np.uint8
    assert np.array_equal(result.crop, src[top:bottom, left:right])


# --- one image -------------------------------------------------------------------------------


def test_256x240_frame_is_cropped_pixel_for_pixel_on_its_grid_near_the_centre():
    src, _ = nes_frame(1)
    r = crop_image(Image.fromarray(src))
    assert r.status == "ok" and r.scale == 1
    assert r.box == (16, 0, 240, 224)  # x ∈ {0,16,32}: centred; y ∈ {0,16}: tie -> smaller
    assert r.grid_phase == (0, 0) and r.source_phase == (0, 0)
    check_window(src, r)
    assert colour_set(r.crop) <= colour_set(src)


def test_256x224_frame_keeps_its_grid_8_rows_down_because_no_window_can_align_it():
    full, _ = nes_frame(2)
    src = full[8:232]  # the NTSC-visible 256×224: 8 lines cut top and bottom
    r = crop_image(Image.fromarray(src))
    assert r.status == "ok" and r.box == (16, 0, 240, 224)
    assert r.source_phase == (0, 8) and r.grid_phase == (0, 8)
    check_window(src, r)


@pytest.mark.parametrize("seed", range(6))
def test_scrolled_frame_gets_a_window_whose_edge_is_a_cell_boundary(seed):
    rng = np.random.default_rng(100 + seed)
    shift = (int(rng.integers(0, 16)), int(rng.integers(0, 16)))
    src, phase = nes_frame(seed, shift=shift, vocab=6)
    r = crop_image(Image.fromarray(src))
    assert r.status == "ok" and r.source_phase == phase
    left, top = r.box[:2]
    assert left % 16 == phase[0] and top % 16 == phase[1] and r.grid_phase == (0, 0)
    assert abs(left - 16) <= 8  # the aligned start nearest the centre of 0…32
    check_window(src, r)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("vocab", [None, 5])
def test_detect_grid_phase_recovers_a_known_shift(seed, vocab):
    rng = np.random.default_rng(seed)
    shift = (int(rng.integers(0, 32)), int(rng.integers(0, 32)))
    frame, phase = nes_frame(seed, shift=shift, vocab=vocab)
    assert detect_grid_phase(frame) == phase
    crop = frame[5:229, 9:233]  # a 224×224 piece: phase moves with the window
    assert detect_grid_phase(crop) == ((phase[0] - 9) % 16, (phase[1] - 5) % 16)


def test_detect_grid_phase_survives_sprites_drawn_over_the_background():
    frame, phase = nes_frame(3, shift=(7, 3), vocab=6)
    rng = np.random.default_rng(3)
    for _ in range(10):  # 8×8 sprites with their own colours, anywhere
        y, x = rng.integers(0, 232), rng.integers(0, 248)
        frame[y:y + 8, x:x + 8] = NES_RGB[rng.integers(0, 54, (8, 8))]
    assert detect_grid_phase(frame) == phase


def test_detect_grid_phase_breaks_ties_towards_the_native_frame_expectation():
    flat = np.full((240, 256, 3), 92, np.uint8)
    assert detect_grid_phase(flat) == (0, 0)
    assert detect_grid_phase(flat[:224]) == (0, 8)  # 256×224: grid 8 rows down
    assert detect_grid_phase(flat, prefer=(3, 5)) == (3, 5)
    # only horizontal structure: no x phase is simpler than the expected one
    bands, phase = nes_frame(30, shift=(0, 5))
    bands[:] = bands[:, :1]
    assert detect_grid_phase(bands) == (0, phase[1])


def test_phase_score_is_lowest_at_the_true_phase_and_counts_colours_per_cell():
    frame, phase = nes_frame(4, shift=(5, 11))
    scores = phase_scores(frame)
    assert scores.shape == (16, 16)
    assert np.unravel_index(scores.argmin(), scores.shape) == (phase[1], phase[0])
    assert (scores > scores[phase[1], phase[0]]).sum() == 255  # a unique minimum


def test_detect_grid_phase_of_tiny_images_returns_the_preference():
    assert detect_grid_phase(np.zeros((20, 20, 3), np.uint8)) == (0, 0)
    with pytest.raises(ValueError):
        phase_scores(np.zeros((20, 20, 3), np.uint8))


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("size", [(256, 240), (256, 224)])
def test_integer_scaled_captures_reduce_exactly(k, size):
    w, h = size
    native, _ = nes_frame(5, w=w, h=h)
    big = np.repeat(np.repeat(native, k, axis=0), k, axis=1)
    r = crop_image(Image.fromarray(big))
    assert r.status == "ok" and r.scale == k and (r.width, r.height) == (w * k, h * k)
    direct = crop_image(Image.fromarray(native))
    assert r.box == direct.box and r.grid_phase == direct.grid_phase
    check_window(native, r)  # box is in reduced-frame pixels


def test_blurred_2x_capture_is_rejected_as_not_exact_scale():
    native, _ = nes_frame(6, h=224)
    blurred = Image.fromarray(native).resize((512, 448), Image.BILINEAR)
    r = crop_image(blurred)
    assert r.status == "not_exact_scale" and r.crop is None
    assert "2×" in r.error and "not one colour" in r.error


def test_2x_capture_with_a_single_odd_pixel_is_rejected():
    native, _ = nes_frame(7)
    big = np.repeat(np.repeat(native, 2, axis=0), 2, axis=1)
    big[101, 77] ^= 1
    assert crop_image(Image.fromarray(big)).status == "not_exact_scale"


def _with_index_image(src: np.ndarray) -> tuple[np.ndarray, list[int]]:
    colours = sorted(colour_set(src))
    lut = {c: i for i, c in enumerate(colours)}
    index = np.array([lut[tuple(p)] for p in src.reshape(-1, 3).tolist()], np.uint8)
    return index.reshape(src.shape[:2]), [v for c in colours for v in c]


def test_palette_image_converts_exactly_even_with_a_transparency_key():
    src, _ = nes_frame(8)
    index, flat = _with_index_image(src)
    img = Image.fromarray(index, "P")
    img.putpalette(flat)
    data = png_bytes(img, transparency=0)  # GIF/PNG colour key: the stored colour is kept
    r = crop_bytes(data)
    assert r.status == "ok" and r.mode == "P"
    check_window(src, r)


def test_grey_one_bit_and_opaque_alpha_images_convert_exactly():
    src, _ = nes_frame(9)
    grey = src[..., 1].copy()
    for img, expect in [
        (Image.fromarray(grey, "L"), np.repeat(grey[..., None], 3, 2)),
        (Image.fromarray(grey > 127).convert("1"), np.repeat(((grey > 127) * 255).astype(np.uint8)[..., None], 3, 2)),
        (Image.fromarray(np.dstack([grey, np.full_like(grey, 255)]), "LA"), np.repeat(grey[..., None], 3, 2)),
        (Image.fromarray(np.dstack([src, np.full_like(grey, 255)]), "RGBA"), src),
    ]:
        r = crop_bytes(png_bytes(img))
        assert r.status == "ok", (img.mode, r.error)
        check_window(expect, r)


def test_real_transparency_is_rejected_not_flattened():
    src, _ = nes_frame(10)
    alpha = np.full(src.shape[:2], 255, np.uint8)
    alpha[:10, :10] = 0
    r = crop_bytes(png_bytes(Image.fromarray(np.dstack([src, alpha]), "RGBA")))
    assert r.status == "transparent" and "100 of" in r.error


def test_animated_gif_gives_its_first_frame_exactly():
    first, _ = nes_frame(11)
    second, _ = nes_frame(12)
    frames = []
    for a in (first, second):
        index, flat = _with_index_image(a)
        f = Image.fromarray(index, "P")
        f.putpalette(flat)
        frames.append(f)
    data = png_bytes(frames[0], format="GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    r = crop_bytes(data)
    assert r.status == "ok" and r.format == "GIF"
    check_window(first, r)


def test_a_224x224_image_passes_through_and_reports_its_phase():
    frame, _ = nes_frame(13, shift=(3, 8), vocab=6)
    src = frame[:224, :224]
    r = crop_image(Image.fromarray(src))
    assert r.status == "ok" and r.box == (0, 0, 224, 224) and r.grid_phase == (13, 8)
    assert np.array_equal(r.crop, src)


def _truncated_png() -> bytes:
    data = png_bytes(Image.fromarray(nes_frame(14)[0]))
    return data[: len(data) // 2]


def _bomb_header() -> bytes:
    """A real 5000×5000 PNG (25 Mpx, over the 16.8 Mpx cap) that compresses to a few KB."""
    return png_bytes(Image.new("L", (5000, 5000)), optimize=False)


@pytest.mark.parametrize("make, status, words", [
    (lambda: png_bytes(Image.new("RGB", (200, 180))), "too_small", "smaller"),
    (lambda: png_bytes(Image.new("RGB", (512, 240))), "off_size", "composite"),
    (lambda: png_bytes(Image.new("RGB", (300, 500))), "off_size", "300×500"),
    (lambda: png_bytes(Image.new("RGB", (272, 240))), "off_size", "not a NES frame"),
    (_truncated_png, "corrupt", "truncated"),
    (lambda: b"<!DOCTYPE html><html><body>Please visit</body></html>", "not_image", "HTML"),
    (lambda: b"", "not_image", "empty"),
    (lambda: os.urandom(3000), "not_image", "identify"),
    (_bomb_header, "too_large", "cap"),
    (lambda: png_bytes(Image.new("CMYK", (256, 240)), format="JPEG"), "unsupported_mode", "CMYK"),
    (lambda: png_bytes(Image.new("I;16", (256, 240))), "unsupported_mode", "I;16"),
])
def test_bad_inputs_get_a_status_and_a_reason_instead_of_a_crash(make, status, words):
    r = crop_bytes(make())
    assert r.status == status and r.crop is None
    assert words.lower() in r.error.lower()


def test_choose_offset_prefers_aligned_then_centred():
    assert choose_offset(256, 0) == 16
    assert choose_offset(256, 5) == 21  # 5 or 21: 21 is nearer 16
    assert choose_offset(240, 0) == 0  # 0 or 16 tie: smaller
    assert choose_offset(224, 8) == 0  # only 0 fits
    assert choose_offset(230, 10) == 3  # nothing aligns: centred


# --- a folder --------------------------------------------------------------------------------


@pytest.fixture
def shots(tmp_path):
    """A folder of screenshots: good ones in several forms plus one of every bad kind."""
    src = tmp_path / "shots"
    (src / "sub").mkdir(parents=True)
    a, _ = nes_frame(20)
    b = nes_frame(21)[0][8:232]  # NTSC-visible 256×224: grid 8 rows down
    Image.fromarray(a).save(src / "a.png")
    Image.fromarray(np.repeat(np.repeat(b, 2, 0), 2, 1)).save(src / "sub" / "b2x.png")
    Image.fromarray(a).save(src / "sub" / "a-again.png")  # same pixels as a.png
    (src / "page.png").write_bytes(b"<html><body>Please visit</body></html>")
    (src / "broken.png").write_bytes(_truncated_png())
    Image.new("RGB", (512, 240)).save(src / "composite.png")
    (src / ".hidden.png").write_bytes(b"skipped")
    return src


def test_crop_folder_writes_a_row_per_file_and_crops_named_by_stem_and_content(shots, tmp_path):
    out = tmp_path / "screens"
    summary = crop_folder(CropConfig(src=shots, out=out))
    rows = {r["file"]: r for r in read_jsonl(out / MANIFEST)}
    assert set(rows) == {"a.png", "sub/b2x.png", "sub/a-again.png", "page.png", "broken.png",
                         "composite.png"}
    assert summary.counts == {"ok": 2, "duplicate": 1, "not_image": 1, "corrupt": 1, "off_size": 1}
    a = rows["a.png"]
    assert a["status"] == "ok" and a["error"] is None and a["source"] == "a.png"
    assert a["box"] == [16, 0, 240, 224] and a["scale"] == 1 and a["grid_phase"] == [0, 0]
    assert (a["width"], a["height"]) == (256, 240) and len(a["sha256"]) == 64
    assert re.fullmatch(r"a_[0-9a-f]{8}\.png", a["path"]) and a["crop_sha256"].startswith(a["path"][2:10])
    assert rows["sub/b2x.png"]["path"].startswith("b2x_") and a["game"] == os.fspath(shots)
    b = rows["sub/b2x.png"]
    assert b["scale"] == 2 and b["grid_phase"] == [0, 8] and (b["width"], b["height"]) == (512, 448)
    dup = rows["sub/a-again.png"]
    assert dup["status"] == "duplicate" and dup["path"] == a["path"] and dup["duplicate_of"] == "a.png"
    for bad in ("page.png", "broken.png", "composite.png"):
        assert rows[bad]["error"] and rows[bad]["path"] is None
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == sorted([a["path"], b["path"]])
    written = np.asarray(Image.open(out / a["path"]))
    src = np.asarray(Image.open(shots / "a.png"))
    assert written.shape == (224, 224, 3) and np.array_equal(written, src[0:224, 16:240])
    text = summary.format()
    assert "2 screens" in text and "1 duplicate" in text and "1 corrupt" in text


def test_rerun_skips_files_already_in_the_manifest(shots, tmp_path):
    out = tmp_path / "screens"
    crop_folder(CropConfig(src=shots, out=out))
    before = (out / MANIFEST).read_text()
    Image.fromarray(nes_frame(22)[0]).save(shots / "new.png")
    summary = crop_folder(CropConfig(src=shots, out=out))
    after = read_jsonl(out / MANIFEST)
    assert (out / MANIFEST).read_text().startswith(before)
    assert [r["file"] for r in after[len(before.splitlines()):]] == ["new.png"]
    assert summary.new == 1 and summary.skipped == 6 and summary.counts["ok"] == 3
    assert "already done" in summary.format()


def test_overwrite_starts_over_but_keeps_files_it_did_not_write(shots, tmp_path):
    out = tmp_path / "screens"
    crop_folder(CropConfig(src=shots, out=out))
    (out / "notes.txt").write_text("mine")
    (shots / "a.png").unlink()
    summary = crop_folder(CropConfig(src=shots, out=out, overwrite=True))
    rows = read_jsonl(out / MANIFEST)
    assert len(rows) == 5 and "a.png" not in {r["file"] for r in rows}
    assert summary.skipped == 0 and summary.counts["ok"] == 2  # a-again is now the first
    assert len(list(out.glob("*.png"))) == 2 and (out / "notes.txt").read_text() == "mine"


def test_sources_mapping_labels_rows_and_the_output_folder_inside_src_is_not_recropped(tmp_path):
    src = tmp_path / "raw"
    src.mkdir()
    Image.fromarray(nes_frame(23)[0]).save(src / "0001.png")
    (src / MANIFEST).write_text('{"url": "x"}\n')  # the scraper's own manifest is not an input
    out = src / "screens"
    crop_folder(CropConfig(src=src, out=out), sources={"0001.png": "http://127.0.0.1/g/1.png"})
    crop_folder(CropConfig(src=src, out=out))  # rerun: the crops under out are not inputs
    rows = read_jsonl(out / MANIFEST)
    assert [(r["source"], r["file"], r["status"]) for r in rows] == [
        ("http://127.0.0.1/g/1.png", "0001.png", "ok")]


def test_too_big_and_unreadable_files_get_rows_without_being_decoded(tmp_path):
    src = tmp_path / "shots"
    src.mkdir()
    Image.fromarray(nes_frame(24)[0]).save(src / "big.png")
    (src / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    summary = crop_folder(CropConfig(src=src, out=tmp_path / "o", max_bytes=1000))
    rows = {r["file"]: r for r in read_jsonl(tmp_path / "o" / MANIFEST)}
    assert rows["big.png"]["status"] == "too_large" and "byte" in rows["big.png"]["error"]
    assert rows["dangling.png"]["status"] == "unreadable"
    assert summary.counts == {"too_large": 1, "unreadable": 1}


def test_crop_folder_rejects_a_missing_src_and_out_equal_to_src(tmp_path):
    with pytest.raises(NesganError, match="does not exist"):
        crop_folder(CropConfig(src=tmp_path / "nope", out=tmp_path / "o"))
    with pytest.raises(NesganError, match="does not exist"):
        crop_folder(CropConfig(src=(str(tmp_path), str(tmp_path / "nope")), out=tmp_path / "o"))
    with pytest.raises(NesganError, match="differ"):
        crop_folder(CropConfig(src=tmp_path, out=tmp_path))


def test_load_screens_returns_the_ok_crops_in_manifest_order(shots, tmp_path):
    out = tmp_path / "screens"
    crop_folder(CropConfig(src=shots, out=out))
    screens, names = load_screens(out)
    ok = [r["path"] for r in read_jsonl(out / MANIFEST) if r["status"] == "ok"]
    assert names == ok and screens.shape == (2, 224, 224, 3) and screens.dtype == np.uint8
    assert np.array_equal(screens[0], np.asarray(Image.open(out / ok[0])))


def test_load_screens_without_a_manifest_reads_every_png(tmp_path):
    frame = nes_frame(25)[0][:224, :224]
    Image.fromarray(frame).save(tmp_path / "b.png")
    index, flat = _with_index_image(frame)
    p = Image.fromarray(index, "P")
    p.putpalette(flat)
    p.save(tmp_path / "a.png")  # palette PNG: converts exactly
    screens, names = load_screens(tmp_path)
    assert names == ["a.png", "b.png"] and np.array_equal(screens[0], screens[1])


def test_load_screens_explains_missing_empty_and_wrong_sized_folders(tmp_path):
    with pytest.raises(NesganError, match="not a folder"):
        load_screens(tmp_path / "nope")
    with pytest.raises(NesganError, match="no \\*.png"):
        load_screens(tmp_path)
    Image.new("RGB", (256, 240)).save(tmp_path / "x.png")
    with pytest.raises(NesganError, match="256×240, not 224×224"):
        load_screens(tmp_path)
    (tmp_path / "x.png").unlink()
    Image.new("RGBA", (224, 224)).save(tmp_path / "y.png")
    with pytest.raises(NesganError, match="not 224×224 RGB"):
        load_screens(tmp_path)


# --- the command -----------------------------------------------------------------------------


def test_cli_crop_prints_the_summary_and_exits_0(shots, tmp_path):
    out = tmp_path / "screens"
    result = CliRunner().invoke(cli, ["crop", str(shots), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 screens" in result.output and "1 not_image" in result.output
    again = CliRunner().invoke(cli, ["crop", str(shots), "--out", str(out), "--overwrite"])
    assert again.exit_code == 0 and "already done" not in again.output
    assert len(read_jsonl(out / MANIFEST)) == 6


def test_cli_crop_exit_codes_for_missing_empty_and_useless_folders(tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["crop", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "does not exist" in missing.output
    empty = tmp_path / "empty"
    empty.mkdir()
    r = runner.invoke(cli, ["crop", str(empty), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "no files in" in r.output and "Traceback" not in r.output
    (empty / "page.png").write_text("<html>Please visit</html>")
    r = runner.invoke(cli, ["crop", str(empty), "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "none of the 1 files" in r.output
    r = runner.invoke(cli, ["crop", str(empty / "page.png"), "--out", str(tmp_path / "o2")])
    assert r.exit_code == 1 and "none of the 1 files" in r.output
    r = runner.invoke(cli, ["crop", str(empty / "*.gif"), "--out", str(tmp_path / "o3")])
    assert r.exit_code == 1 and "no files match" in r.output



def test_the_embedded_museums_screenshots_crop_and_scrolled_shots_keep_their_grid(tmp_path):
    site = pytest.importorskip("nesgan.museum.site")
    museum = site.Museum(games=3, screens_per_game=8, seed=1, scroll_rate=0.5)
    src = tmp_path / "raw"
    for path in museum.image_urls():
        _ctype, body = museum.get("/" + path)
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_bytes(body)
    crop_folder(CropConfig(src=src, out=tmp_path / "screens"))
    rows = read_jsonl(tmp_path / "screens" / MANIFEST)
    screenshots = set(museum.screenshot_urls())
    assert {r["file"] for r in rows if r["status"] in ("ok", "duplicate")} == screenshots
    scrolled = [r for r in rows if r["status"] == "ok" and museum.exhibit(r["file"]).scroll_x]
    assert scrolled, "the museum should hold mid-scroll shots at this seed"
    for r in scrolled:
        assert r["source_phase"][0] == -museum.exhibit(r["file"]).scroll_x % 16
        assert r["grid_phase"][0] == 0


def test_a_file_name_that_is_not_utf8_gets_an_escaped_row_and_resumes(tmp_path):
    src = tmp_path / "shots"
    src.mkdir()
    raw_name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: not UTF-8
    Image.fromarray(nes_frame(31)[0]).save(src / raw_name)
    crop_folder(CropConfig(src=src, out=tmp_path / "o"))
    again = crop_folder(CropConfig(src=src, out=tmp_path / "o"))
    rows = read_jsonl(tmp_path / "o" / MANIFEST)
    assert [(r["file"], r["status"]) for r in rows] == [("caf\\xe9.png", "ok")]
    assert again.skipped == 1 and again.new == 0


def test_detect_grid_phase_copes_with_more_colours_than_it_has_bits_for():
    rng = np.random.default_rng(32)
    colours = rng.integers(0, 256, (300, 3), dtype=np.uint8)  # 300 colours: rare ones share a bit
    cells = colours[rng.integers(0, 300, (17, 17, 4))]  # (17, 17, 4, 3): 4 colours a cell
    pattern = rng.integers(0, 4, (17, 17, 16, 16))
    big = np.take_along_axis(cells[:, :, None, None], pattern[..., None, None], 4)[..., 0, :]
    big = big.transpose(0, 2, 1, 3, 4).reshape(272, 272, 3)
    frame = big[6:230, 11:235]
    assert len(colour_set(frame)) > 64
    assert detect_grid_phase(frame) == (5, 10)


def _naive_phase_scores(rgb: np.ndarray) -> np.ndarray:
    """The documented score, cell by cell with Python sets: the reference for phase_scores."""
    h, w = rgb.shape[:2]
    ny, nx = (h - 31) // 16 + 1, (w - 31) // 16 + 1
    scores = np.zeros((16, 16))
    for py in range(16):
        ybounds = sorted({0, h, *range(py, h, 16)})
        for px in range(16):
            xbounds = sorted({0, w, *range(px, w, 16)})
            extra = sum(
                len(colour_set(rgb[y0:y1, x0:x1])) - 1
                for y0, y1 in itertools.pairwise(ybounds) for x0, x1 in itertools.pairwise(xbounds)
            )
            cells = {rgb[py + 16 * j: py + 16 * j + 16, px + 16 * i: px + 16 * i + 16].tobytes()
                     for j in range(ny) for i in range(nx)}
            scores[py, px] = extra / (h * w / 256) + REPEAT_WEIGHT * len(cells) / (ny * nx)
    return scores


def test_phase_scores_equal_the_documented_score_computed_cell_by_cell():
    frame, _ = nes_frame(33, w=72, h=56, shift=(3, 9), vocab=4)
    assert np.allclose(phase_scores(frame), _naive_phase_scores(frame))


def test_a_run_killed_mid_row_resumes_and_redoes_only_the_torn_file(shots, tmp_path):
    out = tmp_path / "screens"
    crop_folder(CropConfig(src=shots, out=out))
    lines = (out / MANIFEST).read_text().splitlines(keepends=True)
    first = read_jsonl(out / MANIFEST)[0]
    assert first["status"] == "ok"
    # killed while appending the first row: its PNG is on disk, its row is torn
    (out / MANIFEST).write_text("".join(lines[1:]) + lines[0][:25])
    summary = crop_folder(CropConfig(src=shots, out=out))
    rows = read_jsonl(out / MANIFEST)
    assert summary.new == 1 and len(rows) == 6
    assert rows[-1]["file"] == first["file"] and rows[-1]["status"] == "ok"
    assert rows[-1]["path"] == first["path"] and (out / first["path"]).exists()


def test_crops_from_jpegs_are_kept_but_the_summary_warns_they_are_lossy(tmp_path):
    src = tmp_path / "shots"
    src.mkdir()
    frame, _ = nes_frame(30)
    Image.fromarray(frame).save(src / "exact.png")
    Image.fromarray(nes_frame(31)[0]).save(src / "lossy.jpg", quality=90)
    summary = crop_folder(CropConfig(src=src, out=tmp_path / "screens"))
    assert summary.counts.get("ok") == 2 and summary.lossy == 1
    assert "1 of the crops came from JPEGs" in summary.format()
    again = crop_folder(CropConfig(src=src, out=tmp_path / "screens"))  # resumed: still counted
    assert again.lossy == 1


def test_crop_takes_files_and_glob_patterns_and_names_crops_after_their_source(tmp_path):
    shots = tmp_path / "shots"
    (shots / "world2").mkdir(parents=True)
    for i, name in enumerate(("world1-1.png", "world1-2.png", "title.png", "world2/world2-1.png")):
        Image.fromarray(nes_frame(40 + i)[0]).save(shots / name)
    out = tmp_path / "screens"
    runner = CliRunner()
    r = runner.invoke(cli, ["crop", str(shots / "world1-*.png"), str(shots / "world2" / "world2-1.png"),
                            "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = read_jsonl(out / MANIFEST)
    assert [r["file"] for r in rows] == [(shots / n).as_posix() for n in
                                         ("world1-1.png", "world1-2.png", "world2/world2-1.png")]
    names = sorted(p.name for p in out.glob("*.png"))
    assert [re.sub(r"_[0-9a-f]{8}\.png$", "", n) for n in names] == ["world1-1", "world1-2", "world2-1"]
    # a single file, and a rerun naming files already done: nothing is cropped twice
    r = runner.invoke(cli, ["crop", str(shots / "title.png"), str(shots / "world1-1.png"), "--out", str(out)])
    assert r.exit_code == 0 and "1 files were already done" in r.output
    assert len(read_jsonl(out / MANIFEST)) == 4 and len(list(out.glob("*.png"))) == 4


def test_crop_names_are_sanitised_and_never_paths(tmp_path):
    from nesgan.crop.screens import crop_name, safe_stem

    assert safe_stem("../../etc/passwd") == "passwd"
    assert safe_stem("http://127.0.0.1/nes/01/World%201-2%20(USA).png?x=1") == "World-1-2-USA"
    assert safe_stem("caf\\xe9.png") == "caf-xe9" and safe_stem("...") == "screen"
    assert safe_stem("a" * 100 + ".gif") == "a" * 40 and safe_stem(".hidden.png") == "hidden"
    name = crop_name(np.zeros((224, 224, 3), np.uint8), "http://h/x/../<script>.png")
    assert re.fullmatch(r"script_[0-9a-f]{8}\.png", name)


def test_scraped_crops_are_named_after_the_url_and_grouped_by_game(tmp_path):
    src = tmp_path / "raw"
    src.mkdir()
    Image.fromarray(nes_frame(50)[0]).save(src / "ab12.png")
    crop_folder(CropConfig(src=src, out=tmp_path / "o"), sources={"ab12.png": "http://h/nes/01/smb-03.png"},
                games={"ab12.png": "Super Mario Bros."})
    row = read_jsonl(tmp_path / "o" / MANIFEST)[0]
    assert row["path"].startswith("smb-03_") and row["game"] == "Super Mario Bros."


def test_overwrite_removes_crops_with_stem_names_and_legacy_hash_names(shots, tmp_path):
    out = tmp_path / "screens"
    crop_folder(CropConfig(src=shots, out=out))
    Image.fromarray(np.zeros((224, 224, 3), np.uint8)).save(out / "0123456789abcdef.png")  # older nesgan
    Image.fromarray(np.zeros((224, 224, 3), np.uint8)).save(out / "mine.png")  # the user's
    crop_folder(CropConfig(src=shots, out=out, overwrite=True))
    assert not (out / "0123456789abcdef.png").exists() and (out / "mine.png").exists()


def test_the_training_reference_reads_two_folders_a_chunk_at_a_time_as_their_loaded_screens(shots, tmp_path):
    from nesgan.crop.load import PackedScreens, training_reference
    from nesgan.patterns import Reference

    out = tmp_path / "screens"
    crop_folder(CropConfig(src=shots, out=out))
    other = tmp_path / "more"
    other.mkdir()
    Image.fromarray(nes_frame(25)[0][:224, :224]).save(other / "c.png")
    loaded = np.concatenate([load_screens(out)[0], load_screens(other)[0]]).astype(np.int32)
    packed = (loaded[..., 0] << 16) | (loaded[..., 1] << 8) | loaded[..., 2]
    reader = PackedScreens([out / n for n in load_screens(out)[1]] + [other / "c.png"])
    assert len(reader) == 3 and np.array_equal(reader[1:], packed[1:]) and np.array_equal(reader[[2, 0]], packed[[2, 0]])
    ref, whole = training_reference((out, other, tmp_path / "absent")), Reference(nes_indices(loaded.astype(np.uint8)))
    assert all(np.array_equal(ref.counts[n][1], whole.counts[n][1]) for n in (2, 3, 4))
    assert ref.floor() == whole.floor()
    assert training_reference(tmp_path / "absent") is None


def test_the_training_reference_reads_screens_in_nes_colours_as_train_does(tmp_path):
    # two captures' blues, one NES colour ($2C): an emulator palette's stripes G is shown as one
    # flat sky must not count as windows the art has and G lacks
    from nesgan.crop.load import training_reference
    from nesgan.patterns import Reference

    blues = np.array([[0x38, 0xB4, 0xCC], [0x3C, 0xBC, 0xFC]], np.uint8)
    assert len(set(nes_indices(blues).tolist())) == 1
    art = tmp_path / "art"
    art.mkdir()
    striped = blues[(np.arange(224) // 3) % 2][None, :, :].repeat(224, axis=0)  # 3-px vertical stripes
    Image.fromarray(striped).save(art / "sky.png")
    Image.fromarray(nes_frame(25)[0][:224, :224]).save(art / "level.png")
    ref = training_reference(art)
    drawn = nes_indices(np.stack([striped, nes_frame(25)[0][:224, :224]]))  # what G sees and draws
    assert ref.divergence(drawn) == pytest.approx(0.0, abs=1e-9)
    assert Reference(drawn).counts[2][1].tolist() == ref.counts[2][1].tolist()
    packed = striped.astype(np.int32) @ np.array([65536, 256, 1])
    assert Reference(packed[None]).divergence(drawn[:1]) > 1.0, "read as RGB, the stripes were windows"
    assert training_reference(art, Palette.builtin()).counts[3][1].tolist() == ref.counts[3][1].tolist()
