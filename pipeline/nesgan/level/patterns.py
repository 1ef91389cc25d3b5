"""What the example shows: its N×N tile windows and their counts, and which tiles each row holds.

A tile is a gid with its flip bits (an int); a window is the tuple of its N·N tiles read
column by column (left column top to bottom, then the next), so the first N·(N−1) entries are
the window's left N−1 columns and the last N its right column: the solver grows the level one
column at a time and looks windows up by their left part.

Also the numbers the level is judged by: tile-pattern KL (`nesgan.patterns.symmetric_kl`, on
tile ids) and the longest run of output columns copied from the example.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import numpy as np

from nesgan.patterns import EPS
from nesgan.patterns import symmetric_kl as shared_kl

Window = tuple[int, ...]


def windows(grid: np.ndarray, n: int) -> Counter[Window]:
    """Every n×n window of `grid` (rows, cols) with its count, read column by column."""
    rows, cols = grid.shape
    g = grid.tolist()
    out: Counter[Window] = Counter()
    for x in range(cols - n + 1):
        for y in range(rows - n + 1):
            out[tuple(g[y + i][x + j] for j in range(n) for i in range(n))] += 1
    return out


def strips(grid: np.ndarray, n: int) -> Counter[Window]:
    """Every (n−1)-row × n-column strip, read column by column: where two vertically
    neighbouring n×n windows overlap (the solver's junction-tree denominators)."""
    rows, cols = grid.shape
    g = grid.tolist()
    out: Counter[Window] = Counter()
    for x in range(cols - n + 1):
        for y in range(rows - n + 2):
            out[tuple(g[y + i][x + j] for j in range(n) for i in range(n - 1))] += 1
    return out


def row_tiles(grid: np.ndarray) -> list[frozenset[int]]:
    """The tiles each row of the example shows: a grown level's row may hold only these."""
    return [frozenset(row) for row in grid.tolist()]


def symmetric_kl(p_counts: Mapping, q_counts: Mapping, eps: float = EPS) -> float:
    """`nesgan.patterns.symmetric_kl` (the one tile-pattern KL nesgan reports, smoothed as
    Lucas & Volz smooth it) of two count tables keyed by windows of tile ids."""
    index = {key: i for i, key in enumerate(set(p_counts) | set(q_counts))}
    if not index:
        return 0.0

    def table(counts: Mapping) -> tuple[np.ndarray, np.ndarray]:
        return (np.fromiter((index[k] for k in counts), np.int64, len(counts)),
                np.fromiter(counts.values(), np.float64, len(counts)))

    return shared_kl(table(p_counts), table(q_counts), eps)


def longest_copied_run(example: np.ndarray, level: np.ndarray) -> int:
    """The longest run of consecutive level columns equal to a run of consecutive example
    columns (whole columns, every row)."""
    return max(copied_runs(example, level), default=0)


def copied_runs(example: np.ndarray, level: np.ndarray) -> list[int]:
    """For each level column, the longest copied run ending there (for a distribution)."""
    example, level = np.asarray(example, np.int64), np.asarray(level, np.int64)  # bytes compare
    cols: dict[bytes, int] = {}
    ex = np.array([cols.setdefault(c.tobytes(), len(cols)) for c in np.ascontiguousarray(example.T)])
    run = np.zeros(len(ex) + 1, np.int64)
    ends = []
    for c in (cols.get(c.tobytes(), -1) for c in np.ascontiguousarray(level.T)):
        nxt = np.zeros_like(run)
        nxt[1:] = np.where(ex == c, run[:-1] + 1, 0)
        run = nxt
        ends.append(int(run.max()))
    return ends


def violations(example: np.ndarray, level: np.ndarray, n: int, limit: int = 5) -> list[str]:
    """Where `level` breaks the rules (empty when it keeps them): an n×n window the example
    never shows, or a tile on a row where the example never shows it."""
    seen = windows(example, n)
    rows = row_tiles(example)
    out = []
    for y, row in enumerate(level.tolist()):
        for x, tile in enumerate(row):
            if tile not in rows[y]:
                out.append(f"tile {tile} at column {x}, row {y}: not on that row in the example")
    g = level.tolist()
    for x in range(level.shape[1] - n + 1):
        for y in range(level.shape[0] - n + 1):
            w = tuple(g[y + i][x + j] for j in range(n) for i in range(n))
            if w not in seen:
                out.append(f"the {n}×{n} window at column {x}, row {y} is not in the example")
    return out[:limit]
