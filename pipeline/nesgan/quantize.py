"""Every pixel onto the NES palette: a 2²⁴-entry lookup table, built once and cached on disk.

Perceptual nearest colour (OKLab, see `nesgan.palette`) costs a cube root and a 54-way argmin
per colour. A 224×224 screen can hold 50,176 distinct colours, so instead of matching per image
nesgan precomputes the answer for all 16,777,216 RGB colours (16 MiB of uint8), keyed by the
palette's fingerprint, and quantizing becomes one fancy index `lut[r << 16 | g << 8 | b]`.

The table agrees with `Palette.nearest` (tested; the benchmark finds ~4 pixels in a million
that sit on a float32 tie and go the other way): the build uses the same OKLab formulas but
factors the per-channel transfer function into 256-entry tables and the distance into
|c|² − 2·x·c, so it takes about a second instead of half a minute.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nesgan.errors import NesganError
from nesgan.files import atomic_write_bytes, write_jsonl
from nesgan.palette import EMITTABLE, OKLAB_M1, OKLAB_M2, Palette, load_palette, srgb_to_linear

LUT_SIZE = 1 << 24
MAX_PIXELS = 4096 * 4096  # larger than any screenshot; a decompression bomb stops here
IMAGE_SUFFIXES = (".png", ".gif", ".bmp", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")

_LUTS: dict[str, np.ndarray] = {}  # in-process memo: fingerprint -> table


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/nesgan, else ~/.cache/nesgan."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nesgan"


def lut_path(palette: Palette) -> Path:
    return cache_dir() / f"lut-{palette.fingerprint}.npy"


def build_lut(palette: Palette) -> np.ndarray:
    """(2²⁴,) uint8: NES index of the perceptually nearest emittable colour for every RGB colour."""
    # 1. sRGB transfer function, per channel value (IEC 61966-2-1)
    lin = srgb_to_linear(np.arange(256, dtype=np.float32) / 255.0).astype(np.float32)
    # 2. linear RGB -> LMS is linear, so G and B contributions are summed once for all 65,536 pairs
    g_part = lin[:, None] * OKLAB_M1[:, 1][None, :]  # (256, 3)
    b_part = lin[:, None] * OKLAB_M1[:, 2][None, :]  # (256, 3)
    gb = (g_part[:, None, :] + b_part[None, :, :]).reshape(-1, 3)  # (65536, 3)
    # 3. nearest by |x − c|² = |x|² − 2·x·c + |c|²; |x|² is the same for every c, so drop it
    pal_lab = palette._lab.astype(np.float32)  # (54, 3)
    score = np.concatenate([-2.0 * pal_lab.T, (pal_lab**2).sum(1)[None, :]], 0)  # (4, 54)
    out = np.empty(LUT_SIZE, dtype=np.uint8)
    x = np.ones((65536, 4), dtype=np.float32)  # (65536, [L, a, b, 1])
    for r in range(256):
        lms = gb + lin[r] * OKLAB_M1[:, 0]  # (65536, 3)
        x[:, :3] = np.cbrt(lms) @ OKLAB_M2.T
        out[r << 16 : (r + 1) << 16] = EMITTABLE[(x @ score).argmin(1)]
    return out


def _valid_lut(lut: object) -> bool:
    if not isinstance(lut, np.ndarray) or lut.dtype != np.uint8 or lut.shape != (LUT_SIZE,):
        return False
    # A cheap spot check that the values are emittable colours (a torn or foreign file is not).
    probe = lut[:: 4099]
    return bool(np.isin(probe, EMITTABLE).all())


def load_lut(palette: Palette, *, verbose: bool = True) -> np.ndarray:
    """The palette's lookup table: from memory, else the disk cache, else built and cached."""
    fp = palette.fingerprint
    if fp in _LUTS:
        return _LUTS[fp]
    path = lut_path(palette)
    lut = None
    if path.exists():
        try:
            lut = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            lut = None
        if not _valid_lut(lut):
            if verbose:
                print(f"nesgan: colour table {path} is damaged; rebuilding it",
                      file=sys.stderr, flush=True)
            lut = None
    if lut is None:
        if verbose:
            print("nesgan: building the NES colour lookup table (once per palette)…",
                  file=sys.stderr, flush=True)
        lut = build_lut(palette)
        buf = io.BytesIO()
        np.save(buf, lut, allow_pickle=False)
        try:
            atomic_write_bytes(path, buf.getvalue())
        except OSError as e:  # a read-only cache only costs the next run a rebuild
            if verbose:
                print(f"nesgan: could not cache the colour table at {path}: {e.strerror}",
                      file=sys.stderr, flush=True)
    _LUTS[fp] = lut
    return lut


def quantize_rgb(rgb: np.ndarray, palette: Palette, lut: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 NES indices, perceptually nearest, no dithering."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise ValueError(f"expected (H, W, 3) RGB, got shape {rgb.shape}")
    lut = load_lut(palette) if lut is None else lut
    rgb = rgb.astype(np.uint32, copy=False)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]  # (H, W)
    return lut[packed]


def open_rgb(path: Path, max_pixels: int = MAX_PIXELS, *, size: int | None = None,
             modes: tuple[str, ...] | None = None) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; refuses oversized (bomb) and unreadable files, and,
    when given, images that are not `size`×`size` or not in one of `modes` (all from the header,
    before decoding). Transparent pixels show as black."""
    try:
        with Image.open(path) as im:
            w, h = im.size  # from the header, before decoding
            if w * h > max_pixels:
                raise NesganError(
                    f"{path} is {w}×{h} pixels, over the {max_pixels:,}-pixel limit; "
                    "crop or shrink it first"
                )
            if size is not None and (w, h) != (size, size):
                raise NesganError(
                    f"{path} is {w}×{h}; the tile stage needs {size}×{size} screens "
                    "(run `nesgan crop` on it, or remove it)"
                )
            if modes is not None and im.mode not in modes:
                raise NesganError(
                    f"{path} is a {im.mode!r} image; save it as RGB or palette PNG "
                    f"(accepted modes: {', '.join(modes)})"
                )
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (0, 0, 0, 255))  # transparent shows as black
                im = Image.alpha_composite(bg, im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except NesganError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise NesganError(f"{path} is not a readable image ({e}); remove it or re-export it") from None


def indices_png_bytes(indices: np.ndarray, palette: Palette) -> bytes:
    """(H, W) NES indices -> palette-mode PNG bytes whose palette index == NES colour index."""
    idx = np.asarray(indices, dtype=np.uint8)
    if idx.max(initial=0) > 63:
        raise ValueError("NES colour indices are 0–63")
    im = Image.fromarray(idx, mode="P")
    im.putpalette(palette.pil_palette())
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def read_indices_png(path: Path) -> np.ndarray:
    """A palette-mode PNG written by `indices_png_bytes` back to (H, W) NES indices."""
    with Image.open(path) as im:
        if im.mode != "P":
            raise NesganError(f"{path} is a {im.mode} image, not a palette-mode NES image")
        return np.asarray(im, dtype=np.uint8)


@dataclass(frozen=True)
class QuantizeConfig:
    src: Path  # an image file or a folder of them (searched recursively)
    out: Path | None = None  # None: SRC-quantized beside SRC (a folder is never written into itself)
    nes_attributes: bool = False  # off: plain nearest colour; on: obey the 16×16 attribute rules
    palette_file: Path | None = None  # None: the built-in 2C02 table

    def out_dir(self) -> Path:
        if self.out is not None:
            return self.out
        src = self.src
        stem = src.stem if src.is_file() else src.name
        return src.parent / f"{stem}-quantized"


@dataclass
class QuantizeReport:
    out: Path
    rows: list[dict]  # one per input image: path, out, status (ok|error), error, width, height, colours

    @property
    def ok(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)


def list_images(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise NesganError(f"{src} does not exist; give an image file or a folder of images")
    return sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _safe_out_name(rel: Path) -> str:
    """A flat, safe output file name from a path relative to SRC (sub/dir/a.gif -> sub_dir_a.png)."""
    parts = [p for p in rel.with_suffix("").parts if p not in ("", ".", "..")]
    name = "_".join(parts)
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).lstrip(".")
    return (name or "image")[:200] + ".png"


def quantize_path(config: QuantizeConfig) -> QuantizeReport:
    """Quantize SRC (file or folder) into palette-mode PNGs plus manifest.jsonl in the out folder."""
    from tqdm import tqdm

    palette = load_palette(config.palette_file)
    images = list_images(config.src)
    if not images:
        raise NesganError(f"no images under {config.src} (looked for {', '.join(IMAGE_SUFFIXES)})")
    out = config.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    lut = load_lut(palette)
    base = config.src.parent if config.src.is_file() else config.src
    rows: list[dict] = []
    used: set[str] = set()
    for path in tqdm(images, desc="quantize", unit="img", disable=len(images) < 20):
        name = _safe_out_name(path.relative_to(base))
        while name in used:
            name = name[:-4] + "_.png"
        used.add(name)
        row = {"path": str(path), "out": None, "status": "ok", "error": None,
               "width": None, "height": None, "colours": None}
        try:
            rgb = open_rgb(path)
        except NesganError as e:
            row.update(status="error", error=str(e))
            rows.append(row)
            continue
        h, w = rgb.shape[:2]
        if config.nes_attributes:
            from nesgan.attributes import solve_attributes

            idx = solve_attributes(rgb, palette, lut=lut).indices
        else:
            idx = quantize_rgb(rgb, palette, lut)
        atomic_write_bytes(out / name, indices_png_bytes(idx, palette))
        row.update(out=str(out / name), width=w, height=h, colours=int(len(np.unique(idx))))
        rows.append(row)
    write_jsonl(out / "manifest.jsonl", rows)
    return QuantizeReport(out=out, rows=rows)
