"""OUT/raw: downloaded originals named by content, their manifest, and the checks they pass.

Durability, chosen so a crawl stays network-bound (an fsync costs more than a loopback fetch):
- an original is written to a temp file and renamed into place: a kill (even SIGKILL) leaves
  the old state or the whole file, never a part; the rename is not fsynced one by one;
- manifest rows are flushed as they are written (a killed process loses nothing) and fsynced at
  most every `sync_seconds` and on close (a power cut loses at most that window);
- on resume `load_manifest` checks each stored original still exists with its recorded size and
  forgets the rows whose file did not survive, so those URLs are fetched again.
"""

from __future__ import annotations

import io
import os
import queue
import re
import threading
import time
import warnings
from pathlib import Path

from nesgan.errors import NesganError
from nesgan.files import JsonlAppender, dumps_row, iter_jsonl, write_jsonl

_HASH_DIR = re.compile(r"^[0-9a-f]{2}$")
# (magic prefix, extension); WebP also needs "WEBP" at offset 8.
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"GIF87a", "gif"), (b"GIF89a", "gif"),
          (b"\xff\xd8\xff", "jpg"), (b"BM", "bmp"), (b"RIFF", "webp"))


class SyncedAppender(JsonlAppender):
    """A JSON-lines manifest flushed on every row and fsynced at most every `sync_seconds`."""

    def __init__(self, path: str | os.PathLike, sync_seconds: float = 1.0):
        super().__init__(path)
        self.sync_seconds = sync_seconds
        self._synced_at = time.monotonic()

    def append(self, row: dict) -> None:
        self._f.write(dumps_row(row) + "\n")
        self._f.flush()
        if time.monotonic() - self._synced_at >= self.sync_seconds:
            os.fsync(self._f.fileno())
            self._synced_at = time.monotonic()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
        super().close()


def relative_path(digest: str, ext: str) -> str:
    """Where an original lives under raw/: named by its content, never by its URL."""
    return f"{digest[:2]}/{digest}.{ext}"


def store(raw: Path, digest: str, ext: str, data: bytes) -> str:
    """Write `data` as raw/<sha[:2]>/<sha>.<ext> (temp file + rename); returns the relative path."""
    rel = relative_path(digest, ext)
    path = raw / rel
    if not path.parent.is_dir():
        path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return rel


class Writer:
    """Stores originals and appends their manifest rows on a background thread, in order, so the
    disk's latency overlaps the next download. A row is appended only once its file is in place;
    `close()` drains the queue (Ctrl-C included) and re-raises a failed write (e.g. disk full)."""

    def __init__(self, raw: Path, manifest: JsonlAppender, depth: int = 16):
        self.raw, self.manifest = raw, manifest
        self._queue: queue.Queue = queue.Queue(maxsize=depth)  # bounds memory: ≤ depth bodies
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="nesgan-raw-writer", daemon=True)
        self._thread.start()

    def put(self, row: dict, body: bytes | None = None, ext: str | None = None) -> None:
        """Queue a manifest row, and the bytes to store first when `body` is given."""
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put((row, body, ext), timeout=0.5)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            row, body, ext = item
            try:
                if body is not None:
                    store(self.raw, row["sha256"], ext, body)
                self.manifest.append(row)
            except BaseException as e:  # handed to the main thread by put() and close()
                self._error = e
                return

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error


def load_manifest(path: Path, raw: Path) -> list[dict]:
    """The manifest's rows, minus those whose stored original is missing or the wrong size
    (the manifest is rewritten without them, so each URL keeps one row)."""
    rows = list(iter_jsonl(path))
    kept = [r for r in rows if _survived(r, raw)]
    if len(kept) != len(rows):
        write_jsonl(path, kept)
    return kept


def _survived(row: dict, raw: Path) -> bool:
    if row.get("status") not in ("ok", "duplicate"):
        return True
    try:
        return (raw / row["path"]).stat().st_size == row["bytes"]
    except (OSError, KeyError, TypeError):
        return False


class Lock:
    """An exclusive lock on a file (flock): one scrape at a time writes a raw folder, so two runs
    can neither interleave rows nor double the request rate. The OS drops it if we are killed."""

    def __init__(self, path: Path):
        self.path = path
        self._f = None

    def __enter__(self) -> Lock:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): run unguarded
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a+")
        try:
            fcntl.flock(self._f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._f.close()
            self._f = None
            raise NesganError(f"another `nesgan scrape` is writing {self.path.parent.parent}; wait "
                              "for it to finish (or stop it) and run this again") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self._f is not None:
            self._f.close()  # closing releases the flock


def clear(raw: Path, names: tuple[str, ...]) -> None:
    """--overwrite: remove the named files and the hash folders' files, nothing else."""
    if not raw.is_dir():
        return
    for name in names:
        (raw / name).unlink(missing_ok=True)
    for sub in raw.iterdir():
        if sub.is_dir() and _HASH_DIR.match(sub.name):
            for f in sub.iterdir():
                if f.is_file():
                    f.unlink()
            if not any(sub.iterdir()):
                sub.rmdir()


def remove_temp_files(raw: Path) -> None:
    """Temp files of writes killed by SIGKILL (`.NAME.PID.tmp`) in raw/ and its hash folders."""
    for sub in raw.iterdir():
        if sub.is_dir() and _HASH_DIR.match(sub.name):
            for f in sub.glob(".*.tmp"):
                f.unlink(missing_ok=True)
    for f in raw.glob(".*.tmp"):
        f.unlink(missing_ok=True)


# -- what counts as an image --------------------------------------------------------------------


def sniff_image(body: bytes) -> str | None:
    """The file extension the magic bytes say, or None when they name no supported image."""
    for magic, ext in _MAGIC:
        if body.startswith(magic) and (ext != "webp" or body[8:12] == b"WEBP"):
            return ext
    return None


def check_image(body: bytes, max_pixels: int) -> dict:
    """Header dimensions first (a bomb is never decoded), then the whole file: a PNG's chunk
    CRCs (`verify`, no inflating), any other format fully decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(body))  # lazy: reads the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        return {"status": "too_large", "error": f"decompression bomb refused: {e}"}
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        return {"status": "not_image", "error": f"unreadable image header: {e}"}
    with im:
        width, height = im.size
        if width * height > max_pixels:
            return {"status": "too_large", "width": width, "height": height,
                    "error": f"{width}×{height} exceeds the cap of {max_pixels} pixels; not decoded"}
        try:
            if im.format == "PNG":
                im.verify()
            else:
                im.load()
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            return {"status": "corrupt", "width": width, "height": height,
                    "error": f"cannot decode: {e}"}
    return {"status": "ok", "width": width, "height": height}
