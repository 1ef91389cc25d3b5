"""Near-copies of the training data: the training-tile index, its cache, and the verdicts.

A generated tile is a **near-copy** when some training tile is the same drawing up to a
recolouring (one-to-one or merging colours), a horizontal/vertical flip, and at most K differing
pixels (`nesgan.tiles.distance` defines the merge distance; `nesgan.tiles.search` finds the
nearest training tile with guaranteed recall within K).

**Choosing K (default 4).** Measured on the embedded museum (`make bench`, nearcopy_bench,
figure `k_choice`: the 518 non-trivial tiles of 10 games, each against its nearest tile of 10
other games, merge distance): 120 are exactly shared (the museum's font and stock drawings:
distance 0, the same drawing, rightly flagged); of the other 398, 3 are at distance 2, 1 at 3,
5 at 4, 5 at 5, and then 20, 11, 13 at 6, 7, 8 — genuinely different drawings begin at 5–6
pixels. Planted edits a person still calls "the same drawing" (1–3 changed pixels, with a swap
and a mirror on top) are at 0–3. K = 4 is the knee: it flags every 1–3 px edit with one pixel to
spare (for a pixel the quantizer moves) and 9 of the 398 different drawings (2.3 %); K = 6 would
flag 34 (8.5 %), K = 8 58 (15 %). Heavy edits (≥ 32 px) and recombined halves are far beyond
any of these.

**Which reading matched.** The verdict uses the merge distance (real games reuse art with two
colours merged: a night palette draws a hill's outline in the backdrop colour). Each row also
says which reading is the strictest one within K: `match` is `exact` (the same pixels, at most K
differing, perhaps mirrored), `recolour` (a one-to-one palette swap) or `merge` (some colours of
the training tile became one), so a person can tell a pasted tile from a re-paletted one.

**Under a sprite (opt-in, `--under-sprites`).** A tile that is a training tile with a sprite drawn
over part of it is far from it under every reading above (the sprite's pixels all differ). With
`occluded`, tiles left `original` are read again, twice: by `nesgan.tiles.occlusion` (a blob of
at most 48 pixels in colours the training tile cannot explain, from the tile's edge, is not
counted when the rest matches within K) and then by `nesgan.tiles.sprites` (a sprite that a
training screen shows at some pixel offset, over a training tile that explains the rest within
K; the row's `sprite_from` says where). Such a tile is a near-copy with `match` `occluded`. On
the museum (`make bench`, real_reuse) the two find 96 % of the sprite-covered cells at
precision 0.99; off by default because every tile left original is read again.

**Low-information tiles.** A tile whose colours other than its most common one cover ≤ K pixels is
within K of a flat tile — and all flat tiles are palette swaps of each other, so it would be a
"near-copy" of every sky in the training set. Such tiles get verdict `trivial`: not flagged (there
is no drawing to copy), but their nearest training tile and distance are still recorded. So do
tiles within K of a near-flat training tile: what they match has no drawing to copy either.

**Rows.** Each tiles.jsonl row's `nearest` is {screen, x, y, distance, flip, exact, match}: the
training tile (where it first occurs), the merge distance, the flip of the generated tile that
matches it (none, h, v, hv), `exact`: true when it is certainly the nearest — always so within
K, where the search is complete — and `match` (null when nothing is within K; `occluded` adds
`excused`, the pixels not counted, and its distance counts only the others). Otherwise it is
the nearest among the candidates and the verdict still holds: nothing within K exists — unless
the block search could not guarantee it (`complete` in the search result: a flat block or a
partition shared by more than `search.POSTING_CAP` training blocks; `make bench` reports the
share).

**The index** holds the training screens' tiles (of every `--train` folder), quantized with the
same palette and cut on each screen's grid phase (from the folder's manifest.jsonl, else
detected), exact-deduplicated with the first place each occurs, and every cell of every screen
(its tile id and place), from which the sprite reading rebuilds the screens. It is cached outside the user's
folders, in $XDG_CACHE_HOME/nesgan/tile-index/ (`nesgan.files.cache_dir`), one file per
training set (the folders and the palette), holding a fingerprint of the file names, sizes and
modification times and the manifests; any change rebuilds it (and says so on stderr).
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nesgan.colour.palette import Palette
from nesgan.errors import NesganError
from nesgan.files import MANIFEST, atomic_write_bytes, cache_dir, iter_jsonl
from nesgan.grid import detect_grid_phase
from nesgan.images import image_files
from nesgan.tiles.distance import PIXELS, majority_pixels, pair_readings, recolour_map
from nesgan.tiles.occlusion import OcclusionSearch
from nesgan.tiles.search import Found, TileSearch
from nesgan.tiles.sprites import SpriteSearch, screen_images
from nesgan.tiles.tile import FLIPS, TILE, dedupe, flips, open_screen, slice_tiles

INDEX_DIR = "tile-index"  # under nesgan.files.cache_dir()
INDEX_VERSION = 3  # bump when the index layout or the slicing changes (3: every cell kept)
MATCHES = ("exact", "recolour", "merge")  # readings, strictest first
OCCLUDED = "occluded"  # the opt-in reading of a training tile under a sprite (nesgan.tiles.occlusion)


@dataclass
class TileIndex:
    """Unique training tiles and where each was first seen."""

    tiles: np.ndarray  # (M, 16, 16) uint8 NES indices, exact-deduplicated
    screen: np.ndarray  # (M,) int32 index into `screens`
    xy: np.ndarray  # (M, 2) int32 pixel position (x, y) of the tile in that screen
    screens: list[str]  # training screen file names
    fingerprint: str
    # every cell of every training screen: its tile id, screen and (x, y) — the screens as drawn,
    # for the sprite reading (None: an index built from tiles alone, which has no screens)
    cells: np.ndarray | None = None  # (C,) int32 into `tiles`
    cell_screen: np.ndarray | None = None  # (C,) int32 into `screens`
    cell_xy: np.ndarray | None = None  # (C, 2) int32
    _search: dict[int, TileSearch] = field(default_factory=dict, repr=False)
    _occlusion: dict[int, OcclusionSearch] = field(default_factory=dict, repr=False)
    _sprites: dict[int, SpriteSearch] = field(default_factory=dict, repr=False)

    def search(self, k: int) -> TileSearch:
        """Search structures for this K (built once per process)."""
        if k not in self._search:
            self._search[k] = TileSearch(self.tiles, k)
        return self._search[k]

    def occlusion(self, k: int) -> OcclusionSearch:
        """The occluded reading's half/strip index for this K (built once per process)."""
        if k not in self._occlusion:
            self._occlusion[k] = OcclusionSearch(self.tiles, k)
        return self._occlusion[k]

    def sprites(self, k: int) -> SpriteSearch | None:
        """The sprite reading's block index of the training screens (None without cells)."""
        if self.cells is None or self.cell_screen is None or self.cell_xy is None:
            return None
        if k not in self._sprites:
            images, ids = screen_images(self.tiles, self.cells, self.cell_screen, self.cell_xy, len(self.screens))
            self._sprites[k] = SpriteSearch(self.tiles, images, ids, k, self.occlusion(k))
        return self._sprites[k]

    def source(self, i: int) -> dict:
        return {"screen": self.screens[int(self.screen[i])], "x": int(self.xy[i, 0]), "y": int(self.xy[i, 1])}


def _folders(train: Path | Sequence[Path]) -> list[Path]:
    """One folder or several, in the order given, each once."""
    folders = [Path(train)] if isinstance(train, (str, Path)) else [Path(t) for t in train]
    if not folders:
        raise NesganError("no training folder given; pass --train (once per folder)")
    seen: dict[Path, Path] = {}
    for f in folders:
        seen.setdefault(f.resolve(), f)
    return list(seen.values())


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


def _all_files(folders: list[Path]) -> list[tuple[Path, list[Path]]]:
    return [(f, _training_files(f)) for f in folders]


def fingerprint(train: Path | Sequence[Path], palette: Palette,
                files: list[tuple[Path, list[Path]]] | None = None) -> str:
    """Hash of what the index is built from: per folder its file names, sizes, mtimes and
    manifest; and the palette."""
    h = hashlib.sha256(f"v{INDEX_VERSION}|{palette.fingerprint}".encode())
    for folder, paths in files if files is not None else _all_files(_folders(train)):
        h.update(f"|{folder.resolve()}".encode())
        for p in [*paths, folder / MANIFEST]:
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


def build_index(train: Path | Sequence[Path], palette: Palette) -> TileIndex:
    """Quantize and slice every training screen on its grid phase; exact-dedupe the tiles.

    Screens are named by file name when there is one folder, else by folder/file name."""
    from tqdm import tqdm

    folders = _folders(train)
    files = _all_files(folders)
    fp = fingerprint(folders, palette, files)
    all_tiles, all_screen, all_xy, names = [], [], [], []
    total = sum(len(paths) for _, paths in files)
    bar = tqdm(total=total, desc="index training tiles", unit="screen", disable=total < 50, file=sys.stderr)
    for folder, paths in files:
        phases = _manifest_phases(folder)
        for path in paths:
            try:
                idx = open_screen(path, palette)
            except FileNotFoundError:
                raise NesganError(f"{path} vanished while indexing {folder}; run again when "
                                  "nothing is writing to the training folder") from None
            phase = phases.get(path.name)
            if phase is None:
                phase = detect_grid_phase(palette.to_rgb(idx))
            tiles, pos = slice_tiles(idx, phase)
            all_tiles.append(tiles)
            all_screen.append(np.full(len(tiles), len(names), np.int32))
            all_xy.append(pos.astype(np.int32))
            names.append(path.name if len(folders) == 1 else str(path))
            bar.update()
    bar.close()
    if fingerprint(folders, palette) != fp:
        where = folders[0] if len(folders) == 1 else ", ".join(map(str, folders))
        raise NesganError(f"{where} changed while nesgan was indexing it; run again when nothing "
                          "is writing to the training folder")
    tiles = np.concatenate(all_tiles)
    uniq, inverse, _ = dedupe(tiles)
    first = np.full(len(uniq), len(tiles), dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(len(tiles)))
    screen, xy = np.concatenate(all_screen), np.concatenate(all_xy)
    return TileIndex(uniq, screen[first], xy[first], names, fp,
                     cells=inverse.astype(np.int32), cell_screen=screen, cell_xy=xy)


def index_path(train: Path | Sequence[Path], palette: Palette) -> Path:
    """The cache file of this training set: named by a hash of its folders (resolved) and the
    palette, under the cache directory, never inside the user's folders."""
    key = "|".join([f"v{INDEX_VERSION}", palette.fingerprint, *(str(f.resolve()) for f in _folders(train))])
    return cache_dir() / INDEX_DIR / f"tiles-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npz"


def save_index(index: TileIndex, path: Path) -> None:
    buf = io.BytesIO()
    empty = np.zeros(0, np.int32)
    np.savez_compressed(buf, tiles=index.tiles, screen=index.screen, xy=index.xy,
                        screens=np.array(json.dumps(index.screens)),
                        fingerprint=np.array(index.fingerprint),
                        cells=index.cells if index.cells is not None else empty,
                        cell_screen=index.cell_screen if index.cell_screen is not None else empty,
                        cell_xy=index.cell_xy if index.cell_xy is not None else empty.reshape(0, 2))
    atomic_write_bytes(path, buf.getvalue())


def load_index(path: Path) -> TileIndex | None:
    """The cached index, or None when missing or unreadable (then it is rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            tiles, screen, xy = z["tiles"], z["screen"], z["xy"]
            cells, cell_screen, cell_xy = z["cells"], z["cell_screen"], z["cell_xy"]
            screens = json.loads(str(z["screens"]))
            fp = str(z["fingerprint"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError):
        return None
    if tiles.ndim != 3 or tiles.shape[1:] != (TILE, TILE) or len(screen) != len(tiles):
        return None
    if (len(cells) != len(cell_screen) or cell_xy.shape != (len(cells), 2)
            or (len(cells) and (cells.min() < 0 or cells.max() >= len(tiles)
                                or cell_screen.min() < 0 or cell_screen.max() >= len(screens)))):
        return None
    return TileIndex(tiles.astype(np.uint8), screen.astype(np.int32), xy.astype(np.int32), screens, fp,
                     cells=cells.astype(np.int32), cell_screen=cell_screen.astype(np.int32),
                     cell_xy=cell_xy.astype(np.int32))


def load_or_build_index(train: Path | Sequence[Path], palette: Palette, *, verbose: bool = True) -> TileIndex:
    """The training-tile index of one folder or several, from the cache when unchanged."""
    folders = _folders(train)
    fp = fingerprint(folders, palette)
    path = index_path(folders, palette)
    cached = load_index(path) if path.exists() else None
    if cached is not None and cached.fingerprint == fp:
        return cached
    if verbose:
        why = ("training screens changed since the tile index was built" if cached is not None
               else "tile index damaged" if path.exists() else "no tile index yet")
        print(f"nesgan: {why}; indexing {', '.join(map(str, folders))}…", file=sys.stderr, flush=True)
    index = build_index(folders, palette)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_index(index, path)
    except OSError as e:  # an unwritable cache only costs the next run a rebuild
        print(f"nesgan: could not cache the tile index at {path}: {e.strerror}", file=sys.stderr)
    return index


@dataclass
class Verdicts:
    verdict: list[str]  # per query tile: near_copy | trivial | original
    found: Found
    match: list[str | None] = field(default_factory=list)  # strictest reading within K (MATCHES)
    shown: np.ndarray | None = None  # (N, 16, 16) each nearest training tile as it matched
    excused: np.ndarray | None = None  # (N, 16, 16) bool: pixels the occluded reading did not count
    sprite_from: list[dict | None] = field(default_factory=list)  # where training showed the sprite

    def nearest_row(self, i: int, index: TileIndex) -> dict:
        """The `nearest` field of a tiles.jsonl row."""
        f = self.found
        if f.train_id[i] < 0:
            return {"screen": None, "x": None, "y": None, "distance": None, "flip": None,
                    "exact": False, "match": None}
        row = {**index.source(int(f.train_id[i])), "distance": int(f.distance[i]),
               "flip": FLIPS[int(f.flip[i])], "exact": bool(f.exact[i]),
               "match": self.match[i] if self.match else None}
        if self.match and self.match[i] == OCCLUDED and self.excused is not None:
            row["excused"] = int(self.excused[i].sum())  # pixels under the sprite, not counted
            if self.sprite_from and self.sprite_from[i] is not None:
                row["sprite_from"] = self.sprite_from[i]  # the window of a training screen showing it
        return row


def copy_share(tiles: np.ndarray, verdict: Sequence[str]) -> float:
    """The share of (N, 16, 16) tiles of two or more colours whose verdict is `near_copy`: the
    near-copy share export-tiles reports and issue 21 bounds (0 for a sheet of fills)."""
    flat = np.asarray(tiles).reshape(len(tiles), -1)
    drawn = (flat != flat[:, :1]).any(1)
    near = np.array([v == "near_copy" for v in verdict], bool)
    return float(near[drawn].mean()) if drawn.any() else 0.0


def _screen_xy(index: TileIndex, w) -> dict:
    """A sprite window's top-left pixel in its training screen (the image is the screen's grid
    area, which starts at the screen's first cell)."""
    assert index.cell_screen is not None and index.cell_xy is not None
    origin = index.cell_xy[index.cell_screen == w.screen].min(0)
    return {"x": int(origin[0] + w.x), "y": int(origin[1] + w.y)}


def trivial_mask(tiles: np.ndarray, k: int) -> np.ndarray:
    """(N,) True for tiles within K pixels of a flat tile (nothing there to copy)."""
    return PIXELS - majority_pixels(tiles) <= k


def as_matched(queries: np.ndarray, train: np.ndarray, flip: np.ndarray,
               excused: np.ndarray | None = None) -> np.ndarray:
    """(N, 16, 16) each training tile mirrored the way its query matches it and recoloured by the
    best many-to-one map onto the query's colours: beside the query, a merge is plain to see.
    With `excused` (N, 16, 16), the map is chosen from the other pixels (a sprite's colours do
    not recolour the tile under it)."""
    out = np.empty_like(np.asarray(train, np.uint8))
    for i, (q, t, f) in enumerate(zip(queries, train, flip, strict=True)):
        t = flips(t[None])[int(f), 0]  # flips are their own inverses
        seen = ~excused[i] if excused is not None and excused[i].any() else np.ones(t.shape, bool)
        out[i] = recolour_map(q[seen], t[seen])[t]
    return out


def verdicts(index: TileIndex, tiles: np.ndarray, k: int, occluded: bool = False) -> Verdicts:
    """Nearest training tile, verdict and strictest matching reading for each (N, 16, 16)
    generated tile.

    `trivial` also covers a tile within K of a training tile that is itself near-flat: that
    match is a flat tile with a few specks, not a drawing, so it is no evidence of copying
    (found on the demo: grey tiles with 5 specks "copying" blue tiles with 2 dots).

    With `occluded`, a tile left `original` that is a training tile with a sprite drawn over
    part of it (`nesgan.tiles.occlusion`) is a near-copy too: its nearest becomes that training
    tile, its distance the differing pixels outside the sprite, its match `occluded`, and
    `excused` marks the pixels not counted."""
    trivial = trivial_mask(tiles, k)
    found = index.search(k).search(tiles, trivial)
    near = found.distance <= k
    if near.any():
        matched = found.train_id[near]
        trivial[np.flatnonzero(near)] |= trivial_mask(index.tiles[matched], k)
    excused = None
    hidden = np.zeros(len(tiles), bool)
    sprite_from: list[dict | None] = [None] * len(tiles)
    if occluded and len(index.tiles):
        excused = np.zeros(np.shape(tiles), bool)
        ask = np.flatnonzero(~near & ~trivial)
        readings = [index.occlusion(k).search(tiles[ask])]
        sprites = index.sprites(k)
        if sprites is not None:  # what the tile reading left: a training sprite over a training tile
            rest = ask[~readings[0].matches]
            found_sprites, windows = sprites.search(tiles[rest])
            readings.append(found_sprites)
            for i, w in zip(rest.tolist(), windows, strict=True):
                if w is not None:
                    sprite_from[i] = {"screen": index.screens[w.screen], **_screen_xy(index, w)}
            asked = [ask, rest]
        else:
            asked = [ask]
        for where, occ in zip(asked, readings, strict=True):
            hit = where[occ.matches]
            hidden[hit] = True
            found.train_id[hit], found.distance[hit], found.flip[hit] = (
                occ.train_id[occ.matches], occ.distance[occ.matches], occ.flip[occ.matches])
            found.exact[hit] = False  # the nearest under the plain readings is farther than K
            excused[hit] = occ.excused[occ.matches]
    verdict = ["trivial" if t else "near_copy" if d <= k else "original"
               for t, d in zip(trivial.tolist(), found.distance.tolist(), strict=True)]
    match: list[str | None] = [None] * len(tiles)
    shown = None
    if found.train_id.size and found.train_id.min() >= 0:
        nearest = index.tiles[found.train_id]
        readings = pair_readings(tiles[near], nearest[near])
        for j, i in enumerate(np.flatnonzero(near).tolist()):
            match[i] = next(r for r in MATCHES if readings[r][j] <= k)
        for i in np.flatnonzero(hidden).tolist():
            match[i] = OCCLUDED
        shown = as_matched(tiles, nearest, found.flip, excused)
    return Verdicts(verdict, found, match, shown, excused, sprite_from)
