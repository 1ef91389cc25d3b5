"""NES attribute rules: one backdrop, at most four 3-colour sub-palettes, one per 16×16 cell.

A real NES background shows, in each 16×16 attribute cell, the shared backdrop ($3F00) plus the
three colours of one of four sub-palettes: at most 4 colours per cell and 13 per screen. Plain
nearest-colour quantization ignores this; `solve_attributes` picks the palettes that minimise the
total perceptual (squared OKLab) error, the way NesTiler does it:

1. cost of showing each pixel as each of the 54 emittable colours (per unique colour, then gathered);
2. for each backdrop candidate (the most common colours, and black):
   a. per cell, greedily grow its ideal ≤3-colour set on top of the backdrop;
   b. the distinct ideal sets are the candidate sub-palettes; choose ≤4 of them greedily and
      improve by swaps (k-medoids / PAM), each cell taking its best;
   c. Lloyd refinement: re-grow each chosen sub-palette on the pooled pixels of its cells;
3. keep the backdrop with the least error; every pixel takes its nearest colour in
   {backdrop} ∪ its cell's sub-palette. No dithering.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nesgan.colour.palette import BLACK, EMITTABLE, Palette, srgb_to_oklab
from nesgan.images import TILE

CELL = TILE  # the NES attribute granularity: one sub-palette per 16×16 pixels
MAX_SUBPALETTES = 4  # $3F01–$3F0F: four background sub-palettes
COLOURS_PER_SUB = 3  # each adds 3 colours to the shared backdrop
MAX_UNIQUE_COLOURS = 1 << 18  # above this, costs come from each pixel's nearest NES colour
_BACKDROP_CANDIDATES = 4  # most common colours tried as backdrop (plus black)
_SWAP_ROUNDS = 4  # PAM improvement passes; converges in 1–2 on screens
_LLOYD_ROUNDS = 2

_POS = np.full(64, -1, dtype=np.intp)  # NES index -> column in EMITTABLE order
_POS[EMITTABLE] = np.arange(len(EMITTABLE))


@dataclass(frozen=True)
class AttributeSolution:
    indices: np.ndarray  # (H, W) uint8 NES indices obeying the attribute rules
    backdrop: int  # NES index of the shared backdrop colour
    subpalettes: tuple[tuple[int, ...], ...]  # ≤4 sub-palettes of ≤3 NES indices (backdrop excluded)
    cell_palette: np.ndarray  # (ceil(H/16), ceil(W/16)) int: which sub-palette each cell shows
    error: float  # total squared OKLab error over all pixels


def _pixel_costs(rgb: np.ndarray, palette: Palette, lut: np.ndarray | None) -> np.ndarray:
    """(H, W, 3) RGB -> (H, W, 54) squared OKLab distance of each pixel to each emittable colour."""
    h, w, _ = rgb.shape
    flat = rgb.reshape(-1, 3).astype(np.uint32)
    packed = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    uniq, inverse = np.unique(packed, return_inverse=True)
    pal_lab = palette._lab  # (54, 3)
    if len(uniq) > MAX_UNIQUE_COLOURS:  # a huge photo: approximate by the nearest NES colour
        from nesgan.colour.lut import quantize_rgb

        nearest = quantize_rgb(rgb, palette, lut).reshape(-1)
        d = ((pal_lab[:, None, :] - pal_lab[None, :, :]) ** 2).sum(-1).astype(np.float64)  # (54, 54)
        return d[_POS[nearest]].reshape(h, w, -1)
    uniq_rgb = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], 1).astype(np.uint8)
    lab = srgb_to_oklab(uniq_rgb)  # (U, 3)
    cost = ((lab[:, None, :] - pal_lab[None, :, :]) ** 2).sum(-1).astype(np.float64)  # (U, 54)
    return cost[inverse.reshape(-1)].reshape(h, w, -1)


def _cells(costs: np.ndarray) -> np.ndarray:
    """(H, W, 54) -> (n_cells, 256, 54), cells row-major; border padding costs 0 everywhere."""
    h, w, k = costs.shape
    ch, cw = -(-h // CELL), -(-w // CELL)
    pad = np.zeros((ch * CELL, cw * CELL, k), dtype=np.float64)  # float64: sums compare exactly
    pad[:h, :w] = costs
    return pad.reshape(ch, CELL, cw, CELL, k).transpose(0, 2, 1, 3, 4).reshape(ch * cw, CELL * CELL, k)


def _grow(base: np.ndarray, pc: np.ndarray, n: int) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Greedy: for each group, add up to n colours that most reduce its cost.

    base: (G, P) current per-pixel cost; pc: (G, P, 54). Returns each group's chosen columns
    and its final (G,) cost.
    """
    chosen: list[list[int]] = [[] for _ in range(len(pc))]
    cur = base.copy()
    for _ in range(n):
        trial = np.minimum(cur[:, :, None], pc).sum(1)  # (G, 54)
        best = trial.argmin(1)
        gain = cur.sum(1) - trial[np.arange(len(pc)), best]
        grow = gain > 1e-9 * (1.0 + cur.sum(1))  # a real improvement, not rounding
        for g in np.flatnonzero(grow):
            chosen[g].append(int(best[g]))
        cur[grow] = np.minimum(cur[grow], pc[grow, :, best[grow]])
    return [tuple(sorted(c)) for c in chosen], cur.sum(1)


def _set_cost(pct: np.ndarray, bg: int, cols: tuple[int, ...]) -> np.ndarray:
    """(n_cells,) cost of showing each cell with {bg} ∪ cols; `pct` (54, n_cells, P) is the cost
    array colour-major (`_by_colour`), so each colour's costs are one contiguous block: picking 4
    of a pixel's 54 costs from the pixel-major array read scattered memory, and took 12 % of
    export-tiles' sheet on the demo. The same sums, exactly."""
    least = pct[bg].copy()
    for c in cols:
        np.minimum(least, pct[c], out=least)
    return least.sum(-1)


def _by_colour(pc: np.ndarray) -> np.ndarray:
    """(n_cells, P, 54) → (54, n_cells, P), contiguous: what `_set_cost` reads."""
    return np.ascontiguousarray(pc.transpose(2, 0, 1))


def _choose(cand_cost: np.ndarray, k: int) -> list[int]:
    """Pick ≤k columns of (cells, candidates) minimising Σ_cell min over picked (greedy + PAM)."""
    n_cand = cand_cost.shape[1]
    chosen: list[int] = []
    cur = np.full(cand_cost.shape[0], np.inf, dtype=np.float64)
    for _ in range(min(k, n_cand)):
        totals = np.minimum(cur[:, None], cand_cost).sum(0)  # (n_cand,)
        totals[chosen] = np.inf
        j = int(totals.argmin())
        chosen.append(j)
        cur = np.minimum(cur, cand_cost[:, j])
    best_total = cand_cost[:, chosen].min(1).sum()
    for _ in range(_SWAP_ROUNDS):
        improved = False
        for slot in range(len(chosen)):
            others = [c for i, c in enumerate(chosen) if i != slot]
            rest = cand_cost[:, others].min(1) if others else np.full(cand_cost.shape[0], np.inf)
            totals = np.minimum(rest[:, None], cand_cost).sum(0)  # (n_cand,)
            j = int(totals.argmin())
            if totals[j] < best_total - 1e-9 and j not in chosen:
                chosen[slot], best_total, improved = j, totals[j], True
        if not improved:
            break
    return chosen


def _solve_for_backdrop(pc: np.ndarray, bg: int, k: int | None = MAX_SUBPALETTES,
                        pct: np.ndarray | None = None) -> tuple[float, list[tuple[int, ...]], np.ndarray]:
    """`pct`: `_by_colour(pc)`, where the caller tries several backdrops on one pc."""
    n_cells = len(pc)
    base = pc[:, :, bg]  # (n_cells, 256)
    # a. each cell's ideal ≤3 colours on top of the backdrop
    ideal, ideal_cost = _grow(base, pc, COLOURS_PER_SUB)
    cands = sorted(set(ideal))
    if k is None:  # no cap on sub-palettes: every cell keeps its ideal set
        return float(ideal_cost.sum()), cands, np.array([cands.index(s) for s in ideal], dtype=np.intp)
    # b. k-medoids over the candidate sets
    pct = _by_colour(pc) if pct is None else pct
    cand_cost = np.stack([_set_cost(pct, bg, c) for c in cands], 1)  # (n_cells, n_cand)
    subs = [cands[j] for j in _choose(cand_cost, k)]
    # c. Lloyd: re-grow each sub-palette on the pixels of the cells that chose it
    for _ in range(_LLOYD_ROUNDS):
        costs = np.stack([_set_cost(pct, bg, s) for s in subs], 1)  # (n_cells, n_subs)
        assign = costs.argmin(1)
        total = costs.min(1).sum()
        new_subs = []
        for j in range(len(subs)):
            members = np.flatnonzero(assign == j)
            if len(members) == 0:
                new_subs.append(subs[j])
                continue
            pooled = pc[members].reshape(1, -1, pc.shape[2])  # (1, members·256, 54)
            grown, _ = _grow(pooled[:, :, bg], pooled, COLOURS_PER_SUB)
            new_subs.append(grown[0])
        new_costs = np.stack([_set_cost(pct, bg, s) for s in new_subs], 1)
        if new_costs.min(1).sum() < total - 1e-9:
            subs = new_subs
        else:
            break
    costs = np.stack([_set_cost(pct, bg, s) for s in subs], 1)
    assign = costs.argmin(1) if subs else np.zeros(n_cells, dtype=np.intp)
    return float(costs.min(1).sum()), subs, assign


def solve_cell_costs(pc: np.ndarray, backdrops: list[int], k: int | None = MAX_SUBPALETTES,
                     ) -> tuple[int, list[tuple[int, ...]], np.ndarray, np.ndarray]:
    """Attribute rules on precomputed costs: pc (n_cells, P, 54) is the cost of showing each of a
    cell's P pixels as each emittable colour (columns in EMITTABLE order).

    Tries each backdrop column in `backdrops`; with k, at most k sub-palettes are shared by all
    cells (k = 4: one NES palette set), with k=None every cell keeps its own best 3 colours.
    Returns (backdrop column, sub-palettes as tuples of columns, (n_cells,) sub-palette of each
    cell, (n_cells, P) chosen column of each pixel).
    """
    best = None
    pct = _by_colour(pc) if k is not None else None
    for bg in dict.fromkeys(int(b) for b in backdrops):
        err, subs, assign = _solve_for_backdrop(pc, bg, k, pct)
        if best is None or err < best[0] - 1e-9:
            best = (err, bg, subs, assign)
    _, bg, subs, assign = best
    out = np.empty(pc.shape[:2], dtype=np.intp)
    for j, s in enumerate(subs):
        members = np.flatnonzero(assign == j)
        allowed = np.array([bg, *s], dtype=np.intp)
        out[members] = allowed[pc[members][:, :, allowed].argmin(-1)]
    return bg, subs, assign, out


def best_colour_sets(pc: np.ndarray, n: int) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Per cell, the ≤n colour columns that best show it (greedy, no shared backdrop), and each
    pixel's chosen column: pc (n_cells, P, 54) -> (sets, (n_cells, P) columns)."""
    big = np.full(pc.shape[:2], float(pc.max()) * 4 + 1.0)  # worse than any colour: the first pick always gains
    sets, _ = _grow(big, pc, n)
    out = np.empty(pc.shape[:2], dtype=np.intp)
    for i, s in enumerate(sets):
        allowed = np.array(s, dtype=np.intp)
        out[i] = allowed[pc[i][:, allowed].argmin(-1)]
    return sets, out


def solve_attributes(rgb: np.ndarray, palette: Palette, lut: np.ndarray | None = None) -> AttributeSolution:
    """(H, W, 3) RGB -> indices a real NES could show: ≤4 colours per 16×16 cell, ≤13 per screen."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    costs = _pixel_costs(rgb, palette, lut)  # (H, W, 54)
    pc = _cells(costs)  # (n_cells, 256, 54)
    nearest = costs.reshape(-1, costs.shape[2]).argmin(1)  # (H·W,) column of the free nearest colour
    common = np.argsort(-np.bincount(nearest, minlength=len(EMITTABLE)), kind="stable")
    backdrops = list(dict.fromkeys([*common[:_BACKDROP_CANDIDATES].tolist(), int(_POS[BLACK])]))
    best = None
    pct = _by_colour(pc)
    for bg in backdrops:
        err, subs, assign = _solve_for_backdrop(pc, bg, pct=pct)
        if best is None or err < best[0] - 1e-9:
            best = (err, bg, subs, assign)
    err, bg, subs, assign = best
    # 3. every pixel: nearest colour in {backdrop} ∪ its cell's sub-palette
    ch, cw = -(-h // CELL), -(-w // CELL)
    out_cols = np.empty((len(pc), CELL * CELL), dtype=np.intp)
    for j, s in enumerate(subs):
        members = np.flatnonzero(assign == j)
        allowed = np.array([bg, *s], dtype=np.intp)
        out_cols[members] = allowed[pc[members][:, :, allowed].argmin(-1)]
    cols = out_cols.reshape(ch, cw, CELL, CELL).transpose(0, 2, 1, 3).reshape(ch * CELL, cw * CELL)
    indices = EMITTABLE[cols[:h, :w]]
    return AttributeSolution(
        indices=indices.astype(np.uint8),
        backdrop=int(EMITTABLE[bg]),
        subpalettes=tuple(tuple(int(EMITTABLE[c]) for c in s) for s in subs),
        cell_palette=assign.reshape(ch, cw).astype(np.int64),
        error=err,
    )
