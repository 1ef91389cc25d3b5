"""Pattern picks that keep every 3×3 window a drawing (`--arch patterns`, at generation).

G picks each 8×8 quarter of a cell on its own (a straight-through argmax per quarter). Where two
picked patterns meet inside a cell, the 3×3 windows across their seam can form shapes the
training art never shows: measured on the demo's generated screens, 99 % of the windows behind
"invented patterns" sat across a seam or at the cell's centre, where all four quarters meet.
The seam prior in training makes such meetings unlikely, not impossible.

So, out of training (the EMA samples, `generate`), each cell's four quarters are picked jointly:
among the `TOP` likeliest patterns of each quarter, the combination of highest total
log-probability whose every 3×3 window is a partition some training cell shows — inside each
quarter, across the two vertical and two horizontal seams, and at the centre. Windows are read
in the cell's own colours: where the screen's palette gives two slots one colour (a sub-palette
repeating the backdrop), the patterns are read with those slots merged, as the screen shows
them. Where no combination passes, the one with fewest failing checks wins, so a cell always
gets the likeliest drawing the search can find. Training itself keeps the plain argmax (D is
trained on what G draws).

The known partitions are the training screens' 3×3 window keys (`nesgan.patterns`), carried by
the checkpoint; a run from before them decodes as it always did.
"""

from __future__ import annotations

import numpy as np
import torch

from nesgan import patterns
from nesgan.gan.table import seams_known

TOP = 6  # candidates per quarter: 6⁴ = 1,296 combinations a cell; on the demo every cell had a clean one
MAX_KNOWN = 21147  # Bell(9): the number of partitions of 9 pixels, so every known key fits
PATTERN, SLOTS = 8, 4
DISTINCT = 0 + 1 * 4 + 2 * 16 + 3 * 64  # the merge code of four different colours
_FAIL = 1e4  # score lost per failing check: any clean combination beats any failing one


def merge_codes(colours: torch.Tensor) -> torch.Tensor:
    """(..., 4) colour indices of slots 0-3 → (...) int64 code of which slots share a colour:
    each slot labelled by the first slot of its colour, code = Σ label[s]·4^s (0b11100100 when
    all four differ)."""
    label = torch.zeros_like(colours)
    for s in range(1, SLOTS):
        first = torch.full_like(colours[..., s], s)
        for j in range(s - 1, -1, -1):  # the last write is the smallest j
            first = torch.where(colours[..., j] == colours[..., s], torch.full_like(first, j), first)
        label[..., s] = first
    return (label * (4 ** torch.arange(SLOTS, device=colours.device))).sum(-1)


def _labels(code: int) -> np.ndarray:
    return np.array([(code >> (2 * s)) & 3 for s in range(SLOTS)])


def _corner_codes(table: np.ndarray) -> np.ndarray:
    """(K, 8, 8) slots → (4, K) the 2×2 corner each quarter brings to the cell's centre (TL's
    bottom-right, TR's bottom-left, BL's top-right, BR's top-left), 2 bits a pixel."""
    corners = (table[:, 6:, 6:], table[:, 6:, :2], table[:, :2, 6:], table[:, :2, :2])
    weights = 4 ** np.arange(4)
    return np.stack([(c.reshape(len(table), 4) * weights).sum(1) for c in corners])


def _centre_blocks(codes: np.ndarray) -> np.ndarray:
    """(n,) int64 codes of four corners (8 bits each, TL TR BL BR) → (n, 4, 4) centre blocks."""
    px = np.stack([(codes >> (2 * i)) & 3 for i in range(16)], -1)  # (n, 16): corner q pixel p at 4q+p
    c = px.reshape(-1, 4, 2, 2)  # (n, corner, row, col)
    top = np.concatenate([c[:, 0], c[:, 1]], axis=2)
    bottom = np.concatenate([c[:, 2], c[:, 3]], axis=2)
    return np.concatenate([top, bottom], axis=1)


class SeamCache:
    """Whether pattern a may sit left of (above) pattern b in a cell, checked on demand: a cell
    meets only a few of the K² pairs, so pairs are read the first time they are asked."""

    def __init__(self, table: np.ndarray, known: np.ndarray, horizontal: bool):
        self.table, self.known, self.horizontal = table, known, horizontal
        self.state = np.full((len(table), len(table)), -1, dtype=np.int8)  # -1 unread, 0 no, 1 yes

    def ok(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pattern indices a, b of one shape → bool of that shape."""
        a_np, b_np = a.reshape(-1).numpy(), b.reshape(-1).numpy()
        unread = self.state[a_np, b_np] < 0
        if unread.any():
            pairs = np.unique(np.stack([a_np[unread], b_np[unread]], 1), axis=0)
            self.state[pairs[:, 0], pairs[:, 1]] = seams_known(self.table, self.known, pairs[:, 0],
                                                               pairs[:, 1], self.horizontal)
        return torch.from_numpy(self.state[a_np, b_np] > 0).reshape(a.shape)


class SeamDecoder:
    """Joint picks of each cell's four quarters over one pattern table (module docstring)."""

    def __init__(self, table: torch.Tensor, known: torch.Tensor, seams: tuple[torch.Tensor, torch.Tensor] | None = None):
        """`table` (K, 8, 8) slots, `known` partition keys (-1: none), `seams` the table's own
        seam tables (`nesgan.gan.table.seam_table` of `table` and `known`) when at hand."""
        self.table = table.detach().cpu().numpy().astype(np.int64)  # (K, 8, 8) slots
        keys = known.detach().cpu().numpy()
        self.known = np.sort(keys[keys >= 0]).astype(np.uint64)
        self._merged: dict[int, tuple] = {}
        self._seams = None if seams is None else tuple(t.detach().cpu() > 0 for t in seams)

    @property
    def active(self) -> bool:
        return len(self.known) > 0

    def _tables(self, code: int) -> tuple[np.ndarray, torch.Tensor, SeamCache, SeamCache, np.ndarray]:
        """For one merge code, all read with the merged slots (cached: a run meets few codes):
        the merged table, which patterns are clean inside, the two seam checks and the corner
        codes."""
        if code not in self._merged:
            t = _labels(code)[self.table]  # (K, 8, 8) merged slots
            win = np.lib.stride_tricks.sliding_window_view(t, (3, 3), axis=(1, 2))  # (K, 6, 6, 3, 3)
            keys = patterns.partition_keys(win.reshape(len(t), -1, 9))
            inside = np.isin(keys, self.known).all(1)
            seams = [SeamCache(t, self.known, h) for h in (True, False)]
            if code == DISTINCT and self._seams is not None:  # the table's own, read in training
                for cache, full in zip(seams, self._seams, strict=True):
                    cache.state[:] = full.numpy()
            self._merged[code] = (t, torch.from_numpy(inside), *seams, _corner_codes(t))
        return self._merged[code]

    def _centre_ok(self, codes: torch.Tensor) -> torch.Tensor:
        """int64 codes of four corners, any shape → bool: the centre's four 3×3 windows known."""
        flat = codes.reshape(-1).cpu().numpy()
        uniq, inverse = np.unique(flat, return_inverse=True)
        blocks = _centre_blocks(uniq)
        win = np.lib.stride_tricks.sliding_window_view(blocks, (3, 3), axis=(1, 2)).reshape(len(uniq), 4, 9)
        ok = np.isin(patterns.partition_keys(win), self.known).all(1)
        return torch.from_numpy(ok[inverse.ravel()]).reshape(codes.shape)

    def picks(self, logits: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
        """logits (B, 2h, 2w, K) of each quarter's pattern, colours (B, h, w, 4) each cell's slot
        colours → (B, 2h, 2w) int64 picks."""
        b, hh, ww, k = logits.shape
        h, w = hh // 2, ww // 2
        lp = torch.log_softmax(logits.float(), -1).cpu()
        quarters = lp.view(b, h, 2, w, 2, k).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4, k)  # TL TR BL BR
        top = min(TOP, k)
        score, cand = quarters.topk(top, -1)  # (n, 4, top)
        codes = merge_codes(colours.cpu()).reshape(-1)
        best = torch.empty(len(codes), 4, dtype=torch.int64)
        for code in torch.unique(codes).tolist():
            rows = (codes == code).nonzero().squeeze(1)
            best[rows] = self._pick_cells(score[rows], cand[rows], code)
        return best.view(b, h, w, 2, 2).permute(0, 1, 3, 2, 4).reshape(b, hh, ww).to(logits.device)

    def _pick_cells(self, score: torch.Tensor, cand: torch.Tensor, code: int) -> torch.Tensor:
        """score, cand (n, 4, top) → (n, 4) picks of the cells sharing one merge code: the plain
        argmax where it passes every check (most cells), else the search over all `top`⁴."""
        tables = self._tables(code)
        picks, fails = self._search(score[:, :, :1], cand[:, :, :1], tables)
        bad = (fails > 0).nonzero().squeeze(1)
        if len(bad):
            picks[bad] = self._search(score[bad], cand[bad], tables)[0]
        return picks

    def _search(self, score: torch.Tensor, cand: torch.Tensor, tables: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """The best of every combination of each quarter's candidates (n, 4, top): (n, 4) picks
        and (n,) how many checks they fail."""
        _, inside, seam_h, seam_v, corners = tables
        tl, tr, bl, br = cand.unbind(1)  # (n, top) each
        n, top = tl.shape

        def at(x: torch.Tensor, *axes: int) -> torch.Tensor:  # onto the (n, top, top, top, top) grid
            shape = [n, 1, 1, 1, 1]
            for a in axes:
                shape[1 + a] = top
            return x.reshape(shape)

        fails = sum((~at(inside[q], i)).to(torch.int16) for i, q in enumerate((tl, tr, bl, br)))
        for a, b, table, ia, ib in ((tl, tr, seam_h, 0, 1), (bl, br, seam_h, 2, 3),
                                    (tl, bl, seam_v, 0, 2), (tr, br, seam_v, 1, 3)):
            fails = fails + (~at(table.ok(a[:, :, None].expand(-1, -1, top), b[:, None, :].expand(-1, top, -1)),
                                 ia, ib)).to(torch.int16)
        cc = torch.from_numpy(corners)
        centre = at(cc[0][tl], 0) | (at(cc[1][tr], 1) << 8) | (at(cc[2][bl], 2) << 16) | (at(cc[3][br], 3) << 24)
        fails = (fails + (~self._centre_ok(centre)).to(torch.int16)).reshape(n, -1)
        total = sum(at(score[:, i], i) for i in range(4)).reshape(n, -1) - _FAIL * fails.float()
        flat = total.argmax(1)
        picks = [q.gather(1, ((flat // top ** (3 - i)) % top)[:, None]).squeeze(1)
                 for i, q in enumerate((tl, tr, bl, br))]
        return torch.stack(picks, 1), fails.gather(1, flat[:, None]).squeeze(1)
