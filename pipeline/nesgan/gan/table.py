"""The pattern table of `--arch patterns`, learned from the training art before training starts.

The NES draws a background from a pattern table of 8×8 patterns of 2-bit slots (backdrop + 3
colours of the cell's sub-palette). This module reads the training screens the same way:

1. every screen's backdrop is its commonest colour; every 16×16 cell's colours become slots —
   the backdrop slot 0, the cell's other colours 1, 2, 3 by how many pixels they cover (a fifth
   colour, rare on NES screens, takes the slot of its cell's commonest non-backdrop colour);
2. every cell's four 8×8 quadrants are then slot maps; the `K` commonest distinct ones (the four
   flat ones always among them) are the table, with how often each occurs (the generator's
   usage prior: without it a generator drawing from a table of training patterns left out
   the sky, the issue's frozen-table probe);
3. two seam tables say which patterns may sit side by side inside a cell: A left of B (or A
   above B) is allowed when every 3×3 window across their seam, drawn with four distinct
   colours, is a partition some training cell shows (`nesgan.patterns`). Unrelated patterns
   meeting at a seam are what invented patterns in the frozen-pattern probe (12 % of cells).

Numpy only; the model holds the result as buffers, so a checkpoint carries its table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nesgan import patterns

PATTERN = 8  # one PPU pattern
CELL = 16  # one attribute area: 2×2 patterns
SLOTS = 4
DEFAULT_SIZE = 256  # one NES pattern table


@dataclass(frozen=True)
class Table:
    patterns: np.ndarray  # (K, 8, 8) int64 slots 0-3
    usage: np.ndarray  # (K,) float32: each pattern's share of the training quadrants it covers
    seam_h: np.ndarray  # (K, K) float32 1/0: pattern a may sit left of pattern b in a cell
    seam_v: np.ndarray  # (K, K) float32 1/0: pattern a may sit above pattern b in a cell
    backdrops: np.ndarray  # (54,) float32: share of the screens whose backdrop is each emittable colour
    colours: np.ndarray  # (54,) float32: share of the non-backdrop pixels in each emittable colour
    known: np.ndarray  # sorted uint64 keys of the training cells' 3×3 window partitions


def slot_cells(indices: np.ndarray) -> np.ndarray:
    """(N, 224, 224) colour indices → (N, 14, 14, 16, 16) uint8 slots, read as step 1 says."""
    n, h, w = indices.shape
    flat = indices.reshape(n, -1).astype(np.int64)
    counts = np.stack([np.bincount(s, minlength=256) for s in flat])  # (N, 256)
    backdrop = counts.argmax(axis=1)  # (N,)
    cells = patterns.screen_cells(indices).reshape(n, -1, CELL * CELL).astype(np.int64)  # (N, C, 256)
    is_back = cells == backdrop[:, None, None]
    # each cell's colours ranked by coverage, backdrop excluded: count per colour via one-hot sums
    c = cells.shape[1]
    cell_id = np.arange(n * c).reshape(n, c, 1)
    onehot_counts = np.bincount((cell_id * 256 + cells).ravel(), minlength=n * c * 256)
    onehot_counts = onehot_counts.reshape(n, c, 256)  # (N, C, 256): pixels of each colour
    onehot_counts[np.arange(n), :, backdrop] = 0
    order = np.argsort(-onehot_counts, axis=2, kind="stable")  # colours by coverage
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(256), order.shape).copy(), 2)
    slot = np.take_along_axis(rank, cells, axis=2) + 1  # 1 = commonest non-backdrop colour
    slot = np.where(slot > SLOTS - 1, 1, slot)
    slot = np.where(is_back, 0, slot)
    return slot.reshape(n, h // CELL, w // CELL, CELL, CELL).astype(np.uint8)


def quadrants(slots: np.ndarray) -> np.ndarray:
    """(N, 14, 14, 16, 16) → (N·14·14·4, 8, 8): each cell's 8×8 quadrants, TL TR BL BR."""
    q = slots.reshape(*slots.shape[:3], 2, PATTERN, 2, PATTERN).transpose(0, 1, 2, 3, 5, 4, 6)
    return q.reshape(-1, PATTERN, PATTERN)


def seam_table(table: np.ndarray, known: np.ndarray, horizontal: bool) -> np.ndarray:
    """(K, 8, 8) slot patterns → (K, K) 1/0: every 3×3 window across a's seam with b (a left of
    b, or above it) is a partition in `known` (sorted keys, `nesgan.patterns.known_keys`)."""
    k = len(table)
    a, b = np.repeat(np.arange(k), k), np.tile(np.arange(k), k)
    return seams_known(table, known, a, b, horizontal).reshape(k, k).astype(np.float32)


def seams_known(table: np.ndarray, known: np.ndarray, a: np.ndarray, b: np.ndarray,
                horizontal: bool, n: int = 3) -> np.ndarray:
    """(m,) bool: for each pair of table indices, whether every n×n window across a[i]'s seam
    with b[i] (a left of b, or above it) is a partition in `known` (keys of n×n windows)."""
    t = table if horizontal else table.transpose(0, 2, 1)  # above/below read as left/right
    strip = np.concatenate([t[a][:, :, PATTERN - n + 1:], t[b][:, :, :n - 1]], axis=2)  # (m, 8, 2n-2)
    win = np.lib.stride_tricks.sliding_window_view(strip, (n, n), axis=(1, 2))  # (m, 9-n, n-1, n, n)
    if not horizontal:
        win = win.swapaxes(-1, -2)  # back to the screen's row-major order
    keys = patterns.partition_keys(win.reshape(len(strip), -1, n * n))
    return np.isin(keys, known).all(axis=1)


def pattern_maps(indices: np.ndarray, table: np.ndarray, chunk: int = 256,
                 slots: np.ndarray | None = None) -> np.ndarray:
    """(N, 224, 224) colour indices → (N, 28, 28) int16: each 8×8 quarter's table pattern, read
    as slots the way the table was learned (`slot_cells`): the pattern itself where the table
    holds it, else the table pattern differing from it in fewest pixels. `slots`: the screens'
    `slot_cells`, where the caller has them already (`train` reads them once for the table too)."""
    k = len(table)
    flat_table = table.reshape(k, -1).astype(np.uint8)
    table_keys = _packed(flat_table)
    order = np.argsort(table_keys, kind="stable")  # the first of equal patterns (flat padding) wins
    out = []
    for a in range(0, len(indices), chunk):
        x = np.asarray(indices[a:a + chunk])
        n, h, w = x.shape
        q = quadrants(slot_cells(x) if slots is None else slots[a:a + chunk]).reshape(-1, PATTERN * PATTERN)
        keys, first, inverse = np.unique(_packed(q), return_index=True, return_inverse=True)
        at = np.minimum(np.searchsorted(table_keys[order], keys), k - 1)
        ids = np.where(table_keys[order][at] == keys, order[at], -1)
        miss = np.flatnonzero(ids < 0)  # the rest: the table pattern nearest in pixels
        for s in range(0, len(miss), 512):
            part = miss[s:s + 512]
            ids[part] = (q[first[part]][:, None, :] != flat_table[None]).sum(-1).argmin(1)
        m = ids[inverse.ravel()].reshape(n, h // CELL, w // CELL, 2, 2)
        out.append(m.transpose(0, 1, 3, 2, 4).reshape(n, h // PATTERN, w // PATTERN))
    return np.concatenate(out).astype(np.int16) if out else np.zeros((0, 28, 28), np.int16)


def _packed(patterns: np.ndarray) -> np.ndarray:
    """(n, 64) slots 0-3 → (n,) 16-byte values, 2 bits a pixel: equal values ⇔ equal patterns."""
    halves = patterns.reshape(-1, 2, 32).astype(np.uint64) << (2 * np.arange(32, dtype=np.uint64))
    return np.ascontiguousarray(np.bitwise_or.reduce(halves, axis=2)).view(np.dtype((np.void, 16))).ravel()


def learn_table(indices: np.ndarray, size: int = DEFAULT_SIZE, slots: np.ndarray | None = None) -> Table:
    """The pattern table of (N, 224, 224) training colour indices: `size` patterns (fewer when
    the screens hold fewer distinct ones; the rest repeat the flat backdrop pattern, unused).
    `slots`: the screens' `slot_cells`, where the caller has them already."""
    quads = quadrants(slot_cells(indices) if slots is None else slots).reshape(-1, PATTERN * PATTERN)
    # each pattern packed into 16 bytes (2 bits a pixel) and counted as one value: 8× faster
    # than np.unique over rows of 64 values
    _, first, counts = np.unique(_packed(quads), return_index=True, return_counts=True)
    uniq = quads[first]
    flats = np.repeat(np.arange(SLOTS, dtype=uniq.dtype)[:, None], PATTERN * PATTERN, 1)
    order = np.argsort(-counts, kind="stable")
    chosen = list(flats)
    seen = {bytes(f) for f in flats}
    for i in order:
        if len(chosen) == size:
            break
        if bytes(uniq[i]) not in seen:
            chosen.append(uniq[i])
            seen.add(bytes(uniq[i]))
    table = np.stack(chosen)
    lookup = {bytes(u): c for u, c in zip(uniq, counts, strict=True)}
    usage = np.array([lookup.get(bytes(t), 0) for t in table], dtype=np.float64)
    while len(table) < size:  # a tiny training set: pad with the backdrop, never used
        table = np.concatenate([table, flats[:1]])
        usage = np.append(usage, 0.0)
    usage = (usage / max(usage.sum(), 1.0)).astype(np.float32)
    table = table.reshape(-1, PATTERN, PATTERN).astype(np.int64)
    known = patterns.known_keys(indices, 3)
    backdrops, colours = colour_usage(indices)
    return Table(patterns=table, usage=usage, seam_h=seam_table(table, known, True),
                 seam_v=seam_table(table, known, False), backdrops=backdrops, colours=colours,
                 known=known)


def colour_usage(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, H, W) NES colour indices → the training screens' backdrops (each screen's commonest
    colour) and their other pixels' colours, as shares over the 54 emittable colours in the
    order the generator picks them (`nesgan.colour.palette.EMITTABLE`)."""
    from nesgan.colour.palette import EMITTABLE

    position = np.full(256, -1)
    position[EMITTABLE] = np.arange(len(EMITTABLE))
    counts = np.stack([np.bincount(s.ravel(), minlength=256) for s in indices.astype(np.int64)])
    back = counts.argmax(axis=1)
    backdrops = np.bincount(position[back][position[back] >= 0], minlength=len(EMITTABLE)).astype(np.float64)
    others = counts.copy()
    others[np.arange(len(back)), back] = 0
    per_colour = others.sum(axis=0)
    colours = np.zeros(len(EMITTABLE))
    keep = position >= 0
    np.add.at(colours, position[keep], per_colour[keep])
    return ((backdrops / max(backdrops.sum(), 1.0)).astype(np.float32),
            (colours / max(colours.sum(), 1.0)).astype(np.float32))
