"""`nesgan demo`: every stage end to end on the embedded museum, exactly as a user would run them.

The demo serves the embedded museum on 127.0.0.1, then runs the real commands against it — the
same code paths as `nesgan scrape …` typed by hand — printing each command line first so the user
can repeat any step on their own data.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import click

from nesgan.museum.server import serve
from nesgan.museum.site import Museum


@dataclass(frozen=True)
class DemoConfig:
    workdir: Path = Path("demo")
    games: int = 12  # enough variety for the tiny GAN to learn several looks
    screens_per_game: int = 16  # 192 shots: seconds to crawl and crop
    seed: int = 0
    steps: int | None = None  # None: the tiny preset's own step count (the demo: 3.1–5.4 minutes on 2 cores)
    generate: int = 24  # screens: a 336×14-tile level, and drawings enough for the sheet to choose from
    # 128 16×16 tiles: on the demo 91-115 distinct 8×8 patterns (export-tiles lowers the budget where
    # a sheet would need more than one NES pattern table); rebuilt map's divergence 0.45 against 64's 0.52
    max_tiles: int = 128
    palettes: int = 4  # one backdrop + 4 sub-palettes: one NES palette set (export-nes needs it)
    grown_screens: int = 8  # the level grown from the map: 128 columns, well inside NROM's 494
    # the museum's robots.txt Crawl-delay, which the scraper obeys over --delay 0: 10 ms between
    # the crawl's ~200 requests on 127.0.0.1 (the museum's own default, 50 ms, slept 10 s of it)
    crawl_delay: float = 0.01
    quiet: bool = False


def _run(cli: click.Group, args: list[str], quiet: bool) -> None:
    if not quiet:
        click.secho("\n$ nesgan " + shlex.join(args), bold=True)
    cli.main(args=args, prog_name="nesgan", standalone_mode=False)


def run_demo(config: DemoConfig, cli: click.Group) -> None:
    """Serve the museum, then scrape → train → generate → export-tiles → export-nes → level →
    export-nes (the grown level) into `config.workdir`,
    each step through `cli` (nesgan's own command group, passed in so this module needs no
    import of the CLI)."""

    work = config.workdir
    data, run, generated = work / "data", work / "runs" / "demo", work / "data" / "generated"
    t0 = time.monotonic()
    museum = Museum(games=config.games, screens_per_game=config.screens_per_game, seed=config.seed,
                    crawl_delay=config.crawl_delay)
    with serve(museum) as site:
        if not config.quiet:
            click.echo(f"Serving the embedded museum at {site.url}")
        _run(cli, ["scrape", site.url, "--out", str(data), "--delay", "0"], config.quiet)
    train = ["train", "--data", str(data / "screens"), "--run", str(run), "--preset", "tiny",
             "--seed", str(config.seed)]
    if config.steps is not None:
        train += ["--steps", str(config.steps)]
    if (run / "checkpoints" / "last.pt").exists():
        train.append("--resume")  # a rerun continues (or finds the run finished) instead of refusing
    _run(cli, train, config.quiet)
    _run(cli, ["generate", "--run", str(run), "-n", str(config.generate), "--out", str(generated),
          "--seed", str(config.seed)], config.quiet)
    _run(cli, ["export-tiles", "--generated", str(generated), "--train", str(data / "screens"),
          "--tmx", str(work / "level.tmx"), "--tilesets", str(work / "tilesets"),
          "--tiles", str(work / "tiles"), "--max-tiles", str(config.max_tiles),
          "--palettes", str(config.palettes)], config.quiet)
    # the painted-level path: the same map as pattern table, nametables, palette and a ROM
    _run(cli, ["export-nes", str(work / "level.tmx"), "--out", str(work)], config.quiet)
    # a whole level grown from that map, and that level on the NES too
    _run(cli, ["level", str(work / "level.tmx"), "--out", str(work / "grown.tmx"),
          "--screens", str(config.grown_screens), "--seed", str(config.seed)],
         config.quiet)
    _run(cli, ["export-nes", str(work / "grown.tmx"), "--out", str(work / "grown-nes")],
         config.quiet)
    if not config.quiet:
        minutes = (time.monotonic() - t0) / 60
        click.secho(f"\nDone in {minutes:.1f} min. Open {work / 'level.tmx'} in Tiled Map Editor;",
                    fg="green")
        click.echo(f"paint with {work / 'tilesets' / 'nesgan.tsx'}; check the near-copy verdicts in "
                   f"{work / 'tiles'}; training samples are in {run / 'samples'}.")
        click.echo(f"Play the level: open {work / 'level.nes'} in any NES emulator (hold Right);")
        click.echo(f"the level grown from it is {work / 'grown.tmx'}, on the NES "
                   f"{work / 'grown-nes' / 'level.nes'}.")
