"""Screens in memory as uint8 (N, 224, 224, 3), batches in [-1, 1], a resumable seeded order,
and the run's other random streams."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nesgan.errors import NesganError
from nesgan.gan.config import SIZE


def load_screens(folder: str | Path) -> tuple[np.ndarray, list[str]]:
    """uint8 (N, 224, 224, 3) screens and their names: the `ok` crops of the folder's manifest
    (every *.png without one), loaded by the crop stage's own reader, never resampled."""
    from nesgan.crop.load import load_screens as load_crops

    return load_crops(Path(folder))


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 224, 224, 3) → float32 (B, 3, 224, 224) in [-1, 1].

    The permute is a view, so the result is channels-last in memory without a copy.
    """
    return batch.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)  # (B, 3, 224, 224)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] → uint8 (B, H, W, 3)."""
    x = images.detach().float().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)


def nes_indices(screens: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) RGB → uint8 (...) NES colour indices of nesgan's default palette, the
    perceptually nearest (OKLab) as `nesgan quantize` picks them (its lookup table)."""
    from nesgan.colour.lut import load_lut
    from nesgan.colour.palette import Palette

    rgb = np.asarray(screens, dtype=np.uint8).astype(np.uint32)
    return load_lut(Palette.builtin())[(rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]]


def on_palette(screens: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) RGB → the same with every pixel its nearest default-palette NES colour
    (screenshots from emulators with other palettes land on the one G draws with)."""
    from nesgan.colour.palette import Palette

    return Palette.builtin().to_rgb(nes_indices(screens))


class EpochSampler:
    """Shuffled indices epoch after epoch from a seeded torch Generator. Its whole state
    (generator state, current permutation, position, epoch) is checkpointed for exact resume."""

    def __init__(self, n: int, seed: int):
        self.n = n
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.perm = torch.randperm(n, generator=self.gen)
        self.pos = 0

    def next(self, batch: int) -> torch.Tensor:
        """The next `batch` indices (int64); crosses epoch boundaries, so any batch ≤ N·k works."""
        parts, need = [], batch
        while need:
            if self.pos == self.n:
                self.epoch += 1
                self.perm = torch.randperm(self.n, generator=self.gen)
                self.pos = 0
            take = min(need, self.n - self.pos)
            parts.append(self.perm[self.pos:self.pos + take])
            self.pos += take
            need -= take
        return torch.cat(parts)

    def state_dict(self) -> dict:
        return {"n": self.n, "gen": self.gen.get_state(), "epoch": self.epoch,
                "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, s: dict) -> None:
        if s["n"] != self.n:
            raise NesganError(f"the run was trained on {s['n']} screens but the data folder now "
                              f"has {self.n}; point --data at the run's screens or --overwrite")
        self.gen.set_state(s["gen"])
        self.epoch, self.perm, self.pos = s["epoch"], s["perm"].clone(), s["pos"]


@dataclass
class Streams:
    """The run's random streams besides torch's global RNG, each seeded from the run's seed:
    the data order, the training noise, and the fixed noise of the sample grid and of the
    quality-number set. All of it is checkpointed (`checkpoint.training_state`)."""

    sampler: EpochSampler
    noise: torch.Generator  # z of every training step
    fixed_noise: torch.Tensor  # (grid², z_dim): the same screens in every sample grid
    swd_noise: torch.Tensor  # (swd_images, z_dim): the generated set SWD and quality measure

    @classmethod
    def seeded(cls, seed: int, screens: int, grid_images: int, swd_images: int, z_dim: int) -> Streams:
        return cls(
            sampler=EpochSampler(screens, seed),
            noise=torch.Generator().manual_seed(seed + 1),
            fixed_noise=torch.randn(grid_images, z_dim, generator=torch.Generator().manual_seed(seed + 2)),
            swd_noise=torch.randn(swd_images, z_dim, generator=torch.Generator().manual_seed(seed + 3)))


def fake_screens(n: int, seed: int = 0) -> np.ndarray:
    """NES-like stand-in screens for tests, benches and dry runs: uint8 (n, 224, 224, 3).

    Each screen draws 4 colours from the NES palette and tiles its 14×14 grid of 16×16 cells
    from a vocabulary of 6 random 2-bit metatiles, the way the PPU builds a background.
    """
    from nesgan.colour.palette import EMITTABLE, Palette

    rng = np.random.default_rng(seed)
    rgb = np.asarray(Palette.builtin().to_rgb(np.asarray(sorted(EMITTABLE))), dtype=np.uint8)
    out = np.empty((n, SIZE, SIZE, 3), dtype=np.uint8)
    cells = SIZE // 16
    for i in range(n):
        colours = rgb.reshape(-1, 3)[rng.choice(len(rgb.reshape(-1, 3)), 4, replace=False)]
        vocab = rng.integers(0, 4, (6, 16, 16))  # (6, 16, 16) 2-bit metatiles
        layout = rng.integers(0, 6, (cells, cells))  # (14, 14) metatile ids
        idx = vocab[layout].transpose(0, 2, 1, 3).reshape(SIZE, SIZE)  # (224, 224)
        out[i] = colours[idx]
    return out


def write_fake_screens(folder: str | Path, n: int, seed: int = 0) -> list[Path]:
    """`fake_screens` saved as screen-0000.png … in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, rgb in enumerate(fake_screens(n, seed)):
        p = folder / f"screen-{i:04d}.png"
        Image.fromarray(rgb, "RGB").save(p)
        paths.append(p)
    return paths
