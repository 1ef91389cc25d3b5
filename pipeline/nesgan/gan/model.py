"""DCGAN at 224×224 (Radford et al., 2015): generator, discriminator, init, weight EMA."""

from __future__ import annotations

import torch
from torch import nn


class Generator(nn.Module):
    """z (B, z_dim) → screen (B, 3, 224, 224) in [-1, 1]: a 7×7 seed doubled five times."""

    def __init__(self, width: int = 64, z_dim: int = 100):
        super().__init__()
        w = width
        self.z_dim = z_dim

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)]

        self.net = nn.Sequential(
            # input (B, z, 1, 1)
            nn.ConvTranspose2d(z_dim, 8 * w, 7, 1, 0, bias=False), nn.BatchNorm2d(8 * w), nn.ReLU(True),
            # (B, 8W, 7, 7)
            *up(8 * w, 8 * w),  # (B, 8W, 14, 14)
            *up(8 * w, 4 * w),  # (B, 4W, 28, 28)
            *up(4 * w, 2 * w),  # (B, 2W, 56, 56)
            *up(2 * w, w),  # (B, W, 112, 112)
            nn.ConvTranspose2d(w, 3, 4, 2, 1, bias=False),  # (B, 3, 224, 224)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], self.z_dim, 1, 1))  # (B, 3, 224, 224)


class Discriminator(nn.Module):
    """screen (B, 3, 224, 224) → one real/fake logit (B,); mirrors the generator."""

    def __init__(self, width: int = 64):
        super().__init__()
        w = width

        # momentum=1.0: D's running statistics are those of its last training batch (real and
        # fake together). Nothing evaluates D on its own; the generator's step runs D in eval
        # mode so that fakes are normalised with that mixed batch's statistics.
        def down(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout, momentum=1.0),
                    nn.LeakyReLU(0.2, True)]

        self.net = nn.Sequential(
            # input (B, 3, 224, 224); no BatchNorm on the first layer (Radford et al.)
            nn.Conv2d(3, w, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),  # (B, W, 112, 112)
            *down(w, 2 * w),  # (B, 2W, 56, 56)
            *down(2 * w, 4 * w),  # (B, 4W, 28, 28)
            *down(4 * w, 8 * w),  # (B, 8W, 14, 14)
            *down(8 * w, 8 * w),  # (B, 8W, 7, 7)
            nn.Conv2d(8 * w, 1, 7, 1, 0, bias=False),  # (B, 1, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()  # (B,)


def dcgan_init(m: nn.Module) -> None:
    """Radford et al.: conv weights ~ N(0, 0.02); BatchNorm scale ~ N(1, 0.02), shift 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def build_models(width: int, z_dim: int) -> tuple[Generator, Discriminator]:
    """Both networks with DCGAN init, drawing from torch's global RNG (seed it first)."""
    g, d = Generator(width, z_dim), Discriminator(width)
    g.apply(dcgan_init)
    d.apply(dcgan_init)
    return g, d


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema ← decay·ema + (1-decay)·model for parameters and float buffers (BatchNorm running
    stats); integer buffers (num_batches_tracked) are copied. Kept in float32."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        if e.dtype.is_floating_point:
            e.lerp_(b, 1.0 - decay)
        else:
            e.copy_(b)


def ema_decay_at(step: int, decay: float) -> float:
    """Warm-up so short runs are not dominated by the initial weights (TF's num_updates rule)."""
    return min(decay, (1.0 + step) / (10.0 + step))
