"""The input files of `nesgan crop`: folders walked, files and glob patterns, each file once,
keyed as its manifest row names it and grouped by game (the folder it is in)."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from nesgan.errors import NesganError
from nesgan.files import MANIFEST


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
