"""Grow a level column by column so that every N×N window is one the example shows.

The overlapping model (WaveFunctionCollapse) fills a grid cell by cell: observe the cell with
the fewest choices, collapse it, propagate. A side-view level has a fixed height (14 or 15
rows) and scrolls one way, which allows an exact step instead: given the last N−1 columns,
the next column is a chain down the rows — the window at row y fixes the new column's tiles
y … y+N−1 given the old columns — so all columns that complete every window form the paths
of a small chain, and one is drawn exactly by forward filtering, backward sampling:

1. For each row y, the windows whose left N−1 columns match the level's rows y … y+N−1 and
   whose new tiles stand on rows where the example shows them (`options`).
2. Forward: F_{y+1}(tail) = Σ F_y(head) · w(window), head/tail = the new column's tiles
   y … y+N−2 / y+1 … y+N−1. No path: a dead end (step 4).
3. Backward: draw the last tail ∝ F, then each head ∝ F_y(head) · w. Weights are the
   example's counts divided by the counts of the strip two vertically neighbouring windows
   share (the junction-tree factorisation of a column chain), so columns come in about the
   example's proportions.
4. Depth-first search over columns: a drawn column after which no column fits (one column of
   lookahead), or whose context is known to die too soon, is skipped and another drawn; a
   position where none leads on is a dead end: the search pops back one column, and the dead
   context is remembered with how far it got, so forced runs of columns that end in a trap are
   unwound once and never re-entered. Too many dead ends restart from a new start. Windows that
   can never be continued to the right are pruned before growing.

Deterministic for a seed: all draws come from one `random.Random` per restart.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nesgan.errors import NesganError
from nesgan.level.patterns import Window, row_tiles, strips, windows

Column = tuple[int, ...]
Option = tuple[Column, Column, float]  # (head, tail, weight)
DRAWS = 32  # draws at one position before it counts as a dead end (rare columns may hide)


@dataclass
class Model:
    """The example's windows, ready for column-by-column growth."""

    n: int
    height: int
    options: list[dict[Window, list[Option]]]  # per window row y: left columns -> options
    starts: list[int]  # example columns x where a level may start (columns x … x+N−2)
    example: list[Column]  # the example's columns


@dataclass
class Growth:
    level: np.ndarray  # (height, width) gids
    restarts: int
    backtracks: int


def _context(cols: list[Column], n: int, y: int) -> Window:
    """The left N−1 columns' tiles in rows y … y+N−1, column by column."""
    return tuple(cols[j][y + i] for j in range(n - 1) for i in range(n))


def _describe(window: Window, n: int) -> str:
    rows = [" ".join(str(window[j * n + i]) for j in range(n)) for i in range(n)]
    return " / ".join(rows)


def build_model(grid: np.ndarray, n: int, what: str = "the example", positional: bool = True,
                junction: bool = True) -> Model:
    """Index the example's windows by their left columns for every row a window may stand on;
    prune windows that no window continues to the right; refuse when nothing is left.

    `positional`: a window may stand only on the rows where the example shows it (default;
    with False, anywhere its tiles' rows allow: 0.65 KL on 2×2 instead of 0.04 on the museum
    example, ground tiles stacked where the example never stacks them). `junction`: weights
    are counts over shared-strip counts (default); raw counts favour the commonest windows
    at every row and drown the level in sky (KL 1.3)."""
    height, width = grid.shape
    if height < n or width < n:
        raise NesganError(f"{what} is {width}×{height} tiles, smaller than the {n}×{n} pattern; "
                          f"paint at least {n} rows and more than {n} columns")
    counts = windows(grid, n)
    shared = strips(grid, n)
    rows = row_tiles(grid)
    k = n * (n - 1)
    # 1. windows usable at each row y: the new (right) column's tiles on rows that show them
    usable: list[dict[Window, float]] = []
    for y in range(height - n + 1):
        here = {}
        if positional:
            counts = windows(grid[y : y + n], n)
            shared = strips(grid[y : y + n - 1], n)
        for w, c in counts.items():
            right = w[k:]
            if all(right[i] in rows[y + i] for i in range(n)):
                top = tuple(w[j * n + i] for j in range(n) for i in range(n - 1))
                here[w] = c / shared[top] if y and junction else float(c)
        usable.append(here)
    # 2. prune windows whose right N−1 columns start no window at the same row, to a fixpoint
    while True:
        lefts = [{w[:k] for w in here} for here in usable]
        dropped = False
        for y, here in enumerate(usable):
            dead = [w for w in here if w[n:] not in lefts[y]]
            for w in dead:
                del here[w]
            dropped = dropped or bool(dead)
        if not dropped:
            break
    for y, here in enumerate(usable):
        if not here:
            raise NesganError(_cannot_tile(grid, n, y, what))
    options: list[dict[Window, list[Option]]] = []
    for here in usable:
        by_left: dict[Window, list[Option]] = defaultdict(list)
        for w, weight in here.items():
            right = w[k:]
            by_left[w[:k]].append((right[:-1], right[1:], weight))
        options.append(dict(by_left))
    example = [tuple(col) for col in grid.T.tolist()]
    starts = [x for x in range(width - n + 2)
              if all(_context(example[x : x + n - 1], n, y) in options[y]
                     for y in range(height - n + 1))]
    if not starts:
        raise NesganError(_cannot_tile(grid, n, None, what))
    return Model(n, height, options, starts, example)


def _cannot_tile(grid: np.ndarray, n: int, y: int | None, what: str) -> str:
    """Which windows cannot be continued: the ones at the example's right edge, say."""
    width = grid.shape[1]
    rows = f"rows {y}–{y + n - 1}" if y is not None else "every row band"
    at = width - n
    edge = grid[(y or 0) : (y or 0) + n, at : at + n]
    window = tuple(edge.T.reshape(-1).tolist())
    return (f"{what}'s {n}×{n} patterns cannot tile: on {rows} no window is followed, "
            f"{n - 1} column{'s' * (n > 2)} over, by another window the example shows (e.g. the "
            f"window at column {at}, row {y or 0}, tiles {_describe(window, n)}, ends the example); "
            f"paint a wider example in which columns repeat" + (", or try --pattern 2" if n > 2 else ""))


def _forward(model: Model, cols: list[Column]):
    """Step 2 for the column after `cols`: (F over the last tails, the weighted heads behind
    each tail per row), or None at a dead end."""
    n, height = model.n, model.height
    left = cols[len(cols) - (n - 1):]
    forward: dict[Column, float] | None = None  # F_y over heads; None: all ones (y = 0)
    backs: list[dict[Column, list[tuple[Column, float]]]] = []
    for y in range(height - n + 1):
        opts = model.options[y].get(_context(left, n, y))
        if not opts:
            return None
        nxt: dict[Column, float] = {}
        back: dict[Column, list[tuple[Column, float]]] = defaultdict(list)
        for head, tail, w in opts:
            f = w if forward is None else forward.get(head, 0.0) * w
            if f > 0.0:
                nxt[tail] = nxt.get(tail, 0.0) + f
                back[tail].append((head, f))
        if not nxt:
            return None
        total = sum(nxt.values())
        forward = {t: v / total for t, v in nxt.items()}  # normalised: no under- or overflow
        backs.append(back)
    return forward, backs


def sample_column(model: Model, cols: list[Column], rng: random.Random) -> Column | None:
    """A column that completes every window with the last N−1 columns of `cols`, drawn with
    probability ∝ the product of its windows' weights; None at a dead end."""
    found = _forward(model, cols)
    if found is None:
        return None
    forward, backs = found
    tails = list(forward)
    tail = rng.choices(tails, [forward[t] for t in tails])[0]
    column = list(tail)  # rows height−N+1 … height−1
    for back in reversed(backs):
        heads = back[tail]
        head = heads[0][0] if len(heads) == 1 else rng.choices(
            [h for h, _ in heads], [f for _, f in heads])[0]
        column.insert(0, head[0])
        tail = head
    return tuple(column)


def grow(model: Model, width: int, seed: int, max_backtracks: int | None = None,
         max_restarts: int = 20, progress: Callable[[int], None] | None = None) -> Growth:
    """A level `width` columns wide from `model`, deterministic for `seed`. A depth-first
    search: each position draws untried columns (at most `DRAWS` draws); a position where none
    leads on is a dead end, and its context (the last N−1 columns) is remembered with how far its
    subtree got (`reach`), so that a context known to die within k columns is never entered
    again where fewer than k columns would remain. At most `max_backtracks` dead ends per try
    (default 4 per column), then a restart from another start; refuses after `max_restarts`
    failed tries. `progress(columns)` hears how far it got."""
    n = model.n
    budget = 4 * width if max_backtracks is None else max_backtracks
    backtracks = 0
    reach: dict[tuple[Column, ...], int] = {}  # dead contexts -> columns their subtree reached
    for restart in range(max_restarts + 1):
        rng = random.Random(seed * 1_000_003 + restart)
        x0 = rng.choice(model.starts)
        cols = list(model.example[x0 : x0 + n - 1])
        tried: list[set[Column]] = [set()]  # per open position: the columns tried there
        best = [len(cols)]  # per open position: how far its subtree got
        tries = 0
        while len(cols) < width:
            x = len(cols)
            column = None
            for _ in range(DRAWS):
                drawn = sample_column(model, cols, rng)
                if drawn is None:
                    break
                if drawn in tried[-1]:
                    continue
                tried[-1].add(drawn)
                after = tuple(cols[x - (n - 2):] if n > 2 else ()) + (drawn,)
                if after in reach and x + 1 + reach[after] < width:
                    continue  # known to die before the level's end
                if x + 1 < width and _forward(model, cols + [drawn]) is None:
                    reach[after] = 0  # looked ahead: no column fits after it
                    continue
                column = drawn
                break
            if column is not None:
                cols.append(column)
                tried.append(set())
                best.append(len(cols))
                if progress is not None:
                    progress(len(cols))
                continue
            backtracks += 1
            tries += 1
            reach[tuple(cols[x - (n - 1):])] = best[-1] - x
            if tries > budget or len(cols) <= n - 1:
                break
            got = best.pop()
            tried.pop()
            best[-1] = max(best[-1], got)
            cols.pop()
        else:
            level = np.array(cols[:width], dtype=np.uint32).T
            return Growth(level, restart, backtracks)
    raise NesganError(f"no level {width} columns wide was found in {max_restarts + 1} tries "
                      f"({backtracks} backtracks): the example's {n}×{n} patterns keep "
                      "running into dead ends; paint a wider example"
                      + (", or try --pattern 2" if n > 2 else ", or grow fewer --screens"))
