"""Checkpoints by step, so `nesgan generate --step N` can use the step whose grid looked best,
and `checkpoints/best.pt`, the sample step whose screens' tile-pattern divergence from the
training art was lowest (among steps whose samples kept their variety), which `generate` draws
from by default.

A run writes `checkpoints/step-NNNNNN.pt` at every checkpoint step (the whole training state,
a hard link to that step's `last.pt`) and, with this module, at every sample step in between
too: there only what `generate` reads (the EMA generator, the config and the step), a sixth of
the whole state (G, D, EMA and both optimizers' two Adam moments), so a run's samples/ and
checkpoints/ go in pairs without multiplying its disk use. Both kinds load with
`torch.load(weights_only=True)`, written atomically like every checkpoint.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from torch import nn

from nesgan.errors import NesganError
from nesgan.files import link_or_copy
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


BEST = "best.pt"  # the sample step whose screens' patterns came closest to the training art's


MIN_DIVERSITY = 0.7  # best.pt's steps must keep this share of the training screens' own diversity


def best_step(rows: list[dict]) -> tuple[int, float] | None:
    """(step, divergence) of the metrics row with the lowest tile-pattern divergence (the later
    step on a tie) among the rows whose samples keep their variety: diversity at least
    MIN_DIVERSITY of a same-size set of training screens' (`diversity_train`). Where no row
    does, the lowest divergence of all. None when no row has a divergence.

    Why the guard: divergence reads the windows of all samples pooled, so a step whose samples
    all look alike can still score best. On one museum game (192 screens, tiny, seed 3) the
    lowest step, 1,400 (0.308), had diversity 0.61; `generate`'s 24 screens from it measured
    diversity 0.64 and divergence 0.333, against 0.81 and 0.371 at step 1,000, the guarded pick,
    and the map rebuilt through a 128-tile sheet measured 0.390 from either."""
    ranked = _ranked(rows)
    return (ranked[0][1], ranked[0][0]) if ranked else None


def best_steps(rows: list[dict], k: int) -> list[int]:
    """The `k` sample steps `best_step` ranks first, best first: what `generate` compares by
    the screens it would keep."""
    return [step for _, step in _ranked(rows)[:k]]


def _ranked(rows: list[dict]) -> list[tuple[float, int]]:
    """(divergence, step) of every sample step `best_step` may pick, best first: the lowest
    divergence first, the later step first on a tie, among the rows whose samples keep their
    variety, or among all rows with a divergence where none does. A step logged twice counts by
    its later row (`Monitor` drops a killed run's rows past its checkpoint, so a resumed run
    logs the step again)."""
    scored = [r for r in rows if r.get("divergence") is not None]
    pool = [r for r in scored if _varied(r)] or scored
    latest = {int(r["step"]): r["divergence"] for r in pool}
    return [(d, -negative) for d, negative in sorted((d, -step) for step, d in latest.items())]


def lost_variety(rows: list[dict]) -> list[int]:
    """The sample steps whose samples lost their variety (below MIN_DIVERSITY of the training
    screens'), where they are at least half of the sample steps and the last is among them: the
    run ended collapsed rather than dipped on the way. Measured: one museum game (tiny, seed 3)
    lost it at 6 of 7 steps (0.39-0.60), the last at 0.39; a run on the same game that recovered
    (seed 6) at 4 of 8, not the last; the demo museum's runs at most at 2 early steps. Empty
    otherwise."""
    sampled = [r for r in rows if r.get("divergence") is not None and r.get("diversity") is not None]
    lost = [int(r["step"]) for r in sampled if not _varied(r)]
    collapsed = sampled and 2 * len(lost) >= len(sampled) and not _varied(sampled[-1])
    return lost if collapsed else []


def _varied(row: dict) -> bool:
    """The row's samples keep MIN_DIVERSITY of the training screens' diversity (rows without
    diversity figures count as varied)."""
    diversity = row.get("diversity")
    if diversity is None:
        return True
    reference = row.get("diversity_train") or 1.0
    return diversity >= MIN_DIVERSITY * reference


def keep_best(run: str | Path, rows: list[dict]) -> int | None:
    """Point checkpoints/best.pt at the best sample step of `rows` (a hard link to its
    step-N.pt; a copy where links fail), or remove it when there is none. Returns the step."""
    best = best_step(rows)
    target = Path(run) / "checkpoints" / BEST
    source = None if best is None else step_path(run, best[0])
    if source is None or not source.is_file():
        target.unlink(missing_ok=True)
        return None
    if not (target.is_file() and os.path.samefile(source, target)):
        link_or_copy(source, target)
    return best[0]


def resolve_checkpoint(run: str | Path, checkpoint: str | None = None, step: int | None = None) -> Path:
    """The checkpoint file `generate` reads: step N's, a path, a name under RUN/checkpoints, or
    by default best.pt where training kept one (else last.pt). A missing step is one line naming
    the steps the run has."""
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
    if checkpoint is None:
        best = Path(run) / "checkpoints" / BEST
        return best if best.is_file() else Path(run) / "checkpoints" / "last.pt"
    given = Path(checkpoint)
    if given.parent != Path(".") or given.is_absolute():
        return given  # a path of its own
    under_run = Path(run) / "checkpoints" / checkpoint
    return given if not under_run.exists() and given.is_file() else under_run
