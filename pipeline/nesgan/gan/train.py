"""The DCGAN training loop: exact resume, sample grids + SWD, metrics, DDP under torchrun.

The step itself (D, then G, then EMA) is `nesgan.gan.step.train_step`.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from nesgan.errors import NesganError
from nesgan.files import JsonlAppender, atomic_write_bytes, read_jsonl, write_json, write_jsonl
from nesgan.gan import swd
from nesgan.gan.checkpoint import load_checkpoint, load_weights, save_checkpoint
from nesgan.gan.config import TrainConfig, check_resumable
from nesgan.gan.data import EpochSampler, load_screens, to_float, to_uint8
from nesgan.gan.interrupt import GracefulStop
from nesgan.gan.model import build_models
from nesgan.gan.sample import grid_image, render, resolve_device
from nesgan.gan.snapshots import keep_sample_step
from nesgan.gan.step import Nets, adam, train_step
from nesgan.images import encode_png

RUN_ARTIFACTS = ("config.json", "checkpoints", "samples", "metrics.jsonl")


@dataclass(frozen=True)
class TrainResult:
    run: Path
    step: int  # steps completed in total
    steps_this_call: int
    seconds: float
    swd: float | None  # last measured SWD (mean over pyramid levels, ×1e3)
    precision: str
    world_size: int


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
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
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


def _save_grid(path_step: Path, latest: Path, screens: torch.Tensor, cols: int) -> None:
    data = encode_png(grid_image(to_uint8(screens), cols))
    atomic_write_bytes(path_step, data)
    atomic_write_bytes(latest, data)


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
    state = load_checkpoint(last) if resume and last.exists() else None
    if state is not None:
        check_resumable(TrainConfig.from_dict(state["config"]), cfg)
        if cfg.steps < state["step"]:
            raise NesganError(f"--steps {cfg.steps} is below the run's {state['step']} completed "
                              "steps; raise --steps to continue")
    try:
        screens_np, _names = load_screens(cfg.data)
    except MemoryError:
        raise NesganError(f"not enough memory to hold the screens of {cfg.data}; use fewer") from None
    screens = torch.from_numpy(screens_np)  # (N, 224, 224, 3) uint8, shared with numpy
    n = screens.shape[0]
    local_b = cfg.batch_size // env.world
    if device.type == "cuda":  # fixed 224×224 shapes: cuDNN times its kernels once, then reuses
        torch.backends.cudnn.benchmark = True
    autocast_dtype = pick_autocast(device, cfg.precision)
    precision = "bf16" if autocast_dtype is not None else "fp32"
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format

    # 1. Everything random derives from the seed; each stream has its own generator.
    torch.manual_seed(cfg.seed)
    g, d = build_models(cfg.width, cfg.z_dim)
    ema = copy.deepcopy(g).eval().requires_grad_(False)
    sampler = EpochSampler(n, cfg.seed)
    noise_gen = torch.Generator().manual_seed(cfg.seed + 1)
    fixed_noise = torch.randn(cfg.grid ** 2, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 2))
    swd_noise = torch.randn(cfg.swd_images, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 3))
    opt_g = adam(g.parameters(), cfg.generator_lr, (cfg.beta1, cfg.beta2))
    opt_d = adam(d.parameters(), cfg.lr, (cfg.beta1, cfg.beta2))
    start = 0
    if state is not None:  # 2. Exact resume: weights, optimizers, data order, noise, RNG.
        load_weights(g, state["generator"], "generator", last)
        load_weights(d, state["discriminator"], "discriminator", last)
        load_weights(ema, state["ema"], "EMA generator", last)
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        sampler.load_state_dict(state["data"])
        noise_gen.set_state(state["noise"])
        torch.set_rng_state(state["rng"]["torch"])
        if device.type == "cuda" and state["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        fixed_noise, swd_noise, start = state["fixed_noise"], state["swd_noise"], state["step"]
    g.to(device, memory_format=fmt)
    d.to(device, memory_format=fmt)
    ema.to(device, memory_format=fmt)
    for opt in (opt_g, opt_d):  # optimizer state follows its parameters' device
        for s in opt.state.values():
            for k, v in s.items():
                if isinstance(v, torch.Tensor) and k != "step":
                    s[k] = v.to(device)

    g_train, d_train = g, d
    if env.world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        g_train, d_train = DDP(g, device_ids=ids), DDP(d, device_ids=ids)
    if cfg.compile:
        g_train, d_train = torch.compile(g_train), torch.compile(d_train)
    d_plain = torch.compile(d) if cfg.compile else d  # G's step goes through D without DDP sync

    real_desc = None
    if env.main:
        run.mkdir(parents=True, exist_ok=True)
        write_json(run / "config.json", cfg.to_dict())
        metrics_path = run / "metrics.jsonl"
        kept = [r for r in read_jsonl(metrics_path) if r.get("step", 0) <= start]
        write_jsonl(metrics_path, kept)  # drop rows a killed run logged after its checkpoint
        swd_idx = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 4))[:cfg.swd_images]
        real_desc = swd.descriptors(to_float(screens[swd_idx]), seed=cfg.seed)
    env.barrier()

    nets = Nets(g=g, d=d, ema=ema, opt_g=opt_g, opt_d=opt_d, g_train=g_train, d_train=d_train,
                d_plain=d_plain, autocast_dtype=autocast_dtype, ema_decay=cfg.ema_decay,
                ddp=env.world > 1)
    lo, hi = env.rank * local_b, (env.rank + 1) * local_b
    last_swd, t_start = None, time.perf_counter()
    step_seconds, imgs_since = 0.0, 0  # training time only (not sampling or checkpoints)
    metrics = JsonlAppender(run / "metrics.jsonl") if env.main else None
    bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step", disable=not env.main,
               dynamic_ncols=True)
    step = start
    stop = GracefulStop(enabled=env.world == 1)  # Ctrl-C/SIGTERM: this step, a checkpoint, out
    try:
        while step < cfg.steps:
            t_step = time.perf_counter()
            idx = sampler.next(cfg.batch_size)[lo:hi]  # same global order on every rank
            real = to_float(screens[idx]).to(device, memory_format=fmt)  # (b, 3, 224, 224)
            z = torch.randn(cfg.batch_size, cfg.z_dim, generator=noise_gen)[lo:hi].to(device)
            out = train_step(nets, real, z, step)
            step += 1
            imgs_since += cfg.batch_size
            if env.main:
                loss_d = (out.loss_d_real + out.loss_d_fake).item()  # .item() syncs: time is honest on CUDA
            step_seconds += time.perf_counter() - t_step
            bar.update(1)
            logged = None  # metrics rows: means over every process's batch (all ranks take part)
            if step % cfg.log_every == 0 or step % cfg.sample_every == 0 or step == cfg.steps:
                logged = torch.stack([out.loss_d_real + out.loss_d_fake, out.loss_g,
                                      torch.sigmoid(out.out_real.float()).mean(),
                                      torch.sigmoid(out.out_fake.float()).mean()]).float()
                if env.world > 1:
                    dist.all_reduce(logged)
                    logged /= env.world
                logged = logged.tolist()
            if not env.main:
                continue
            bar.set_postfix(D=f"{loss_d:.3f}", G=f"{out.loss_g.item():.3f}")

            row_swd = None
            if step % cfg.sample_every == 0 or step == cfg.steps:
                screens_ema = render(ema, fixed_noise.to(device))
                _save_grid(run / "samples" / f"step-{step:06d}.png", run / "samples" / "latest.png",
                           screens_ema, cfg.grid)
                fake_desc = swd.descriptors(render(ema, swd_noise.to(device)), seed=cfg.seed)
                levels = swd.swd(real_desc, fake_desc, seed=cfg.seed)
                row_swd = last_swd = sum(levels) / len(levels)
                keep_sample_step(run, step, cfg.to_dict(), ema, step % cfg.checkpoint_every == 0
                                 or step == cfg.steps or stop.requested is not None)
            if logged is not None:
                metrics.append({
                    "step": step, "epoch": sampler.epoch,
                    "loss_d": round(logged[0], 5),
                    "loss_g": round(logged[1], 5),
                    "d_x": round(logged[2], 5),
                    "d_g_z": round(logged[3], 5),
                    "images_per_s": round(imgs_since / max(step_seconds, 1e-9), 2),
                    "swd": None if row_swd is None else round(row_swd, 3),
                    "swd_levels": None if row_swd is None else [round(v, 3) for v in levels],
                    "precision": precision, "world_size": env.world,
                })
                step_seconds, imgs_since = 0.0, 0
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stop.requested is not None:
                ckpt = run / "checkpoints"
                save_checkpoint({
                    "step": step, "config": cfg.to_dict(),
                    "generator": g.state_dict(), "discriminator": d.state_dict(),
                    "ema": ema.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                    "data": sampler.state_dict(), "noise": noise_gen.get_state(),
                    "rng": {"torch": torch.get_rng_state(),
                            "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []},
                    "fixed_noise": fixed_noise.cpu(), "swd_noise": swd_noise.cpu(),
                    "world_size": env.world,
                }, ckpt / "last.pt", also=ckpt / f"step-{step:06d}.pt")
            stop.check(run, step)
    finally:
        stop.restore()
        bar.close()
        if metrics is not None:
            metrics.close()
    env.barrier()
    return TrainResult(run=run, step=step, steps_this_call=step - start,
                       seconds=time.perf_counter() - t_start, swd=last_swd, precision=precision,
                       world_size=env.world)
