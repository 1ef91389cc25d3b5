"""One screenshot's bytes -> a pixel-exact native NES frame -> a 224×224 crop that keeps the grid.

No resampling filter is ever applied: it would invent colours the NES never had. A file becomes a
crop in five steps, and every way it can fail is a `CropResult` with a `status` and an `error`
(the folder stage, `screens.py`, writes it as a manifest row):


1. Read and decode, guarded: files over `max_bytes` or images whose header says more than
   `max_pixels` are `too_large` before any pixel is decoded (decompression bombs); what PIL cannot
   identify is `not_image`, what it cannot finish decoding is `corrupt`. An animated GIF/PNG
   gives its first frame.
2. Convert exactly to RGB. P (palette) images map each index to its palette colour; colour-keyed
   transparency (GIF, PNG tRNS) is ignored because the key's stored colour is the colour the
   capture had (screenshot GIFs often mark the backdrop transparent). An alpha channel (RGBA,
   LA, PA) is dropped when every pixel is fully opaque; otherwise the file is `transparent`:
   flattening would blend against a guessed background and invent colours. L and 1-bit grey
   repeat into R, G, B. CMYK, YCbCr, 16-bit and float modes have no exact RGB and are
   `unsupported_mode`. Lossy files (JPEG) are cropped as decoded: their artefacts were there
   before nesgan; the manifest's `format` column lets you filter them out.
3. Find the frame: W×H with 224 ≤ W ≤ 256 and 224 ≤ H ≤ 240 is a native frame (256×240,
   256×224, an overscan-trimmed 240×224, or a 224×224 crop). W×H = k·(native) for an integer
   k ≥ 2 is a scaled capture, reduced by taking one pixel per k×k block only when every block is
   one colour (else `not_exact_scale`: resized with a filter). Smaller is `too_small`; anything
   else (side-by-side composites, aspect-corrected or odd sizes) is `off_size`.
4. Detect the grid phase on the frame (`nesgan.grid.detect_grid_phase`) and, with `hud="auto"`, the
   status bar (`hud.py`): from the screenshots of the same game (the scraper's `game`; for your
   own files, the folder they are in) or, for a game with fewer than 3 shots, from the shot's
   text glyphs alone.
5. Choose the 224×224 window: among offsets that put a cell boundary on the window's edge,
   the one with the fewest status-bar rows inside, then nearest the centre of the rows between
   the bars (ties: the smaller offset); when no offset can (a 256×224 frame whose grid sits at
   y = 8), the centred offset. A 32-px bar cannot leave a 224-row window of a 240-line frame:
   the bar rows the window cannot avoid are wiped to the bar's own paper colour (the commonest
   colour of those rows), so no text is learnt, no colour is new and the grid stays. The
   manifest records the output's phase, the bar rows found (`hud_rows`: top, bottom of the
   frame) and the rows wiped in the crop (`hud_wiped`: top, bottom).

Crops are named `<source stem>_<8 hex digits of the SHA-256 of their pixels>.png` (the stem
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
from PIL import Image, UnidentifiedImageError

from nesgan.crop.hud import NO_HUD, Hud, choose_window, detect_alone
from nesgan.grid import CELL, detect_grid_phase
from nesgan.images import MAX_PIXELS, SCREEN

SIZE = SCREEN  # 14 cells of 16 px: the DCGAN's input, and the widest square every NES frame holds
NATIVE_W = (SIZE, 256)  # PPU frames are 256 wide; overscan-trimmed captures down to 224
NATIVE_H = (SIZE, 240)  # 240 lines drawn; NTSC-visible captures cut 8 top and bottom (224)

# Statuses, in the order the summary lists them.
STATUSES = (
    "ok", "duplicate", "too_small", "off_size", "not_exact_scale", "transparent",
    "unsupported_mode", "corrupt", "not_image", "too_large", "unreadable",
)


@dataclass
class CropResult:
    """What became of one image: the crop (status `ok`) or a status and a human reason."""

    status: str
    error: str | None = None
    crop: np.ndarray | None = field(default=None, repr=False)  # (224, 224, 3) uint8 when ok
    box: tuple[int, int, int, int] | None = None  # left, top, right, bottom after scale reduction
    scale: int | None = None  # k of a k× capture; 1 for native frames
    grid_phase: tuple[int, int] | None = None  # (x, y) phase of the grid in the crop
    source_phase: tuple[int, int] | None = None  # (x, y) phase detected in the reduced frame
    width: int | None = None  # source size, as decoded
    height: int | None = None
    mode: str | None = None  # PIL mode of the source
    format: str | None = None  # PIL format name (PNG, GIF, …)
    hud_rows: tuple[int, int] | None = None  # status-bar rows at the frame's top, bottom
    hud_source: str | None = None  # how the bar was found: "shots", "glyphs" (None: no bar)
    hud_wiped: tuple[int, int] | None = None  # bar rows wiped at the crop's top, bottom

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def row(self) -> dict:
        """The manifest fields of this result (tuples as lists, no pixels)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "crop"}
        for k in ("box", "grid_phase", "source_phase", "hud_rows", "hud_wiped"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d



def _sniff(data: bytes) -> str:
    """A human guess at what a non-image file is."""
    head = data[:512].lstrip().lower()
    if not data:
        return "empty file"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head or b"<body" in head:
        return "an HTML page, not an image (a server's error or bot-check page saved as an image?)"
    if head.startswith(b"<"):
        return "markup text, not an image"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:256]):
        return "plain text, not an image"
    return "not a format Pillow can identify"


def to_rgb_exact(img: Image.Image) -> tuple[np.ndarray | None, str | None, str | None]:
    """Decoded image -> ((H, W, 3) uint8, None, None) or (None, status, reason); no colour is
    ever computed, only looked up or copied (see the module doc, step 2)."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8).copy(), None, None
    if mode in ("P", "PA"):
        if mode == "PA":
            alpha = np.asarray(img.getchannel("A"))
            if alpha.min() < 255:
                return None, "transparent", _transparent_reason(alpha)
        index = np.asarray(img.getchannel(0) if mode == "PA" else img, dtype=np.uint8)
        pal = np.asarray(img.getpalette("RGB") or [], dtype=np.uint8).reshape(-1, 3)
        if len(pal) == 0 or index.max() >= len(pal):
            return None, "corrupt", "palette image uses colour indices its palette does not have"
        return pal[index], None, None
    if mode in ("L", "1"):
        grey = np.asarray(img.convert("L") if mode == "1" else img, dtype=np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), None, None
    if mode in ("RGBA", "LA", "RGBa", "La"):
        alpha = np.asarray(img.getchannel("A"))
        if alpha.min() < 255:
            return None, "transparent", _transparent_reason(alpha)
        a = np.asarray(img, dtype=np.uint8)
        if mode in ("RGBA", "RGBa"):
            return a[..., :3].copy(), None, None
        return np.repeat(a[..., :1], 3, axis=2), None, None
    if mode == "RGBX":
        return np.asarray(img, dtype=np.uint8)[..., :3].copy(), None, None
    reason = {
        "CMYK": "CMYK has no exact RGB equivalent; save the screenshot as RGB PNG",
    }.get(mode, f"mode {mode} (16-bit, float or non-RGB colour) has no exact 8-bit RGB form")
    return None, "unsupported_mode", reason


def _transparent_reason(alpha: np.ndarray) -> str:
    n = int((alpha < 255).sum())
    return (
        f"{n} of {alpha.size} pixels are not fully opaque; NES frames have no transparency "
        "and flattening would invent colours (flatten it yourself onto the right backdrop)"
    )


def native_size(w: int, h: int) -> bool:
    """Is W×H a frame as the PPU draws it (possibly overscan-trimmed)?"""
    return NATIVE_W[0] <= w <= NATIVE_W[1] and NATIVE_H[0] <= h <= NATIVE_H[1]


def scale_candidates(w: int, h: int) -> list[int]:
    """Integer factors k >= 2 with W×H = k × (a native frame), smallest first."""
    return [
        k for k in range(2, w // NATIVE_W[0] + 1)
        if w % k == 0 and h % k == 0 and native_size(w // k, h // k)
    ]


def reduce_exact(rgb: np.ndarray, k: int) -> np.ndarray | None:
    """(kH, kW, 3) -> (H, W, 3) taking one pixel per k×k block, or None if a block is not one
    colour (the capture was resized with a filter, or is not aligned to the blocks)."""
    h, w = rgb.shape[0] // k, rgb.shape[1] // k
    small = rgb[::k, ::k]  # (H, W, 3)
    blocks = rgb.reshape(h, k, w, k, 3)
    if not (blocks == small[:, None, :, None, :]).all():
        return None
    return np.ascontiguousarray(small)


def _nonuniform_fraction(rgb: np.ndarray, k: int) -> float:
    h, w = rgb.shape[0] // k, rgb.shape[1] // k
    blocks = rgb.reshape(h, k, w, k, 3)
    same = (blocks == rgb[::k, ::k][:, None, :, None, :]).all(axis=(1, 3, 4))
    return float(1.0 - same.mean())


def choose_offset(length: int, phase: int, size: int = SIZE) -> int:
    """Window start in 0…length-size that puts a cell boundary at the window's edge (start ≡
    phase mod 16), nearest the centre (ties: smaller); the centred start when none can."""
    slack = length - size
    centre = slack / 2
    aligned = [s for s in range(0, slack + 1) if (s - phase) % CELL == 0]
    if not aligned:
        return slack // 2
    return min(aligned, key=lambda s: (abs(s - centre), s))



FindHud = Callable[[np.ndarray, int], Hud]  # (native frame, its vertical grid phase) -> bar


def _wipe(rows: np.ndarray) -> None:
    """Paint (n, W, 3) rows in place with their commonest colour: a bar's paper, text gone."""
    packed = _pack24(rows).ravel()
    uniq, counts = np.unique(packed, return_counts=True)
    c = int(uniq[np.argmax(counts)])
    rows[...] = ((c >> 16) & 255, (c >> 8) & 255, c & 255)


def _pack24(rgb: np.ndarray) -> np.ndarray:
    a = rgb.astype(np.uint32)
    return (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]


def crop_frame(frame: np.ndarray, find_hud: FindHud | None = None) -> CropResult:
    """A native (H, W, 3) frame -> an `ok` result with the crop, its box, the output and source
    phases, and (with `find_hud`) the status bar found and the rows wiped."""
    h, w = frame.shape[:2]
    px, py = detect_grid_phase(frame)
    hud = find_hud(frame, py) if find_hud is not None else NO_HUD
    left = choose_offset(w, px)
    top, wipe_top, wipe_bottom = choose_window(h, py, hud, SIZE)
    crop = np.array(frame[top : top + SIZE, left : left + SIZE])  # a copy: wiping stays local
    if wipe_top:
        _wipe(crop[:wipe_top])
    if wipe_bottom:
        _wipe(crop[SIZE - wipe_bottom :])
    out_phase = ((px - left) % CELL, (py - top) % CELL)
    found = hud.found
    return CropResult("ok", None, crop, (left, top, left + SIZE, top + SIZE), 1, out_phase, (px, py),
                      hud_rows=hud.rows(h) if found else None,
                      hud_source=hud.source if found else None,
                      hud_wiped=(wipe_top, wipe_bottom) if found else None)


def decode_frame(img: Image.Image, max_pixels: int = MAX_PIXELS) -> CropResult:
    """An opened image -> its native frame (`crop` holds the whole frame, `scale` the factor
    removed), or a status and reason: steps 1–3 of the module doc."""
    w, h = img.size
    base = dict(width=w, height=h, mode=img.mode, format=img.format)
    if w * h > max_pixels:
        return CropResult("too_large", f"{w}×{h} is over the {max_pixels}-pixel cap "
                          "(a decompression bomb, or not a screenshot)", **base)
    try:
        img.seek(0)  # animated GIF/PNG: the first frame
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        return CropResult("corrupt", f"cannot decode: {e}", **base)
    rgb, status, reason = to_rgb_exact(img)
    if rgb is None:
        return CropResult(status, reason, **base)
    h, w = rgb.shape[:2]
    if w < SIZE or h < SIZE:
        return CropResult("too_small", f"{w}×{h} is smaller than {SIZE}×{SIZE}", **base)
    scale = 1
    if not native_size(w, h):
        ks = scale_candidates(w, h)
        if not ks:
            return CropResult("off_size", (
                f"{w}×{h} is not a NES frame (256×240, 256×224, down to 224×224) nor an integer "
                "multiple of one: a composite, a border or an aspect-corrected resize"), **base)
        for k in ks:
            reduced = reduce_exact(rgb, k)
            if reduced is not None:
                rgb, scale = reduced, k
                break
        else:
            k = ks[0]
            frac = _nonuniform_fraction(rgb, k)
            return CropResult("not_exact_scale", (
                f"{w}×{h} looks like a {k}× capture of {w // k}×{h // k} but {frac:.1%} of its "
                f"{k}×{k} blocks are not one colour (resized with a filter; "
                "reducing it would invent colours)"), **base)
    return CropResult("ok", None, rgb, None, scale, **base)


def crop_image(img: Image.Image, max_pixels: int = MAX_PIXELS,
               find_hud: FindHud | None = detect_alone) -> CropResult:
    """Pure: an opened (not necessarily decoded) image -> the crop or a status and reason.
    `find_hud`: how to find a status bar (default: the frame's own glyphs; None: never)."""
    decoded = decode_frame(img, max_pixels)
    if not decoded.ok:
        return decoded
    assert decoded.crop is not None
    result = crop_frame(decoded.crop, find_hud)
    result.scale = decoded.scale
    result.width, result.height, result.mode, result.format = (
        decoded.width, decoded.height, decoded.mode, decoded.format)
    return result


def _quiet_but_bombs() -> None:
    """Inside `catch_warnings`: a decompression-bomb warning raises; Pillow's other warnings
    about damaged metadata are dropped, since the result's status already says what happened."""
    warnings.simplefilter("ignore")
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def crop_bytes(data: bytes, max_pixels: int = MAX_PIXELS,
               find_hud: FindHud | None = detect_alone, decode_only: bool = False) -> CropResult:
    """Decode file bytes guardedly (header size checked before any pixel) and crop them (or,
    with `decode_only`, return the native frame as `decode_frame` does)."""
    try:
        with warnings.catch_warnings():
            _quiet_but_bombs()
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return CropResult("not_image", _sniff(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return CropResult("too_large", f"decompression bomb: {e}")
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        return CropResult("corrupt", f"cannot read the image header: {e}")
    with img:
        with warnings.catch_warnings():
            _quiet_but_bombs()
            try:
                if decode_only:
                    return decode_frame(img, max_pixels)
                return crop_image(img, max_pixels, find_hud)
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
                return CropResult("too_large", f"decompression bomb: {e}")


