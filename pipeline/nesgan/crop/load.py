"""Reading finished crops back: the `ok` screens of a crop folder, for the trainer and the
near-copy index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from nesgan.crop.frame import SIZE, to_rgb_exact
from nesgan.errors import NesganError
from nesgan.files import MANIFEST, iter_jsonl
from nesgan.patterns import Reference


def screen_files(folder: Path) -> list[str]:
    """The file names of the `ok` crops the manifest of `folder` lists (every *.png when there is
    no manifest), checked to stay inside it."""
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
    return names


def load_screens(folder: Path) -> tuple[np.ndarray, list[str]]:
    """(N, 224, 224, 3) uint8 of the `ok` crops the manifest lists (every *.png when there is
    no manifest), and their file names. Palette, grey or opaque-RGBA PNGs convert exactly."""
    names = screen_files(folder)
    screens = np.empty((len(names), SIZE, SIZE, 3), dtype=np.uint8)
    for i, name in enumerate(tqdm(names, desc="load", unit="screen",
                                  disable=True if len(names) < 500 else None)):
        screens[i] = _load_one(Path(folder) / name)
    return screens, names


class PackedScreens:
    """The `ok` screens of one or more crop folders, read from disk only when indexed (a slice or
    an array of positions): each pixel's RGB packed into one int32, or with `palette` its NES
    colour index (the perceptually nearest, as `nesgan quantize` and `train` read screens). A
    Reference built from this holds no screen longer than one chunk."""

    def __init__(self, paths: list[Path], palette=None):
        self.paths = paths
        self.palette = palette

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index) -> np.ndarray:
        chosen = self.paths[index] if isinstance(index, slice) else [self.paths[int(i)] for i in np.atleast_1d(index)]
        rgb = np.stack([_load_one(p) for p in chosen]).astype(np.int32) if chosen else np.zeros((0, SIZE, SIZE, 3), np.int32)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        if self.palette is None:
            return packed
        from nesgan.colour.lut import load_lut

        return load_lut(self.palette)[packed]


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


def training_reference(train: Path | tuple[Path, ...], palette=None) -> Reference | None:
    """The window partitions (`nesgan.patterns.Reference`) of the screens of one training folder
    or several, read a chunk at a time (`PackedScreens`) in NES colours of `palette` (default:
    nesgan's), as `train` reads them and as generated screens are drawn; None where no folder
    holds screens.

    In NES colours, not in the captures' RGB: screenshots from emulators with other palettes give
    one NES colour several RGB values (the museum of seed 1: 92 RGB colours, 50 NES colours), and
    where two of them meet in one screen their border is a window G can never draw, because `train`
    showed it one colour there. Read as RGB, export-tiles' divergence for that museum's demo was
    0.126; in NES colours, as `train`'s own numbers read it, 0.101."""
    from nesgan.colour.palette import Palette

    folders = (train,) if isinstance(train, (str, Path)) else tuple(train)
    paths = [Path(f) / n for f in folders if Path(f).is_dir() for n in screen_files(Path(f))]
    return Reference(PackedScreens(paths, palette or Palette.builtin())) if paths else None
