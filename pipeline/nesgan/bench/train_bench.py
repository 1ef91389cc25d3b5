"""Training speed: seconds per step of nesgan's loop vs a reference loop written like
pytorch/examples dcgan/main.py, measured side by side (interleaved rounds) in one run.

Reference: float32, contiguous tensors, a Dataset that decodes PNGs every step behind a
DataLoader (num_workers=0: the bench machine has 2 cores), separate real/fake D batches, D weight
gradients computed in G's step, no EMA. Same architecture, width 32, batch 16. Then nesgan's
pieces are switched on one at a time: its step on the same PNG loader (joint real+fake D batch,
frozen D in G's step, plus the EMA it pays for), in-memory uint8 screens, channels-last, bf16
autocast, compile; each shows as a ratio against the reference.
"""

from __future__ import annotations

import copy
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
from nesgan.gan.step import Nets, train_step
from nesgan.gan.train import cpu_has_fast_bf16

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
    nets = Nets(g=g, d=d, ema=ema, opt_g=torch.optim.Adam(g.parameters(), 2e-4, betas=(0.5, 0.999)),
                opt_d=torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999)),
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


def run(out: Path, quick: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    n_screens = 32 if quick else 64
    paths = write_fake_screens(out / "screens", n_screens, seed=0)
    screens = torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]))
    variants: dict[str, Callable[[], Callable[[], None]]] = {
        "reference": lambda: reference_step_fn(paths),
        "nesgan_step_png_loader": lambda: nesgan_step_fn(paths, screens, in_memory=False,
                                                          channels_last=False, bf16=False),
        "+in_memory": lambda: nesgan_step_fn(paths, screens, in_memory=True,
                                             channels_last=False, bf16=False),
        "+channels_last": lambda: nesgan_step_fn(paths, screens, in_memory=True,
                                                 channels_last=True, bf16=False),
        "+bf16": lambda: nesgan_step_fn(paths, screens, in_memory=True,
                                        channels_last=True, bf16=True),
        "in_memory+bf16_contiguous": lambda: nesgan_step_fn(paths, screens, in_memory=True,
                                                            channels_last=False, bf16=True),
    }
    if not quick:
        variants["+compile(channels_last,fp32)"] = lambda: nesgan_step_fn(
            paths, screens, in_memory=True, channels_last=True, bf16=False, compile=True)
    rounds, steps_per_round = (2, 2) if quick else (4, 3)
    fns, setup_s = {}, {}
    for name, make in variants.items():
        t0 = time.perf_counter()
        fns[name] = make()
        fns[name]()  # warm-up step (compile happens here)
        fns[name]()
        setup_s[name] = round(time.perf_counter() - t0, 1)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):  # interleaved, so load from other processes hits every variant
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(steps_per_round):
                fn()
            times[name].append((time.perf_counter() - t0) / steps_per_round)
    # The fastest round is the least disturbed by other processes on a shared machine.
    sec = {name: min(v) for name, v in times.items()}
    med = {name: statistics.median(v) for name, v in times.items()}
    ref = sec["reference"]
    figures: dict[str, object] = {
        "width": WIDTH, "batch": BATCH, "threads": torch.get_num_threads(),
        "cpu_fast_bf16": cpu_has_fast_bf16(),
        "reference_s_per_step": round(ref, 3),
        "speedup_vs_reference": {name: round(ref / s, 2) for name, s in sec.items()},
        "s_per_step": {name: round(s, 3) for name, s in sec.items()},
        "speedup_vs_reference_median_rounds": {name: round(med["reference"] / s, 2) for name, s in med.items()},
        "warmup_s": setup_s,
    }
    default = "+bf16" if cpu_has_fast_bf16() else "+channels_last"
    figures["nesgan_default"] = default
    figures["nesgan_default_speedup"] = round(ref / sec[default], 2)
    return figures
