"""The GAN at 224×224: generators, discriminator, init, weight EMA.

Four architectures (`ARCHS`, chosen by `nesgan train --arch`):
- `dcgan`: Radford et al. (2015) — the generator doubles its resolution with stride-2
  transposed convolutions, whose uneven overlap paints a checkerboard over every screen
  (Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts", Distill 2016).
- `upsample`: nearest-neighbour resize then a 3×3 convolution at each doubling (Odena et al.'s
  fix), and D sees each group of screens' spread (`MinibatchStd`, Karras et al., 2018): with the
  resize alone every sample came to look alike (diversity 0.40 of the training screens'; with
  the spread 0.84–0.97 over the same run). Draws RGB, which the sample grids and `generate` snap
  to the nearest NES colours — where G's RGB sits between two colours, as speckle.
- `nes` (the default): upsample's trunk drawing the way the PPU does (`NesHead`): a backdrop and
  4 sub-palettes per screen, one sub-palette per 16×16 cell, one of its 4 colours per pixel, every
  choice a straight-through argmax, so every screen — in training too — is NES-legal. Its D is
  spectrally normalised (Miyato et al., 2018) instead of batch-normalised: with batch norm D won
  at once (loss ~0.01) and every sample took one palette; with spectral norm D's loss stayed
  near 0.2–0.5 and the samples spread over the training games' palettes.
- `patterns`: `nes`'s palette and attribute picks, but no pixel is drawn freely: per 8×8 quarter
  of a cell G picks one of 256 patterns of a table learned from the training art before
  training (`nesgan.gan.table`), so every screen is exactly a tile map over it (`PatternHead`).
  Invented 3×3 patterns (`nesgan.patterns`) fell from 45 % of cells to 2 % side by side with
  `nes` (tiny, museum, seed 0; docs/generator-patterns.md), and to 0 % once a cell's four
  patterns were picked together out of training (`nesgan.gan.decode`). Its D has a second judge
  beside the screen's, `PatternCritic`, that sees only which pattern G put where.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nesgan.gan.decode import MAX_KNOWN, SeamDecoder


@dataclass(frozen=True)
class Arch:
    """What distinguishes the architectures; the widths and depths are shared."""

    upsample: str  # "transposed": stride-2 transposed convs; "nearest": resize, then 3×3 conv
    mbstd: bool  # D appends the minibatch standard deviation before its last layer
    head: str = "rgb"  # "rgb": tanh RGB; "nes": NES-legal colours (see NesHead)
    d_norm: str = "batch"  # D's normalisation: "batch" (Radford et al.) or "spectral" (Miyato et al.)


# Keyed by `nesgan.gan.config.ARCH_NAMES` (the names --arch offers).
ARCHS: dict[str, Arch] = {
    "upsample": Arch(upsample="nearest", mbstd=True),
    "dcgan": Arch(upsample="transposed", mbstd=False),  # the paper's network
    "nes": Arch(upsample="nearest", mbstd=True, head="nes", d_norm="spectral"),
    "patterns": Arch(upsample="nearest", mbstd=True, head="patterns", d_norm="spectral"),
}

SUBPALETTES, SLOTS = 4, 4  # NES background: 4 sub-palettes of backdrop + 3 colours
NES_COLOURS = 54  # the distinct colours the PPU emits (nesgan.colour.palette.EMITTABLE)
CELL = 16  # one attribute area: all its pixels draw from one sub-palette
PATTERN = 8  # one PPU pattern: `patterns` draws each cell as 2×2 of them


def palette_colours() -> torch.Tensor:
    """(54, 3) float32 in [-1, 1]: the emittable NES colours of nesgan's default palette."""
    from nesgan.colour.palette import EMITTABLE, Palette

    rgb = Palette.builtin().rgb[EMITTABLE].astype("float32")
    return torch.from_numpy(rgb / 127.5 - 1.0)


class NesHead(nn.Module):
    """Draws a screen the way the PPU does: per screen a backdrop and 4 sub-palettes of 3 colours
    (13 picks among the 54 NES colours, from the seed's pooled features), per 16×16 cell one
    sub-palette (from the 14×14 map: one feature vector per cell), per pixel one of its 4 slots
    (backdrop + 3, from a 4-channel last layer). Every pick is an argmax, in training too (with
    the softmax's gradient, `_pick`), so every screen is NES-legal as drawn: ≤ 4 colours per
    cell, ≤ 13 per screen, one backdrop and 4 sub-palettes."""

    def __init__(self, seed_ch: int, cell_ch: int, pixel_ch: int):
        super().__init__()
        self.palette = nn.Linear(seed_ch, (1 + SUBPALETTES * (SLOTS - 1)) * NES_COLOURS)
        self.attribute = nn.Conv2d(cell_ch, SUBPALETTES, 1)
        self.slot = ResizeConv(pixel_ch, SLOTS)
        self.register_buffer("colours", palette_colours(), persistent=False)

    def _pick(self, logits: torch.Tensor, dim: int) -> torch.Tensor:
        """One-hot of the argmax along `dim`; in training with the softmax's gradient
        (straight-through), so D always sees exact NES colours and G still learns every choice.
        Measured against the alternatives (tiny, demo museum): D fed the softmax mixture itself
        wins at once (loss 0.002 by step 100: no real screen has in-between colours); a
        Gumbel-noised pick drew flat one-colour screens by step 200."""
        logits = logits.float()
        hard = F.one_hot(logits.argmax(dim), logits.shape[dim]).movedim(-1, dim).to(logits.dtype)
        if not self.training:
            return hard
        soft = torch.softmax(logits, dim=dim)
        return hard + (soft - soft.detach())

    def forward(self, seed: torch.Tensor, cells: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        return self.paint(seed, cells, self._pick(self.slot(pixels), 1))  # slots (B, 4, 224, 224)

    def colour_logits(self, seed: torch.Tensor, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The palette picks' logits (B, 13, 54) and the sub-palette picks' (B, 4, 14, 14)."""
        b = seed.shape[0]
        return self.palette(seed.float().mean(dim=(2, 3))).view(b, -1, NES_COLOURS), self.attribute(cells)

    def paint(self, seed: torch.Tensor, cells: torch.Tensor, slot: torch.Tensor,
              logits: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """The screen (B, 3, H, W) from one-hot slots (B, 4, H, W): each cell's slots in the
        colours of its picked sub-palette, slot 0 the screen's backdrop. `logits`: this batch's
        `colour_logits`, where the caller has them already."""
        b = seed.shape[0]
        picks, att_logits = self.colour_logits(seed, cells) if logits is None else logits
        self.palette_logits = picks if self.training else None  # for PatternHead's colour prior
        pal = self._pick(picks, 2) @ self.colours  # (B, 13, 3)
        back, subs = pal[:, :1], pal[:, 1:].view(b, SUBPALETTES, SLOTS - 1, 3)
        att = self._pick(att_logits, 1)  # (B, 4, 14, 14)
        cell_colours = torch.einsum("bjyx,bjsc->bscyx", att, subs)  # (B, 3, 3, 14, 14): slots 1-3
        back = back.view(b, 1, 3, 1, 1).expand(b, 1, 3, *cell_colours.shape[-2:])
        cell_colours = torch.cat([back, cell_colours], 1)  # (B, 4, 3, 14, 14)
        h, w = slot.shape[-2:]
        slot = slot.view(b, SLOTS, h // CELL, CELL, w // CELL, CELL)
        out = torch.einsum("bsyixj,bscyx->bcyixj", slot, cell_colours)
        return out.reshape(b, 3, h, w)


CELL_PRIOR_SIZE = 512  # the training art's commonest cells (or halves) the cell prior counts (museum: 98 % of cells)
# Which quarters of a cell (0 top left, 1 top right, 2 bottom left, 3 bottom right) the cell prior
# counts together: its four halves (the default), or the whole cell (`--whole-cells`)
CELL_HALVES = ((0, 1), (2, 3), (0, 2), (1, 3))
CELL_WHOLE = ((0, 1, 2, 3),)


class PatternHead(NesHead):
    """`NesHead` drawing from a pattern table instead of pixel by pixel, as the PPU does: per 8×8
    quarter of a cell one of the table's K patterns of 2-bit slots (from the 28×28 map: one
    feature vector per pattern), straight-through like every other pick, so every screen is
    exactly a map over the table. The table (`nesgan.gan.table`, learned from the training art)
    and its seam and usage priors are buffers: a checkpoint carries them. Out of training the
    four quarters of each cell are picked together (`nesgan.gan.decode`, from the training art's
    3×3 partitions in the `known` buffer) so that no 3×3 window is one the art lacks.

    `prior_loss` (set by each training forward) holds the terms G adds to D's verdict:
    - seams: −log of the chance that two patterns meeting inside a cell may meet (the table's
      seam tables, read with the soft picks), so that new 16×16 combinations stay drawings,
      times `seam_weight` (new runs 3: docs/generator-patterns.md);
    - usage: KL(training usage ‖ the batch's mean soft picks), so that the screen's proportions
      (sky, ground, walls) follow the training art's and no pattern lies dead; with `row_usage`
      (new runs) row by row of quarters, so that they follow it where they sit on the screen;
      times `usage_weight` (new runs 10: docs/generator-patterns.md, seventh round);
    - cells (`set_cell_usage`, `_cell_prior`): KL of the training art's shares of its commonest
      halves of a cell (or whole cells) from the batch's, so that G draws the quarters of the
      art's drawings together, times `cell_weight` (new runs 1: eighth round; runs from before 0);
    - colours: the same KL for the backdrop and sub-palette picks against the training screens'
      backdrops and colours (side by side at step 1,600: SWD 84 vs 137, diversity 1.07 vs 0.77
      of the training screens', invented patterns 1.6 % vs 3.9 % of cells)."""

    def __init__(self, seed_ch: int, cell_ch: int, pattern_ch: int, size: int, context: int = 1,
                 seam_weight: float = 1.0, usage_weight: float = 1.0):
        super().__init__(seed_ch, cell_ch, 1)
        del self.slot
        self.pattern = nn.Conv2d(pattern_ch, size, context, padding=context // 2)  # context 3: neighbours too
        self.seam_weight = seam_weight
        self.usage_weight = usage_weight
        self.register_buffer("table", torch.zeros(size, PATTERN, PATTERN, dtype=torch.int64))
        self.register_buffer("usage", torch.full((size,), 1.0 / size))
        self.register_buffer("seam_h", torch.ones(size, size))
        self.register_buffer("seam_v", torch.ones(size, size))
        self.register_buffer("backdrops", torch.full((NES_COLOURS,), 1.0 / NES_COLOURS))
        self.register_buffer("colour_usage", torch.full((NES_COLOURS,), 1.0 / NES_COLOURS))
        # the training art's 3×3 window partitions (keys, -1 padded): out of training each cell's
        # quarters are picked jointly so that every window is one of them (`nesgan.gan.decode`)
        self.register_buffer("known", torch.full((MAX_KNOWN,), -1, dtype=torch.int64))
        # (28, K) the training screens' pattern usage row by row (`set_row_usage`); not saved: the
        # training run derives it from its screens again, and generation has no use for it
        self.register_buffer("row_usage", None, persistent=False)
        # the cell prior's targets (`set_cell_usage`), one row per part counted (a half, or the
        # whole cell): (parts, M, quarters) the commonest as rows of the (4·K, cells) layout
        # `_cell_prior` reads, (parts, M + 1) their shares, the rest last, (parts, M) which are
        # real (a part with fewer than M kinds is padded); not saved, as row_usage
        self.register_buffer("cell_rows", None, persistent=False)
        self.register_buffer("cell_usage", None, persistent=False)
        self.register_buffer("cell_mask", None, persistent=False)
        self.cell_weight = 0.0
        self.prior_loss: torch.Tensor | None = None
        self.picked: tuple[torch.Tensor, torch.Tensor] | None = None  # training: (index, soft) picks
        self._decoder: SeamDecoder | None = None

    def set_table(self, table) -> None:
        """Install a learned `nesgan.gan.table.Table` (numpy arrays)."""
        for name, v in (("table", table.patterns), ("usage", table.usage), ("seam_h", table.seam_h),
                        ("seam_v", table.seam_v), ("backdrops", table.backdrops),
                        ("colour_usage", table.colours)):
            getattr(self, name).copy_(torch.as_tensor(v))
        self.known.fill_(-1)
        self.known[: len(table.known)] = torch.from_numpy(table.known.astype("int64"))
        self._decoder = None

    def set_row_usage(self, maps: torch.Tensor) -> None:
        """The usage prior read row by row from the training screens' pattern maps (N, 28, 28):
        each row of 8×8 quarters' share of every table pattern (see `_priors`)."""
        k = self.table.shape[0]
        rows = maps.long().permute(1, 0, 2).reshape(maps.shape[1], -1)  # (28, N·28)
        counts = torch.zeros(rows.shape[0], k).scatter_add_(1, rows, torch.ones(rows.shape))
        self.row_usage = counts / counts.sum(1, keepdim=True)

    def set_cell_usage(self, maps: torch.Tensor, weight: float, parts=CELL_HALVES,
                       size: int = CELL_PRIOR_SIZE) -> None:
        """The cell prior, weighing `weight`, from the training screens' pattern maps (N, 28, 28):
        for each part of a cell (`CELL_HALVES` or `CELL_WHOLE`: which quarters together), the
        shares of its `size` commonest kinds, and of the rest (see `_cell_prior`)."""
        n, h, w = maps.shape
        k = self.table.shape[0]
        quads = maps.long().view(n, h // 2, 2, w // 2, 2).permute(0, 1, 3, 2, 4).reshape(-1, 4)
        rows = torch.zeros(len(parts), size, len(parts[0]), dtype=torch.long)
        usage = torch.zeros(len(parts), size + 1)
        mask = torch.zeros(len(parts), size, dtype=torch.bool)
        for j, part in enumerate(parts):
            kinds, counts = torch.unique(quads[:, list(part)], dim=0, return_counts=True)
            order = torch.argsort(counts, descending=True, stable=True)[:size]
            top = counts[order].double() / len(quads)
            m = len(order)
            rows[j, :m] = kinds[order] + torch.tensor(part) * k  # quarter q's pattern p: row q·K + p
            usage[j, :m] = top.float()
            usage[j, -1] = float((1.0 - top.sum()).clamp_min(0.0))
            mask[j, :m] = True
        self.cell_rows, self.cell_usage, self.cell_mask = rows, usage, mask
        self.cell_weight = weight

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a run trained before the known partitions were kept decodes as it always did
        state_dict.setdefault(prefix + "known", torch.full((MAX_KNOWN,), -1, dtype=torch.int64))
        self._decoder = None
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _picks(self, logits: torch.Tensor, colour_logits: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """(B, 28, 28) pattern picks: the plain argmax in training, the joint picks of
        `nesgan.gan.decode` out of it (when the run carries its known partitions), read in the
        colours `paint` will pick from `colour_logits`."""
        if self.training or int(self.known[0]) < 0:
            return logits.argmax(-1)
        if self._decoder is None:
            self._decoder = SeamDecoder(self.table, self.known)
        pal_logits, att_logits = colour_logits
        b, _, h, w = att_logits.shape
        pal = pal_logits.argmax(-1)  # (B, 13)
        att = att_logits.argmax(1).reshape(b, -1, 1)  # (B, cells, 1)
        subs = pal[:, 1:].view(b, SUBPALETTES, SLOTS - 1)
        colours = torch.cat([pal[:, :1, None].expand(b, h * w, 1),
                             torch.gather(subs, 1, att.expand(-1, -1, SLOTS - 1))], -1)
        return self._decoder.picks(logits, colours.view(b, h, w, SLOTS))

    def forward(self, seed: torch.Tensor, cells: torch.Tensor, quarters: torch.Tensor) -> torch.Tensor:
        logits = self.pattern(quarters).float().permute(0, 2, 3, 1)  # (B, 28, 28, K): NHWC, a view
        colour_logits = self.colour_logits(seed, cells)
        index = self._picks(logits, colour_logits)  # (B, 28, 28): the picks
        soft = torch.softmax(logits, -1) if self.training else None  # the picks' gradient
        shapes = F.one_hot(self.table, SLOTS).permute(0, 3, 1, 2).flatten(1).float()  # (K, 4·8·8)
        slot = DrawPatterns.apply(soft, index, shapes)  # (B, 4, 224, 224)
        out = self.paint(seed, cells, slot, colour_logits)
        if self.training:
            self.prior_loss = self._priors(soft, logits) + self._colour_prior(self.palette_logits)
            self.picked = (index, soft)  # for D's pattern critic
        return out

    def _colour_prior(self, logits: torch.Tensor) -> torch.Tensor:
        """KL of the training screens' backdrops and other colours (`nesgan.gan.table.colour_usage`)
        from the batch's mean soft palette picks (B, 13, 54)."""
        p = torch.softmax(logits.float(), -1)
        return _kl(self.backdrops, p[:, 0].mean(0)) + _kl(self.colour_usage, p[:, 1:].mean((0, 1)))

    def _priors(self, p: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        """Seam, usage and cell terms of the soft picks p (B, 28, 28, K), the softmax of `logits`
        (which the cell term reads as logs, where given)."""
        b, h, w, k = p.shape
        # a cell's two columns (rows) by split, not by strided slices: split's gradient is one
        # concatenation, a slice's a zero-filled copy of all of p each (4 a step: ~5 % of it, 1 thread)
        left, right = (x.reshape(-1, k) for x in p.view(b, h, w // 2, 2, k).split(1, dim=3))
        top, bottom = (x.reshape(-1, k) for x in p.view(b, h // 2, 2, w, k).split(1, dim=2))
        ok_h = (left @ self.seam_h * right).sum(1)
        ok_v = (top @ self.seam_v * bottom).sum(1)
        seams = -torch.log(torch.cat([ok_h, ok_v]).float().clamp_min(1e-6)).mean()
        # usage: KL(training usage ‖ the batch's mean soft picks). Tried instead (tiny, museum,
        # seed 0): the Jensen-Shannon divergence of the argmax histogram (straight-through), so
        # that the hard picks spread too: G then drew 200+ patterns as clutter, invented patterns
        # in 8-16 % of cells (this: 0.1-1.9 %) and D won (loss 0.03-0.07), divergence no better.
        if self.row_usage is None:
            loss = self.seam_weight * seams + self.usage_weight * _kl(self.usage, p.mean(dim=(0, 1, 2)))
        else:
            # row by row: sky patterns up, ground patterns down, as in the training screens (tiny,
            # seeds 0-4, docs/generator-patterns.md sixth round: the best in-training divergence
            # 0.148-0.165 against 0.166-0.235 over the whole screen; generated 24 of 96: 0.141 vs 0.178)
            q = p.float().mean(dim=(0, 2))  # (28, K): each row's mean soft picks
            loss = self.seam_weight * seams + self.usage_weight * _kl(self.row_usage, q).mean()
        if self.cell_rows is None or self.cell_weight == 0:
            return loss
        log_p = torch.log_softmax(logits.float(), -1) if logits is not None else torch.log(p.float().clamp_min(1e-30))
        return loss + self.cell_weight * self._cell_prior(log_p)

    def _cell_prior(self, log_p: torch.Tensor) -> torch.Tensor:
        """For each part counted (`set_cell_usage`), KL(the training art's shares of its
        commonest kinds ‖ the batch's), averaged over the parts: a cell's chance of showing one
        kind is the product of its quarters' soft picks of that kind's patterns; the rest is what
        is left. In logs throughout: a kind G never draws has a chance far below any clamp
        (1/256⁴ for a whole cell), and its pull must not vanish there. `log_p`: the picks'
        log-probabilities (B, 28, 28, K)."""
        # each quarter's picks as rows of patterns (4·K, cells): one transposing copy, then
        # every read is a whole row
        logs = QuarterRows.apply(log_p.float())
        total = log_p.new_zeros((), dtype=torch.float32)
        for rows, target, real in zip(self.cell_rows, self.cell_usage, self.cell_mask, strict=True):
            log_q = CellChances.apply(logs, rows)  # (M,): the batch's shares of the art's kinds
            rest = (1.0 - (log_q.exp() * real).sum()).clamp_min(1e-8)
            top = target[:-1] * real
            total = total + (top * (torch.log(top.clamp_min(1e-8)) - log_q)).sum()
            total = total + target[-1] * (torch.log(target[-1].clamp_min(1e-8)) - torch.log(rest))
        return total / len(self.cell_rows)


def _kl(target: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(target ‖ q) of distributions over the last dimension (one per leading index), both
    clamped at 1e-8."""
    return (target * (torch.log(target.clamp_min(1e-8)) - torch.log(q.clamp_min(1e-8)))).sum(-1)


class QuarterRows(torch.autograd.Function):
    """(B, 2h, 2w, K) pattern log-probabilities → (4·K, B·h·w): each quarter of a cell (TL TR BL
    BR) as K rows over the cells, what `CellChances` reads. The same values as one permuted copy
    (view, permute, reshape), but on the CPU copied a block of cell rows at a time, each block's
    output small enough to stay in cache: moving K from the innermost axis to the outermost in
    one copy reads and writes far apart, and took 14–22 ms for tiny's batch where the blocks
    take 4.7–6 ms (2 threads, AMX Xeon); a whole training step took 1.00× and 0.97× the time in two
    alternated measurements. The gradient goes back as one permuted copy (3–4 ms)."""

    BLOCK = 100_000  # floats of output a block (28 cell rows of tiny's 14 × 256)

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        b, hh, ww, k = x.shape
        h, w = hh // 2, ww // 2
        ctx.shape = x.shape
        if x.device.type != "cpu":
            return x.view(b, h, 2, w, 2, k).permute(2, 4, 5, 0, 1, 3).reshape(4 * k, -1)
        v = x.view(b * h, 2, w, 2, k)
        out = x.new_empty(2, 2, k, b * h, w)
        rows = max(1, QuarterRows.BLOCK // (w * k))
        for qy in range(2):
            for qx in range(2):
                src = v[:, qy, :, qx, :]  # (B·h, w, K): one quarter of every cell
                for s in range(0, b * h, rows):
                    out[qy, qx, :, s:s + rows] = src[s:s + rows].permute(2, 0, 1)
        return out.view(4 * k, -1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        b, hh, ww, k = ctx.shape
        return grad.view(2, 2, k, b, hh // 2, ww // 2).permute(3, 4, 0, 5, 1, 2).reshape(b, hh, ww, k)


class CellChances(torch.autograd.Function):
    """log of the mean over cells of each cell type's chance: `logs` (4·K, cells) each cell's four
    quarters' pattern log-probabilities, quarter by quarter, `rows` (M, 4) each type's four rows
    → (M,) log mean_n exp(Σᵢ logs[rows[m, i], n]). The same as index_select, add and logsumexp
    under autograd (checked in the tests), but it keeps one (M, cells) array for the backward
    pass, each cell's share of each type's chance, where autograd keeps four and fills a zeroed
    copy of `logs` per quarter; and it reads whole rows, not scattered columns. The prior's cost
    beyond the log-softmax: 27 against 36 ms (1 thread), 19 against 27 ms (2 threads), tiny's
    batch, M = 512."""

    @staticmethod
    def forward(ctx, logs: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        chance = logs.index_select(0, rows[:, 0])
        for i in range(1, rows.shape[1]):
            chance += logs.index_select(0, rows[:, i])
        total = torch.logsumexp(chance, 1)  # (M,)
        share = chance.sub_(total[:, None]).exp_()  # (M, cells): each cell's share of each type's chance
        ctx.save_for_backward(share, rows)
        ctx.height = logs.shape[0]
        return total - math.log(share.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        share, rows = ctx.saved_tensors
        weighted = share * grad[:, None]
        out = torch.zeros(ctx.height, weighted.shape[1], dtype=weighted.dtype, device=weighted.device)
        for i in range(rows.shape[1]):
            out.index_add_(0, rows[:, i], weighted)
        return out, None


class DrawPatterns(torch.autograd.Function):
    """Picks → one-hot slots (B, 4, 8h, 8w): each picked pattern (of K, flattened to 4·8·8) in its
    place, straight-through: the value of the argmax picks `index` (B, h, w), the gradient that
    of summing every pattern by its soft pick weight `soft` (B, h, w, K) (an einsum over K),
    computed as a lookup forward and one matrix product backward — measured 3.4× faster than
    the einsum for K = 256 (tiny's batch, 1 thread), and no (B, K, h, w) one-hot is built.
    `soft` may be None (eval: no gradient)."""

    @staticmethod
    def forward(ctx, soft: torch.Tensor | None, index: torch.Tensor, shapes: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(shapes)
        # under autocast the backward product runs in its dtype, as the einsum it replaces would:
        # the patterns are 0/1, exact in bf16; 2.8× faster than float32 on an AVX-512 BF16 CPU
        device = shapes.device.type
        ctx.dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else shapes.dtype
        b, h, w = index.shape
        drawn = shapes[index]  # (B, h, w, 4·8·8)
        drawn = drawn.view(b, h, w, SLOTS, PATTERN, PATTERN).permute(0, 3, 1, 4, 2, 5)
        return drawn.reshape(b, SLOTS, h * PATTERN, w * PATTERN)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (shapes,) = ctx.saved_tensors
        b, _, hh, ww = grad.shape
        h, w = hh // PATTERN, ww // PATTERN
        g = grad.reshape(b, SLOTS, h, PATTERN, w, PATTERN).permute(0, 2, 4, 1, 3, 5).reshape(b * h * w, -1)
        return (g.to(ctx.dtype) @ shapes.to(ctx.dtype).t()).to(shapes.dtype).view(b, h, w, -1), None, None


# How a 3×3 kernel over a 2×-nearest-resized map reads the map itself: an output pixel in row
# phase a (0: even, 1: odd) takes kernel rows k = -1, 0, 1 from map rows i + (a + k) // 2, so
# its rows fold to (map row -1, 0, +1) by _PHASES[a] (map row × kernel row); columns alike.
_PHASES = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]],
                        [[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])  # (2, 3, 3)


class ResizeConv(nn.Conv2d):
    """Nearest-neighbour 2× resize, then this 3×3 convolution (Odena et al., 2016) — computed
    without the resize: each of the 4 output phases is a 3×3 convolution of the small map with
    the kernel folded by `_PHASES`, the 4 results interleaved by pixel shuffle. Exactly the same
    function and parameters (checked against the resize in the tests); measured 1.5× faster for
    the last layer (8 → 3 channels at 224 px) on the CPU, where the resized map dominated."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight  # (cout, cin, 3, 3)
        r = _PHASES.to(k)
        w = torch.einsum("axk,oikl,byl->oabixy", r, k, r)  # (cout, 2, 2, cin, 3, 3)
        y = F.conv2d(x, w.reshape(-1, *k.shape[1:]), padding=1)  # (B, 4·cout, s, s)
        return F.pixel_shuffle(y, 2)  # (B, cout, 2s, 2s)


class Generator(nn.Module):
    """z (B, z_dim) → screen (B, 3, 224, 224) in [-1, 1]: a 7×7 seed doubled five times."""

    def __init__(self, width: int = 64, z_dim: int = 100, arch: str = "dcgan", table_size: int = 256,
                 pattern_context: int = 1, seam_weight: float = 1.0, usage_weight: float = 1.0):
        super().__init__()
        w = width
        self.z_dim = z_dim
        self.arch = arch
        spec = ARCHS[arch]

        if spec.upsample == "transposed":
            def double(cin: int, cout: int) -> list[nn.Module]:  # (B, cin, s, s) → (B, cout, 2s, 2s)
                return [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)]
        else:  # resize, then convolve: every output pixel sees an even 3×3 neighbourhood
            def double(cin: int, cout: int) -> list[nn.Module]:
                return [ResizeConv(cin, cout)]

        def up(cin: int, cout: int) -> list[nn.Module]:
            return [*double(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(True)]

        seed = [nn.ConvTranspose2d(z_dim, 8 * w, 7, 1, 0, bias=False), nn.BatchNorm2d(8 * w), nn.ReLU(True)]
        if spec.head == "nes":
            self.seed = nn.Sequential(*seed)  # (B, 8W, 7, 7)
            self.cells = nn.Sequential(*up(8 * w, 8 * w))  # (B, 8W, 14, 14): one per 16×16 cell
            self.pixels = nn.Sequential(*up(8 * w, 4 * w), *up(4 * w, 2 * w), *up(2 * w, w))  # (B, W, 112, 112)
            self.head = NesHead(8 * w, 8 * w, w)
            return
        if spec.head == "patterns":
            self.seed = nn.Sequential(*seed)  # (B, 8W, 7, 7)
            self.cells = nn.Sequential(*up(8 * w, 8 * w))  # (B, 8W, 14, 14): one per 16×16 cell
            self.pixels = nn.Sequential(*up(8 * w, 4 * w))  # (B, 4W, 28, 28): one per 8×8 pattern
            self.head = PatternHead(8 * w, 8 * w, 4 * w, table_size, pattern_context, seam_weight, usage_weight)
            return
        self.net = nn.Sequential(
            # input (B, z, 1, 1)
            *seed,
            # (B, 8W, 7, 7)
            *up(8 * w, 8 * w),  # (B, 8W, 14, 14)
            *up(8 * w, 4 * w),  # (B, 4W, 28, 28)
            *up(4 * w, 2 * w),  # (B, 2W, 56, 56)
            *up(2 * w, w),  # (B, W, 112, 112)
            *double(w, 3),  # (B, 3, 224, 224)
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.view(z.shape[0], self.z_dim, 1, 1)
        if ARCHS[self.arch].head in ("nes", "patterns"):
            seed = self.seed(z)
            cells = self.cells(seed)
            return self.head(seed, cells, self.pixels(cells))  # (B, 3, 224, 224)
        return self.net(z)  # (B, 3, 224, 224)


class MinibatchStd(nn.Module):
    """Appends one channel: the mean standard deviation of the features over each group of
    `group` consecutive screens (Karras et al., 2018). A generator that draws the same screen
    for every z has a spread far below real screens', which D can then see.

    Groups are consecutive, so with `group` dividing the per-process batch b, D's real+fake
    batch (2b) never mixes real and fake screens in one group.
    """

    def __init__(self, group: int):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = self.group if n % self.group == 0 else 1
        y = x.float().view(n // g, g, c, h, w)  # (N/g, g, C, H, W)
        # the variance spelt out: torch's `var` over dim 1 measured 25× slower on the CPU (~3 % of a step)
        var = (y - y.mean(dim=1, keepdim=True)).square().mean(dim=1)
        spread = (var + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (N/g,)
        extra = spread.repeat_interleave(g).view(n, 1, 1, 1).expand(n, 1, h, w)  # (N, 1, H, W)
        return torch.cat([x, extra.to(x.dtype)], dim=1)  # (N, C+1, H, W)


class PatternCritic(nn.Module):
    """A pattern map → one real/fake logit (B,): D's second judge, of the arrangement alone
    (which of the table's K patterns sits in each 8×8 quarter), as the tile-pattern numbers read a
    screen: no colours. Spectrally normalised like `nes`'s D.

    Its input is the picks (B, 28, 28) int, embedded by a lookup; with G's soft picks (B, 28, 28, K)
    beside them, the embedding takes their gradient (straight-through: the value of the picks,
    the gradient of embedding every pattern by its soft weight), without a one-hot of K channels."""

    def __init__(self, size: int, width: int, embed: int = 16, scale: int = 1):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        w = 2 * width * scale
        self.embed = sn(nn.Linear(size, embed, bias=False))
        self.net = nn.Sequential(
            sn(nn.Conv2d(embed, w, 3, 1, 1)), nn.LeakyReLU(0.2, True),  # (B, 2W, 28, 28)
            sn(nn.Conv2d(w, 2 * w, 4, 2, 1)), nn.LeakyReLU(0.2, True),  # (B, 4W, 14, 14)
            sn(nn.Conv2d(2 * w, 4 * w, 4, 2, 1)), nn.LeakyReLU(0.2, True),  # (B, 8W, 7, 7)
            sn(nn.Conv2d(4 * w, 1, 7, 1, 0)),  # (B, 1, 1, 1)
        )

    def forward(self, picks: torch.Tensor, soft: torch.Tensor | None = None) -> torch.Tensor:
        table = self.embed.weight.t()  # (K, E)
        # a lookup whose backward sums each pattern's rows in a fixed order: indexing (`table[picks]`)
        # summed them with threads racing, so two runs on 2 threads drifted apart from the first step
        e = F.embedding(picks.long(), table)  # (B, 28, 28, E)
        if soft is not None:
            through = soft.to(table.dtype) @ table
            e = e + (through - through.detach())
        return self.net(e.permute(0, 3, 1, 2)).flatten()


class Discriminator(nn.Module):
    """screen (B, 3, 224, 224) → one real/fake logit (B,); mirrors the generator. With a pattern
    critic (`--arch patterns`), `forward(x, picks, soft)` → (B, 2): the screen's logit and the
    critic's of its pattern picks (`PatternCritic`)."""

    def __init__(self, width: int = 64, arch: str = "dcgan", group: int = 4, critic: int = 0,
                 critic_width: int = 1):
        super().__init__()
        w = width
        self.critic = PatternCritic(critic, width, scale=critic_width) if critic else None
        mbstd = ARCHS[arch].mbstd

        # momentum=1.0: D's running statistics are those of its last training batch (real and
        # fake together). Nothing evaluates D on its own; the generator's step runs D in eval
        # mode so that fakes are normalised with that mixed batch's statistics.
        sn = ARCHS[arch].d_norm == "spectral"

        def conv(cin: int, cout: int, k: int, stride: int, pad: int) -> nn.Module:
            if sn:  # every layer's largest singular value held at 1: D stays smooth
                return nn.utils.parametrizations.spectral_norm(nn.Conv2d(cin, cout, k, stride, pad))
            return nn.Conv2d(cin, cout, k, stride, pad, bias=False)

        def down(cin: int, cout: int) -> list[nn.Module]:
            if sn:
                return [conv(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            return [conv(cin, cout, 4, 2, 1), nn.BatchNorm2d(cout, momentum=1.0), nn.LeakyReLU(0.2, True)]

        self.net = nn.Sequential(
            # input (B, 3, 224, 224); no BatchNorm on the first layer (Radford et al.)
            conv(3, w, 4, 2, 1), nn.LeakyReLU(0.2, True),  # (B, W, 112, 112)
            *down(w, 2 * w),  # (B, 2W, 56, 56)
            *down(2 * w, 4 * w),  # (B, 4W, 28, 28)
            *down(4 * w, 8 * w),  # (B, 8W, 14, 14)
            *down(8 * w, 8 * w),  # (B, 8W, 7, 7)
            *([MinibatchStd(group)] if mbstd else []),  # (B, 8W+1, 7, 7)
            conv(8 * w + mbstd, 1, 7, 1, 0),  # (B, 1, 1, 1)
        )

    def forward(self, x: torch.Tensor, picks: torch.Tensor | None = None,
                soft: torch.Tensor | None = None) -> torch.Tensor:
        if picks is None or self.critic is None:
            return self.net(x).flatten()  # (B,)
        return torch.stack([self.net(x).flatten(), self.critic(picks, soft).to(x.dtype)], 1)  # (B, 2)


def dcgan_init(m: nn.Module) -> None:
    """Radford et al.: conv weights ~ N(0, 0.02); BatchNorm scale ~ N(1, 0.02), shift 0.
    Spectrally normalised layers keep PyTorch's default init (their scale is normalised away)."""
    from torch.nn.utils import parametrize

    if parametrize.is_parametrized(m):
        return
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def build_models(width: int, z_dim: int, arch: str = "dcgan", group: int = 4, pattern_context: int = 1,
                 seam_weight: float = 1.0, critic: bool = False, table_size: int = 256,
                 critic_width: int = 1, usage_weight: float = 1.0) -> tuple[Generator, Discriminator]:
    """Both networks with DCGAN init, drawing from torch's global RNG (seed it first).
    `group`: D's minibatch-std group size (architectures that use it; divides the batch);
    `pattern_context`, `seam_weight`, `usage_weight`: `--arch patterns`'s head (`PatternHead`)."""
    g = Generator(width, z_dim, arch, table_size, pattern_context=pattern_context, seam_weight=seam_weight,
                  usage_weight=usage_weight)
    d = Discriminator(width, arch, group, critic=g.head.table.shape[0] if critic else 0, critic_width=critic_width)
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
