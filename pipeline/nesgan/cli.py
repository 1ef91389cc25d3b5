"""The `nesgan` command line: a thin layer over the stage modules.

Each command parses its options, builds the stage's config, calls one function and prints its
summary. Stage modules are imported inside the command so `nesgan --help` stays instant (torch is
heavy). Errors the user can fix (`NesganError`) become one line on stderr and exit status 1.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from nesgan import __version__
from nesgan.errors import NesganError
from nesgan.gan.config import ARCH_NAMES, AUGMENT_NAMES, PRESETS

VGMUSEUM_NES = "https://www.vgmuseum.com/nes.htm"


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
    `nesgan demo` runs all of it on the embedded museum, offline.
    """


P = click.Path(path_type=Path)


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
    import signal
    import threading

    from nesgan.museum.site import Museum, serve

    stop = threading.Event()  # set by SIGINT/SIGTERM, even one that lands while we start
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        museum = Museum(games, screens_per_game, seed, scroll_rate=scroll_rate)
        with serve(museum, host, port, verbose=verbose) as server:
            click.echo(server.url)
            sys.stdout.flush()  # the first line is all a caller waits for
            click.echo(f"serving {games} games × {screens_per_game} screens (seed {seed}); "
                       "Ctrl-C or SIGTERM stops", err=True)
            while not stop.wait(0.2):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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

    srcs = tuple(src)
    one = Path(srcs[0]) if len(srcs) == 1 and Path(srcs[0]).is_dir() else None
    summary = crop_folder(CropConfig(src=one if one is not None else srcs, out=out, hud=hud,
                                     overwrite=overwrite))
    where = " ".join(srcs)
    if summary.total == 0:
        raise NesganError(f"no files in {where}: put your PNG or GIF screenshots there")
    click.echo(summary.format())
    if not summary.counts.get("ok"):
        raise NesganError(
            f"none of the {summary.total} files in {where} gave a 224×224 crop; "
            f"{out / MANIFEST} says why for each"
        )


THREADS_HELP = ("CPU threads for torch (default: the cores this process may use, less those other "
                "processes keep busy; the choice is printed).")


def _use_threads(requested: int | None, processes: int = 1) -> str:
    """Set torch's thread count (gan/threads.py); returns the choice in words, also shown at
    once on an interactive terminal (the command's last line repeats it, so an error stays
    one line)."""
    from nesgan.gan.threads import apply_threads, choose_threads

    choice = choose_threads(requested, processes=processes)
    apply_threads(choice)
    if int(os.environ.get("RANK", "0")) == 0 and sys.stderr.isatty():
        click.echo(choice.describe(), err=True)
    return choice.describe()


def _preset_help(what: str, keys: tuple[str, ...], **notes: str) -> str:
    """What each preset sets for `keys`, read from PRESETS so --help cannot drift from it."""
    parts = []
    for name, values in PRESETS.items():
        text = f"{name}: " + ", ".join(str(values[k]) for k in keys)
        parts.append(text + (f" ({notes[name]})" if name in notes else ""))
    return (f"{what} per preset — " if what else "(") + "; ".join(parts) + ("" if what else ")")


@cli.command("train")
@click.option("--data", default="data/screens", show_default=True, type=P, help="Folder of 224×224 screens.")
@click.option("--run", "--run-dir", "run", default="runs/default", show_default=True, type=P,
              help="Run folder: config, checkpoints, samples, metrics.")
@click.option("--preset", default="tiny", show_default=True, type=click.Choice(list(PRESETS)),
              help=_preset_help("steps, batch, width", ("steps", "batch_size", "width"),
                                tiny="the demo: minutes on a CPU", small="a longer CPU run: about 75 minutes on 2 cores",
                                full="the paper's widths, for a GPU"))
@click.option("--arch", default=None, type=click.Choice(ARCH_NAMES),
              help=f"Generator (default {ARCH_NAMES[0]}): patterns = draws with a pattern table "
                   "learned from the training screens before training (256 8×8 patterns, as the PPU "
                   "does): per screen a backdrop and 4 sub-palettes, per 16×16 cell one sub-palette, "
                   "per 8×8 quarter one pattern — every screen exactly a tile map, drawings rather "
                   "than speckle; nes = the same palette picks, but one of 4 colours per pixel, so "
                   "every screen is NES-legal but drawn pixel by pixel; upsample = RGB from "
                   "nearest-neighbour resize + convolution at each doubling (snapped to NES colours "
                   "afterwards: speckle where it falls between two); dcgan = the paper's transposed "
                   "convolutions (a checkerboard texture over every screen). Recorded in the run; "
                   "kept by --resume.")
@click.option("--augment", default=None, type=click.Choice(AUGMENT_NAMES),
              help="What D's inputs, real and generated alike, go through: shift-cut = a random "
                   "shift of up to 28 px and a 112-px square blacked out (Zhao et al., 2020), so D "
                   "cannot learn a few hundred screens by heart; none = as they are. Recorded in "
                   "the run; kept by --resume.")
@click.option("--steps", default=None, type=click.IntRange(1),
              help="Total training steps (overrides the preset); with --resume, the total to reach.")
@click.option("--batch-size", default=None, type=click.IntRange(1), help="Images per step (overrides the preset).")
@click.option("--width", default=None, type=click.IntRange(1), help="Base channel width W (overrides the preset).")
@click.option("--lr", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Adam learning rate of D, and of G unless --lr-g (default 2e-4, Radford et al.).")
@click.option("--lr-g", default=None, type=click.FloatRange(min=0, min_open=True),
              help="G's own learning rate (presets: 1e-3 for tiny and small, where D otherwise wins "
                   "at once: its loss falls to ~0.001 and SWD stalls).")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for weights, noise and data order.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
              help="auto picks CUDA when present.")
@click.option("--checkpoint-every", default=None, type=click.IntRange(1),
              help="Steps between checkpoints " + _preset_help("", ("checkpoint_every",)) + ".")
@click.option("--sample-every", default=None, type=click.IntRange(1),
              help="Steps between sample grids and SWD " + _preset_help("", ("sample_every",)) + ".")
@click.option("--resume", is_flag=True, help="Continue from checkpoints/last.pt.")
@click.option("--overwrite", is_flag=True, help="Delete the run folder's contents and start over.")
@click.option("--precision", default=None, type=click.Choice(["auto", "fp32", "bf16"]),
              help="auto (the default): bf16 autocast where the hardware runs it fast (CUDA, AMX or "
                   "AVX-512 BF16 CPUs), else fp32.")
@click.option("--swd-images", default=None, type=click.IntRange(2),
              help="Real and generated screens in the fixed sets the SWD quality number compares (default 64).")
@click.option("--threads", default=None, type=click.IntRange(1), help=THREADS_HELP)
def train_cmd(resume: bool, overwrite: bool, threads: int | None, **options) -> None:
    """Train the GAN on 224×224 screens.

    Every --sample-every steps: a grid of samples in RUN/samples, and SWD, orphan pixels,
    distinct tiles, colours per cell, diversity and mode coverage (each beside the training
    screens' own value) in RUN/metrics.jsonl, plotted in RUN/metrics.png.

    Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and prints how to
    continue with --resume (exit status 130; 143 for SIGTERM); a second Ctrl-C stops at once.
    Keeps a checkpoint at every sample step too, for `nesgan generate --step N`.
    Also runs as `torchrun --nproc_per_node N -m nesgan train …` (use --run-dir there).
    """
    from nesgan.gan.config import config_for_resume, resolve_train_config
    from nesgan.gan.interrupt import TrainingInterrupted
    from nesgan.gan.train import train

    ctx = click.get_current_context()
    explicit = {k: v for k, v in options.items()
                if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    run = options["run"]
    if resume and not (run / "checkpoints" / "last.pt").exists():
        if (run / "config.json").exists():
            raise NesganError(f"{run} stopped before its first checkpoint, so there is nothing to "
                              "resume; start it again with --overwrite")
        raise NesganError(f"nothing to resume in {run}: no checkpoints/last.pt there; check the "
                          "--run folder, or drop --resume to start a new run")
    if resume and (run / "config.json").exists():
        config = config_for_resume(run, {k: (str(v) if isinstance(v, Path) else v)
                                         for k, v in explicit.items()})
    else:
        preset = options.pop("preset")
        config = resolve_train_config(preset, **{k: (str(v) if isinstance(v, Path) else v)
                                                 for k, v in options.items()})
    threads_used = _use_threads(threads, processes=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    try:
        result = train(config, resume=resume, overwrite=overwrite)
    except TrainingInterrupted as e:
        click.echo(e.advice(), err=True)
        sys.exit(e.exit_status)
    except KeyboardInterrupt:
        click.echo(f"stopped at once; {run}/checkpoints/last.pt (if any) is the last complete "
                   f"checkpoint: nesgan train --run {run} --resume", err=True)
        sys.exit(130)
    if result.world_size > 1 and int(os.environ.get("RANK", "0")) != 0:
        return
    if result.steps_this_call == 0:
        click.echo(result.summary())
        return
    click.echo(f"{result.summary()}; {threads_used}")


class _GenerateCommand(click.Command):
    """`generate --run RUN --help` ends by listing the steps RUN has checkpoints for."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        run = ctx.params.get("run")
        if run is None:
            text = ("Put --run RUN before --help to list the steps RUN has checkpoints for "
                    "(RUN/checkpoints/step-*.pt, one per sample step).")
        else:
            from nesgan.gan.snapshots import describe_steps, run_steps

            text = f"Steps with a checkpoint in {run}: {describe_steps(run_steps(run))}."
        with formatter.section("Steps"):
            formatter.write_text(text)


@cli.command("generate", cls=_GenerateCommand)
@click.option("--run", "--run-dir", "run", default="runs/default", show_default=True, type=P,
              is_eager=True, help="Trained run folder.")
@click.option("-n", "count", default=16, show_default=True, type=click.IntRange(1), help="How many screens.")
@click.option("--out", default="data/generated", show_default=True, type=P, help="Folder for the PNGs.")
@click.option("--seed", default=0, show_default=True, type=int, help="Same seed, same screens.")
@click.option("--step", default=None, type=click.IntRange(1),
              help="Use the checkpoint of this step (RUN/checkpoints/step-N.pt: one per sample "
                   "step, so pick the step whose RUN/samples/step-N.png looked best); default: "
                   "the last.")
@click.option("--checkpoint", default=None, metavar="PATH",
              help="Use this checkpoint file instead (a path, or a name under RUN/checkpoints).")
@click.option("--overwrite", is_flag=True,
              help="Replace the screens an earlier generate left in --out (otherwise refused when "
                   "-n would not rewrite them all).")
@click.option("--threads", default=None, type=click.IntRange(1), help=THREADS_HELP)
def generate_cmd(run: Path, count: int, out: Path, seed: int, step: int | None,
                 checkpoint: str | None, overwrite: bool, threads: int | None) -> None:
    """Write new 224×224 screens from a trained run's EMA generator.

    Files are gen-0000.png … plus manifest.jsonl (run, checkpoint, step and seed of each).
    """
    from nesgan.gan.config import GenerateConfig
    from nesgan.gan.sample import generate

    if step is not None and checkpoint is not None:
        raise click.UsageError("--step and --checkpoint both pick a checkpoint; give one")
    threads_used = _use_threads(threads)
    paths = generate(GenerateConfig(run=str(run), count=count, out=str(out), seed=seed,
                                    overwrite=overwrite, step=step,
                                    checkpoint=checkpoint or "last.pt"))
    click.echo(f"wrote {len(paths)} screens to {out}; {threads_used}")


@cli.command("quantize")
@click.argument("src", type=click.Path(exists=True, path_type=Path))
@click.option("--out", default=None, type=P, help="Output folder (default: SRC-quantized).")
@click.option("--nes-attributes", is_flag=True,
              help="Also obey NES attribute rules: one backdrop, 4 sub-palettes, one per 16×16 cell.")
@click.option("--palette", "palette_file", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A 192-byte .pal file (64 × RGB) instead of the built-in table.")
def quantize_cmd(src: Path, out: Path | None, nes_attributes: bool, palette_file: Path | None) -> None:
    """Map every pixel onto the NES palette by perceptual (OKLab) nearest colour.

    Writes one palette-mode PNG per image (palette index == NES colour index) plus
    manifest.jsonl. No dithering; $0D is never written.
    """
    from nesgan.colour.quantize import QuantizeConfig, quantize_path

    config = QuantizeConfig(src=src, out=out, nes_attributes=nes_attributes, palette_file=palette_file)
    report = quantize_path(config)
    click.echo(report.summary())
    report.raise_if_none_ok(src)


@cli.command("export-tiles")
@click.option("--generated", default="data/generated", show_default=True, type=P, help="Generated screens.")
@click.option("--train", "train_dir", default=["data/screens"], show_default=True, type=P, multiple=True,
              help="Training screens, for the near-copy check; give it once per folder to check "
                   "against several.")
@click.option("--tmx", default=None, type=P, help="Also write (or update) this Tiled map.")
@click.option("--tilesets", default="tilesets", show_default=True, type=P, help="Folder for TSX + PNG atlases.")
@click.option("--tiles", "tiles_dir", default="tiles", show_default=True, type=P,
              help="Folder for tiles.jsonl and contact sheets.")
@click.option("--name", default="nesgan", show_default=True, help="Tileset name.")
@click.option("--near-copy-pixels", default=None, type=click.IntRange(0, 256),
              help="Flag tiles within K differing pixels of a training tile (default 4).")
@click.option("--max-tiles", default=256, show_default=True, type=int,
              help="Tile budget: group the cells of all generated screens into at most N clean tiles, "
                   "each voted pixel by pixel from the cells it stands for. 0 keeps every distinct "
                   "quantized cell as it is.")
@click.option("--palettes", default=None, type=int,
              help="Cap the whole sheet at one backdrop and K 3-colour sub-palettes (1–4; 4 = one NES "
                   "palette set, what an NES export needs). Without it each tile still shows ≤ 4 colours.")
@click.option("--under-sprites/--no-under-sprites", default=False, show_default=True,
              help="Also flag a tile that is a training tile with a sprite standing on it (match "
                   "'occluded'). Two readings: a small blob (≤ 48 px) in colours the training tile "
                   "cannot explain, coming in from the tile's edge, is not counted; a larger sprite is "
                   "not counted when a training screen shows the same sprite (at any pixel offset, "
                   "recoloured) and a training tile explains the rest within K. Rows say how many "
                   "pixels were excused and where training showed the sprite (sprite_from); the "
                   "contact sheet hatches them. Off by default: it reads every tile left original "
                   "again, against every 3×3 block of the training screens.")
def export_tiles_cmd(generated, train_dir, tmx, tilesets, tiles_dir, name, near_copy_pixels, max_tiles,
                     palettes, under_sprites) -> None:
    """Make a compact 16×16 tile sheet from generated screens; export it for Tiled.

    The sheet has at most --max-tiles tiles of at most 4 colours each (a backdrop plus a 3-colour
    sub-palette), ordered by sub-palette and use; every generated cell is drawn with one of them,
    so the map rebuilds every screen from the sheet (how far from the quantized screens is printed
    and drawn in TILES/rebuild-diff.png; TILES/sheet-*.png shows each tile with the cells it stands
    for). Near-copy verdicts are given on the sheet's tiles.

    Tile ids are stable: re-exporting into the same tilesets keeps every existing tile's id
    and pixels and only appends new ones (so a tileset can outgrow one export's budget). An
    existing --tmx map keeps its own tilesets, layers and objects; nesgan adds or refreshes its
    tilesets and its layer NAME (14 tile columns per generated screen, 14 rows), growing the map
    right and down when it is smaller.
    """
    from nesgan.tiled.export import ExportConfig, export_tiles

    config = ExportConfig(generated=generated, train=tuple(train_dir), tilesets_dir=tilesets,
                          tiles_dir=tiles_dir, name=name, tmx=tmx,
                          near_copy_pixels=near_copy_pixels, max_tiles=max_tiles, palettes=palettes,
                          under_sprites=under_sprites)
    for line in export_tiles(config).summary_lines():
        click.echo(line)


@cli.command("export-nes")
@click.argument("tmx", metavar="MAP.tmx", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", default="nes", show_default=True, type=P,
              help="Folder for tiles.chr, screen-NN.nam, palette.pal and level.nes.")
@click.option("--layer", default=None,
              help="The tile layer to export (default: the one painted with nesgan's tilesets).")
@click.option("--palette", "palette_file", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The 192-byte .pal table the tilesets' colours come from (default: nesgan's "
                   "built-in table, which its tilesets use).")
def export_nes_cmd(tmx: Path, out: Path, layer: str | None, palette_file: Path | None) -> None:
    """Turn a map painted with nesgan's tiles into NES data and a ROM that scrolls it.

    \b
    Writes into OUT:
      tiles.chr      the pattern table: 16 bytes per 8×8 tile, at most 256
      screen-NN.nam  a nametable per 256-px screen: 960 tile bytes + 64 attribute bytes
      palette.pal    the 16 background palette bytes for $3F00 (backdrop + 4 × 3)
      level.nes      an iNES NROM ROM: open it in any NES emulator (FCEUX, Mesen, Nestopia…)
                     or a flash cartridge; hold Right/Left on the d-pad to scroll the map

    The map must obey the NES background rules, or nothing is written: at most 15 tiles
    (240 px) tall (a 14-tile map shows in the NTSC-visible rows 8–231), at most 4 colours in a
    16×16 tile counting one backdrop shared by the whole map, at most 4 sub-palettes of 3
    colours, at most 256 distinct 8×8 patterns (a 16×16 tile is four), and at most 494 tiles
    wide (NROM's 32 KiB). Empty cells and transparent pixels show the backdrop; flipped tiles
    become patterns of their own (the NES cannot flip background tiles).
    """
    from nesgan.nes import NesConfig, export_nes

    report = export_nes(NesConfig(tmx=tmx, out=out, layer=layer, palette_file=palette_file))
    click.echo(report.summary())


@cli.command("demo")
@click.option("--workdir", default="demo", show_default=True, type=P, help="Folder for everything the demo writes.")
@click.option("--steps", default=None, type=click.IntRange(1),
              help=f"Training steps (default: the tiny preset's {PRESETS['tiny']['steps']}; the whole "
                   "demo took 3.1–5.4 minutes on 2 CPU cores, lightly to heavily loaded).")
@click.option("--games", default=12, show_default=True, type=click.IntRange(1, 500),
              help="Games in the embedded museum.")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed for the museum and training.")
def demo_cmd(workdir: Path, steps: int | None, games: int, seed: int) -> None:
    """Run every stage end to end on the embedded museum, offline.

    Serves the museum on 127.0.0.1, then runs scrape, train (tiny preset), generate,
    export-tiles --tmx (a 64-tile NES-legal sheet) and export-nes (WORKDIR/level.nes), printing
    each command so you can repeat it on your own data.
    """
    from nesgan.demo import DemoConfig, run_demo

    run_demo(DemoConfig(workdir=workdir, steps=steps, games=games, seed=seed), cli)


def main() -> None:
    cli(prog_name="nesgan")


if __name__ == "__main__":
    main()
