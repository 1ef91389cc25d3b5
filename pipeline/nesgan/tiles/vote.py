"""Steps 3–4 of the tile sheet (`sheet.py`): a group of cells votes its tile pixel by pixel, then
the attribute solver gives it ≤ 4 NES colours and lone pixels are smoothed away.

3. **Vote.** The cost of showing pixel p as colour a is Σ over the group's members of the squared
   sRGB distance from the member's colour to a, truncated at VOTE_CLIP so that speckle costs
   every candidate alike (`vote_costs`, `vote_distance`).
4. **NES colours.** `legal_tiles` picks each tile's ≤ 4 colours (`nesgan.colour.attributes`;
   with a palette cap, one backdrop and K shared sub-palettes), then `smooth` penalises lone
   pixels (a Potts term per differing 4-neighbour, checkerboard ICM) with a weight that grows
   with the tile's use.
"""

from __future__ import annotations

import numpy as np

from nesgan.colour.attributes import COLOURS_PER_SUB, best_colour_sets, solve_cell_costs
from nesgan.colour.palette import EMITTABLE, Palette
from nesgan.tiles.tile import TILE

PIXELS = TILE * TILE
VOTE_CLIP = 0.35  # sRGB distance (0–1 scale) beyond which a member pixel is an outlier (speckle)
# λ per differing 4-neighbour = SMOOTH_ABS + SMOOTH_PER_USE · (the tile's use): the data term is a
# sum over members, so the second part asks each member's pixel to be clearly unlike its
# neighbours (a GAN's phase-locked checkerboard is a consensus of near colours, and goes), while
# the first lets a rarely used tile lose speckle its one or two members share.
SMOOTH_ABS = 0.02
SMOOTH_PER_USE = 0.025
ICM_SWEEPS = 4
CHUNK = 16_384  # cells per chunk in the streaming steps (≈ 50 MB of float32 features)


def vote_costs(cells: np.ndarray, weights: np.ndarray, labels: np.ndarray, k: int,
               dist: np.ndarray) -> np.ndarray:
    """(k, 256, 54): Σ over a group's members of weight · distance(member pixel, colour)."""
    hist = np.zeros((PIXELS, k * 64), np.float64)  # per pixel: (group, colour) counts
    flat = cells.reshape(len(cells), -1)
    unit = bool(np.all(weights == 1))
    for s in range(0, len(cells), CHUNK):
        colours = flat[s : s + CHUNK].T.copy()  # (256, c) uint8: small enough to transpose in cache
        base = labels[s : s + CHUNK].astype(np.int32) * 64
        w = None if unit else weights[s : s + CHUNK]
        for p in range(PIXELS):
            hist[p] += np.bincount(base + colours[p], weights=w, minlength=k * 64)
    hist = hist.reshape(PIXELS, k, 64).transpose(1, 0, 2).reshape(k * PIXELS, 64)
    return (hist @ dist).reshape(k, PIXELS, -1)


def smooth(pc: np.ndarray, allowed: np.ndarray, choice: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Checkerboard ICM on E = Σ_p pc[p, a_p] + λ·#{4-neighbour pairs that differ}, per tile.

    pc (k, 256, 54); allowed (k, 4) columns (-1 = none); choice (k, 256) option index 0–3; lam (k,).
    Returns the improved (k, 256) option indices."""
    k = len(pc)
    opts = allowed.shape[1]
    data = np.take_along_axis(pc, np.maximum(allowed, 0)[:, None, :], axis=2)  # (k, 256, 4)
    data = np.where(allowed[:, None, :] >= 0, data, np.inf).reshape(k, TILE, TILE, opts)
    a = choice.reshape(k, TILE, TILE).copy()
    yy, xx = np.mgrid[0:TILE, 0:TILE]
    parity = (yy + xx) % 2
    for _ in range(ICM_SWEEPS):
        changed = False
        for par in (0, 1):
            diff = np.zeros((k, TILE, TILE, opts), np.float64)
            for axis, step in ((1, 1), (1, -1), (2, 1), (2, -1)):
                nb = np.roll(a, step, axis=axis)
                valid = np.ones((TILE, TILE), bool)
                if axis == 1:
                    valid[0 if step == 1 else -1, :] = False
                else:
                    valid[:, 0 if step == 1 else -1] = False
                diff += valid[None, :, :, None] & (nb[..., None] != np.arange(opts))
            best = (data + lam[:, None, None, None] * diff).argmin(-1)
            upd = (parity == par)[None] & (best != a)
            if upd.any():
                a[upd] = best[upd]
                changed = True
        if not changed:
            break
    return a.reshape(k, PIXELS)


def legal_tiles(pc: np.ndarray, mass: np.ndarray, backdrops: list[int], palettes: int | None
                ) -> tuple[np.ndarray, int | None, list[tuple[int, ...]], np.ndarray]:
    """Tiles (k, 16, 16) from vote costs, ≤ 4 colours each, lone pixels penalised.

    With palettes=K: one backdrop and ≤K shared 3-colour sub-palettes (columns); without: each
    tile its own best 4 colours. Returns tiles, backdrop column (None without K), the colour
    sets, and each tile's set."""
    if palettes is None:
        sets, cols = best_colour_sets(pc, 1 + COLOURS_PER_SUB)
        bg = None
        assign = np.arange(len(sets))
        allowed = np.full((len(pc), 1 + COLOURS_PER_SUB), -1, np.intp)
        for t, s in enumerate(sets):
            allowed[t, : len(s)] = s
    else:
        bg, sets, assign, cols = solve_cell_costs(pc, backdrops, palettes)
        allowed = np.full((len(pc), 1 + COLOURS_PER_SUB), -1, np.intp)
        allowed[:, 0] = bg
        for t, s in enumerate(assign.tolist()):
            allowed[t, 1 : 1 + len(sets[s])] = sets[s]
    choice = (cols[:, :, None] == allowed[:, None, :]).argmax(-1)  # (k, 256) option index
    choice = smooth(pc, allowed, choice, SMOOTH_ABS + SMOOTH_PER_USE * mass)
    tiles = EMITTABLE[np.take_along_axis(allowed, choice, axis=1)].reshape(-1, TILE, TILE)
    return tiles.astype(np.uint8), bg, list(sets), np.asarray(assign, np.intp)


def vote_distance(palette: Palette) -> np.ndarray:
    """(64, 54) cost of a member pixel of colour c when the tile shows emittable colour a:
    squared sRGB distance (so the vote is the colour nearest the members' mean: generator noise
    is zero-mean in RGB), truncated at VOTE_CLIP² so that speckle costs every candidate alike."""
    rgb = palette.rgb.astype(np.float64)
    sq = ((rgb[:, None, :] - rgb[EMITTABLE][None, :, :]) ** 2).sum(-1) / 255.0**2
    return np.minimum(sq, VOTE_CLIP**2)
