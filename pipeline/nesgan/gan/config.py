"""Frozen settings for `nesgan train` / `nesgan generate`, the presets, and resume checks."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nesgan.errors import NesganError
from nesgan.images import SCREEN

SIZE = SCREEN  # 7·2⁵: five stride-2 blocks from a 7×7 seed; 14×14 NES cells of 16 px
# The architectures `--arch` names (defined in `nesgan.gan.model.ARCHS`; listed here so that the
# CLI can offer them without importing torch). The first is the default.
ARCH_NAMES = ("patterns", "nes", "upsample", "dcgan")
OLD_RUNS_ARCH = "dcgan"  # a run config written before --arch existed is the paper's network
# runs from before these fields (a run config that lacks one was trained without it)
OLD_PATTERN_HEAD = {"pattern_context": 1, "seam_weight": 1.0, "pattern_critic": 0.0, "pattern_table": 256,
                    "critic_width": 1, "usage_rows": False, "usage_weight": 1.0,
                    "cell_weight": 0.0, "whole_cells": False}
# What `--augment` offers (defined in `nesgan.gan.augment`; listed here to keep torch out of the CLI).
AUGMENT_NAMES = ("none", "shift-cut")


@dataclass(frozen=True)
class TrainConfig:
    data: str = "data/screens"  # folder of 224×224 RGB PNGs (what `nesgan crop` writes)
    run: str = "runs/default"  # run folder: config.json, checkpoints/, samples/, metrics.jsonl
    preset: str = "tiny"  # where the defaults below came from (tiny/small/full)
    arch: str = ARCH_NAMES[0]  # patterns: a learned pattern table; nes: NES-legal pixels; upsample: RGB; dcgan: the paper's
    steps: int = 1200  # tiny: NES-like structure (measured, see PRESETS); 3-5 min on 2 CPU cores
    batch_size: int = 16  # global batch; split evenly across DDP processes
    width: int = 8  # W: channels 8W,8W,4W,2W,W (G) — 8 learns visibly on a CPU in minutes
    z_dim: int = 100  # Radford et al. (2015)
    lr: float = 2e-4  # Radford et al. (2015): D's, and G's unless lr_g says otherwise
    lr_g: float | None = None  # G's Adam lr; None = lr. tiny: 1e-3 (see PRESETS)
    beta1: float = 0.5  # Radford et al.: 0.9 oscillates
    beta2: float = 0.999  # Adam default
    ema_decay: float = 0.99  # tiny runs are short; small/full use 0.999 (warm-up ramps it)
    augment: str = "none"  # what D's inputs go through: none, or shift-cut (see gan/augment.py)
    # --arch patterns: each 8×8 quarter's pattern picked from its 3×3 neighbourhood of quarters
    # (1: from its own feature vector alone), and the weight of the seam prior in G's loss. Side
    # by side on 3 seeds (docs/generator-patterns.md): 3 and 3.0 lowered the generated screens'
    # divergence on all three (mean 0.383 → 0.307) and the rebuilt map's on two (0.540 → 0.494).
    pattern_context: int = 3
    seam_weight: float = 3.0
    # --arch patterns: weight of D's pattern critic, a second judge that sees only which pattern
    # G put where (`nesgan.gan.model.PatternCritic`); 0: none. Side by side on 3 seeds
    # (docs/generator-patterns.md, fourth round), weight 2 lowered the generated screens'
    # divergence on all three (mean 0.307 → 0.223) and the rebuilt map's (0.420 → 0.309).
    pattern_critic: float = 2.0
    # --arch patterns: the critic's width as a multiple of 2·W channels in its first layer. Side
    # by side on 5 seeds (docs/generator-patterns.md, fifth round), 2 lowered the generated
    # screens' divergence on all five (mean 0.266 → 0.206) and the rebuilt map's (0.384 → 0.317)
    # for 1.06× a step. And how many 8×8 patterns G's table holds (the training art's commonest
    # slot maps): 384 measured about as well as the wider critic (0.205 / 0.312; both: 0.204 /
    # 0.305) but cost 1.22× a step, so it stays 256 (what one NES pattern table holds).
    critic_width: int = 2
    pattern_table: int = 256
    # --arch patterns: G's usage prior row by row (each row of 8×8 quarters against the training
    # screens' same row) instead of over the whole screen. Five seeds (docs/generator-patterns.md,
    # sixth round): generated divergence 0.178 → 0.141, rebuilt map 0.283 → 0.249, every seed lower.
    usage_rows: bool = True
    # --arch patterns: the weight of that usage prior in G's loss (the seam prior's is 3). Five
    # seeds (docs/generator-patterns.md, seventh round), generated / rebuilt-map divergence:
    # 1 (before): 0.141 / 0.153; 3: 0.122 / 0.140; 6: 0.117 / 0.133; 10: 0.115 / 0.123, lower
    # than 1 on every seed, with fewer near-copies and changed pixels than 6.
    usage_weight: float = 10.0
    # --arch patterns (`train --cell-weight`): the weight of G's cell prior, KL of the training
    # art's 512 commonest kinds of each half of a cell (top, bottom, left, right: two 8×8 patterns
    # together) from the batch's chances of them, averaged over the four halves; 0: none. Five
    # seeds (docs/generator-patterns.md, eighth round): generated / rebuilt-map divergence
    # 0.115 / 0.123 → 0.106 / 0.111 (≤ 1000 steps), near-copies 14 % → 21 % of non-trivial tiles.
    # With `whole_cells` (`--whole-cells`) it counts whole cells instead (four patterns): 0.089 /
    # 0.100 and twice the named drawings, but a third of the tiles near-copies (the demo: 47 %).
    # 1.2× a step either way, and the best step comes sooner (tiny: 1200 steps, not 1400).
    cell_weight: float = 1.0
    whole_cells: bool = False
    seed: int = 0  # weights, noise and data order all derive from it
    device: str = "auto"  # auto picks CUDA when present
    precision: str = "auto"  # auto: bf16 autocast where the hardware has fast bf16, else fp32
    channels_last: bool = True  # NHWC convs are faster in oneDNN/cuDNN (see bench)
    compile: bool = False  # torch.compile: measured slower to pay off than tiny runs last
    checkpoint_every: int = 200  # steps between checkpoints (last.pt + step-NNNNNN.pt)
    sample_every: int = 200  # steps between sample grids and SWD measurements
    log_every: int = 20  # steps between metrics.jsonl rows
    swd_images: int = 64  # fixed real/fake sets for SWD: cheap enough to run every sample
    grid: int = 4  # sample grid is grid×grid screens at 224 px each

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "width", "z_dim", "checkpoint_every",
                     "sample_every", "log_every", "swd_images", "grid"):
            if getattr(self, name) < 1:
                raise NesganError(f"{flag(name)} must be at least 1, got {getattr(self, name)}")
        if self.preset not in PRESETS:
            raise NesganError(f"unknown preset {self.preset!r}; pick one of {', '.join(PRESETS)}")
        if self.arch not in ARCH_NAMES:
            raise NesganError(f"unknown --arch {self.arch!r}; pick one of {', '.join(ARCH_NAMES)}")
        if self.augment not in AUGMENT_NAMES:
            raise NesganError(f"unknown --augment {self.augment!r}; pick one of {', '.join(AUGMENT_NAMES)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise NesganError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise NesganError(f"--precision must be auto, fp32 or bf16, got {self.precision!r}")
        for name in ("lr", "lr_g"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise NesganError(f"{name} must be positive, got {v}")
        if self.pattern_context not in (1, 3):
            raise NesganError(f"pattern_context must be 1 or 3, got {self.pattern_context}")
        if not self.seam_weight >= 0.0:
            raise NesganError(f"seam_weight must be 0 or more, got {self.seam_weight}")
        if not self.usage_weight >= 0.0:
            raise NesganError(f"usage_weight must be 0 or more, got {self.usage_weight}")
        if not self.cell_weight >= 0.0:
            raise NesganError(f"cell_weight must be 0 or more, got {self.cell_weight}")
        if not self.pattern_critic >= 0.0:
            raise NesganError(f"pattern_critic must be 0 or more, got {self.pattern_critic}")
        if not 4 <= self.pattern_table <= 4096:
            raise NesganError(f"pattern_table must be 4 to 4096 patterns (the four flat ones at least), "
                              f"got {self.pattern_table}")
        if not 1 <= self.critic_width <= 8:
            raise NesganError(f"critic_width must be 1 to 8, got {self.critic_width}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise NesganError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    @property
    def generator_lr(self) -> float:
        return self.lr if self.lr_g is None else self.lr_g

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise NesganError(f"run config has unknown settings {sorted(unknown)}: "
                              "it was written by another nesgan version")
        return cls(**{"arch": OLD_RUNS_ARCH, "augment": "none", **OLD_PATTERN_HEAD, **d})


# Presets: what a bare `nesgan train --preset P` means. Explicit flags override them.
PRESETS: dict[str, dict[str, Any]] = {
    # Measured on the 186-screen demo museum (2 shared CPU cores, bf16). With one lr of 2e-4
    # for both, D wins at once (loss ~0.002) and SWD stalls near 275-307. Giving G 5x D's lr
    # (1e-3) keeps D's loss near 0.2-1.7 and G's contrast reaches the data's (std 0.63 vs 0.67)
    # by step 500. `nesgan train --preset tiny`: SWD (mean of levels, every 200 steps) 279,
    # 331, 285, 270, 217, 195, 180, 176, 162, 160 at step 2000 (139 in a second run; 196 when
    # G's step also ran the real screens through D; the separate-batch loop stayed at 353-364),
    # and the grids show sky, ground strips, platforms, pipes, ladders and HUD text. G lr 5e-4
    # gets there too but later. 2000 steps took ~150 s of training (~200-220 images/s, 2
    # threads, lightly loaded); the whole `nesgan demo` 3.1 min. Longer does not help at this
    # width: the same run continued reaches 150 at step 2600, then D wins (loss ~0.1) and SWD
    # climbs back to 181 by step 4000.
    # Those figures are --arch dcgan's. --arch upsample (the default since) costs 1.15-1.3x as
    # much per step (measured side by side, width 8, batch 16, 2 threads), so tiny does 1600
    # steps in about the same time. On the same data and seed, upsample's SWD at steps 200-2000:
    # 167, 161, 135, 120, 100, 101, 92, 101, 120, 119 (dcgan's: 347, 304, 265, 224, 203, 197,
    # 198, 192, 181, 192), orphan pixels 7-13 % (dcgan's 29-45 %), diversity 0.84-0.97.
    # --arch nes (the default since) costs 1.15x upsample's step and 1.4-1.8x dcgan's (0.73x its
    # images/s with 1 thread side by side; 115 s vs 65 s for 400 steps with 2 threads, fp32 CPU);
    # at steps 200-1600: SWD 155, 171, 141, 176, 163, 175, 188, 157; orphan pixels 0.0-3.0 %;
    # diversity 0.79-1.04 (one dip to 0.41 at step 800); mode coverage 0.08-0.33 (arch_bench).
    # --arch patterns (the default since, issue 21) costs 0.89-0.97x nes's step (side by side, 1
    # thread), so tiny keeps its 1600 steps and the demo its wall time (3.8-3.9 vs 3.6-4.0 min).
    # At step 1600 (1 thread, museum, seed 0): invented 3x3 patterns in 1.6 % of the generated
    # cells (nes 45 %, training 1.1 %), tile-pattern divergence 0.41 (nes 1.25), SWD 84 (nes 173).
    # D wins from about step 1000 (loss 0.01-0.05), so longer does not obviously help at width 8.
    # With the pattern critic (1.06x a step at width 2) the demo took 1.12x as long as when
    # issue 21 was filed (225-227 s vs 198-204 s, alone, back to back), so tiny stops at 1400.
    # Nothing in a run depends on its step count, so a 1400-step run is the first 1400 steps of a
    # 1600-step one: over 5 seeds (1 thread, demo museum, generate -n 24 from the best varied
    # step) the generated screens' divergence was 0.205 vs 0.206 at 1600, the rebuilt 128-tile
    # map's 0.321 vs 0.317; 3 of the 5 runs chose a step at or below 1400 anyway.
    # The cell prior (1.2x a step) brings the best step sooner. Over its halves (5 seeds, 1400-step
    # runs, generate from the best varied step at or below N): N = 1000: 0.106 / 0.111 (generated /
    # rebuilt map), 1200: 0.105 / 0.106, 1400: 0.101 / 0.110 with more near-copies (29.4 against
    # 25.2 of ~122). Over whole cells the best steps were 400-1200. The demo at 1200 steps took
    # 1.12x as long as the issue-time code's (320 s vs 285 s, back to back), at 1000 steps 0.78x
    # (224 s vs 289 s). With the sheet's four seedings (ninth round) the rebuilt map at <= 1200
    # steps measured 0.099 over the five seeds (0.094-0.102) against 0.103 at <= 1000, and a
    # second pair put the demo at 1200 steps at 0.93x (227 s vs 246 s), so tiny trains 1200.
    "tiny": dict(steps=1200, batch_size=16, width=8, lr_g=1e-3, ema_decay=0.99,
                 checkpoint_every=200, sample_every=200, log_every=20),
    # A longer CPU run or a small GPU: more channels, more steps. Measured on the demo museum
    # (first 400 steps, 2 CPU cores, ~37 images/s): with the paper's one lr of 2e-4 D wins at
    # once here too (loss 0.0001 and SWD 357 at step 100); with G at 1e-3 D's loss stays near
    # 0.1-0.8 and SWD falls 327, 265, 214, 142 at steps 100-400.
    "small": dict(steps=5000, batch_size=32, width=32, lr_g=1e-3, ema_decay=0.999,
                  checkpoint_every=500, sample_every=250, log_every=25),
    # The paper's widths (W=64) and batch (128), for a GPU; its one lr of 2e-4 (not measured
    # here: if metrics.jsonl shows loss_d near 0.001 for long, rerun with --lr-g 1e-3).
    "full": dict(steps=30000, batch_size=128, width=64, ema_decay=0.999,
                 checkpoint_every=1000, sample_every=500, log_every=50),
}

# Settings a resumed run may change; everything else must match the run's config.
RESUMABLE_CHANGES = frozenset({
    "data", "run", "steps", "device", "checkpoint_every", "sample_every", "log_every",
})


def flag(name: str) -> str:
    """The command-line spelling of a TrainConfig field."""
    return "--" + name.replace("_", "-")


def resolve_train_config(preset: str = "tiny", **overrides: Any) -> TrainConfig:
    """The preset's settings with explicit values (not None) on top."""
    if preset not in PRESETS:
        raise NesganError(f"unknown preset {preset!r}; pick one of {', '.join(PRESETS)}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig(preset=preset, **values)


def check_resumable(saved: TrainConfig, new: TrainConfig) -> None:
    """Refuse, in one line naming the first difference, a resume that would change the run."""
    for f in dataclasses.fields(TrainConfig):
        if f.name in RESUMABLE_CHANGES:
            continue
        a, b = getattr(new, f.name), getattr(saved, f.name)
        if a != b:
            shown = str(a).lower() if isinstance(a, bool) else a
            raise NesganError(
                f"{flag(f.name)} {shown} differs from the run's {b}; resume with the run's "
                f"settings or start over with --overwrite")


def read_run_config(run: str | Path) -> TrainConfig | None:
    path = Path(run) / "config.json"
    if not path.exists():
        return None
    try:
        return TrainConfig.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError) as e:
        raise NesganError(f"{path} is not a valid run config ({e}); start over with --overwrite") from None


def config_for_resume(run: str | Path, explicit: dict[str, Any]) -> TrainConfig:
    """The run's saved config with the explicitly given settings on top (checked)."""
    saved = read_run_config(run)
    if saved is None:
        raise NesganError(f"nothing to resume in {run}: no config.json; drop --resume to start")
    explicit = {k: v for k, v in explicit.items() if v is not None}
    if "preset" in explicit and explicit["preset"] != saved.preset:
        raise NesganError(f"--preset {explicit['preset']} differs from the run's {saved.preset}; "
                          "resume with the run's settings or start over with --overwrite")
    new = dataclasses.replace(saved, **{**explicit, "run": str(run)})
    check_resumable(saved, new)
    return new


def train_config(options: dict[str, Any], explicit: set[str], resume: bool) -> TrainConfig:
    """What `nesgan train` runs: with `resume`, the run's saved config with the options the user
    gave explicitly (`explicit`) on top, checked; otherwise the preset's settings with every
    option that has a value on top. Refuses, in one line, a resume with nothing to resume."""
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.items()}
    run = Path(options["run"])
    if resume and not (run / "checkpoints" / "last.pt").exists():
        if (run / "config.json").exists():
            raise NesganError(f"{run} stopped before its first checkpoint, so there is nothing to "
                              "resume; start it again with --overwrite")
        raise NesganError(f"nothing to resume in {run}: no checkpoints/last.pt there; check the "
                          "--run folder, or drop --resume to start a new run")
    if resume and (run / "config.json").exists():
        return config_for_resume(run, {k: v for k, v in options.items() if k in explicit})
    return resolve_train_config(**options)


@dataclass(frozen=True)
class Launch:
    """Where this process sits in a torchrun launch (its environment, read in one place); one
    process of one when started as a plain command."""

    rank: int = 0  # RANK: this process among all
    world: int = 1  # WORLD_SIZE: processes in all
    local_rank: int = 0  # LOCAL_RANK: this process on this machine
    local_world: int = 1  # LOCAL_WORLD_SIZE: processes on this machine (they share its cores)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Launch:
        env = os.environ if env is None else env
        try:
            return cls(int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")),
                       int(env.get("LOCAL_RANK", "0")), int(env.get("LOCAL_WORLD_SIZE", "1")))
        except ValueError as e:
            raise NesganError(f"torchrun's environment is malformed ({e}); launch with torchrun "
                              "or as a plain command") from None

    @property
    def main(self) -> bool:
        """The process that prints and writes run files."""
        return self.rank == 0


# `generate` draws this many screens per screen it keeps, and keeps the set closest to the training
# art (`nesgan.patterns.Reference.closest_subset`). Five seeds (tiny, demo museum, 24 kept of 96,
# docs/generator-patterns.md, sixth round), two draws of noise each: the generated screens'
# divergence 0.203 → 0.178 and 0.205 → 0.176 (lower in all ten), the rebuilt 128-tile map's
# 0.305 → 0.283 and 0.321 → 0.288 (lower in eight, two ties); `generate -n 24` takes 6.3-6.6 s
# instead of 2.0-2.4 s (2 % of the demo).
CANDIDATES_PER = 4
MAX_CANDIDATES = 256  # the choice holds every candidate's window counts at once
COMPARE_STEPS = 3  # sample steps `generate` compares by the screens each would keep
WINDOWS = "windows.npz"  # in the run folder: the training screens' window counts (train writes it)


@dataclass(frozen=True)
class GenerateConfig:
    run: str = "runs/default"  # trained run folder (reads checkpoints/last.pt)
    count: int = 16  # how many screens
    out: str = "data/generated"  # folder for gen-0000.png …
    seed: int = 0  # same seed, same screens
    device: str = "auto"  # auto picks CUDA when present
    batch_size: int = 16  # screens per forward pass: bounded memory for any -n
    checkpoint: str | None = None  # file under RUN/checkpoints, or a path; None: best.pt, else last.pt
    step: int | None = None  # use RUN/checkpoints/step-N.pt (a sample or checkpoint step)
    overwrite: bool = False  # replace screens of an earlier generate that -n would not rewrite
    # screens drawn to keep `count` of (the set closest to the training art); None: CANDIDATES_PER
    # times count up to count = MAX_CANDIDATES / CANDIDATES_PER, else count (keep every one)
    candidates: int | None = None
    # without step/checkpoint, while choosing: how many of the run's best sample steps draw and
    # choose, the closest written (`nesgan.gan.sample.generate`); 1: best.pt alone
    compare_steps: int = COMPARE_STEPS

    def __post_init__(self) -> None:
        if self.count < 1:
            raise NesganError(f"-n must be at least 1, got {self.count}")
        if self.candidates is not None and self.candidates < self.count:
            raise NesganError(f"--candidates must be at least -n ({self.count}), got {self.candidates}")
        if self.candidates is not None and self.candidates > max(self.count, MAX_CANDIDATES):
            raise NesganError(f"--candidates chooses from at most {MAX_CANDIDATES} screens, got "
                              f"{self.candidates}; generate in several folders, or pass --candidates {self.count} "
                              "to keep every screen drawn")
        if self.batch_size < 1:
            raise NesganError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.compare_steps < 1:
            raise NesganError(f"--compare-steps must be at least 1, got {self.compare_steps}")

    @property
    def drawn(self) -> int:
        """How many screens to draw: `candidates`, or its default."""
        if self.candidates is not None:
            return self.candidates
        return self.count * CANDIDATES_PER if self.count * CANDIDATES_PER <= MAX_CANDIDATES else self.count
