"""Differentiable augmentation of everything D sees (Zhao et al., "Differentiable Augmentation
for Data-Efficient GAN Training", 2020): real and generated screens alike are shifted and have a
square cut out, by the same random rules, before D judges them; G's gradient flows through.

With a few hundred training screens D otherwise learns them by heart within a few hundred steps
(its loss near 0.01 from there on), and G then gets little more than "not that" — measured here as
samples that all show one game's look. Only shifts by whole pixels and cut-outs, with what they
uncover filled with black (NES $0F), are used: both keep every pixel an NES colour (colour jitter, the paper's third
augmentation, would teach D that off-palette colours are real).

The random numbers come from the run's training-noise generator on the CPU (drawn right after
each step's z), so a resumed run augments exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

SHIFT = 1 / 8  # largest shift, as a share of the side (the paper's translation)
CUT = 1 / 2  # side of the cut-out square, as a share of the side (the paper's cutout)
NAMES = ("none", "shift-cut")


@dataclass(frozen=True)
class Draw:
    """One batch's augmentation parameters, (N,) int64 each."""

    dx: torch.Tensor
    dy: torch.Tensor
    cx: torch.Tensor  # cut-out square's left column (may start off the image: it is clipped)
    cy: torch.Tensor


def draw(n: int, size: int, gen: torch.Generator) -> Draw:
    """Parameters for n screens of side `size`, from `gen` (CPU)."""
    r, c = int(size * SHIFT), int(size * CUT)
    shifts = torch.randint(-r, r + 1, (2, n), generator=gen)
    cuts = torch.randint(-(c // 2), size - c // 2 + 1, (2, n), generator=gen)
    return Draw(shifts[0], shifts[1], cuts[0], cuts[1])


def apply(x: torch.Tensor, p: Draw) -> torch.Tensor:
    """(N, C, S, S) in [-1, 1] → the same shifted by (dx, dy) with the uncovered border filled
    with black (-1), then a square of side S·CUT at (cx, cy) set to black. Differentiable in x."""
    n, _, h, w = x.shape
    r, c = int(w * SHIFT), int(w * CUT)
    dev = x.device
    rows = torch.arange(h, device=dev)
    cols = torch.arange(w, device=dev)
    # gather indices into the zero-padded image: output (y, x) reads padded (y - dy + r, x - dx + r)
    yi = (rows[None, :] - p.dy.to(dev)[:, None] + r)  # (N, H)
    xi = (cols[None, :] - p.dx.to(dev)[:, None] + r)  # (N, W)
    padded = F.pad(x, (r, r, r, r), value=-1.0)
    idx = (yi[:, :, None] * (w + 2 * r) + xi[:, None, :]).reshape(n, 1, h * w).expand(n, x.shape[1], h * w)
    out = padded.reshape(n, x.shape[1], -1).gather(2, idx).view_as(x)
    inside_y = (rows[None, :] >= p.cy.to(dev)[:, None]) & (rows[None, :] < p.cy.to(dev)[:, None] + c)
    inside_x = (cols[None, :] >= p.cx.to(dev)[:, None]) & (cols[None, :] < p.cx.to(dev)[:, None] + c)
    keep = ~(inside_y[:, :, None] & inside_x[:, None, :])  # (N, H, W)
    return out.masked_fill(~keep[:, None], -1.0)


@dataclass(frozen=True)
class StepDraws:
    """One training step's augmentations: D's real and generated screens, and G's."""

    real: Draw
    fake: Draw
    gen: Draw

    def part(self, lo: int, hi: int) -> StepDraws:
        """This process's share of a global batch (DDP: ranks take their slice of every draw)."""
        def cut(d: Draw) -> Draw:
            return Draw(d.dx[lo:hi], d.dy[lo:hi], d.cx[lo:hi], d.cy[lo:hi])
        return StepDraws(cut(self.real), cut(self.fake), cut(self.gen))


def draw_step(batch: int, size: int, gen: torch.Generator) -> StepDraws:
    return StepDraws(draw(batch, size, gen), draw(batch, size, gen), draw(batch, size, gen))
