"""Commands that train the GAN and draw from it: train, generate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from nesgan.cli import P, cli
from nesgan.gan.config import ARCH_NAMES, AUGMENT_NAMES, COMPARE_STEPS, PRESETS, Launch

THREADS_HELP = ("CPU threads for torch (default: the cores this process may use, less those other "
                "processes keep busy; the choice is printed).")


def _use_threads(requested: int | None, launch: Launch | None = None) -> str:
    """Set torch's thread count (gan/threads.py), sharing the cores among the launch's local
    processes; returns the choice in words, also shown at once on an interactive terminal (the
    command's last line repeats it, so an error stays one line)."""
    from nesgan.gan.threads import apply_threads, choose_threads

    launch = launch or Launch()
    choice = choose_threads(requested, processes=launch.local_world)
    apply_threads(choice)
    if launch.main and sys.stderr.isatty():
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
                                tiny="the demo: minutes on a CPU", small="a longer CPU run: an hour or so on 2 cores",
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
@click.option("--cell-weight", default=None, type=click.FloatRange(min=0),
              help="--arch patterns: how strongly G is held to how often the training art shows "
                   "each of its commonest kinds of half a 16×16 cell (top, bottom, left, right), "
                   "default 1 (0: not at all). Demo museum, five seeds: the rebuilt map's divergence "
                   "0.123 → 0.111, near-copies 14 % → 21 % of the sheet. Recorded in the "
                   "run; kept by --resume.")
@click.option("--whole-cells", is_flag=True, default=None,
              help="--arch patterns: count whole cells instead of halves. The map comes closer still "
                   "(0.100) and the sheet keeps twice the named drawings (bricks, ladders, ground "
                   "edges), but G draws the art's own cells: about a third of the sheet are "
                   "near-copies of training tiles (the demo: 47 %). For users who want their own "
                   "game's drawings back. Recorded in the run; kept by --resume.")
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
    distinct tiles, colours per cell, invented patterns, tile-pattern divergence, diversity and
    mode coverage (each beside the training screens' own value) in RUN/metrics.jsonl, plotted
    in RUN/metrics.png. RUN/checkpoints/best.pt is the sample step of lowest divergence whose
    samples kept at least 0.7 of the training screens' diversity, what `nesgan generate` draws
    from by default.

    Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and prints how to
    continue with --resume (exit status 130; 143 for SIGTERM); a second Ctrl-C stops at once.
    Keeps a checkpoint at every sample step too, for `nesgan generate --step N`.
    Also runs as `torchrun --nproc_per_node N -m nesgan train …` (use --run-dir there).
    """
    from nesgan.gan.config import Launch, train_config
    from nesgan.gan.interrupt import TrainingInterrupted
    from nesgan.gan.train import train

    ctx = click.get_current_context()
    explicit = {k for k in options
                if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    config = train_config(options, explicit, resume)
    run = Path(config.run)
    launch = Launch.from_env()
    threads_used = _use_threads(threads, launch)
    try:
        result = train(config, resume=resume, overwrite=overwrite)
    except TrainingInterrupted as e:
        click.echo(e.advice(), err=True)
        sys.exit(e.exit_status)
    except KeyboardInterrupt:
        click.echo(f"stopped at once; {run}/checkpoints/last.pt (if any) is the last complete "
                   f"checkpoint: nesgan train --run {run} --resume", err=True)
        sys.exit(130)
    if not launch.main:
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
                   "RUN/checkpoints/best.pt, the sample step whose screens came closest to the "
                   "training art's patterns (lowest divergence in metrics.jsonl among steps whose "
                   "samples kept their variety), else the last; with a choice to make, best.pt and "
                   "the next best steps compared (--compare-steps).")
@click.option("--checkpoint", default=None, metavar="PATH",
              help="Use this checkpoint file instead (a path, or a name under RUN/checkpoints: "
                   "last.pt for the last step).")
@click.option("--overwrite", is_flag=True,
              help="Replace the screens an earlier generate left in --out (otherwise refused when "
                   "-n would not rewrite them all).")
@click.option("--candidates", default=None, type=click.IntRange(1), metavar="M",
              help="Draw M screens and keep the -n that, taken together, come closest to the "
                   "training screens' patterns (the tile-pattern divergence, chosen greedily, against "
                   "the counts train keeps in RUN/windows.npz). Default: 4×n for n up to 64 (on the demo, 24 of "
                   "96: divergence 0.203 → 0.178 over five seeds), else n. -n keeps every screen "
                   "drawn; at most 256.")
@click.option("--compare-steps", default=COMPARE_STEPS, show_default=True, type=click.IntRange(1), metavar="K",
              help="Without --step or --checkpoint, while choosing: draw the same noise from the "
                   "run's K sample steps of lowest divergence in metrics.jsonl (best.pt's first), "
                   "choose each one's screens, and write the step whose chosen screens come closest "
                   "to the training art (the demo's: step 800 over best.pt's 1,200, rebuilt map 0.102 "
                   "against 0.114). 1: best.pt alone. Costs K draws.")
@click.option("--threads", default=None, type=click.IntRange(1), help=THREADS_HELP)
def generate_cmd(run: Path, count: int, out: Path, seed: int, step: int | None,
                 checkpoint: str | None, overwrite: bool, candidates: int | None, compare_steps: int,
                 threads: int | None) -> None:
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
                                    checkpoint=checkpoint, candidates=candidates,
                                    compare_steps=compare_steps))
    from nesgan.files import MANIFEST, read_jsonl

    first = read_jsonl(Path(out) / MANIFEST)[0]  # provenance generate wrote beside the screens
    chosen = f", the {len(paths)} of {first['drawn']} drawn closest to the training art" if first["drawn"] > len(paths) else ""
    if first.get("compared"):
        steps = ", ".join(f"{c['step']}: {c['divergence']:.3f}" for c in first["compared"])
        chosen += f" (their divergence, by step: {steps})"
    click.echo(f"wrote {len(paths)} screens to {out} from step {first['step']} "
               f"({Path(first['checkpoint']).name}){chosen}; {threads_used}")
