"""`nesgan crop`, the folder stage: every screenshot SRC names -> pixel-exact 224×224 crops in
OUT, one manifest row per file (`status`, `error`, where the crop went), the config beside them.

How one file becomes a crop, and every status it can get, is `frame.py`'s story; which files are
inputs is `sources.py`'s. Here: resume (files already in the manifest are skipped; `--overwrite`
starts over), the status bar found per game (from up to `hud.SAMPLE` of its shots), and names.

Crops are named `<source stem>_<8 hex digits of the SHA-256 of their pixels>.png` (the stem
sanitised to letters, digits, `.`, `_` and `-`), so a name says which screenshot it came from,
and identical crops dedupe by their pixels.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
from tqdm import tqdm

from nesgan.crop.frame import MAX_PIXELS, SIZE, STATUSES, CropResult, FindHud, crop_bytes
from nesgan.crop.hud import SAMPLE, hud_finder
from nesgan.crop.sources import Source, collect_sources
from nesgan.errors import NesganError
from nesgan.files import MANIFEST, JsonlAppender, atomic_write_bytes, iter_jsonl, write_json
from nesgan.grid import detect_grid_phase
from nesgan.images import encode_png

CONFIG_FILE = "crop_config.json"
_OUTPUT_NAME_LEN = 16  # hex digits of the SHA-256 naming crops before they kept their stem
_HASH_LEN = 8  # hex digits of the crop's SHA-256 after its stem: unique among a stem's crops
_STEM_LEN = 40  # characters of the source's stem kept in a crop's name
HUD_MODES = ("auto", "keep")


@dataclass(frozen=True)
class CropConfig:
    src: Path | tuple[str, ...]  # a folder, or folders, files and glob patterns
    out: Path
    overwrite: bool = False  # False: resume, skipping files already in the manifest
    max_pixels: int = MAX_PIXELS  # 16× a NES frame each way; more is a bomb, not a screenshot
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
# Names


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


def _is_our_output(name: str) -> bool:
    stem, ext = os.path.splitext(name)
    legacy = len(stem) == _OUTPUT_NAME_LEN and all(c in "0123456789abcdef" for c in stem)
    return ext == ".png" and (legacy or _OUR_NAME.fullmatch(name) is not None)


# ---------------------------------------------------------------------------------------------
# A folder


def _lossy(row: dict) -> bool:
    return row.get("status") == "ok" and str(row.get("format", "")).upper() in ("JPEG", "MPO")


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

