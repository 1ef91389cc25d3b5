"""Checkpoints by step, so `nesgan generate --step N` can use the step whose grid looked best.

A run writes `checkpoints/step-NNNNNN.pt` at every checkpoint step (the whole training state,
a hard link to that step's `last.pt`) and, with this module, at every sample step in between
too: there only what `generate` reads (the EMA generator, the config and the step), a sixth of
the whole state (G, D, EMA and both optimizers' two Adam moments), so a run's samples/ and
checkpoints/ go in pairs without multiplying its disk use. Both kinds load with
`torch.load(weights_only=True)`, written atomically like every checkpoint.
"""

from __future__ import annotations

import re
from pathlib import Path

from torch import nn

from nesgan.errors import NesganError
from nesgan.gan.checkpoint import save_checkpoint

_STEP_FILE = re.compile(r"step-(\d{6,})\.pt")


def step_path(run: str | Path, step: int) -> Path:
    return Path(run) / "checkpoints" / f"step-{step:06d}.pt"


def run_steps(run: str | Path) -> list[int]:
    """The steps `run` holds a checkpoint for, ascending."""
    folder = Path(run) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir()
                  if (m := _STEP_FILE.fullmatch(p.name)) and p.is_file())


def describe_steps(steps: list[int], most: int = 12) -> str:
    """"200, 400, 600" — or the first and last few with "…" between when there are many."""
    if not steps:
        return "none"
    if len(steps) <= most:
        return ", ".join(map(str, steps))
    half = most // 2
    return ", ".join(map(str, steps[:half])) + ", …, " + ", ".join(map(str, steps[-half:]))


def keep_sample_step(run: str | Path, step: int, config: dict, ema: nn.Module,
                     full_checkpoint_follows: bool) -> Path | None:
    """At a sample step: checkpoints/step-N.pt with the EMA generator (unless this step's full
    checkpoint, written next, makes it anyway). Returns the path written, or None."""
    if full_checkpoint_follows:
        return None
    path = step_path(run, step)
    save_checkpoint({"step": step, "config": config, "ema": ema.state_dict(),
                     "generator_only": True}, path)
    return path


def resolve_checkpoint(run: str | Path, checkpoint: str = "last.pt", step: int | None = None) -> Path:
    """The checkpoint file `generate` reads: step N's, a path, or a name under RUN/checkpoints.
    A missing step is one line naming the steps the run has."""
    if step is not None:
        path = step_path(run, step)
        if not path.is_file():
            steps = run_steps(run)
            if not steps:
                raise NesganError(f"{run} has no step checkpoints (checkpoints/step-*.pt); train "
                                  f"it first, or check --run")
            raise NesganError(f"{run} has no checkpoint at step {step}; its steps: "
                              f"{describe_steps(steps)} (pick the step whose samples/step-*.png "
                              "looked best)")
        return path
    given = Path(checkpoint)
    if given.parent != Path(".") or given.is_absolute():
        return given  # a path of its own
    under_run = Path(run) / "checkpoints" / checkpoint
    return given if not under_run.exists() and given.is_file() else under_run
