"""The training loop: exact resume, DDP under torchrun, checkpoints.

The step itself (D, then G, then EMA) is `nesgan.gan.step.train_step`; what a run shows its user
(sample grids, SWD and quality numbers, metrics.jsonl, metrics.png) is `nesgan.gan.monitor`.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from nesgan.errors import NesganError
from nesgan.files import write_json
from nesgan.gan import augment
from nesgan.gan.checkpoint import load_checkpoint, restore, save_checkpoint, training_state
from nesgan.gan.config import SIZE, WINDOWS, Launch, TrainConfig, check_resumable
from nesgan.gan.data import Streams, load_screens, nes_indices, on_palette, to_float
from nesgan.gan.interrupt import GracefulStop
from nesgan.gan.model import CELL_HALVES, CELL_WHOLE, build_models
from nesgan.gan.monitor import Monitor
from nesgan.gan.sample import resolve_device
from nesgan.gan.snapshots import (
    MIN_DIVERSITY,
    best_step,
    describe_steps,
    keep_best,
    keep_sample_step,
    lost_variety,
)
from nesgan.gan.step import Nets, StepOut, adam, train_step

RUN_ARTIFACTS = ("config.json", "checkpoints", "samples", "metrics.jsonl", "metrics.png", WINDOWS)


@dataclass(frozen=True)
class TrainResult:
    run: Path
    step: int  # steps completed in total
    steps_this_call: int
    seconds: float
    swd: float | None  # last measured SWD (mean over pyramid levels, ×1e3)
    precision: str
    world_size: int
    best: tuple[int, float] | None = None  # (step, divergence) of checkpoints/best.pt
    lost_variety: tuple[int, ...] = ()  # sample steps whose samples lost their variety (a collapse)

    def summary(self) -> str:
        """The line `nesgan train` ends with (the CLI adds the thread count)."""
        if self.steps_this_call == 0:
            return (f"{self.run} is already at step {self.step} = --steps; --steps is the total to "
                    f"reach, so pass a larger one (e.g. --steps {2 * self.step}) to train more")
        swd = "n/a" if self.swd is None else f"{self.swd:.2f}"
        best = ("" if self.best is None else f"; checkpoints/best.pt is step {self.best[0]}, the sample step "
                f"of lowest tile-pattern divergence ({self.best[1]:.3f}) with varied samples (generate "
                f"compares it with the next best by the screens each would keep)")
        lost = ("" if not self.lost_variety else
                f"; warning: G's samples lost their variety (under {MIN_DIVERSITY} of the training "
                f"screens') at steps {describe_steps(list(self.lost_variety))}, the last included: it "
                "draws too few kinds of screen, and training again with another --seed may do better")
        return (f"trained {self.steps_this_call} steps (now at {self.step}) in {self.seconds:.0f} s, "
                f"{self.precision}, {self.world_size} process(es); SWD {swd}{best}{lost}; run in {self.run}")


def cpu_has_fast_bf16() -> bool:
    """bf16 convolutions are fast on CPUs with AMX tiles (amx_bf16) or AVX-512 BF16 dot
    products (avx512_bf16: measured 2–2.5× over fp32 on the AMD EPYC bench machine, see
    `nesgan.bench.train_bench`); without either oneDNN emulates bf16 and it is slower."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, glibc's malloc.h


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse rather than hand it back to the kernel.

    A training step frees and reallocates the same activation buffers (megabytes each) every
    step. By default glibc serves blocks that large with fresh mmaps, so each step page-faults
    its activations in again: measured at width 32, batch 16, 13–19k minor faults and 27–48 ms
    of kernel time per step (the fp32 reference loop: 117k faults, a quarter of its step).
    With both thresholds raised a step faults 0 times. The cost: the process keeps its peak heap
    until it exits, which a training run does anyway. Returns False where this is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError):
        return False
    # mallopt takes a C int: 1 GiB fits, larger values would wrap.
    return bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30) and mallopt(_M_MMAP_THRESHOLD, 1 << 30))


def pick_autocast(device: torch.device, requested: str) -> torch.dtype | None:
    """bf16 autocast where the hardware runs it fast (decided at run time), else fp32 (None)."""
    if requested == "fp32":
        return None
    if requested == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_fast_bf16() else None


def is_oom(e: BaseException) -> bool:
    text = str(e).lower()
    return isinstance(e, (MemoryError, torch.OutOfMemoryError)) or any(
        s in text for s in ("not enough memory", "out of memory", "failed to allocate",
                            "can't allocate memory", "cannot allocate memory"))


class _Dist:
    """Rank/world from torchrun's environment; a no-op when run as one process."""

    def __init__(self, device: str):
        launch = Launch.from_env()
        self.world, self.rank, self.local_rank = launch.world, launch.rank, launch.local_rank
        self.device = resolve_device(device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        self.started = False
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.started = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.started:
            dist.destroy_process_group()


def prepare_run_folder(run: Path, resume: bool, overwrite: bool, main: bool) -> None:
    if resume and overwrite:
        raise NesganError("--resume and --overwrite contradict each other; pick one")
    if run.exists() and not run.is_dir():
        raise NesganError(f"--run {run} is a file; pick a folder")
    if resume:
        return
    if run.exists() and any(run.iterdir()):
        if not overwrite:
            raise NesganError(f"run folder {run} is not empty; pass --resume to continue it or "
                              "--overwrite to start over")
        if main:
            _remove_run_artifacts(run)


def _remove_run_artifacts(run: Path) -> None:
    """Only what nesgan writes; anything else the user put in the run folder stays."""
    for name in RUN_ARTIFACTS:
        p = run / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False) -> TrainResult:
    """Train (or, with `resume`, continue) the run in `config.run`; returns a summary."""
    env = _Dist(config.device)
    keep_freed_memory()
    run = Path(config.run)
    try:
        if config.batch_size % env.world:
            raise NesganError(f"--batch-size {config.batch_size} does not split evenly over "
                              f"{env.world} processes; use a multiple of {env.world}")
        prepare_run_folder(run, resume, overwrite, env.main)  # a fresh run starts with none of ours
        try:
            return _train(config, env, resume)
        except Exception as e:
            if not resume and env.main and not (run / "checkpoints" / "last.pt").exists():
                _remove_run_artifacts(run)  # nothing resumable: let a retry start clean
            if isinstance(e, RuntimeError) and is_oom(e):
                raise NesganError(f"out of memory at --batch-size {config.batch_size} and --width "
                                  f"{config.width}; lower --batch-size (or --width)") from None
            raise
    finally:
        env.close()


def _train(cfg: TrainConfig, env: _Dist, resume: bool) -> TrainResult:
    run, device = Path(cfg.run), env.device
    last = run / "checkpoints" / "last.pt"
    state = _resume_state(cfg, last) if resume and last.exists() else None
    screens = _load_screens(cfg)  # (N, 224, 224, 3) uint8: --data on the NES palette
    if device.type == "cuda":  # fixed 224×224 shapes: cuDNN times its kernels once, then reuses
        torch.backends.cudnn.benchmark = True
    autocast_dtype = pick_autocast(device, cfg.precision)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format

    nets, streams = _build(cfg, screens, cfg.batch_size // env.world, autocast_dtype)
    start = restore(state, nets, streams, last, device) if state is not None else 0
    _place(nets, device, fmt)
    _wrap(nets, env, cfg.compile)
    monitor = None
    if env.main:
        run.mkdir(parents=True, exist_ok=True)
        write_json(run / "config.json", cfg.to_dict())
        monitor = Monitor(cfg, screens, start)
        keep_best(run, monitor.rows)  # a killed run may have pointed best.pt past its last checkpoint
    env.barrier()
    t_start = time.perf_counter()
    try:
        step = _loop(cfg, env, nets, streams, screens, start, fmt, monitor)
    finally:
        if monitor is not None:
            monitor.close()
    env.barrier()
    return TrainResult(run=run, step=step, steps_this_call=step - start,
                       seconds=time.perf_counter() - t_start,
                       swd=monitor.last_swd if monitor is not None else None,
                       precision="bf16" if autocast_dtype is not None else "fp32",
                       world_size=env.world, best=best_step(monitor.rows) if monitor is not None else None,
                       lost_variety=tuple(lost_variety(monitor.rows)) if monitor is not None else ())


def _resume_state(cfg: TrainConfig, last: Path) -> dict:
    state = load_checkpoint(last)
    check_resumable(TrainConfig.from_dict(state["config"]), cfg)
    if cfg.steps < state["step"]:
        raise NesganError(f"--steps {cfg.steps} is below the run's {state['step']} completed "
                          "steps; raise --steps to continue")
    return state


def _load_screens(cfg: TrainConfig) -> torch.Tensor:
    try:
        screens_np, _names = load_screens(cfg.data)
    except MemoryError:
        raise NesganError(f"not enough memory to hold the screens of {cfg.data}; use fewer") from None
    # D compares G's screens with these: put them on the 54 colours G draws with (screenshots
    # from emulators with other RGB tables would otherwise differ from every G output in colour
    # alone). In place, a chunk at a time: the lookup needs 4 bytes per pixel.
    for i in range(0, len(screens_np), 256):
        screens_np[i:i + 256] = on_palette(screens_np[i:i + 256])
    return torch.from_numpy(screens_np)  # (N, 224, 224, 3) uint8, shared with numpy


def _build(cfg: TrainConfig, screens: torch.Tensor, local_batch: int,
           autocast_dtype: torch.dtype | None) -> tuple[Nets, Streams]:
    """Networks, optimizers and random streams, everything derived from the seed (on the CPU);
    `--arch patterns` also learns its pattern table from the screens (uint8 (N, 224, 224, 3))."""
    n_screens = screens.shape[0]
    torch.manual_seed(cfg.seed)
    # D's minibatch-std groups must not straddle the real and fake halves of its batch.
    g, d = build_models(cfg.width, cfg.z_dim, cfg.arch, group=math.gcd(4, local_batch),
                        pattern_context=cfg.pattern_context, seam_weight=cfg.seam_weight,
                        critic=cfg.arch == "patterns" and cfg.pattern_critic > 0,
                        table_size=cfg.pattern_table, critic_width=cfg.critic_width,
                        usage_weight=cfg.usage_weight)
    real_maps = None
    if cfg.arch == "patterns":  # before the EMA copy, which takes the table with it
        from nesgan.gan.table import learn_table, pattern_maps, slot_cells

        indices = nes_indices(screens.numpy())
        slots = slot_cells(indices)  # read once for the table and the screens' maps (0.8 s on the demo)
        table = learn_table(indices, cfg.pattern_table, slots=slots)
        g.head.set_table(table)
        if cfg.pattern_critic > 0 or cfg.usage_rows or cfg.cell_weight > 0:  # each real screen's picks
            maps = torch.from_numpy(pattern_maps(indices, table.patterns, slots=slots))
            real_maps = maps if cfg.pattern_critic > 0 else None
            if cfg.usage_rows:
                g.head.set_row_usage(maps)
            if cfg.cell_weight > 0:
                g.head.set_cell_usage(maps, cfg.cell_weight, CELL_WHOLE if cfg.whole_cells else CELL_HALVES)
    ema = copy.deepcopy(g).eval().requires_grad_(False)
    streams = Streams.seeded(cfg.seed, n_screens, cfg.grid ** 2, cfg.swd_images, cfg.z_dim)
    nets = Nets(g=g, d=d, ema=ema,
                opt_g=adam(g.parameters(), cfg.generator_lr, (cfg.beta1, cfg.beta2)),
                opt_d=adam(d.parameters(), cfg.lr, (cfg.beta1, cfg.beta2)),
                g_train=g, d_train=d, d_plain=d, autocast_dtype=autocast_dtype,
                ema_decay=cfg.ema_decay, critic_weight=cfg.pattern_critic, real_maps=real_maps)
    return nets, streams


def _place(nets: Nets, device: torch.device, fmt: torch.memory_format) -> None:
    for m in (nets.g, nets.d, nets.ema):
        m.to(device, memory_format=fmt)
    for opt in (nets.opt_g, nets.opt_d):  # optimizer state follows its parameters' device
        for s in opt.state.values():
            for k, v in s.items():
                if isinstance(v, torch.Tensor) and k != "step":
                    s[k] = v.to(device)


def _wrap(nets: Nets, env: _Dist, compile: bool) -> None:
    """DDP (under torchrun) and torch.compile wrappers for the training calls; the plain
    modules stay what is saved, and G's step goes through D without DDP's gradient sync."""
    if env.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [env.device.index] if env.device.type == "cuda" else None
        nets.g_train, nets.d_train, nets.ddp = DDP(nets.g, device_ids=ids), DDP(nets.d, device_ids=ids), True
    if compile:
        nets.g_train, nets.d_train = torch.compile(nets.g_train), torch.compile(nets.d_train)
        nets.d_plain = torch.compile(nets.d)


def _loop(cfg: TrainConfig, env: _Dist, nets: Nets, streams: Streams, screens: torch.Tensor,
          start: int, fmt: torch.memory_format, monitor: Monitor | None) -> int:
    """Steps from `start` to `cfg.steps`: metrics rows every log_every, samples and quality
    every sample_every, checkpoints every checkpoint_every (and all three at the end)."""
    device, local_b = env.device, cfg.batch_size // env.world
    lo, hi = env.rank * local_b, (env.rank + 1) * local_b
    step_seconds, imgs_since = 0.0, 0  # training time only (not sampling or checkpoints)
    bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", disable=not env.main,
               dynamic_ncols=True)
    step = start
    stop = GracefulStop(enabled=env.world == 1)  # Ctrl-C/SIGTERM: this step, a checkpoint, out
    try:
        while step < cfg.steps:
            t_step = time.perf_counter()
            idx = streams.sampler.next(cfg.batch_size)[lo:hi]  # same global order on every rank
            real = to_float(screens[idx]).to(device, memory_format=fmt)  # (b, 3, 224, 224)
            z = torch.randn(cfg.batch_size, cfg.z_dim, generator=streams.noise)[lo:hi].to(device)
            aug = (None if cfg.augment == "none"  # drawn after z from the same stream: resumable
                   else augment.draw_step(cfg.batch_size, SIZE, streams.noise).part(lo, hi))
            maps = None if nets.real_maps is None else nets.real_maps[idx].to(device)
            out = train_step(nets, real, z, step, aug, maps)
            step += 1
            imgs_since += cfg.batch_size
            if env.main:
                loss_d = (out.loss_d_real + out.loss_d_fake).item()  # .item() syncs: time is honest on CUDA
            step_seconds += time.perf_counter() - t_step
            bar.update(1)
            at_end = step == cfg.steps
            sampled = step % cfg.sample_every == 0 or at_end
            logged = _mean_losses(out, env) if step % cfg.log_every == 0 or sampled else None
            if monitor is None:
                continue
            bar.set_postfix(D=f"{loss_d:.3f}", G=f"{out.loss_g.item():.3f}")
            if logged is not None:
                monitor.log({
                    "step": step, "epoch": streams.sampler.epoch,
                    "loss_d": round(logged[0], 5),
                    "loss_g": round(logged[1], 5),
                    "d_x": round(logged[2], 5),
                    "d_g_z": round(logged[3], 5),
                    "images_per_s": round(imgs_since / max(step_seconds, 1e-9), 2),
                    **(monitor.sample(step, nets.ema, streams, device) if sampled
                       else {"swd": None, "swd_levels": None}),
                    "precision": "bf16" if nets.autocast_dtype is not None else "fp32",
                    "world_size": env.world,
                })
                step_seconds, imgs_since = 0.0, 0
            checkpointed = step % cfg.checkpoint_every == 0 or at_end or stop.requested is not None
            if sampled:  # the EMA generator of every sample step, for `generate --step`
                keep_sample_step(cfg.run, step, cfg.to_dict(), nets.ema, checkpointed)
            if checkpointed:
                ckpt = Path(cfg.run) / "checkpoints"
                save_checkpoint(training_state(step, cfg.to_dict(), nets, streams, env.world),
                                ckpt / "last.pt", also=ckpt / f"step-{step:06d}.pt")
            if sampled:  # after this step's checkpoint exists
                keep_best(cfg.run, monitor.rows)
            stop.check(cfg.run, step)
    finally:
        stop.restore()
        bar.close()
    return step


def _mean_losses(out: StepOut, env: _Dist) -> list[float]:
    """[loss_d, loss_g, D(x), D(G(z))] averaged over every process's batch (all ranks call this)."""
    logged = torch.stack([out.loss_d_real + out.loss_d_fake, out.loss_g,
                          torch.sigmoid(out.out_real.float()).mean(),
                          torch.sigmoid(out.out_fake.float()).mean()]).float()
    if env.world > 1:
        dist.all_reduce(logged)
        logged /= env.world
    return logged.tolist()
