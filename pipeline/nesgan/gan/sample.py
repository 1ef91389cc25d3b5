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
from nesgan.gan.snapshots import resolve_checkpoint
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
    set comes closest to the run's training screens are kept (in the order they were drawn)."""
    path = resolve_checkpoint(config.run, config.checkpoint, config.step)  # --step / --checkpoint
    state = load_checkpoint(path)
    try:
        train_cfg = TrainConfig.from_dict(state["config"])
        weights = state["ema"]
    except (KeyError, TypeError) as e:
        raise NesganError(f"{path} lacks {e} — not a complete nesgan checkpoint; retrain") from None
    device = resolve_device(config.device)
    g = Generator(train_cfg.width, train_cfg.z_dim, train_cfg.arch, train_cfg.pattern_table,
                  pattern_context=train_cfg.pattern_context)
    load_weights(g, weights, "generator", path)
    g.to(device).eval()
    drawn = config.drawn
    # one noise vector at a time, so screen i's noise is the same whatever -n and --candidates are
    # (torch fills one long draw in blocks of 16 values, and its tail differs with the length)
    rng = torch.Generator().manual_seed(config.seed)
    z = torch.stack([torch.randn(train_cfg.z_dim, generator=rng) for _ in range(drawn)])
    out = Path(config.out)
    _clear_earlier_screens(out, config)
    out.mkdir(parents=True, exist_ok=True)
    held, written = [], []  # with a choice to make, the drawn screens wait in memory (≤ 256)
    with tqdm(total=drawn, desc="generating", unit="screen", leave=False,
              disable=drawn < 64 or not os.isatty(2)) as bar:
        for i in range(0, drawn, config.batch_size):
            # NES colours only, whatever the architecture (a no-op where G draws them already)
            screens = on_palette(to_uint8(render(g, z[i:i + config.batch_size], config.batch_size)))
            if drawn > config.count:
                held.append(screens)
            else:
                written += _write_screens(out, screens, len(written))
            bar.update(len(screens))
    keep = np.arange(drawn)
    if held:
        drawings = np.concatenate(held)
        keep = _closest_to_training(drawings, config.count, Path(config.run), train_cfg)
        written = _write_screens(out, drawings[keep], 0)
    step = state.get("step")
    write_jsonl(out / MANIFEST, [  # last: provenance of every screen (index: its noise vector's)
        {"file": p.name, "status": "ok", "index": int(i), "drawn": drawn, "seed": config.seed,
         "run": str(config.run), "checkpoint": str(path), "step": step}
        for i, p in zip(keep, written, strict=True)])
    return written


def _write_screens(out: Path, screens: np.ndarray, first: int) -> list[Path]:
    """Each uint8 (H, W, 3) screen as out/gen-NNNN.png, numbered from `first`."""
    paths = [out / f"gen-{first + k:04d}.png" for k in range(len(screens))]
    for p, rgb in zip(paths, screens, strict=True):
        atomic_write_bytes(p, encode_png(rgb))
    return paths


def _closest_to_training(drawings: np.ndarray, count: int, run: Path, train_cfg: TrainConfig) -> np.ndarray:
    """Indices of the `count` drawn screens (M, 224, 224, 3) whose set comes closest to the run's
    training screens (`nesgan.patterns.Reference.closest_subset`): their window counts as the run
    kept them (RUN/windows.npz), else read from the training folder (runs from before the file);
    the first `count` where neither is there (said on stderr)."""
    from nesgan.crop.load import training_reference
    from nesgan.patterns import Reference

    kept = run / WINDOWS
    reference = Reference.load(kept) if kept.is_file() else training_reference(Path(train_cfg.data))
    if reference is None:
        print(f"nesgan: neither {kept} nor the run's training screens ({train_cfg.data}) are there, so "
              f"the first {count} of {len(drawings)} drawn are kept unchosen (--candidates {count} draws "
              "only those)", file=sys.stderr, flush=True)
        return np.arange(count)
    return reference.closest_subset(nes_indices(drawings), count)


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
