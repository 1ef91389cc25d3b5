"""The tree is the architecture: import-linter's contracts (pyproject.toml) hold, and would fail."""

import ast
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


def private_imports(root: Path) -> list[str]:
    """`file:line name` for every import, anywhere under root/nesgan, of a private (`_name`)
    module or name from another package of nesgan (nesgan.X.y is in package X; a top-level
    module such as nesgan.files is a package of its own)."""
    found = []
    for path in sorted((root / "nesgan").rglob("*.py")):
        rel = path.relative_to(root)
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        here = ".".join(parts)
        package = parts[1] if len(parts) > 1 else ""
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = parts if is_package else parts[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                targets = [(module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [(a.name, "") for a in node.names]
            else:
                continue
            for module, name in targets:
                dotted = module.split(".")
                if dotted[0] != "nesgan":
                    continue
                # `from nesgan.tiles import occlusion` names a module of package tiles
                other = dotted[1] if len(dotted) > 1 else name
                private = [p for p in [*dotted[1:], name] if p.startswith("_") and not p.startswith("__")]
                if private and other != package:
                    what = ".".join(dotted) + (f" import {name}" if name else "")
                    found.append(f"{rel}:{node.lineno} ({here}) imports {what}")
    return found


def test_no_module_imports_a_private_name_from_another_package():
    offenders = private_imports(ROOT / "pipeline")
    assert offenders == [], "private names imported across packages (make them public or move them):\n" + \
        "\n".join(offenders)


def test_a_private_import_across_packages_is_named_and_one_inside_a_package_is_not(tmp_path):
    shutil.copytree(ROOT / "pipeline" / "nesgan", tmp_path / "nesgan",
                    ignore=shutil.ignore_patterns("__pycache__"))
    build = tmp_path / "nesgan" / "tiles" / "build.py"
    build.write_text(build.read_text() + "\nfrom nesgan.tiles.occlusion import _greedy_map  # noqa\n"
                     "\ndef f():\n    from nesgan.colour.lut import _LUTS  # noqa\n"
                     "    import nesgan.crop._hidden  # noqa\n")
    offenders = [o for o in private_imports(tmp_path) if o.startswith("nesgan/tiles/build.py")]
    assert len(offenders) == 2, offenders
    assert "nesgan.colour.lut import _LUTS" in offenders[0] and "nesgan.crop._hidden" in offenders[1]
