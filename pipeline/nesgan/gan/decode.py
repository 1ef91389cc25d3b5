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
the checkpoint; a run from before them decodes as it always did. Checking 4×4 windows as well
(the same code, n = 4) was measured and dropped: on 5 runs it pushed cells toward flat and
simple patterns (distinct cells of the demo's screens 1,412 → 697) and raised the divergence
(demo 0.380 → 0.437, museum seed 1 0.399 → 0.525): 3×3 is the grain at which a drawing's
strokes join.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

from nesgan import patterns
from nesgan.gan.table import seams_known

TOP = 6  # candidates per quarter: 6⁴ = 1,296 combinations a cell; on the demo every cell had a clean one
MAX_KNOWN = 21147  # Bell(9): the number of partitions of 9 pixels, so every known key fits
PATTERN, SLOTS = 8, 4
_FAIL = 1e4  # score lost per failing check: any clean combination beats any failing one
_KEEP_DECODERS = 4
_DECODERS: OrderedDict[str, SeamDecoder] = OrderedDict()


def merge_code(colours: np.ndarray) -> np.ndarray:
    """(..., 4) colour indices of slots 0-3 → (...) which slots share a colour, as the 3×3 windows
    are keyed (`nesgan.patterns.partition_keys`: 4 bits a slot, the first slot of its colour)."""
    return patterns.partition_keys(colours).astype(np.int64)


def _labels(code: int) -> np.ndarray:
    """A merge code → each slot's label (the first slot of its colour)."""
    return np.array([(code >> (4 * s)) & 15 for s in range(SLOTS)])


class SeamCache:
    """Whether pattern a may sit left of (above) pattern b in a cell, checked on demand: a cell
    meets only a few of the K² pairs, so pairs are read the first time they are asked."""

    def __init__(self, table: np.ndarray, known: np.ndarray, horizontal: bool, n: int):
        self.table, self.known, self.horizontal, self.n = table, known, horizontal, n
        self.state = np.full((len(table), len(table)), -1, dtype=np.int8)  # -1 unread, 0 no, 1 yes

    def ok(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Pattern indices a, b of one shape → bool of that shape."""
        a_np, b_np = a.reshape(-1).numpy(), b.reshape(-1).numpy()
        unread = self.state[a_np, b_np] < 0
        if unread.any():
            pairs = np.unique(np.stack([a_np[unread], b_np[unread]], 1), axis=0)
            self.state[pairs[:, 0], pairs[:, 1]] = seams_known(self.table, self.known, pairs[:, 0],
                                                               pairs[:, 1], self.horizontal, self.n)
        return torch.from_numpy(self.state[a_np, b_np] > 0).reshape(a.shape)


class Checks:
    """Every check of one window size n on one merged table: each pattern's own windows, the
    windows across the two seams (`SeamCache`), and those at the cell's centre, where a corner
    of (n-1)×(n-1) pixels of each quarter meets (read on demand, by corner ids)."""

    def __init__(self, table: np.ndarray, known: np.ndarray, n: int):
        self.known, self.n = known, n
        win = np.lib.stride_tricks.sliding_window_view(table, (n, n), axis=(1, 2))
        self.inside = torch.from_numpy(np.isin(patterns.partition_keys(win.reshape(len(table), -1, n * n)),
                                               known).all(1))
        self.seam_h, self.seam_v = (SeamCache(table, known, h, n) for h in (True, False))
        c, e = n - 1, PATTERN - n + 1
        corners = (table[:, e:, e:], table[:, e:, :c], table[:, :c, e:], table[:, :c, :c])  # TL TR BL BR
        self.blocks, ids = [], []
        for corner in corners:
            uniq, inverse = np.unique(corner.reshape(len(table), -1), axis=0, return_inverse=True)
            self.blocks.append(uniq.reshape(-1, c, c))
            ids.append(torch.from_numpy(inverse.ravel().astype(np.int64)))
        self.ids = ids  # per quarter role: (K,) corner id of each pattern
        self.sizes = [len(b) for b in self.blocks]
        self._centre_codes = np.zeros(0, np.int64)  # centres read so far (sorted) …
        self._centre_ok = np.zeros(0, bool)  # … and whether each passed

    def centre_code(self, tl, tr, bl, br) -> torch.Tensor:
        s = self.sizes
        return ((self.ids[0][tl] * s[1] + self.ids[1][tr]) * s[2] + self.ids[2][bl]) * s[3] + self.ids[3][br]

    def centre_ok(self, codes: torch.Tensor) -> torch.Tensor:
        """Corner-id codes, any shape → bool: every n×n window at the centre known. Codes read once
        are remembered (a run's cells meet the same few thousand centres again and again)."""
        uniq, inverse = np.unique(codes.reshape(-1).numpy(), return_inverse=True)
        at = np.minimum(np.searchsorted(self._centre_codes, uniq), max(len(self._centre_codes) - 1, 0))
        seen = (self._centre_codes[at] == uniq) if len(self._centre_codes) else np.zeros(len(uniq), bool)
        ok = np.empty(len(uniq), bool)
        ok[seen] = self._centre_ok[at[seen]]
        new = uniq[~seen]
        if len(new):
            ok[~seen] = self._read_centres(new)
            codes_all = np.concatenate([self._centre_codes, new])
            order = np.argsort(codes_all, kind="stable")
            self._centre_codes = codes_all[order]
            self._centre_ok = np.concatenate([self._centre_ok, ok[~seen]])[order]
        return torch.from_numpy(ok[inverse.ravel()]).reshape(codes.shape)

    def _read_centres(self, uniq: np.ndarray) -> np.ndarray:
        """Distinct corner-id codes → bool: every n×n window of each centre block known."""
        s, parts = self.sizes, []
        for size in reversed(s):
            parts.append(uniq % size)
            uniq = uniq // size
        tl, tr, bl, br = (self.blocks[i][ids] for i, ids in enumerate(reversed(parts)))
        block = np.concatenate([np.concatenate([tl, tr], 2), np.concatenate([bl, br], 2)], 1)
        n = self.n
        win = np.lib.stride_tricks.sliding_window_view(block, (n, n), axis=(1, 2)).reshape(len(block), -1, n * n)
        return np.isin(patterns.partition_keys(win), self.known).all(1)


def decoder_for(table: torch.Tensor, known: torch.Tensor) -> SeamDecoder:
    """The `SeamDecoder` of one pattern table and one set of known partitions, shared by every
    generator that carries the same two (a run's sample steps: `generate` compares several, and
    what one step's cells taught the checks the next step's reuse). The last few are kept."""
    t, k = table.detach().cpu().contiguous(), known.detach().cpu().contiguous()
    key = hashlib.sha256(t.numpy().tobytes() + str(t.shape).encode() + k.numpy().tobytes()).hexdigest()
    if key in _DECODERS:
        _DECODERS.move_to_end(key)
    else:
        _DECODERS[key] = SeamDecoder(t, k)
        while len(_DECODERS) > _KEEP_DECODERS:
            _DECODERS.popitem(last=False)
    return _DECODERS[key]


class SeamDecoder:
    """Joint picks of each cell's four quarters over one pattern table (module docstring)."""

    def __init__(self, table: torch.Tensor, known: torch.Tensor):
        """`table` (K, 8, 8) slots, `known` the training art's 3×3 partition keys (-1: padding)."""
        self.table = table.detach().cpu().numpy().astype(np.int64)  # (K, 8, 8) slots
        keys = known.detach().cpu().numpy()
        self.known = np.sort(keys[keys >= 0]).astype(np.uint64)
        self._merged: dict[int, Checks] = {}

    def _checks(self, code: int) -> Checks:
        """The checks of one merge code, read with its merged slots (a run meets few codes)."""
        if code not in self._merged:
            self._merged[code] = Checks(_labels(code)[self.table], self.known, 3)
        return self._merged[code]

    def picks(self, logits: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
        """logits (B, 2h, 2w, K) of each quarter's pattern, colours (B, h, w, 4) each cell's slot
        colours → (B, 2h, 2w) int64 picks."""
        b, hh, ww, k = logits.shape
        h, w = hh // 2, ww // 2
        lp = torch.log_softmax(logits.float(), -1).cpu()
        quarters = lp.view(b, h, 2, w, 2, k).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4, k)  # TL TR BL BR
        score, cand = quarters.topk(min(TOP, k), -1)  # (n, 4, top)
        codes = merge_code(colours.cpu().numpy()).reshape(-1)
        best = torch.empty(len(codes), 4, dtype=torch.int64)
        for code in np.unique(codes).tolist():
            rows = torch.from_numpy(np.flatnonzero(codes == code))
            best[rows] = self._pick_cells(score[rows], cand[rows], self._checks(code))
        return best.view(b, h, w, 2, 2).permute(0, 1, 3, 2, 4).reshape(b, hh, ww).to(logits.device)

    def _pick_cells(self, score: torch.Tensor, cand: torch.Tensor, checks: Checks) -> torch.Tensor:
        """score, cand (n, 4, top) → (n, 4) picks of the cells sharing one merge code: the plain
        argmax where it passes every check (most cells), else the search over all `top`⁴."""
        picks, fails = self._search(score[:, :, :1], cand[:, :, :1], checks)
        bad = (fails > 0).nonzero().squeeze(1)
        if len(bad):
            picks[bad] = self._search(score[bad], cand[bad], checks)[0]
        return picks

    @staticmethod
    def _search(score: torch.Tensor, cand: torch.Tensor, c: Checks) -> tuple[torch.Tensor, torch.Tensor]:
        """The best of every combination of each quarter's candidates (n, 4, top): (n, 4) picks
        and (n,) how many checks they fail."""
        tl, tr, bl, br = quarters = cand.unbind(1)  # (n, top) each
        n, top = tl.shape

        def at(x: torch.Tensor, *axes: int) -> torch.Tensor:  # onto the (n, top, top, top, top) grid
            shape = [n, 1, 1, 1, 1]
            for a in axes:
                shape[1 + a] = top
            return x.reshape(shape)

        fails = sum((~at(c.inside[q], i)).to(torch.int16) for i, q in enumerate(quarters))
        for a, b, seam, ia, ib in ((tl, tr, c.seam_h, 0, 1), (bl, br, c.seam_h, 2, 3),
                                   (tl, bl, c.seam_v, 0, 2), (tr, br, c.seam_v, 1, 3)):
            pair = seam.ok(a[:, :, None].expand(-1, -1, top), b[:, None, :].expand(-1, top, -1))
            fails = fails + (~at(pair, ia, ib)).to(torch.int16)
        fails = fails + (~c.centre_ok(c.centre_code(at(tl, 0), at(tr, 1), at(bl, 2), at(br, 3)))).to(torch.int16)
        fails = fails.expand(n, top, top, top, top).reshape(n, -1)
        total = sum(at(score[:, i], i) for i in range(4)).reshape(n, -1) - _FAIL * fails.float()
        flat = total.argmax(1)
        picks = [q.gather(1, ((flat // top ** (3 - i)) % top)[:, None]).squeeze(1) for i, q in enumerate(quarters)]
        return torch.stack(picks, 1), fails.gather(1, flat[:, None]).squeeze(1)
