"""Image files in and out, one way each: the PNG encoder, the guarded loader, the suffixes we read,
and the geometry every stage shares (16 px attribute cells, 224 px screens)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from nesgan.errors import NesganError

TILE = 16  # one NES attribute area: 2×2 pattern tiles of 8×8 sharing a sub-palette
SCREEN = 224  # 7·2⁵ and 14 × 16: what the crop stage writes and the generator draws
GRID = SCREEN // TILE  # 14 tiles a side
MAX_PIXELS = 4096 * 4096  # larger than any screenshot; a decompression bomb stops here
IMAGE_SUFFIXES = (".png", ".gif", ".bmp", ".jpg", ".jpeg", ".webp", ".tif", ".tiff")


def encode_png(rgb: np.ndarray, *, indexed: bool = False) -> bytes:
    """(H, W, 3) uint8 as PNG bytes. `indexed`: palette mode when the image has at most 256
    colours (an NES image has at most 54 plus a padding colour: a third of the bytes to
    compress), else RGB. Crops and generated screens are written as RGB, atlases indexed."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    buf = io.BytesIO()
    if indexed:
        packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
        colours, inverse = np.unique(packed.reshape(-1), return_inverse=True)
        if len(colours) <= 256:
            img = Image.fromarray(inverse.reshape(rgb.shape[:2]).astype(np.uint8), "P")
            table = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1)
            img.putpalette(table.astype(np.uint8).reshape(-1).tolist())
            img.save(buf, "PNG")
            return buf.getvalue()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


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


def image_files(folder: Path) -> list[Path]:
    """Image files directly in `folder`, in file-name order (hidden files skipped)."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
