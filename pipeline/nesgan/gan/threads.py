"""How many CPU threads torch computes with: the cores this process may use, less the ones busy.

torch starts one compute thread per core of the machine. Every convolution is split among
them and waits for the last one, so a thread that shares its core with another busy process
holds all the others up at every step: measured in `make bench` (train_bench, "busy core"),
one busy core of two costs many times the speed. So the default here is:

1. the cores this process may run on (`os.sched_getaffinity`: taskset, cpusets, containers),
   capped by a cgroup CPU quota when there is one (`cpu.max`, e.g. `docker --cpus 2`);
2. less the cores other processes keep busy, measured from /proc/stat over a quarter of a
   second (this process's own time subtracted), rounded to the nearest core;
3. at least 1; under torchrun, shared among the processes on this machine.

`--threads N` sets it by hand; the choice is printed either way.
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SECONDS = 0.25  # how long the busy cores are measured before training starts


@dataclass(frozen=True)
class ThreadChoice:
    threads: int
    allowed: int  # cores this process may use (affinity, cgroup quota)
    busy: float | None  # cores other processes kept busy while measured (None: not measured)
    requested: bool = False  # --threads given

    def describe(self) -> str:
        if self.requested:
            return f"threads: {self.threads} (--threads; {self.allowed} cores allowed)"
        busy = "" if self.busy is None else f", {self.busy:.1f} busy with other work"
        return (f"threads: {self.threads} ({self.allowed} cores allowed{busy}; "
                "--threads N to choose)")


def allowed_cpus() -> list[int]:
    """The CPU numbers this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return list(range(os.cpu_count() or 1))


def cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """Cores a cgroup v2 `cpu.max` quota allows (None: no quota, or no cgroup v2)."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def _cpu_times(cpus: list[int]) -> dict[int, tuple[int, int]] | None:
    """cpu number -> (busy jiffies, total jiffies) from /proc/stat."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    want, out = set(cpus), {}
    for line in lines:
        name, *values = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in want:
            v = [int(x) for x in values[:8]]
            idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
            out[int(name[3:])] = (sum(v) - idle, sum(v))
    return out or None


def busy_cores(cpus: list[int], seconds: float = SAMPLE_SECONDS) -> float | None:
    """Cores' worth of time other processes used on `cpus` over `seconds` (None: unknown)."""
    before = _cpu_times(cpus)
    own_before = resource.getrusage(resource.RUSAGE_SELF)
    time.sleep(seconds)
    after = _cpu_times(cpus)
    own_after = resource.getrusage(resource.RUSAGE_SELF)
    if before is None or after is None:
        return None
    busy = sum(after[c][0] - before[c][0] for c in after if c in before)
    total = sum(after[c][1] - before[c][1] for c in after if c in before)
    if total <= 0:
        return None
    own = (own_after.ru_utime + own_after.ru_stime) - (own_before.ru_utime + own_before.ru_stime)
    cores = len(after) * busy / total - own / seconds
    return max(0.0, cores)


def choose_threads(requested: int | None = None, processes: int = 1,
                   seconds: float = SAMPLE_SECONDS) -> ThreadChoice:
    """The thread count for torch (see the module doc); `processes` share this machine's cores."""
    cpus = allowed_cpus()
    allowed = len(cpus)
    quota = cgroup_quota()
    if quota is not None:
        allowed = max(1, min(allowed, math.ceil(quota)))
    if requested is not None:
        return ThreadChoice(requested, allowed, None, requested=True)
    busy = busy_cores(cpus, seconds) if allowed > 1 else None
    free = allowed - (busy or 0.0)
    threads = max(1, min(allowed, math.floor(free + 0.5)) // max(1, processes))
    return ThreadChoice(threads, allowed, busy)


def apply_threads(choice: ThreadChoice) -> None:
    import torch

    torch.set_num_threads(choice.threads)
