"""Atomic writes, JSON-lines manifests and the cache folder shared by every stage.

Each stage writes its outputs through `atomic_write_*` (temporary file in the same folder, then
rename) so a kill never leaves half a file, and records one manifest row per input item.

Durability: a rename is atomic against a killed process (SIGKILL, Ctrl-C, OOM) without fsync. An
fsync also survives a power cut but costs 4–20 ms here, more than a loopback fetch or a crop; so
files the user cannot regenerate (maps, tilesets) are fsynced (`durable=True`, the default) and
bulk derived outputs (crops, manifest rows) pass `durable=False`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

MANIFEST = "manifest.jsonl"  # every stage's per-item rows, written last


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/nesgan, else ~/.cache/nesgan: derived files worth keeping between runs
    (the colour lookup table, the training-tile index)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nesgan"


def link_or_copy(source: Path, target: Path) -> None:
    """Give `source` a second name, `target`, atomically: a hard link where the filesystem allows
    (no second write), else a copy; a reader never sees half a file at `target`."""
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], *,
                 durable: bool = True, also: str | os.PathLike | None = None) -> None:
    """Write `path` through `write(file)` so readers see the old file or the whole new one,
    never a part. `durable` also fsyncs the data before the rename, so it survives a power cut.
    `also` gets the same bytes, atomically too (a hard link where the filesystem allows, so a
    second name costs no second write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        if also is not None:
            link_or_copy(Path(tmp), Path(also))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` atomically (`atomic_write`)."""
    atomic_write(path, lambda f: f.write(data), durable=durable)


def atomic_write_text(path: str | os.PathLike, text: str, *, durable: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable)


def dumps_row(row: dict[str, Any]) -> str:
    """One manifest line: sorted keys so reruns diff cleanly."""
    return json.dumps(row, sort_keys=True, ensure_ascii=False)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a torn last line (killed mid-append) is ignored."""
    return list(iter_jsonl(path))


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn final append after SIGKILL
            if isinstance(row, dict):
                yield row


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(dumps_row(r) + "\n" for r in rows))


class JsonlAppender:
    """Append-only manifest for long stages: each row is flushed as it is written, so a killed
    process loses at most the row being written (which `iter_jsonl` then skips). `durable` also
    fsyncs every row (survives a power cut; costs milliseconds per row)."""

    def __init__(self, path: str | os.PathLike, *, durable: bool = False):
        self.path = Path(path)
        self.durable = durable
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Repair a torn last line so the next row starts on a line of its own.
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
        self._f = self.path.open("a", encoding="utf-8")

    def append(self, row: dict[str, Any]) -> None:
        self._f.write(dumps_row(row) + "\n")
        self._f.flush()
        if self.durable:
            os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
