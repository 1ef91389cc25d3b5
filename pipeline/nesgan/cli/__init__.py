"""The `nesgan` command line: a thin layer over the stage modules.

Each command parses its options, builds the stage's config, calls one function and prints its
summary. Stage modules are imported inside the command so `nesgan --help` stays instant (torch is
heavy). Errors the user can fix (`NesganError`) become one line on stderr and exit status 1.
The commands live by what they work on: `collect` (demo-site, scrape, crop, demo), `gan` (train,
generate), `export` (quantize, export-tiles, export-nes, level); this module holds the group.
"""

from __future__ import annotations

from pathlib import Path

import click

from nesgan import __version__
from nesgan.errors import NesganError


class _Group(click.Group):
    """Turns `NesganError` (and a path of the wrong kind) from any command into a one-line
    `Error: …` and exit 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NesganError as e:
            raise click.ClickException(str(e)) from None
        except (FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
            # A path given in the wrong place (a file where a folder goes, or the reverse) or one
            # we may not write: say which, in one line.
            what = {FileExistsError: "a file is in the way (a folder is needed there)",
                    IsADirectoryError: "is a folder (a file is needed there)",
                    NotADirectoryError: "a file is in the way (a folder is needed there)",
                    PermissionError: "permission denied"}[type(e)]
            where = e.filename if e.filename is not None else ""
            raise click.ClickException(f"{where}: {what}") from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nesgan")
def cli() -> None:
    """Turn NES screenshots into new, original 16×16 tiles for Tiled Map Editor.

    \b
    The pipeline, one command per stage:
      nesgan scrape        screenshots from a museum site -> data/raw, data/screens
      nesgan crop          your own screenshots -> pixel-exact 224×224 screens
      nesgan train         a GAN on data/screens -> runs/default
      nesgan generate      new screens from a trained run -> data/generated
      nesgan quantize      any images onto the NES palette
      nesgan export-tiles  a tile sheet, near-copy flags, Tiled tilesets and a map
      nesgan export-nes    a map painted in Tiled -> NES pattern table, nametables and a ROM
      nesgan level         a few painted screens -> a whole level, N screens wide
    `nesgan demo` runs all of it on the embedded museum, offline.
    """


P = click.Path(path_type=Path)

from nesgan.cli import collect, export, gan  # noqa: E402,F401  (each registers its commands on `cli`)


def main() -> None:
    cli(prog_name="nesgan")


if __name__ == "__main__":
    main()
