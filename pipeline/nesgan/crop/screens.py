"""`nesgan crop`: pixel-exact 224×224 crops of NES screenshots that keep the 16×16 grid.

No resampling filter is ever applied: it would invent colours the NES never had. A file becomes a
crop in five steps, and every way it can fail is a manifest row with a `status` and an `error`:

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
4. Detect the grid phase on the frame (`grid.detect_grid_phase`) and, with `hud="auto"`, the
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
sanitised to letters, digits, `.`, `_` and `-`), so a name says which screenshot it came from,
and identical crops dedupe by their pixels.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from nesgan.crop.grid import CELL, detect_grid_phase
from nesgan.crop.hud import NO_HUD, SAMPLE, Hud, choose_window, detect_alone, hud_finder
from nesgan.errors import NesganError
from nesgan.files import MANIFEST, JsonlAppender, atomic_write_bytes, iter_jsonl, write_json
from nesgan.images import SCREEN, encode_png

SIZE = SCREEN  # 14 cells of 16 px: the DCGAN's input, and the widest square every NES frame holds
NATIVE_W = (SIZE, 256)  # PPU frames are 256 wide; overscan-trimmed captures down to 224
NATIVE_H = (SIZE, 240)  # 240 lines drawn; NTSC-visible captures cut 8 top and bottom (224)
CONFIG_FILE = "crop_config.json"
_OUTPUT_NAME_LEN = 16  # hex digits of the SHA-256 naming crops before they kept their stem
_HASH_LEN = 8  # hex digits of the crop's SHA-256 after its stem: unique among a stem's crops
_STEM_LEN = 40  # characters of the source's stem kept in a crop's name
HUD_MODES = ("auto", "keep")

# Statuses, in the order the summary lists them.
STATUSES = (
    "ok", "duplicate", "too_small", "off_size", "not_exact_scale", "transparent",
    "unsupported_mode", "corrupt", "not_image", "too_large", "unreadable",
)


@dataclass(frozen=True)
class CropConfig:
    src: Path | tuple[str, ...]  # a folder, or folders, files and glob patterns
    out: Path
    overwrite: bool = False  # False: resume, skipping files already in the manifest
    max_pixels: int = 4096 * 4096  # 16× a NES frame each way; more is a bomb, not a screenshot
    max_bytes: int = 64 << 20  # the largest honest screenshot PNG is a few MiB
    hud: str = "auto"  # auto: find status bars and crop around them; keep: crop as if none

    def __post_init__(self) -> None:
        if self.hud not in HUD_MODES:
            raise NesganError(f"hud must be one of {', '.join(HUD_MODES)}, got {self.hud!r}")
        if self.max_pixels < SIZE * SIZE:
            raise NesganError(f"max_pixels must be at least {SIZE * SIZE}, got {self.max_pixels}")
        if self.max_bytes < 1:
            raise NesganError(f"max_bytes must be positive, got {self.max_bytes}")


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


@dataclass
class CropSummary:
    counts: dict[str, int]  # status -> count (this run + already done)
    out: Path | None = None
    new: int = 0  # files processed by this run
    skipped: int = 0  # files already in the manifest (resume)
    lossy: int = 0  # `ok` crops whose source was a JPEG (this run + already done)
    hud: int = 0  # `ok` crops cropped around a status bar (this run + already done)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def format(self) -> str:
        """One-paragraph human summary."""
        order = {s: i for i, s in enumerate(STATUSES)}
        parts = ", ".join(
            f"{n} {s}" for s, n in sorted(self.counts.items(), key=lambda kv: order.get(kv[0], 99))
        )
        where = f" in {self.out}" if self.out is not None else ""
        text = f"{self.counts.get('ok', 0)} screens of 224×224{where} from {self.total} files"
        text += f" ({parts})." if parts else "."
        if self.skipped:
            text += f" {self.skipped} files were already done (resumed; --overwrite starts over)."
        if self.hud:
            text += (f" {self.hud} of the crops had a status bar, cropped around it (the manifest's"
                     " hud_rows and hud_wiped say where; --hud keep keeps it).")
        if self.lossy:
            text += (f" {self.lossy} of the crops came from JPEGs, whose compression adds colours"
                     " the NES never had (the manifest's format column marks them; PNG and GIF"
                     " captures are exact).")
        bad = self.total - self.counts.get("ok", 0) - self.counts.get("duplicate", 0)
        if bad:
            manifest = self.out / MANIFEST if self.out is not None else MANIFEST
            text += f" See {manifest} for why {bad} could not be cropped."
        return text


# ---------------------------------------------------------------------------------------------
# One image


def _lossy(row: dict) -> bool:
    return row.get("status") == "ok" and str(row.get("format", "")).upper() in ("JPEG", "MPO")


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


def decode_frame(img: Image.Image, max_pixels: int = CropConfig.max_pixels) -> CropResult:
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


def crop_image(img: Image.Image, max_pixels: int = CropConfig.max_pixels,
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


def crop_bytes(data: bytes, max_pixels: int = CropConfig.max_pixels,
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


def crop_digest(crop: np.ndarray) -> str:
    """Hex SHA-256 (first 16 digits) of a crop's pixels: equal crops, equal digests."""
    return hashlib.sha256(np.ascontiguousarray(crop).tobytes()).hexdigest()[:_OUTPUT_NAME_LEN]


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_OUR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*_[0-9a-f]{8}([0-9a-f]{8})?\.png")


def safe_stem(label: str) -> str:
    """The stem of a file name or URL, made safe for a file name: letters, digits, `.`, `_`
    and `-` only (anything else becomes `-`), never a path, at most 40 characters."""
    text = unquote(urlsplit(label).path) if "://" in label else label
    name = text.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    stem = _UNSAFE.sub("-", stem).strip("-._")[:_STEM_LEN].strip("-._")
    return stem or "screen"


def crop_name(crop: np.ndarray, label: str = "screen") -> str:
    """Output file name: the source's safe stem and 8 hex digits of the pixels' SHA-256."""
    return f"{safe_stem(label)}_{crop_digest(crop)[:_HASH_LEN]}.png"


# ---------------------------------------------------------------------------------------------
# A folder


def _is_our_output(name: str) -> bool:
    stem, ext = os.path.splitext(name)
    legacy = len(stem) == _OUTPUT_NAME_LEN and all(c in "0123456789abcdef" for c in stem)
    return ext == ".png" and (legacy or _OUR_NAME.fullmatch(name) is not None)


def list_sources(src: Path, out: Path | None = None) -> Iterator[str]:
    """Relative POSIX paths of the files under SRC, sorted, skipping hidden names, manifests
    and the output folder when it lies inside SRC. Symlinked folders are not followed."""
    skip_dir = out.resolve() if out is not None else None
    for root, dirs, files in os.walk(src, followlinks=False):
        rootp = Path(root)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and (rootp / d).resolve() != skip_dir
        )
        for name in sorted(files):
            if name.startswith(".") or name == MANIFEST:
                continue
            p = rootp / name
            if p.is_file() or p.is_symlink():  # broken links get an `unreadable` row
                yield p.relative_to(src).as_posix()


@dataclass(frozen=True)
class Source:
    """One input file: where to read it, its manifest `file` key, and its game."""

    path: Path
    key: str  # relative to SRC when SRC is one folder, else the path as given
    game: str  # the folder it is in: a game's screenshots share a status bar


_GLOB = re.compile(r"[*?\[]")


def collect_sources(srcs: Sequence[str | Path], out: Path | None = None) -> list[Source]:
    """Every input file named by SRC arguments (folders, files, glob patterns), in order, each
    once. Files in the output folder are never inputs. Raises `NesganError` for an argument that
    names nothing."""
    out_r = out.resolve() if out is not None else None
    one_folder = len(srcs) == 1 and Path(srcs[0]).is_dir()
    found: dict[str, Source] = {}

    def add(path: Path, key: str) -> None:
        key = _printable(key)
        if key not in found:
            found[key] = Source(path, key, _printable(path.parent.as_posix()))

    def in_out(path: Path) -> bool:
        return out_r is not None and (path.resolve().parent == out_r or out_r in path.resolve().parents)

    for arg in srcs:
        p = Path(arg)
        if p.is_dir():
            if out_r is not None and p.resolve() == out_r:
                raise NesganError(f"--out must differ from SRC ({p}): crops would mix with the originals")
            for rel in list_sources(p, out):
                add(p / rel, rel if one_folder else (p / rel).as_posix())
        elif p.is_file() or p.is_symlink():
            if not in_out(p):
                add(p, p.as_posix())
        elif _GLOB.search(str(arg)):
            matches = [Path(m) for m in sorted(glob.glob(str(arg), recursive=True))]
            files = [m for m in matches if m.is_file() and not m.name.startswith(".")
                     and m.name != MANIFEST and not in_out(m)]
            if not files:
                raise NesganError(f"no files match {arg}; check the pattern (quote it so that "
                                  "nesgan, not the shell, expands it) or give the folder")
            for m in files:
                add(m, m.as_posix())
        else:
            raise NesganError(f"{arg} does not exist; give folders, files or glob patterns of "
                              "your screenshots")
    return list(found.values())


def _printable(rel: str) -> str:
    """A file name as the manifest records it: undecodable bytes (Linux names are bytes)
    become backslash escapes, so every row is valid UTF-8 JSON."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return os.fsencode(rel).decode("utf-8", "backslashreplace")


def _read_guarded(path: Path, max_bytes: int) -> tuple[bytes | None, CropResult | None]:
    try:
        size = path.stat().st_size
    except OSError as e:
        return None, CropResult("unreadable", f"cannot stat: {e.strerror or e}")
    if size > max_bytes:
        return None, CropResult("too_large", f"{size} bytes is over the {max_bytes}-byte cap")
    try:
        with path.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        return None, CropResult("unreadable", f"cannot read: {e.strerror or e}")
    if len(data) > max_bytes:
        return None, CropResult("too_large", f"over the {max_bytes}-byte cap")
    return data, None


def _start_over(out: Path) -> None:
    """--overwrite: remove the manifest, the config and the crops this stage named (those the
    manifest lists, and names of our pattern); nothing else."""
    if not out.is_dir():
        return
    listed = {str(r["path"]) for r in iter_jsonl(out / MANIFEST) if r.get("path")}
    for p in out.iterdir():
        if p.is_file() and (p.name in (MANIFEST, CONFIG_FILE) or p.name in listed
                            or _is_our_output(p.name)):
            p.unlink()


def _row_digest(row: dict) -> str | None:
    """The pixel digest of an `ok` row: recorded, or (older manifests) its 16-hex file name."""
    if row.get("crop_sha256"):
        return str(row["crop_sha256"])
    stem = os.path.splitext(str(row.get("path") or ""))[0]
    return stem if len(stem) == _OUTPUT_NAME_LEN else None


def _hud_finder(config: CropConfig, members: list[Source]) -> FindHud | None:
    """How to find the status bar in this game's frames: from up to `SAMPLE` of its shots,
    evenly spread (see hud.py), or each frame's glyphs alone when it has fewer than 3."""
    if config.hud == "keep":
        return None
    step = max(1, len(members) // SAMPLE)
    order = members[::step] + [m for i, m in enumerate(members) if i % step]
    frames: list[np.ndarray] = []
    for m in order:
        data, _ = _read_guarded(m.path, config.max_bytes)
        if data is not None:
            r = crop_bytes(data, config.max_pixels, decode_only=True)
            if r.ok and r.crop is not None:
                frames.append(r.crop)
        if len(frames) >= SAMPLE:
            break
    return hud_finder(frames, [detect_grid_phase(f)[1] for f in frames])


def _config_json(config: CropConfig) -> dict:
    def plain(v):
        if isinstance(v, Path):
            return str(v)
        if isinstance(v, tuple):
            return [str(x) for x in v]
        return v
    return {k: plain(v) for k, v in asdict(config).items()}


def crop_folder(config: CropConfig, sources: Mapping[str, str] | None = None,
                games: Mapping[str, str] | None = None) -> CropSummary:
    """Crop every file `config.src` names (a folder, or a tuple of folders, files and glob
    patterns) into `config.out`, one manifest row per file.

    `sources` maps a file's key (its path relative to SRC for one folder) to the label recorded
    as its `source` (the scraper passes URLs); other files are labelled by their key. `games`
    maps a key to its game (the scraper's game titles); other files' game is their folder.
    Files already in the manifest are skipped unless `config.overwrite`. Returns the counts over
    the whole manifest.
    """
    srcs = (config.src,) if isinstance(config.src, (str, Path)) else tuple(config.src)
    out = Path(config.out)
    labels = {Path(k).as_posix(): v for k, v in (sources or {}).items()}
    game_of = {Path(k).as_posix(): v for k, v in (games or {}).items()}
    inputs = [Source(s.path, s.key, game_of.get(s.key, s.game))
              for s in collect_sources(srcs, out)]
    if config.overwrite:
        _start_over(out)
    manifest = out / MANIFEST
    done_rows = list(iter_jsonl(manifest))
    done = {r.get("file", r.get("source")) for r in done_rows}
    first: dict[str, tuple[str, str | None]] = {}  # pixel digest -> (crop file, its source)
    taken: dict[str, str | None] = {}  # crop file name -> pixel digest
    for r in done_rows:
        if r.get("status") == "ok" and r.get("path"):
            d = _row_digest(r)
            first.setdefault(d or str(r["path"]), (str(r["path"]), r.get("source")))
            taken[str(r["path"])] = d
    counts: Counter[str] = Counter(str(r.get("status")) for r in done_rows)
    todo = [s for s in inputs if s.key not in done]
    summary = CropSummary(counts=dict(counts), out=out, skipped=len(inputs) - len(todo),
                          lossy=sum(_lossy(r) for r in done_rows),
                          hud=sum(bool(r.get("hud_rows")) for r in done_rows if r.get("status") == "ok"))
    if not todo:
        return summary
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG_FILE, _config_json(config))
    members: dict[str, list[Source]] = {}
    for s in inputs:
        members.setdefault(s.game, []).append(s)
    by_game: dict[str, list[Source]] = {}
    for s in todo:
        by_game.setdefault(s.game, []).append(s)
    with JsonlAppender(manifest) as rows:
        bar = tqdm(total=len(todo), desc="crop", unit="file", disable=True if len(todo) < 20 else None)
        for game, group in by_game.items():
            find_hud = _hud_finder(config, members[game])
            for src in group:
                row = _crop_one(src, labels.get(src.key, src.key), config, find_hud, first, taken, out)
                row["game"] = game
                rows.append(row)
                counts[row["status"]] += 1
                summary.lossy += _lossy(row)
                summary.hud += bool(row["status"] == "ok" and row.get("hud_rows"))
                bar.update(1)
        bar.close()
    summary.counts = dict(counts)
    summary.new = len(todo)
    return summary


def _crop_one(src: Source, label: str, config: CropConfig, find_hud: FindHud | None,
              first: dict[str, tuple[str, str | None]], taken: dict[str, str | None],
              out: Path) -> dict:
    """Crop one file and write its PNG (unless its pixels were cropped before): its row."""
    data, result = _read_guarded(src.path, config.max_bytes)
    digest = None
    if data is not None:
        digest = hashlib.sha256(data).hexdigest()
        result = crop_bytes(data, config.max_pixels, find_hud)
    assert result is not None
    row = result.row()
    row.update(source=label, file=src.key, sha256=digest, path=None, duplicate_of=None)
    if result.ok:
        assert result.crop is not None
        pixels = crop_digest(result.crop)
        row["crop_sha256"] = pixels
        if pixels in first:
            row["status"] = "duplicate"
            row["error"] = "same pixels as the crop of an earlier file"
            row["path"], row["duplicate_of"] = first[pixels]
        else:
            name = crop_name(result.crop, label)
            if taken.get(name, pixels) != pixels:  # 8 hex digits clash: use all 16
                name = f"{safe_stem(label)}_{pixels}.png"
            atomic_write_bytes(out / name, encode_png(result.crop), durable=False)
            row["path"] = name
            first[pixels] = (name, label)
            taken[name] = pixels
    return row


# ---------------------------------------------------------------------------------------------
# Reading crops back (the trainer and the near-copy index)


def load_screens(folder: Path) -> tuple[np.ndarray, list[str]]:
    """(N, 224, 224, 3) uint8 of the `ok` crops the manifest lists (every *.png when there is
    no manifest), and their file names. Palette, grey or opaque-RGBA PNGs convert exactly."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NesganError(
            f"{folder} is not a folder of screens; make one with `nesgan crop SRC --out {folder}` "
            "or `nesgan scrape`"
        )
    manifest = folder / MANIFEST
    if manifest.exists():
        names = list(dict.fromkeys(
            str(r["path"]) for r in iter_jsonl(manifest) if r.get("status") == "ok" and r.get("path")
        ))
        bad = [n for n in names if Path(n).name != n or n.startswith(".")]
        if bad:
            raise NesganError(f"{manifest} names files outside {folder} ({bad[0]!r}); recrop with --overwrite")
    else:
        names = sorted(p.name for p in folder.glob("*.png") if not p.name.startswith("."))
    if not names:
        what = f"no `ok` rows in {manifest}" if manifest.exists() else "no *.png files"
        raise NesganError(f"{folder} holds {what}; crop some screenshots with `nesgan crop SRC --out {folder}`")
    screens = np.empty((len(names), SIZE, SIZE, 3), dtype=np.uint8)
    for i, name in enumerate(tqdm(names, desc="load", unit="screen",
                                  disable=True if len(names) < 500 else None)):
        screens[i] = _load_one(folder / name)
    return screens, names


def _load_one(path: Path) -> np.ndarray:
    if not path.is_file():
        raise NesganError(f"{path} is listed in the manifest but missing; rerun `nesgan crop` with --overwrite")
    try:
        with Image.open(path) as img:
            if img.size != (SIZE, SIZE):
                raise NesganError(f"{path} is {img.size[0]}×{img.size[1]}, not {SIZE}×{SIZE}; "
                                  "crop it with `nesgan crop`")
            img.load()
            rgb, _status, reason = to_rgb_exact(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise NesganError(f"{path} is not a readable image ({e}); remove it or recrop") from None
    if rgb is None:
        raise NesganError(f"{path} is not 224×224 RGB: {reason}")
    return rgb
