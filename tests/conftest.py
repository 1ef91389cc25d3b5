"""Fixtures shared by several test modules."""

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from nesgan.colour import lut


@pytest.fixture(scope="module")
def isolated_lut_cache(tmp_path_factory):
    """A private $XDG_CACHE_HOME and an empty in-process LUT memo for one test module."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg")))
        lut._LUTS.clear()
        yield
    lut._LUTS.clear()


@pytest.fixture(scope="module")
def screens(tmp_path_factory) -> Path:
    """A folder of 6 NES-like 224×224 training screens (`gan.data.fake_screens`, seed 0)."""
    from nesgan.gan.data import write_fake_screens  # torch: only for the modules that train

    folder = tmp_path_factory.mktemp("screens")
    write_fake_screens(folder, 6, seed=0)
    return folder


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen, what: str,
                timeout: float = 120.0, every: float = 0.02) -> None:
    """Poll `ready()` while `proc` runs; fail if the process ends first or `timeout` s pass."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}\n{err}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} within {timeout:.0f} s")
        time.sleep(every)


@pytest.fixture
def wait_until() -> Callable[..., None]:
    """`wait_until(ready, proc, what)`: poll a subprocess's progress (a file appearing, rows
    landing) until `ready()` is true; fails when the process ends first or after 120 s."""
    return _wait_until


def pytest_collection_modifyitems(config, items):
    """Tests marked `tiled` use Tiled itself (tmxrasterizer, tiled --export-map) as the real
    client: skipped, saying how to install it, where Tiled is not installed."""
    if shutil.which("tmxrasterizer") and shutil.which("tiled"):
        return
    skip = pytest.mark.skip(reason="Tiled is not installed (`make tiled`, or `sudo apt-get install "
                                   "tiled`, provides tmxrasterizer)")
    for item in items:
        if "tiled" in item.keywords:
            item.add_marker(skip)
