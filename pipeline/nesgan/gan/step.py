"""One DCGAN training step (pytorch/examples dcgan/main.py, Radford et al., 2015), shared by
`train()` and the benchmark:
  1. D: maximise log D(x) + log(1 - D(G(z))) on real and fake screens in one batch.
  2. G: maximise log D(G(z)) (the non-saturating loss) through a frozen D that normalises with
     step 1's batch statistics.
  3. EMA of G's weights and buffers, in float32; samples and SWD come from the EMA generator.
With `--arch patterns`' pattern critic, D judges each screen twice — its pixels, and the map of
the patterns G picked (the training screens' maps read once, `nesgan.gan.table.pattern_maps`) —
and both losses add up, the critic's times its weight, in D's step and in G's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nesgan.gan import augment
from nesgan.gan.model import ema_decay_at, ema_update


@dataclass
class Nets:
    """The networks and optimizers of a run, plus how to call them."""

    g: nn.Module  # generator (plain module: its weights are the ones saved)
    d: nn.Module  # discriminator (plain module)
    ema: nn.Module  # EMA copy of g, eval mode, float32
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g_train: nn.Module  # g as called for training (DDP and/or compiled wrapper, or g itself)
    d_train: nn.Module  # d likewise
    d_plain: nn.Module  # d without DDP (G's step needs no D gradient sync)
    autocast_dtype: torch.dtype | None = None  # bf16 autocast, or None for float32
    critic_weight: float = 0.0  # --arch patterns: weight of D's pattern critic (0: none)
    real_maps: torch.Tensor | None = None  # (N, 28, 28) int16: the training screens' pattern maps
    ema_decay: float = 0.999
    ddp: bool = False

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        device_type = next(self.g.parameters()).device.type
        return torch.autocast(device_type, dtype=self.autocast_dtype)


def adam(params, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam with the fused kernel: one pass over all tensors instead of a loop of small ops
    (4× faster than the default loop on the bench CPU, 2.3 vs 9.6 ms per step at width 32)."""
    return torch.optim.Adam(params, lr=lr, betas=betas, fused=True)


@dataclass
class StepOut:
    loss_d_real: torch.Tensor  # scalars, float32, still on the device (no sync forced)
    loss_d_fake: torch.Tensor
    loss_g: torch.Tensor
    out_real: torch.Tensor  # (b,) logits
    out_fake: torch.Tensor  # (b,) logits on G(z) before D's update


def _judge(logits: torch.Tensor, target: torch.Tensor, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, screen logits) of D's output: (b,) screen logits, or (b, 2) with the pattern critic's."""
    if logits.dim() == 1:
        return F.binary_cross_entropy_with_logits(logits.float(), target), logits
    return (F.binary_cross_entropy_with_logits(logits[:, 0].float(), target)
            + weight * F.binary_cross_entropy_with_logits(logits[:, 1].float(), target)), logits[:, 0]


def train_step(n: Nets, real: torch.Tensor, z: torch.Tensor, step: int,
               aug: augment.StepDraws | None = None, real_maps: torch.Tensor | None = None) -> StepOut:
    """real (b, 3, 224, 224) in [-1, 1], z (b, z_dim); `step` counts completed steps; `aug`:
    how D's inputs are shifted and cut this step (None: D sees the screens as they are)."""
    n.g_train.train()
    n.d_train.train()
    ones = torch.ones(real.shape[0], device=real.device)
    zeros = torch.zeros(real.shape[0], device=real.device)
    with n.autocast():
        fake = n.g_train(z)  # (b, 3, 224, 224)

    # Step 1: D on one batch of real and fake together. Shared BatchNorm statistics let D see
    # batch-wide differences (overall colour, contrast); with separate pure batches BatchNorm
    # normalises them away and, measured at small widths, G never leaves flat grey.
    b = real.shape[0]
    n.opt_d.zero_grad(set_to_none=True)
    with n.autocast():
        seen_real, seen_fake = real, fake.detach()
        if aug is not None:
            seen_real, seen_fake = augment.apply(real, aug.real), augment.apply(seen_fake, aug.fake)
        picked = getattr(getattr(n.g, "head", None), "picked", None) if real_maps is not None else None
        picks = None if picked is None else torch.cat([real_maps.to(picked[0].dtype), picked[0]])
        out = n.d_train(torch.cat([seen_real, seen_fake]), picks)  # (2b,) or (2b, 2) with the critic
    loss_d_real, out_real = _judge(out[:b], ones, n.critic_weight)  # float32 losses
    loss_d_fake, out_fake = _judge(out[b:], zeros, n.critic_weight)
    (loss_d_real + loss_d_fake).backward()
    n.opt_d.step()

    # Step 2: G through a frozen D on the fake screens alone, with D's BatchNorm in eval mode:
    # its running statistics are exactly step 1's real+fake batch statistics (momentum 1.0, see
    # Discriminator), so fakes are judged against the same mixed batch as in step 1 at half the
    # cost of running the real screens through D again. D's weight gradients are not computed.
    n.opt_g.zero_grad(set_to_none=True)
    n.d.requires_grad_(False)
    n.d.eval()
    with n.autocast():
        out_gen = n.d_plain(fake if aug is None else augment.apply(fake, aug.gen),
                            *(() if picked is None else picked))  # (b,) or (b, 2)
    loss_g, _ = _judge(out_gen, ones, n.critic_weight)
    prior = getattr(getattr(n.g, "head", None), "prior_loss", None)  # --arch patterns' seam and usage terms
    (loss_g if prior is None else loss_g + prior).backward()
    n.d.train()
    n.d.requires_grad_(True)
    n.opt_g.step()

    # Step 3: EMA of the generator.
    ema_update(n.ema, n.g, ema_decay_at(step, n.ema_decay))
    return StepOut(loss_d_real.detach(), loss_d_fake.detach(), loss_g.detach(),
                   out_real.detach(), out_fake.detach())
