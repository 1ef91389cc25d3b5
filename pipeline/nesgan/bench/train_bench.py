"""Training speed: seconds per step of nesgan's loop vs a reference loop written like
pytorch/examples dcgan/main.py, measured side by side (interleaved rounds) in one run.

Reference: float32, contiguous tensors, a Dataset that decodes PNGs every step behind a
DataLoader (num_workers=0: the bench machine has 2 cores), separate real/fake D batches, D weight
gradients computed in G's step, no EMA, glibc's default allocator. Same architecture, width 32,
batch 16. Then nesgan's parts are switched on one at a time, each shown as a ratio against the
reference: its step on the same PNG loader (joint real+fake D batch; G's step on the fakes alone
through a frozen D; fused Adam; plus the EMA it pays for), the allocator setting of `nesgan train`
(`keep_freed_memory`), in-memory uint8 screens, channels-last,
bf16 autocast, compile.

Every variant runs in its own process (allocator settings cannot be undone within one), started
one at a time and warmed up; then the parent asks each in turn for a few steps, round after round,
so load from other processes falls on all of them alike. Only one process computes at a time.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nesgan.gan.data import EpochSampler, to_float, write_fake_screens
from nesgan.gan.model import build_models
from nesgan.gan.step import Nets, adam, train_step
from nesgan.gan.train import cpu_has_fast_bf16, keep_freed_memory

WIDTH, BATCH, Z = 32, 16, 100  # the brief's comparison point


class PngDataset(torch.utils.data.Dataset):
    """Like torchvision ImageFolder + ToTensor + Normalize(0.5, 0.5): decodes every access."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with Image.open(self.paths[i]) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0  # (224, 224, 3)
        return (torch.from_numpy(a).permute(2, 0, 1).contiguous() - 0.5) / 0.5  # (3, 224, 224)


def _loader_batches(paths: list[Path]):
    loader = torch.utils.data.DataLoader(PngDataset(paths), batch_size=BATCH, shuffle=True,
                                         drop_last=True, num_workers=0)
    while True:
        yield from loader


def reference_step_fn(paths: list[Path]) -> Callable[[], None]:
    """pytorch/examples dcgan/main.py's loop body, verbatim in spirit."""
    torch.manual_seed(0)
    net_g, net_d = build_models(WIDTH, Z)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    batches = _loader_batches(paths)

    def step() -> None:
        real = next(batches)
        net_d.zero_grad()
        ones, zeros = torch.ones(BATCH), torch.zeros(BATCH)
        F.binary_cross_entropy_with_logits(net_d(real), ones).backward()
        fake = net_g(torch.randn(BATCH, Z, 1, 1))
        F.binary_cross_entropy_with_logits(net_d(fake.detach()), zeros).backward()
        opt_d.step()
        net_g.zero_grad()
        F.binary_cross_entropy_with_logits(net_d(fake), ones).backward()
        opt_g.step()

    return step


def nesgan_step_fn(paths: list[Path], screens: torch.Tensor, *, in_memory: bool,
                   channels_last: bool, bf16: bool, compile: bool = False) -> Callable[[], None]:
    torch.manual_seed(0)
    g, d = build_models(WIDTH, Z)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    g.to(memory_format=fmt)
    d.to(memory_format=fmt)
    ema = copy.deepcopy(g).eval().requires_grad_(False)
    g_train, d_train = (torch.compile(g), torch.compile(d)) if compile else (g, d)
    nets = Nets(g=g, d=d, ema=ema, opt_g=adam(g.parameters(), 2e-4, (0.5, 0.999)),
                opt_d=adam(d.parameters(), 2e-4, (0.5, 0.999)),
                g_train=g_train, d_train=d_train, d_plain=d_train,
                autocast_dtype=torch.bfloat16 if bf16 else None)
    sampler, batches = EpochSampler(screens.shape[0], 0), _loader_batches(paths)
    count = [0]

    def step() -> None:
        if in_memory:
            real = to_float(screens[sampler.next(BATCH)]).contiguous(memory_format=fmt)
        else:
            real = next(batches).contiguous(memory_format=fmt)
        train_step(nets, real, torch.randn(BATCH, Z), count[0])
        count[0] += 1

    return step


# name → (allocator, in_memory, channels_last, bf16, compile); None is the reference loop.
# Each row adds one part to the row above it.
VARIANTS: dict[str, tuple[bool, bool, bool, bool, bool] | None] = {
    "reference": None,
    "nesgan_step_png_loader": (False, False, False, False, False),
    "+allocator": (True, False, False, False, False),
    "+in_memory": (True, True, False, False, False),
    "+channels_last": (True, True, True, False, False),
    "+bf16": (True, True, True, True, False),
    "+compile": (True, True, True, True, True),
}


def _make_step(name: str, screens_dir: Path) -> Callable[[], None]:
    paths = sorted(screens_dir.glob("*.png"))
    spec = VARIANTS[name]
    if spec is None:
        return reference_step_fn(paths)
    allocator, in_memory, channels_last, bf16, compile = spec
    if allocator:
        keep_freed_memory()
    screens = torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]))
    return nesgan_step_fn(paths, screens, in_memory=in_memory, channels_last=channels_last,
                          bf16=bf16, compile=compile)


def _worker(name: str, screens_dir: Path, conn) -> None:
    """Child process: build one variant, warm it up, then run `k` steps per request and send
    back the seconds per step; exits on None."""
    try:
        t0 = time.perf_counter()
        step = _make_step(name, screens_dir)
        step()  # warm-up (compile happens here)
        step()
        conn.send(("ready", time.perf_counter() - t0))
        while (k := conn.recv()) is not None:
            t0 = time.perf_counter()
            for _ in range(k):
                step()
            conn.send(("time", (time.perf_counter() - t0) / k))
    except Exception as e:  # reported by the parent, which stops every worker
        conn.send(("error", f"{type(e).__name__}: {e}"))
    finally:
        conn.close()


def measure_isolated(names: list[str], screens_dir: Path, rounds: int,
                     steps_per_round: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Seconds per step of each variant, one process per variant, rounds interleaved.
    Returns (times per round, warm-up seconds)."""
    ctx = mp.get_context("spawn")  # a fresh interpreter: default allocator, no inherited state
    procs, conns, warmup = {}, {}, {}
    try:
        for name in names:  # started one at a time, so warm-ups do not compete
            parent, child = ctx.Pipe()
            procs[name] = ctx.Process(target=_worker, args=(name, screens_dir, child), daemon=True)
            procs[name].start()
            child.close()
            conns[name] = parent
            kind, value = parent.recv()
            if kind != "ready":
                raise RuntimeError(f"train bench variant {name} failed: {value}")
            warmup[name] = round(value, 1)
        times: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(rounds):
            for name in names:
                conns[name].send(steps_per_round)
                kind, value = conns[name].recv()
                if kind != "time":
                    raise RuntimeError(f"train bench variant {name} failed: {value}")
                times[name].append(value)
        return times, warmup
    finally:
        for conn in conns.values():
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for p in procs.values():
            p.join(timeout=30)
            if p.is_alive():
                p.kill()


def run(out: Path, quick: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    write_fake_screens(out / "screens", 32 if quick else 64, seed=0)
    names = [n for n in VARIANTS if not (quick and n == "+compile")]
    rounds, steps_per_round = (2, 2) if quick else (5, 3)
    times, warmup = measure_isolated(names, out / "screens", rounds, steps_per_round)
    # The fastest round is the least disturbed by other processes on a shared machine.
    sec = {name: min(v) for name, v in times.items()}
    med = {name: statistics.median(v) for name, v in times.items()}
    ref = sec["reference"]
    default = "+bf16" if cpu_has_fast_bf16() else "+channels_last"
    return {
        "width": WIDTH, "batch": BATCH, "threads": torch.get_num_threads(),
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "reference_s_per_step": round(ref, 3),
        "speedup_vs_reference": {name: round(ref / s, 2) for name, s in sec.items()},
        "s_per_step": {name: round(s, 3) for name, s in sec.items()},
        "speedup_vs_reference_median_rounds": {name: round(med["reference"] / s, 2)
                                               for name, s in med.items()},
        "warmup_s": warmup,
        "nesgan_default": default,
        "nesgan_default_speedup": round(ref / sec[default], 2),
    }
