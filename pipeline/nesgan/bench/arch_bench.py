"""Generator architectures side by side (issues 11, 21): `--arch nes` (the default), `--arch
patterns` (a pattern table learned from the training art), `--arch upsample` and `--arch dcgan`
(the paper's transposed convolutions), on the embedded museum of `nesgan demo`.

Each architecture trains the `tiny` preset in its own `nesgan train` process, same data, same
seed, same number of steps; all run at the same time with one thread each, so load from
other processes on a shared machine falls on both alike and images/s are comparable as a ratio.
Figures per architecture, from the last sample step's metrics row (the EMA generator's fixed set
of `--swd-images` screens, quantized to the NES palette): SWD, orphan-pixel rate, distinct-tile
share, colours per 16×16 cell, diversity, mode coverage, invented patterns and tile-pattern
divergence (`nesgan.patterns`) — each beside the training screens' own value — and training
images/s. The sample grids are copied to samples-ARCH.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from nesgan.files import read_jsonl
from nesgan.gan.config import ARCH_NAMES, PRESETS
from nesgan.gan.snapshots import best_step

QUICK_STEPS = 200  # --quick: a smoke run (the numbers say little this early)
GAMES, SCREENS_PER_GAME, SEED = 12, 16, 0  # the museum of `nesgan demo` (its DemoConfig)
FIELDS = ("swd", "orphan", "tile_share", "colours_per_cell", "diversity", "coverage",
          "invented", "divergence")  # the last two: nesgan.patterns (issue 21)


def _museum_screens(out: Path) -> Path:
    """The demo's museum (same size and seed as `nesgan demo`), scraped and cropped."""
    from nesgan.museum.server import serve
    from nesgan.museum.site import Museum
    from nesgan.scrape.crawl import ScrapeConfig, scrape

    data = out / "data"
    if not (data / "screens" / "manifest.jsonl").exists():
        museum = Museum(games=GAMES, screens_per_game=SCREENS_PER_GAME, seed=SEED)
        with serve(museum) as site:
            scrape(ScrapeConfig(url=site.url, out=data, delay=0.0))
    return data / "screens"


def _train_all(screens: Path, out: Path, steps: int) -> None:
    """All trainings at once; each one's output goes to train-ARCH.log (a pipe nobody reads
    while waiting on the other process would fill up and stall it)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs, logs = {}, {}
    for arch in ARCH_NAMES:
        run = out / "runs" / arch
        shutil.rmtree(run, ignore_errors=True)
        cmd = [sys.executable, "-m", "nesgan", "train", "--data", str(screens), "--run", str(run),
               "--preset", "tiny", "--arch", arch, "--seed", "0", "--steps", str(steps),
               "--device", "cpu", "--threads", "1"]
        if steps < PRESETS["tiny"]["sample_every"]:
            cmd += ["--sample-every", str(steps)]
        logs[arch] = out / f"train-{arch}.log"
        with open(logs[arch], "wb") as log:
            procs[arch] = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    for arch, p in procs.items():
        if p.wait():
            tail = logs[arch].read_text(errors="replace").strip()[-400:]
            raise RuntimeError(f"arch bench: training {arch} failed: {tail}")


def _figures(run: Path, batch: int) -> dict:
    rows = read_jsonl(run / "metrics.jsonl")
    last = [r for r in rows if r.get("swd") is not None][-1]
    # images/s over the whole run: each row covers the steps since the previous row
    images = seconds = 0.0
    prev = 0
    for r in rows:
        n = (r["step"] - prev) * batch
        images += n
        seconds += n / r["images_per_s"]
        prev = r["step"]
    best = best_step(rows)  # the step `generate` draws from (checkpoints/best.pt)
    at_best = next((r for r in rows if best is not None and r["step"] == best[0] and r.get("swd") is not None), last)
    return {"step": last["step"], "images_per_s": round(images / seconds, 2),
            **{k: last.get(k) for k in FIELDS},
            **{f"{k}_train": last.get(f"{k}_train") for k in FIELDS[1:]},
            "best_step": at_best["step"], "at_best_step": {k: at_best.get(k) for k in FIELDS}}


def run(out: Path, quick: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    screens = _museum_screens(out)
    steps = QUICK_STEPS if quick else PRESETS["tiny"]["steps"]
    _train_all(screens, out, steps)
    figures = {}
    for arch in ARCH_NAMES:
        run_dir = out / "runs" / arch
        figures[arch] = _figures(run_dir, PRESETS["tiny"]["batch_size"])
        shutil.copyfile(run_dir / "samples" / "latest.png", out / f"samples-{arch}.png")
    old = figures["dcgan"]
    return {
        "steps": steps, "threads_each": 1, "archs": figures,
        "orphan_vs_training": {a: round(f["orphan"] / max(f["orphan_train"], 1e-9), 1)
                               for a, f in figures.items()},
        "images_per_s_over_dcgan": {a: round(f["images_per_s"] / old["images_per_s"], 2)
                                    for a, f in figures.items()},
        "grids": [str(out / f"samples-{a}.png") for a in ARCH_NAMES],
    }
