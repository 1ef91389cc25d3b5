"""The tree is the architecture: import-linter's contracts (pyproject.toml) hold, and would fail."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(pipeline: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pipeline)}
    return subprocess.run([str(LINT), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                          capture_output=True, text=True, env=env, cwd=pipeline, timeout=300)


def test_every_import_contract_is_kept():
    res = _lint(ROOT / "pipeline")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout


def test_an_upward_import_and_torch_in_the_tile_stage_break_the_contracts(tmp_path):
    shutil.copytree(ROOT / "pipeline" / "nesgan", tmp_path / "nesgan",
                    ignore=shutil.ignore_patterns("__pycache__"))
    tile = tmp_path / "nesgan" / "tiles" / "tile.py"
    tile.write_text(tile.read_text() + "\nimport torch  # noqa\nfrom nesgan import cli  # noqa\n")
    res = _lint(tmp_path)
    assert res.returncode != 0
    assert "never import torch BROKEN" in res.stdout
    assert "errors BROKEN" in res.stdout, res.stdout  # the layers contract: tiles may not import cli
