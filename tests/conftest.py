"""Fixtures shared by several test modules."""

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
