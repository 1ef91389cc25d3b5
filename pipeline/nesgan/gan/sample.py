"""Sample grids during training and `generate()`: new screens from a run's EMA generator."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from nesgan.errors import NesganError
from nesgan.files import MANIFEST, atomic_write_bytes, write_jsonl
from nesgan.gan.checkpoint import load_checkpoint, load_weights
from nesgan.gan.config import WINDOWS, GenerateConfig, TrainConfig
from nesgan.gan.data import nes_indices, on_palette, to_uint8
from nesgan.gan.model import Generator
from nesgan.gan.snapshots import best_steps, resolve_checkpoint, step_path
from nesgan.images import encode_png


def grid_image(screens: np.ndarray, cols: int) -> np.ndarray:
    """uint8 (B, H, W, 3) → one (rows·H, cols·W, 3) image, screens side by side at 1:1
    (torchvision's make_grid without padding: nothing is resampled)."""
    from torchvision.utils import make_grid

    grid = make_grid(torch.from_numpy(screens).permute(0, 3, 1, 2), nrow=cols, padding=0)
    return grid.permute(1, 2, 0).numpy()  # (rows·H, cols·W, 3)


@torch.no_grad()
def render(generator: torch.nn.Module, z: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """Float32 screens (N, 3, 224, 224) from noise (N, z) in eval mode, `batch` at a time."""
    generator.eval()
    device = next(generator.parameters()).device
    return torch.cat([generator(z[i:i + batch].to(device)).float().cpu()
                      for i in range(0, z.shape[0], batch)])


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise NesganError("--device cuda but torch sees no CUDA GPU; use --device cpu or auto")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def generate(config: GenerateConfig) -> list[Path]:
    """Write `config.count` 224×224 RGB PNGs (gen-0000.png …) from the run's EMA generator,
    every pixel a colour of nesgan's default NES palette; the same seed gives the same screens.
    Where `config.drawn` is more than `count`, that many screens are drawn and the `count` whose
    set comes closest to the run's training screens are kept (in the order they were drawn).

    Without --step or --checkpoint, and with that choice to make, the run's `compare_steps`
    sample steps of lowest in-training divergence (`best_steps`: best.pt's first) each draw the
    same noise and choose their screens, and the step whose chosen screens come closest to the
    art is written (the first on a tie). Training ranks its steps by 64 samples as drawn;
    `generate` keeps a chosen 24 of 96, and which step gives the best of those is a different
    question: on the demo's run, best.pt's step 1,200 kept screens of divergence 0.117 and step
    800 0.112, rebuilt maps 0.114 and 0.102 (docs/generator-patterns.md, eleventh round)."""
    paths = _checkpoints(config)
    first = _load_generator(paths[0], config.device)  # a missing or broken checkpoint fails before --out is touched
    out = Path(config.out)
    _clear_earlier_screens(out, config)
    out.mkdir(parents=True, exist_ok=True)
    drawn, choosing = config.drawn, config.drawn > config.count
    reference = None
    chosen = None  # (divergence, path, step, drawings, kept indices) of the closest step so far
    compared: list[dict] = []
    for n, path in enumerate(paths):
        step, train_cfg, g = first if n == 0 else _load_generator(path, config.device)
        # one noise vector at a time, so screen i's noise is the same whatever -n and --candidates
        # are (torch fills one long draw in blocks of 16 values, and its tail differs with the length)
        rng = torch.Generator().manual_seed(config.seed)
        z = torch.stack([torch.randn(train_cfg.z_dim, generator=rng) for _ in range(drawn)])
        held, written = [], []  # with a choice to make, the drawn screens wait in memory (≤ 256)
        with tqdm(total=drawn, desc=f"generating (step {step})", unit="screen", leave=False,
                  disable=drawn < 64 or not os.isatty(2)) as bar:
            for i in range(0, drawn, config.batch_size):
                screens = _draw(g, z[i:i + config.batch_size], config.batch_size)
                if choosing:
                    held.append(screens)
                else:
                    written += _write_screens(out, screens, len(written))
                bar.update(len(screens))
        if not choosing:
            return _manifest(out, config, written, np.arange(drawn), path, step, compared)
        drawings = np.concatenate(held)
        if reference is None:
            reference = _reference(Path(config.run), train_cfg)
        if reference is None:
            print(f"nesgan: neither {Path(config.run) / WINDOWS} nor the run's training screens "
                  f"({train_cfg.data}) are there, so the first {config.count} of {drawn} drawn are kept "
                  f"unchosen (--candidates {config.count} draws only those)", file=sys.stderr, flush=True)
            keep = np.arange(config.count)
            return _manifest(out, config, _write_screens(out, drawings[keep], 0), keep, path, step, compared)
        indices = nes_indices(drawings)
        keep = reference.closest_subset(indices, config.count)
        divergence = reference.divergence(indices[keep])
        compared.append({"step": step, "divergence": round(divergence, 4)})
        if chosen is None or divergence < chosen[0]:
            chosen = (divergence, path, step, drawings, keep)
    assert chosen is not None
    _, path, step, drawings, keep = chosen
    return _manifest(out, config, _write_screens(out, drawings[keep], 0), keep, path, step,
                     compared if len(compared) > 1 else [])


def _checkpoints(config: GenerateConfig) -> list[Path]:
    """The checkpoints `generate` draws from: the one --step or --checkpoint names; else, where it
    chooses screens and the run kept its sample steps, its `compare_steps` best sample steps (the
    ones whose checkpoints are there); else best.pt, or last.pt."""
    one = [resolve_checkpoint(config.run, config.checkpoint, config.step)]
    if (config.step is not None or config.checkpoint is not None or config.drawn <= config.count
            or config.compare_steps < 2):
        return one
    from nesgan.files import read_jsonl

    metrics = Path(config.run) / "metrics.jsonl"
    try:
        rows = read_jsonl(metrics) if metrics.is_file() else []
    except (OSError, ValueError):
        rows = []  # an unreadable log: best.pt alone, as before
    steps = [p for s in best_steps(rows, config.compare_steps) if (p := step_path(config.run, s)).is_file()]
    return steps if len(steps) > 1 else one


def _load_generator(path: Path, device: str) -> tuple[int | None, TrainConfig, Generator]:
    """(step, the run's config, its EMA generator in eval mode on `device`) of a checkpoint."""
    state = load_checkpoint(path)
    try:
        train_cfg = TrainConfig.from_dict(state["config"])
        weights = state["ema"]
    except (KeyError, TypeError) as e:
        raise NesganError(f"{path} lacks {e} — not a complete nesgan checkpoint; retrain") from None
    g = Generator(train_cfg.width, train_cfg.z_dim, train_cfg.arch, train_cfg.pattern_table,
                  pattern_context=train_cfg.pattern_context)
    load_weights(g, weights, "generator", path)
    g.to(resolve_device(device)).eval()
    return state.get("step"), train_cfg, g


def _draw(g: torch.nn.Module, z: torch.Tensor, batch: int) -> np.ndarray:
    """uint8 (B, 224, 224, 3) screens in NES colours only, whatever the architecture (a no-op
    where G draws them already)."""
    return on_palette(to_uint8(render(g, z, batch)))


def _manifest(out: Path, config: GenerateConfig, written: list[Path], keep: np.ndarray, path: Path,
              step: int | None, compared: list[dict]) -> list[Path]:
    """manifest.jsonl, last: provenance of every screen (index: its noise vector's), and the
    steps compared with the divergence of each one's chosen screens, where several were."""
    write_jsonl(out / MANIFEST, [
        {"file": p.name, "status": "ok", "index": int(i), "drawn": config.drawn, "seed": config.seed,
         "run": str(config.run), "checkpoint": str(path), "step": step,
         **({"compared": compared} if compared else {})}
        for i, p in zip(keep, written, strict=True)])
    return written


def _write_screens(out: Path, screens: np.ndarray, first: int) -> list[Path]:
    """Each uint8 (H, W, 3) screen as out/gen-NNNN.png, numbered from `first`."""
    paths = [out / f"gen-{first + k:04d}.png" for k in range(len(screens))]
    for p, rgb in zip(paths, screens, strict=True):
        atomic_write_bytes(p, encode_png(rgb))
    return paths


def _reference(run: Path, train_cfg: TrainConfig):
    """The training screens' window counts `generate` chooses by: as the run kept them
    (RUN/windows.npz), else read from the training folder (runs from before the file); None
    where neither is there."""
    from nesgan.crop.load import training_reference
    from nesgan.patterns import Reference

    kept = run / WINDOWS
    return Reference.load(kept) if kept.is_file() else training_reference(Path(train_cfg.data))


def _clear_earlier_screens(out: Path, config: GenerateConfig) -> None:
    """Screens from an earlier generate that this one would not rewrite would be cut into tiles
    with the new ones; refuse them, or remove them with `overwrite`."""
    if not out.is_dir():
        return
    ours = {f"gen-{i:04d}.png" for i in range(config.count)}
    earlier = sorted(p for p in out.glob("gen-*.png") if p.is_file())
    stale = [p for p in earlier if p.name not in ours]
    if stale and not config.overwrite:
        raise NesganError(f"{out} already holds {len(stale)} screen(s) from an earlier generate "
                          f"that -n {config.count} would not replace ({stale[0].name} …); pass "
                          "--overwrite to replace the folder's screens, or pick another --out")
    if config.overwrite:
        for p in earlier:
            p.unlink()
        (out / MANIFEST).unlink(missing_ok=True)
