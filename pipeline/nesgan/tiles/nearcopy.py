"""Near-copies of the training data: the training-tile index, its cache, and the verdicts.

A generated tile is a **near-copy** when some training tile is the same drawing up to a palette
swap, a horizontal/vertical flip, and at most K differing pixels (`nesgan.tiles.search` defines the
distance and finds the nearest training tile with guaranteed recall within K).

**Choosing K (default 4).** Measured on the embedded museum (`make bench`, nearcopy_bench,
figure `k_choice`: the 518 non-trivial tiles of 10 games, each against its nearest tile of 10
other games): 100 are exactly shared (the museum's font and stock drawings: distance 0, the same
drawing, rightly flagged); of the other 418, 3 are at distance 2, 1 at 3, 1 at 4, 4 at 5, and
then 15, 13, 11 at 6, 7, 8 — genuinely different drawings begin at 5–6 pixels. Planted edits a
person still calls "the same drawing" (1–3 changed pixels, with a swap and a mirror on top) are
at 0–3. K = 4 is the knee: it flags every 1–3 px edit with one pixel to spare (for a pixel the
quantizer moves) and 5 of the 418 different drawings (1.2 %); K = 6 would flag 24 (6 %), K = 8
48 (11 %). Heavy edits (≥ 32 px) and recombined halves are far beyond any of these.

**Low-information tiles.** A tile whose colours other than its most common one cover ≤ K pixels is
within K of a flat tile — and all flat tiles are palette swaps of each other, so it would be a
"near-copy" of every sky in the training set. Such tiles get verdict `trivial`: not flagged (there
is no drawing to copy), but their nearest training tile and distance are still recorded. So do
tiles within K of a near-flat training tile: what they match has no drawing to copy either.

**Rows.** Each tiles.jsonl row's `nearest` is {screen, x, y, distance, flip, exact}: the
training tile (where it first occurs), the distance, the flip of the generated tile that matches
it (none, h, v, hv), and `exact`: true when it is certainly the nearest — always so within K,
where the search is complete. Otherwise it is the nearest among the candidates and the verdict
still holds: nothing within K exists — unless a near-flat group form had to be cut short at
`nearsearch.POSTING_CAP` training tiles (`complete` in the search result; `make bench` reports
the share: on the 10⁶-tile benchmark at K = 4, none).

**The index** holds the training screens' tiles, quantized with the same palette and cut on each
screen's grid phase (from data/screens/manifest.jsonl, else detected), exact-deduplicated with the
first place each occurs. It is cached in TRAIN/.nesgan-tile-index/ under a fingerprint of the
file names, sizes and modification times, the manifest and the palette; any change rebuilds it
(and says so on stderr).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nesgan.colour.palette import Palette
from nesgan.crop.grid import detect_grid_phase
from nesgan.errors import NesganError
from nesgan.files import MANIFEST, atomic_write_bytes, iter_jsonl
from nesgan.images import image_files
from nesgan.tiles.search import PIXELS, Found, TileSearch, majority_pixels
from nesgan.tiles.tile import FLIPS, TILE, dedupe, open_screen, slice_tiles

INDEX_DIR = ".nesgan-tile-index"
INDEX_VERSION = 1  # bump when the index layout or the slicing changes


@dataclass
class TileIndex:
    """Unique training tiles and where each was first seen."""

    tiles: np.ndarray  # (M, 16, 16) uint8 NES indices, exact-deduplicated
    screen: np.ndarray  # (M,) int32 index into `screens`
    xy: np.ndarray  # (M, 2) int32 pixel position (x, y) of the tile in that screen
    screens: list[str]  # training screen file names
    fingerprint: str
    _search: dict[int, TileSearch] = field(default_factory=dict, repr=False)

    def search(self, k: int) -> TileSearch:
        """Search structures for this K (built once per process)."""
        if k not in self._search:
            self._search[k] = TileSearch(self.tiles, k)
        return self._search[k]

    def source(self, i: int) -> dict:
        return {"screen": self.screens[int(self.screen[i])], "x": int(self.xy[i, 0]), "y": int(self.xy[i, 1])}


def _training_files(train: Path) -> list[Path]:
    if not train.exists():
        raise NesganError(f"training folder {train} does not exist; run `nesgan scrape` or "
                          "`nesgan crop` first, or pass --train")
    if not train.is_dir():
        raise NesganError(f"--train {train} is a file; give the folder of training screens")
    files = image_files(train)
    if not files:
        raise NesganError(f"no training screens in {train}; run `nesgan scrape` or `nesgan crop` first")
    return files


def fingerprint(train: Path, palette: Palette, files: list[Path] | None = None) -> str:
    """Hash of what the index is built from: file names, sizes, mtimes, manifest, palette."""
    h = hashlib.sha256(f"v{INDEX_VERSION}|{palette.fingerprint}".encode())
    manifest = train / MANIFEST
    for p in [*(files if files is not None else _training_files(train)), manifest]:
        try:
            st = p.stat()
        except FileNotFoundError:
            h.update(f"|{p.name}:missing".encode())
            continue
        h.update(f"|{p.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def _manifest_phases(train: Path) -> dict[str, tuple[int, int]]:
    phases = {}
    for row in iter_jsonl(train / MANIFEST):
        path, phase = row.get("path"), row.get("grid_phase")
        if isinstance(path, str) and isinstance(phase, list) and len(phase) == 2:
            try:
                phases[Path(path).name] = (int(phase[0]) % TILE, int(phase[1]) % TILE)
            except (TypeError, ValueError):
                continue
    return phases


def build_index(train: Path, palette: Palette) -> TileIndex:
    """Quantize and slice every training screen on its grid phase; exact-dedupe the tiles."""
    from tqdm import tqdm

    files = _training_files(train)
    fp = fingerprint(train, palette, files)
    phases = _manifest_phases(train)
    all_tiles, all_screen, all_xy = [], [], []
    for s, path in enumerate(tqdm(files, desc="index training tiles", unit="screen",
                                  disable=len(files) < 50, file=sys.stderr)):
        try:
            idx = open_screen(path, palette)
        except FileNotFoundError:
            raise NesganError(f"{path} vanished while indexing {train}; run again when nothing "
                              "is writing to the training folder") from None
        phase = phases.get(path.name)
        if phase is None:
            phase = detect_grid_phase(palette.to_rgb(idx))
        tiles, pos = slice_tiles(idx, phase)
        all_tiles.append(tiles)
        all_screen.append(np.full(len(tiles), s, np.int32))
        all_xy.append(pos.astype(np.int32))
    if fingerprint(train, palette) != fp:
        raise NesganError(f"{train} changed while nesgan was indexing it; run again when nothing "
                          "is writing to the training folder")
    tiles = np.concatenate(all_tiles)
    uniq, inverse, _ = dedupe(tiles)
    first = np.full(len(uniq), len(tiles), dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(len(tiles)))
    return TileIndex(uniq, np.concatenate(all_screen)[first], np.concatenate(all_xy)[first],
                     [p.name for p in files], fp)


def index_path(train: Path, palette: Palette) -> Path:
    return train / INDEX_DIR / f"tiles-{palette.fingerprint}.npz"


def save_index(index: TileIndex, path: Path) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, tiles=index.tiles, screen=index.screen, xy=index.xy,
                        screens=np.array(json.dumps(index.screens)),
                        fingerprint=np.array(index.fingerprint))
    atomic_write_bytes(path, buf.getvalue())


def load_index(path: Path) -> TileIndex | None:
    """The cached index, or None when missing or unreadable (then it is rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            tiles, screen, xy = z["tiles"], z["screen"], z["xy"]
            screens = json.loads(str(z["screens"]))
            fp = str(z["fingerprint"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
        return None
    if tiles.ndim != 3 or tiles.shape[1:] != (TILE, TILE) or len(screen) != len(tiles):
        return None
    return TileIndex(tiles.astype(np.uint8), screen.astype(np.int32), xy.astype(np.int32), screens, fp)


def load_or_build_index(train: Path, palette: Palette, *, verbose: bool = True) -> TileIndex:
    """The training-tile index, from the cache when the training data is unchanged."""
    fp = fingerprint(train, palette)
    path = index_path(train, palette)
    cached = load_index(path) if path.exists() else None
    if cached is not None and cached.fingerprint == fp:
        return cached
    if verbose:
        why = ("training screens changed since the tile index was built" if cached is not None
               else "tile index damaged" if path.exists() else "no tile index yet")
        print(f"nesgan: {why}; indexing {train}…", file=sys.stderr, flush=True)
    index = build_index(train, palette)
    try:
        save_index(index, path)
    except OSError as e:  # a read-only training folder only costs the next run a rebuild
        print(f"nesgan: could not cache the tile index at {path}: {e.strerror}", file=sys.stderr)
    return index


@dataclass
class Verdicts:
    verdict: list[str]  # per query tile: near_copy | trivial | original
    found: Found

    def nearest_row(self, i: int, index: TileIndex) -> dict:
        """The `nearest` field of a tiles.jsonl row."""
        f = self.found
        if f.train_id[i] < 0:
            return {"screen": None, "x": None, "y": None, "distance": None, "flip": None, "exact": False}
        return {**index.source(int(f.train_id[i])), "distance": int(f.distance[i]),
                "flip": FLIPS[int(f.flip[i])], "exact": bool(f.exact[i])}


def trivial_mask(tiles: np.ndarray, k: int) -> np.ndarray:
    """(N,) True for tiles within K pixels of a flat tile (nothing there to copy)."""
    return PIXELS - majority_pixels(tiles) <= k


def verdicts(index: TileIndex, tiles: np.ndarray, k: int) -> Verdicts:
    """Nearest training tile and verdict for each (N, 16, 16) generated tile.

    `trivial` also covers a tile within K of a training tile that is itself near-flat: that
    match is a flat tile with a few specks, not a drawing, so it is no evidence of copying
    (found on the demo: grey tiles with 5 specks "copying" blue tiles with 2 dots)."""
    trivial = trivial_mask(tiles, k)
    found = index.search(k).search(tiles, trivial)
    near = found.distance <= k
    if near.any():
        matched = found.train_id[near]
        trivial[np.flatnonzero(near)] |= trivial_mask(index.tiles[matched], k)
    verdict = ["trivial" if t else "near_copy" if d <= k else "original"
               for t, d in zip(trivial.tolist(), found.distance.tolist(), strict=True)]
    return Verdicts(verdict, found)
