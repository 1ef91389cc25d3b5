"""Commands that collect screens: demo-site, scrape, crop, and the demo that runs everything."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nesgan.cli import P, cli
from nesgan.errors import NesganError
from nesgan.gan.config import PRESETS
from nesgan.scrape import VGMUSEUM_NES


@cli.command("demo-site")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")
@click.option("--games", default=8, show_default=True, type=click.IntRange(1, 500),
              help="How many games the museum holds.")
@click.option("--screens-per-game", default=12, show_default=True, type=click.IntRange(1, 200),
              help="Screenshots on each game's page.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Same seed, same museum, byte for byte.")
@click.option("--scroll-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of screenshots caught mid-scroll (level shifted, HUD fixed).")
@click.option("-v", "--verbose", is_flag=True, help="Log every request to stderr.")
def demo_site_cmd(host: str, port: int, games: int, screens_per_game: int, seed: int,
                  scroll_rate: float, verbose: bool) -> None:
    """Serve the embedded NES screenshot museum over HTTP.

    The first line on stdout is the index URL, e.g. to feed `nesgan scrape`.
    Runs until Ctrl-C or SIGTERM, then exits 0.
    """
    from nesgan.museum.server import serve_until_signalled
    from nesgan.museum.site import Museum

    def announce(server) -> None:
        click.echo(server.url)
        sys.stdout.flush()  # the first line is all a caller waits for
        click.echo(f"serving {games} games × {screens_per_game} screens (seed {seed}); "
                   "Ctrl-C or SIGTERM stops", err=True)

    serve_until_signalled(Museum(games, screens_per_game, seed, scroll_rate=scroll_rate),
                          host, port, verbose=verbose, on_start=announce)


@cli.command("scrape")
@click.argument("url", default=VGMUSEUM_NES, required=False)
@click.option("--out", default="data", show_default=True, type=P,
              help="Writes OUT/raw (originals + manifest.jsonl) and OUT/screens (224×224 crops).")
@click.option("--delay", default=1.0, show_default=True, type=click.FloatRange(0),
              help="Minimum seconds between requests (robots.txt Crawl-delay can raise it).")
@click.option("--max-images", default=None, type=click.IntRange(1), help="Stop after this many image URLs.")
@click.option("--max-pages", default=None, type=click.IntRange(1), help="Stop after this many HTML pages.")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(0.1),
              help="Seconds to wait for each response.")
@click.option("--retries", default=4, show_default=True, type=click.IntRange(0, 20),
              help="Retries on 429/5xx/connection errors, with exponential backoff.")
@click.option("--user-agent", default=None, help="User-Agent header (default names nesgan and its home page).")
@click.option("--hud", default="auto", show_default=True, type=click.Choice(["auto", "keep"]),
              help="Status bars when cropping: auto finds each game's and crops around it "
                   "(see `nesgan crop --help`); keep keeps them.")
@click.option("--overwrite", is_flag=True, help="Start over instead of resuming.")
def scrape_cmd(url, out, delay, max_images, max_pages, timeout, retries, user_agent, hud,
               overwrite) -> None:
    """Download NES screenshots from a museum site, politely, then crop them.

    URL defaults to The Video Game Museum's NES index. Honours robots.txt, resumes by default,
    and writes one manifest row per image URL saying what became of it.
    """
    from nesgan.scrape.crawl import ScrapeConfig, scrape

    config = ScrapeConfig(url=url, out=out, delay=delay, max_images=max_images, max_pages=max_pages,
                          timeout=timeout, retries=retries, user_agent=user_agent,
                          hud=hud, overwrite=overwrite)
    click.echo(scrape(config).summary())


@cli.command("crop")
@click.argument("src", nargs=-1, required=True)
@click.option("--out", default="data/screens", show_default=True, type=P,
              help="Folder for the 224×224 PNGs and manifest.jsonl.")
@click.option("--hud", default="auto", show_default=True, type=click.Choice(["auto", "keep"]),
              help="auto: find each game's status bar (score, time, lives: still across the "
                   "game's shots, or text glyphs) and crop around it, wiping the bar rows a "
                   "224-row window cannot avoid to the bar's paper colour; keep: crop as if "
                   "there were none.")
@click.option("--overwrite", is_flag=True,
              help="Start over (drop the manifest and earlier crops) instead of resuming.")
def crop_cmd(src: tuple[str, ...], out: Path, hud: str, overwrite: bool) -> None:
    """Pixel-exact 224×224 crops of screenshots: SRC is one or more folders, files or glob
    patterns (quote a pattern to let nesgan expand it, e.g. 'shots/world1-*.png').

    Never resamples: integer-scaled captures are reduced only when exact, and each crop keeps
    the NES 16×16 attribute grid. The screenshots in one folder count as one game (they share a
    status bar). A crop is named after its screenshot plus a short hash of its pixels
    (world1-2_3fa9c2d1.png). Files that cannot be cropped get a manifest row saying why.
    Resumes by default: files already in OUT/manifest.jsonl are skipped.
    """
    from nesgan.crop.screens import MANIFEST, CropConfig, crop_folder

    srcs = tuple(src)  # one folder or many, files, patterns: crop_folder tells them apart
    summary = crop_folder(CropConfig(src=srcs, out=out, hud=hud, overwrite=overwrite))
    where = " ".join(srcs)
    if summary.total == 0:
        raise NesganError(f"no files in {where}: put your PNG or GIF screenshots there")
    click.echo(summary.format())
    if not summary.counts.get("ok"):
        raise NesganError(
            f"none of the {summary.total} files in {where} gave a 224×224 crop; "
            f"{out / MANIFEST} says why for each"
        )


@cli.command("demo")
@click.option("--workdir", default="demo", show_default=True, type=P, help="Folder for everything the demo writes.")
@click.option("--steps", default=None, type=click.IntRange(1),
              help=f"Training steps (default: the tiny preset's {PRESETS['tiny']['steps']}; training is "
                   "most of the demo's time).")
@click.option("--games", default=12, show_default=True, type=click.IntRange(1, 500),
              help="Games in the embedded museum.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the museum and training.")
def demo_cmd(workdir: Path, steps: int | None, games: int, seed: int) -> None:
    """Run every stage end to end on the embedded museum, offline.

    Serves the museum on 127.0.0.1, then runs scrape, train (tiny preset), generate,
    export-tiles --tmx (a 128-tile NES-legal sheet) and export-nes (WORKDIR/level.nes), then
    grows an 8-screen level from that map with `level` (WORKDIR/grown.tmx) and runs export-nes
    on it (WORKDIR/grown-nes/level.nes), printing each command so you can repeat it on your own
    data.
    """
    from nesgan.demo import DemoConfig, run_demo

    run_demo(DemoConfig(workdir=workdir, steps=steps, games=games, seed=seed), cli)
