"""A busy core: training speed with one of two cores kept busy by another process, before and
after `nesgan train` chose its thread count (gan/threads.py), measured side by side in one run.

The bench restricts itself to two cores of those it may use (`os.sched_setaffinity`: the
2-core machine the issue was seen on) and trains the tiny preset's networks (width 8, batch 16,
fp32, in-memory screens) in this process. The busy core is a `while True: pass` subprocess
pinned to the second of the two. Rounds alternate, so load from elsewhere falls on all cases:

  idle, threads = 2 (torch's default on two cores: "before")      the reference
  busy, threads = 2                                               "before"
  busy, threads = choose_threads()  (measured with the busy loop running: "after")
  idle, threads = 1                                               what one core alone gives

Figures: the slowdown with the busy loop, before (2 threads) and after (the chosen count), each
against the faster of the two settings without it (on an idle machine, 2 threads; on a machine
other jobs already load, maybe 1: `other_load_on_them_before_cores` says how loaded it was); the
threads the chooser picked; the chooser's speedup under load (busy before / busy after); and
seconds per step of every case.
"""

from __future__ import annotations

import copy
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nesgan.gan.data import EpochSampler, to_float
from nesgan.gan.model import build_models
from nesgan.gan.step import Nets, adam, train_step
from nesgan.gan.threads import allowed_cpus, busy_cores, choose_threads

WIDTH, BATCH, Z = 8, 16, 100  # the tiny preset


def _step_fn():
    torch.manual_seed(0)
    g, d = build_models(WIDTH, Z)
    ema = copy.deepcopy(g).eval().requires_grad_(False)
    nets = Nets(g=g, d=d, ema=ema, opt_g=adam(g.parameters(), 1e-3, (0.5, 0.999)),
                opt_d=adam(d.parameters(), 2e-4, (0.5, 0.999)), g_train=g, d_train=d,
                d_plain=d, autocast_dtype=None)
    rng = np.random.default_rng(0)
    screens = torch.from_numpy(rng.integers(0, 256, (64, 224, 224, 3), dtype=np.uint8))
    sampler, count = EpochSampler(64, 0), [0]

    def step() -> None:
        train_step(nets, to_float(screens[sampler.next(BATCH)]), torch.randn(BATCH, Z), count[0])
        count[0] += 1

    return step


def _seconds_per_step(step, threads: int, steps: int) -> float:
    torch.set_num_threads(threads)
    step()  # settle the thread pool at this size
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def _busy_loop(cpu: int) -> subprocess.Popen:
    code = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


def run(out: Path, quick: bool) -> dict:
    cpus = allowed_cpus()
    if len(cpus) < 2 or not hasattr(os, "sched_setaffinity"):
        return {"skipped": f"needs 2 cores this process may use (has {len(cpus)})"}
    before_affinity, before_threads = os.sched_getaffinity(0), torch.get_num_threads()
    pair = cpus[:2]
    os.sched_setaffinity(0, set(pair))
    rounds, steps = (2, 3) if quick else (3, 6)
    other_load = busy_cores(pair, 1.0)  # cores' worth of other work before the bench starts
    times: dict[str, list[float]] = {"idle_2": [], "busy_2": [], "busy_chosen": [], "idle_1": []}
    chosen: list[int] = []
    try:
        step = _step_fn()
        for _ in range(rounds):
            times["idle_2"].append(_seconds_per_step(step, 2, steps))
            times["idle_1"].append(_seconds_per_step(step, 1, steps))
            busy = _busy_loop(pair[1])
            try:
                time.sleep(0.3)  # let the loop get going
                choice = choose_threads()
                chosen.append(choice.threads)
                times["busy_2"].append(_seconds_per_step(step, 2, steps))
                times["busy_chosen"].append(_seconds_per_step(step, choice.threads, steps))
            finally:
                busy.kill()
                busy.wait()
    finally:
        os.sched_setaffinity(0, before_affinity)
        torch.set_num_threads(before_threads)
    med = {k: statistics.median(v) for k, v in times.items()}
    idle = min(med["idle_2"], med["idle_1"])  # the fastest this machine went without the loop
    return {
        "cores_used": 2,
        "other_load_on_them_before_cores": None if other_load is None else round(other_load, 2),
        "threads_chosen_with_one_core_busy": chosen,
        "s_per_step": {k: round(v, 4) for k, v in med.items()},
        "slowdown_one_core_busy_before_threads_2": round(med["busy_2"] / idle, 2),
        "slowdown_one_core_busy_after_threads_chosen": round(med["busy_chosen"] / idle, 2),
        "speedup_of_the_choice_under_load": round(med["busy_2"] / med["busy_chosen"], 2),
        "idle_1_thread_vs_2": round(med["idle_1"] / med["idle_2"], 2),
    }
