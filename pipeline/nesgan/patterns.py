"""Two palette-free numbers for how a set of screens is drawn (issue 21), and the counts under them.

Both read every 16×16 cell of a set of screens as its n×n windows that lie inside the cell, each
window turned into its colour *partition*: which of its pixels share a colour, not which colours
(the window's colours relabelled 0, 1, 2, … in order of first appearance, row-major), so a
recoloured tile reads the same.

- `invented_share(train, out)`: the share of `out`'s cells holding a 3×3 window whose partition no
  training cell shows. Speckle, broken outlines and noise invent patterns; real art reuses a
  small vocabulary (a quarter of the demo museum against the rest: ~1 %).
- `divergence(train, out)`: per n = 2, 3, 4, P = the training windows' distribution, Q = the
  output's, ½·KL(P‖Q) + ½·KL(Q‖P) on the union of their supports with ε = 1e-7 added before
  normalising (the tile-pattern KL of Lucas & Volz 2019 as TOAD-GAN's code computes it, made
  symmetric and palette-free); the mean over n. It also punishes wrong proportions (no sky).

Inputs are screens of colour indices, integer (N, H, W) (e.g. `nesgan.gan.data.nes_indices` of
RGB screens); each partition is packed into one integer (2 bits a pixel for n ≤ 4 would not
hold 16 labels, so 4 bits a pixel: 64 bits for a 4×4 window), and counted with `np.unique`.
Numpy only: the GAN, the tile sheet, the Tiled export and the benchmarks all use it.
"""

from __future__ import annotations

import numpy as np

CELL = 16  # one attribute area / one sheet tile
SIZES = (2, 3, 4)  # the window sides `divergence` averages over
INVENTED_N = 3  # the window side `invented_share` reads
EPS = 1e-7  # TOAD-GAN's smoothing


def cell_windows(screens: np.ndarray, n: int) -> np.ndarray:
    """Integer (N, H, W) → (N, cells, windows, n·n): each 16×16 cell's n×n windows lying inside
    it (row-major, (17-n)² per cell), pixels row-major. Rows and columns past the last whole
    cell are ignored."""
    cells = screen_cells(screens)
    win = np.lib.stride_tricks.sliding_window_view(cells, (n, n), axis=(2, 3))  # (N, C, m, m, n, n)
    m = CELL - n + 1
    return win.reshape(cells.shape[0], cells.shape[1], m * m, n * n)


def screen_cells(screens: np.ndarray) -> np.ndarray:
    """Integer (N, H, W) → contiguous (N, cells, 16, 16), rows and columns past the last whole
    cell dropped."""
    x = np.asarray(screens)
    if x.ndim != 3:
        raise ValueError(f"screens must be (N, H, W) colour indices, got shape {x.shape}")
    n_s, h, w = x.shape
    x = x[:, : h - h % CELL, : w - w % CELL]
    cells = x.reshape(n_s, h // CELL, CELL, w // CELL, CELL).transpose(0, 1, 3, 2, 4)
    return np.ascontiguousarray(cells).reshape(n_s, -1, CELL, CELL)


def partition_keys(windows: np.ndarray) -> np.ndarray:
    """(..., k) colour windows (k ≤ 16 pixels) → (...) uint64: each window's partition packed
    4 bits a pixel, pixel i's bits the index of the first pixel with its colour (i itself when
    its colour is new). Equal keys ⇔ equal partitions."""
    w = np.asarray(windows)
    k = w.shape[-1]
    if k > 16:
        raise ValueError(f"windows of {k} pixels do not pack into 64 bits (at most 16)")
    w = np.ascontiguousarray(np.moveaxis(w, -1, 0))  # (k, ...): one contiguous plane a pixel
    key = np.zeros(w.shape[1:], dtype=np.uint64)
    for i in range(1, k):  # pixel i's 4 bits: the first pixel of its colour (i itself if new)
        first = np.full(w.shape[1:], i, dtype=np.uint64)
        for j in range(i - 1, -1, -1):  # the last write is the smallest j
            first[w[j] == w[i]] = j
        key |= first << np.uint64(4 * i)
    return key


def window_keys(screens: np.ndarray, n: int) -> np.ndarray:
    """(N, H, W) → (N, cells, m, m) uint64 partition keys of each cell's n×n windows (m = 17-n),
    packed as `partition_keys` packs them (computed on views of the cells, no window copies).

    Windows lie inside cells, so a cell's keys depend on its pixels alone: they are computed once
    for each distinct cell and copied to its repeats (screens repeat their sky, ground and brick
    cells; on 96 generated demo screens about a tenth of the cells are distinct)."""
    if n * n > 16:
        raise ValueError(f"windows of {n}×{n} pixels do not pack into 64 bits (n ≤ 4)")
    distinct, inverse, (n_s, c) = distinct_cells(screens)
    return _cell_window_keys(distinct, n)[inverse].reshape(n_s, c, CELL - n + 1, CELL - n + 1)


def distinct_cells(screens: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(N, H, W) → (the distinct 16×16 cells (D, 16, 16), each cell's index into them (N·cells,)
    in screen order, (N, cells))."""
    cells = screen_cells(screens)
    n_s, c = cells.shape[:2]
    flat = cells.reshape(n_s * c, CELL * CELL)
    if len(flat) < 2:
        return flat.reshape(-1, CELL, CELL), np.arange(len(flat)), (n_s, c)
    rows = np.ascontiguousarray(flat).view(np.dtype((np.void, flat.shape[1] * flat.itemsize))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return flat[first].reshape(-1, CELL, CELL), inverse.ravel(), (n_s, c)


def _cell_window_keys(cells: np.ndarray, n: int) -> np.ndarray:
    """(K, 16, 16) → (K, m, m) uint64 keys of each cell's n×n windows."""
    m = CELL - n + 1
    planes = [np.ascontiguousarray(cells[:, a:a + m, b:b + m]) for a in range(n) for b in range(n)]
    key = np.zeros(planes[0].shape, dtype=np.uint64)
    for i in range(1, n * n):
        # bit j set: pixel j (j < i) has pixel i's colour; bit i always; the lowest set bit is
        # the first pixel of pixel i's colour (a bitmask and a table: 2× faster than masked writes)
        same = np.full(key.shape, 1 << i, dtype=np.uint16)
        for j in range(i):
            same |= (planes[j] == planes[i]).astype(np.uint16) << np.uint16(j)
        key |= _LOWEST_BIT[same & (~same + np.uint16(1))].astype(np.uint64) << np.uint64(4 * i)
    return key


_LOWEST_BIT = np.zeros(1 << 16, dtype=np.uint8)  # 2^b → b
_LOWEST_BIT[1 << np.arange(16)] = np.arange(16)


def window_counts(screens: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n×n window partitions of every cell of `screens`: (sorted unique keys, counts)."""
    return np.unique(window_keys(screens, n).ravel(), return_counts=True)


def symmetric_kl(p: tuple[np.ndarray, np.ndarray], q: tuple[np.ndarray, np.ndarray],
                 eps: float = EPS) -> float:
    """½·KL(P‖Q) + ½·KL(Q‖P) of two count tables (keys, counts) — window partitions, tile ids,
    anything hashable into one numpy array — on the union of their keys, each count plus `eps`
    before normalising (TOAD-GAN's smoothing, so keys one side lacks stay finite)."""
    pk, pc = (np.asarray(a) for a in p)
    qk, qc = (np.asarray(a) for a in q)
    keys = np.union1d(pk, qk)
    pv = np.full(len(keys), eps)
    qv = np.full(len(keys), eps)
    pv[np.searchsorted(keys, pk)] += pc
    qv[np.searchsorted(keys, qk)] += qc
    pv /= pv.sum()
    qv /= qv.sum()
    return float(0.5 * np.sum(pv * np.log(pv / qv)) + 0.5 * np.sum(qv * np.log(qv / pv)))


def divergence(train: np.ndarray, out: np.ndarray, sizes: tuple[int, ...] = SIZES) -> float:
    """Tile-pattern divergence of `out` from `train` (both (N, H, W) colour indices): the mean
    over n in `sizes` of `symmetric_kl` of their n×n window partitions. 0 for the same
    distribution; grows with speckle, invented shapes and wrong proportions."""
    return float(np.mean([symmetric_kl(window_counts(train, n), window_counts(out, n)) for n in sizes]))


def invented_share(train: np.ndarray, out: np.ndarray, n: int = INVENTED_N) -> float:
    """Share of `out`'s 16×16 cells holding an n×n window partition that no cell of `train`
    shows. `train`: (N, H, W) colour indices, or its `known_keys` (to measure many outputs
    against one training set)."""
    known = train if isinstance(train, np.ndarray) and train.ndim == 1 else known_keys(train, n)
    new = inventing_cells(known, out, n)
    return float(new.mean()) if new.size else 0.0


def inventing_cells(known: np.ndarray, out: np.ndarray, n: int = INVENTED_N) -> np.ndarray:
    """(N, cells) bool: which 16×16 cells of `out` ((N, H, W) colour indices) hold an n×n
    window partition that `known` (sorted keys, `known_keys`) lacks."""
    keys = window_keys(out, n)
    return ~np.isin(keys.reshape(*keys.shape[:2], -1), known).all(axis=-1)


def known_keys(train: np.ndarray, n: int = INVENTED_N, chunk: int = 4096) -> np.ndarray:
    """Sorted unique n×n window partitions of the training screens (what `invented_share` reads),
    `chunk` screens at a time (a screen's keys take 300 KB)."""
    parts = [np.unique(window_keys(train[s:s + chunk], n).ravel()) for s in range(0, len(train), chunk)]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)


class Reference:
    """A training set's window partitions, counted once, to measure many outputs against, and its
    own floor: a random quarter of the screens (by `seed`) measured against the other three.

    `train` is (N, H, W) colour indices, or anything that slices and fancy-indexes like it (a
    reader of screen files): it is read `chunk` screens at a time and only the distinct
    partitions and their counts are kept, so memory grows with the art's vocabulary, not with the
    number of screens (the keys of every window of 10,000 screens would take 9 GB)."""

    def __init__(self, train, sizes: tuple[int, ...] = SIZES, seed: int = 0, chunk: int = 256):
        self.sizes = sizes
        n = len(train)
        held = np.zeros(n, dtype=bool)
        if n >= 2:  # the same quarter `floor` has always held out
            held[np.random.default_rng(seed).permutation(n)[: max(1, n // 4)]] = True
        read = sorted(set(sizes) | {INVENTED_N})
        parts: dict[tuple[int, bool], list] = {(s, h): [] for s in read for h in (False, True)}
        for a in range(0, n, chunk):
            x, h = np.asarray(train[a : a + chunk]), held[a : a + chunk]
            for s in read:
                keys = window_keys(x, s)
                for flag in (False, True):
                    if (h == flag).any():
                        part = parts[(s, flag)]
                        part.append(np.unique(keys[h == flag].ravel(), return_counts=True))
                        if len(part) > 8:
                            part[:] = [_merge_counts(part)]
        rest = {s: _merge_counts(parts[(s, False)]) for s in read}
        held_counts = {s: _merge_counts(parts[(s, True)]) for s in read}
        self.counts = {s: _merge_counts([rest[s], held_counts[s]]) for s in read}
        self._floor = {"invented": 0.0, "divergence": 0.0}
        if n >= 2:
            cells = inventing = 0
            order = np.flatnonzero(held)
            for a in range(0, len(order), chunk):
                new = inventing_cells(rest[INVENTED_N][0], np.asarray(train[order[a : a + chunk]]))
                cells, inventing = cells + new.size, inventing + int(new.sum())
            self._floor = {"invented": inventing / max(cells, 1),
                           "divergence": float(np.mean([symmetric_kl(rest[s], held_counts[s])
                                                        for s in sizes]))}

    def invented(self, out: np.ndarray) -> float:
        """`invented_share` of `out` against the training set."""
        return invented_share(self.counts[INVENTED_N][0], out)

    def divergence(self, out: np.ndarray) -> float:
        """`divergence` of `out` from the training set."""
        return float(np.mean([symmetric_kl(self.counts[n], window_counts(out, n)) for n in self.sizes]))

    def cells_divergence(self, cells: np.ndarray, uses: np.ndarray) -> float:
        """`divergence` of a map drawn with `cells` (K, 16, 16), cell i `uses[i]` times (a
        sheet's tiles and their use), without drawing the map: windows lie inside cells, so the
        map's counts are the cells' counts weighted by use."""
        out = []
        for n in self.sizes:
            keys = window_keys(np.asarray(cells), n).reshape(len(cells), -1)
            uniq, inverse = np.unique(keys, return_inverse=True)
            counts = np.bincount(inverse.ravel(), weights=np.repeat(np.asarray(uses, np.float64), keys.shape[1]))
            out.append(symmetric_kl(self.counts[n], (uniq, counts)))
        return float(np.mean(out))

    def floor(self) -> dict[str, float]:
        """The training set's own invented share and divergence: the held-out quarter against the
        rest (0 for fewer than 2 screens)."""
        return dict(self._floor)

    def save(self, path) -> None:
        """The window counts (and the floor) as one .npz, written atomically: what `generate`
        measures its screens against, kept in the run folder so it need not reread the art."""
        import io

        from nesgan.files import atomic_write_bytes

        arrays = {f"keys{n}": k for n, (k, _) in self.counts.items()}
        arrays |= {f"counts{n}": c for n, (_, c) in self.counts.items()}
        buf = io.BytesIO()
        np.savez(buf, sizes=np.array(self.sizes), floor=np.array([self._floor["invented"], self._floor["divergence"]]),
                 **arrays)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path) -> Reference:
        """A Reference `save` wrote (no pickles are read)."""
        with np.load(path, allow_pickle=False) as z:
            ref = cls.__new__(cls)
            ref.sizes = tuple(int(n) for n in z["sizes"])
            read = sorted(set(ref.sizes) | {INVENTED_N})
            ref.counts = {n: (z[f"keys{n}"], z[f"counts{n}"]) for n in read}
            ref._floor = {"invented": float(z["floor"][0]), "divergence": float(z["floor"][1])}
        return ref

    def closest_subset(self, out: np.ndarray, k: int) -> np.ndarray:
        """The indices (sorted) of k of `out`'s screens (M, H, W) whose set, taken together, has
        about the lowest `divergence` from the training set: chosen greedily, each time the
        screen that lowers the set's divergence most. The set is judged whole, so it keeps the
        training art's proportions and variety (ten copies of the best screen miss most windows).
        Memory and time grow with M times the distinct windows: meant for a few hundred screens."""
        m = len(out)
        if k >= m:
            return np.arange(m)
        # Sparse, as `_OptionWindows` is: every screen holds the same number of windows, so the
        # set's total after adding any one of them is the same, and adding screen j changes only
        # the terms of the keys j shows. Score j by those terms' change alone (the rest is the
        # same for every j): the same choice as summing every key, read from each screen's few
        # hundred distinct windows instead of the tens of thousands of keys in the table.
        # Each screen's windows are its cells' windows: count every distinct cell's windows once,
        # then add them up per screen, weighted by how often the screen shows that cell.
        cells, inverse, (_, c) = distinct_cells(out)
        d = len(cells)
        pairs, repeats = np.unique(np.repeat(np.arange(m), c) * d + inverse, return_counts=True)
        pair_screen, pair_cell = pairs // d, pairs % d
        tables = []
        for n in self.sizes:
            p, rows = self._table(n, _cell_window_keys(cells, n).reshape(d, -1))  # (D, windows)
            cell_keys, cell_counts, bounds = _counts_by_row(rows, len(p))
            lengths = bounds[pair_cell + 1] - bounds[pair_cell]
            at = np.repeat(bounds[pair_cell] - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
            keys, counts, screen_bounds = _counts_by_row(
                cell_keys[at], len(p), np.repeat(pair_screen, lengths), m,
                weights=cell_counts[at] * np.repeat(repeats, lengths))
            owner = np.repeat(np.arange(m), np.diff(screen_bounds))
            tables.append((p, keys, counts, owner, screen_bounds, c * rows.shape[1]))
        chosen: list[int] = []
        q = [np.zeros(len(t[0])) for t in tables]
        for size in range(1, k + 1):
            score = np.zeros(m)
            for (p, keys, counts, owner, _, per), qn in zip(tables, q, strict=True):
                total = size * per + EPS * len(p)  # the set's smoothed total with any one screen added
                pk, base = p[keys], qn[keys]
                score += np.bincount(owner, weights=_kl_terms(pk, base + counts, total) - _kl_terms(pk, base, total),
                                     minlength=m)
            score[chosen] = np.inf
            j = int(np.argmin(score))
            chosen.append(j)
            for (_, keys, counts, _, bounds, _), qn in zip(tables, q, strict=True):
                qn[keys[bounds[j]:bounds[j + 1]]] += counts[bounds[j]:bounds[j + 1]]
        return np.sort(np.array(chosen))

    def closest_choice(self, options: np.ndarray, groups: list[np.ndarray], mass: np.ndarray,
                       start: np.ndarray, sweeps: int = 4) -> np.ndarray:
        """One option per group so that the screen they draw comes close to the training art.

        `options` (M, H, W) are the candidate drawings (16×16 cells: one-cell screens); group g
        is drawn `mass[g]` times with one of `groups[g]` (indices into `options`), and `start[g]`
        (one of them) is its drawing to begin with. The drawn screen's window counts are the sum
        over groups of mass times its option's, so a change of one group's option changes only
        the keys of the two options' windows, and every option of a cell holds the same number
        of windows: the totals, and so the normalisation, stay put. Coordinate descent: for each
        group in turn, the option of least `divergence` given all other groups' options, until a
        sweep changes nothing or after `sweeps` sweeps. Returns (G,) option indices."""
        options = np.asarray(options)
        chosen = np.asarray(start, dtype=np.intp).copy()
        mass = np.asarray(mass, dtype=np.float64)
        tables = [_OptionWindows(*self._table(n, window_keys(options, n).reshape(len(options), -1)), chosen, mass)
                  for n in self.sizes]
        for _ in range(sweeps):
            changed = False
            for g, opts in enumerate(groups):
                opts = np.asarray(opts, dtype=np.intp)
                if len(opts) < 2 or mass[g] <= 0:
                    continue
                score = sum(t.scores(chosen[g], opts, mass[g]) for t in tables)
                j = int(np.argmin(score))
                if score[j] < -1e-12 and opts[j] != chosen[g]:
                    for t in tables:
                        t.move(chosen[g], opts[j], mass[g])
                    chosen[g] = opts[j]
                    changed = True
            if not changed:
                break
        return chosen

    def _table(self, n: int, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The training share of every n×n partition in the training art or in `keys` (any
        shape), smoothed as `symmetric_kl` smooths, and `keys` as indices into that table."""
        pk, pc = self.counts[n]
        union = np.union1d(pk, keys)
        p = np.full(len(union), EPS)
        p[np.searchsorted(union, pk)] += pc
        return p / p.sum(), np.searchsorted(union, keys)


def _counts_by_row(keys: np.ndarray, size: int, row: np.ndarray | None = None, rows: int | None = None,
                   weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count keys (each below `size`) row by row: `keys` (R, W) one row each, or flat entries
    with their `row` of `rows` and optional `weights` (1 each). Returns each row's distinct keys
    (ascending within the row, rows in order), float64 counts (summed weights), and each row's
    bounds into them ((rows + 1,))."""
    if row is None:
        rows = len(keys)
        row, keys = np.repeat(np.arange(rows), keys.shape[1]), keys.ravel()
    if weights is None:
        flat, counts = np.unique(row * size + keys, return_counts=True)
    else:
        flat, inverse = np.unique(row * size + keys, return_inverse=True)
        counts = np.bincount(inverse.ravel(), weights=np.asarray(weights, np.float64), minlength=len(flat))
    return flat % size, counts.astype(np.float64), np.searchsorted(flat // size, np.arange(rows + 1))


class _OptionWindows:
    """One window size's counts for `Reference.closest_choice`: each option's distinct windows
    (keys into the training table `p`) and how often it shows each, and the drawn screen's
    counts `q` under the current choice. Swapping group g's option o for c changes the score by
    Σ over o's keys of f(q − m·n_o) − f(q) (o taken out) plus Σ over c's keys of
    f(q' + m·n_c) − f(q'), q' the counts without o: only the two options' few distinct windows
    are read, not every key."""

    def __init__(self, p: np.ndarray, rows: np.ndarray, chosen: np.ndarray, mass: np.ndarray):
        self.p = p
        self.total = float(np.sum(mass)) * rows.shape[1] + EPS * len(p)  # fixed: every option has rows.shape[1] windows
        self.keys, self.counts, self.bounds = _counts_by_row(rows, len(p))
        self.q = np.zeros(len(p))
        for o, m in zip(chosen.tolist(), mass.tolist(), strict=True):
            k, c = self._of(o)
            self.q[k] += m * c

    def _of(self, option: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.bounds[option], self.bounds[option + 1]
        return self.keys[a:b], self.counts[a:b]

    def _f(self, keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return _kl_terms(self.p[keys], counts, self.total)

    def scores(self, current: int, options: np.ndarray, m: float) -> np.ndarray:
        """The divergence change (this size's sum, before the mean over sizes) of drawing the
        group with each of `options` instead of `current`."""
        ok, oc = self._of(current)
        out_gain = float(np.sum(self._f(ok, self.q[ok] - m * oc) - self._f(ok, self.q[ok])))
        spans = [np.arange(self.bounds[o], self.bounds[o + 1]) for o in options.tolist()]
        at = np.concatenate(spans)
        keys, counts = self.keys[at], self.counts[at]
        base = self.q[keys].copy()
        pos = np.searchsorted(ok, keys)  # ok is sorted: take the current option's windows out
        hit = (pos < len(ok)) & (ok[np.minimum(pos, len(ok) - 1)] == keys)
        base[hit] -= m * oc[pos[hit]]
        part = self._f(keys, base + m * counts) - self._f(keys, base)
        which = np.repeat(np.arange(len(options)), [len(x) for x in spans])
        return out_gain + np.bincount(which, weights=part, minlength=len(options))

    def move(self, old: int, new: int, m: float) -> None:
        k, c = self._of(old)
        self.q[k] -= m * c
        k, c = self._of(new)
        self.q[k] += m * c


def _kl_terms(p: np.ndarray, counts: np.ndarray, total: float) -> np.ndarray:
    """Each key's share of `symmetric_kl`: ½(p − q)·log(p/q), q the smoothed counts over `total`."""
    q = (counts + EPS) / total
    return 0.5 * (p - q) * np.log(p / q)


def _merge_counts(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Count tables (sorted keys, counts) → one: the union of the keys, counts summed."""
    if not parts:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    keys, inverse = np.unique(np.concatenate([k for k, _ in parts]), return_inverse=True)
    counts = np.bincount(inverse.ravel(), weights=np.concatenate([c for _, c in parts]), minlength=len(keys))
    return keys, np.rint(counts).astype(np.int64)


def floor(screens: np.ndarray, seed: int = 0) -> dict[str, float]:
    """The training screens' own values: a random quarter held out against the other three
    quarters (what a generator that draws like the training art can hope for)."""
    return Reference(screens, seed=seed).floor()
