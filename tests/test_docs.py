"""Docs that check themselves: every command has help text and appears in the command reference,
which the README links to."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from nesgan import __version__
from nesgan.cli import cli
from nesgan.docs import REFERENCE, render

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(cli.commands)
CONTRACT = ["crop", "demo", "demo-site", "export-tiles", "generate", "quantize", "scrape", "train"]


def test_every_contract_command_exists():
    assert set(CONTRACT) <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_every_option_described(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    command = cli.commands[name]
    assert command.help and len(command.help.strip()) > 20
    for param in command.params:
        if param.param_type_name == "option" and param.name != "help":
            assert param.help, f"{name} option {param.opts} has no help text"


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_appears_in_the_command_reference(name):
    assert f"### `nesgan {name}`" in (ROOT / REFERENCE).read_text()


def test_command_reference_equals_the_help_text():
    reference = (ROOT / REFERENCE).read_text()
    assert render(reference) == reference, f"{REFERENCE} is stale: run `make docs`"


def test_readme_links_every_docs_page_and_stays_short():
    readme = (ROOT / "README.md").read_text()
    pages = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
    assert pages and all(f"]({page})" in readme for page in pages), pages
    assert len(readme.splitlines()) <= 300


def test_docs_pictures_and_links_resolve():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text()
        targets = re.findall(r"\]\(([^)#]+?)(?:#[^)]*)?\)", text) + re.findall(r'src="([^"]+)"', text)
        for target in targets:
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_version_flag():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_readme_opens_with_the_two_commands():
    head = (ROOT / "README.md").read_text()[:1500]
    assert "make demo" in head and "make test" in head


def test_makefile_help_lists_its_targets():
    makefile = (ROOT / "Makefile").read_text()
    for target in ["install", "demo", "test", "bench", "lint", "docs", "help"]:
        assert re.search(rf"^{target}:.*## ", makefile, re.M), target
