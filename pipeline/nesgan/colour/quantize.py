"""`nesgan quantize`: images onto the NES palette as palette-mode PNGs whose index is the NES colour.

Plain nearest colour goes through the cached lookup table (`nesgan.colour.lut`); with
`--nes-attributes` the attribute solver (`nesgan.colour.attributes`) also obeys one backdrop plus
four 3-colour sub-palettes, one per 16×16 cell.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nesgan.colour.attributes import solve_attributes
from nesgan.colour.lut import load_lut, quantize_rgb
from nesgan.colour.palette import Palette, load_palette
from nesgan.errors import NesganError
from nesgan.files import MANIFEST, atomic_write_bytes, write_jsonl
from nesgan.images import IMAGE_SUFFIXES, open_rgb


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

    def summary(self) -> str:
        failed = len(self.rows) - self.ok
        return (f"quantized {self.ok} image(s) into {self.out}"
                + (f"; {failed} failed (see {MANIFEST})" if failed else ""))

    def raise_if_none_ok(self, src: Path) -> None:
        """Nothing quantized at all is an error the user must see (exit 1), not a summary line."""
        if self.rows and not self.ok:
            raise NesganError(f"none of the {len(self.rows)} image(s) under {src} could be quantized; "
                              f"{self.out / MANIFEST} says why for each")


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
            idx = solve_attributes(rgb, palette, lut=lut).indices
        else:
            idx = quantize_rgb(rgb, palette, lut)
        atomic_write_bytes(out / name, indices_png_bytes(idx, palette))
        row.update(out=str(out / name), width=w, height=h, colours=int(len(np.unique(idx))))
        rows.append(row)
    write_jsonl(out / MANIFEST, rows)
    return QuantizeReport(out=out, rows=rows)
