"""The tile sheet: group the cells of every generated screen into at most N NES-legal tiles.

GAN output is noisy: every 16×16 cell is unique, speckled and shows 7–50 colours. A level
designer needs the opposite, a few dozen to a few hundred clean tiles that each show at most 4
colours (the shared backdrop plus a 3-colour sub-palette, as the NES draws a 16×16 area). This
module makes that sheet, in the spirit of lossy tile reducers (swpxlt `img2sms -maxtiles`
merges the closest pair; RgbQuant-SMS runs k-means to `maxTiles`), in five steps:

1. **Features.** Each cell's pixels in OKLab (every 2nd pixel each way: 64 pixels, 192 numbers),
   projected on the top principal components of a sample of cells: noise spreads over many
   components, the drawing lives in the first few.
2. **Grouping.** k-means (greedy k-means++ seeding, fitted on a sample) over-clusters the cells
   into 2·N groups; every cell takes its nearest centre. Then groups are merged pairwise,
   cheapest first, down to N, where the cost of a merge is what drawing both groups with one
   voted tile adds to their vote costs (step 3), weighted by use. Two halves of one drawing vote
   the same tile and merge for free; a rare but distinct drawing stays apart unless its pixels
   are cheap to change (swpxlt's `img2sms -maxtiles` merges the closest pair the same way; plain
   k-means at N, as RgbQuant-SMS does, spends its centres splitting the sky, which covers half
   of every screen).
3. **Draw.** A group's tile is its medoid, the member cell its members disagree with least
   (`_representatives`): a real drawing, not a blend of several. Given the training art's
   window counts, another member that draws the group nearly as well and is one of its own
   drawings may stand for it instead, where it brings the map closer to the art
   (`_closest_members`). Only where the members are noisy copies of one drawing does a pixel
   vote stand instead: the cost of showing pixel p as colour a is Σ over members of the squared
   sRGB distance from the member's colour to a, truncated so that speckle costs every candidate
   alike (the colour nearest the members' mean: generator noise is zero-mean in RGB; a tile used
   200 times weighs 200 times more), and the vote is kept when it explains the members 1.2×
   better than the medoid does.
4. **NES colours.** The attribute solver (`nesgan.colour.attributes`) picks, from those costs,
   each tile's ≤ 4 colours; with `palettes=K` one backdrop and K shared 3-colour sub-palettes
   (K = 4: one NES palette set), and each medoid is then recoloured one-to-one into the best of
   them (`_recolour`: a palette swap, so no two of its colours merge). Lone pixels are penalised
   (a Potts term per differing 4-neighbour, solved by checkerboard ICM) with a weight that grows
   with the tile's use, so a lone pixel survives only where its members clearly agree on an
   unlike colour: speckle and a GAN's phase-locked checkerboard go, real dots stay.
   (The vote and the colour solve are `vote.py`.)
5. **Map.** Each cell is drawn with its group's tile; groups that voted the same tile become one.
   The sheet is ordered by sub-palette (most used first), then by use.

Everything is numpy/scipy/scikit-learn on the CPU; 10,000 screens (1.96 M cells) take well under
a minute on 2 cores (`make bench`, sheet_bench).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from nesgan.colour.attributes import MAX_SUBPALETTES
from nesgan.colour.palette import BLACK, EMITTABLE, Palette, srgb_to_oklab
from nesgan.errors import NesganError
from nesgan.patterns import Reference, inventing_cells
from nesgan.tiles.tile import TILE, dedupe, flips, partition_hashes
from nesgan.tiles.vote import CHUNK, legal_tiles, vote_costs, vote_distance

DEFAULT_MAX_TILES = 256  # a pattern table's worth; NES levels use a few dozen to a few hundred metatiles
PIXELS = TILE * TILE
PCA_DIMS = 32  # components kept: the drawing lives in the first few, the speckle spreads over all 768
FEATURE_STRIDE = 2  # features from every 2nd pixel each way (64 of 256): 4× less gathering, same groups
FIT_SAMPLE = 12_000  # cells the projection and the k-means are fitted on (all cells are assigned)
KMEANS_STEPS = 10  # Lloyd steps after seeding; the merge by vote cost does the fine work
OVERCLUSTER = 2  # k-means centres per final tile, before merging by vote cost
MEDOID_RATIO = 1.2  # a group shows its medoid unless its vote costs this many times less
# With the training art's window counts, a group may show, instead of its medoid, the member
# that brings the rebuilt map closest to the art among those (of its CLOSEST_CANDIDATES most
# used) whose pixels cost at most CLOSEST_RATIO times the medoid's and that draw at least
# CLOSEST_SUPPORT of the group's cells (by use; judged on its SUPPORT_MEMBERS most used) with
# fewer changed pixels than the medoid does (`_closest_members`; docs/tile-sheet.md). The ratio
# was 2 until the ninth round of docs/generator-patterns.md: at 3, five seeds' rebuilt maps
# measured 0.103 against 0.106 (best of 4 seedings each), the changed pixels and named drawings
# about the same (4: 0.103; 6: 0.103; 1.5: 0.116).
CLOSEST_RATIO = 3.0
CLOSEST_SUPPORT = 0.1
CLOSEST_CANDIDATES = 64
SUPPORT_MEMBERS = 4096
# In grouping, a cell that is a whole training drawing (its shape, up to a palette swap or mirror,
# is a training tile's) counts this many times its use: a rare `?` block or pipe top then keeps
# a tile of its own instead of merging into the plain block beside it. Six sets of 24 generated
# screens side by side (128 tiles, --palettes 4; docs/tile-sheet.md): the museum's named drawings
# kept went from 6.5 on average to 10.7 (×2), 11.8 (×3), 12.3 (×4), 13.3 (×5); near-copies from
# 5 % of non-trivial tiles to 11 % (×4, at most 22 %); the rebuilt map's divergence 0.318 → 0.311.
DRAWING_WEIGHT = 4.0
_POS = np.full(64, -1, dtype=np.intp)  # NES index -> column in EMITTABLE order
_POS[EMITTABLE] = np.arange(len(EMITTABLE))


@dataclass(frozen=True)
class SheetConfig:
    max_tiles: int = DEFAULT_MAX_TILES  # at most this many tiles; 0 = no sheet (every distinct cell)
    palettes: int | None = None  # cap on shared sub-palettes (4 = one NES palette set); None: per tile
    seed: int = 0  # k-means and sampling
    drawing_weight: float = DRAWING_WEIGHT  # how many times its use a whole training drawing counts in grouping

    def __post_init__(self) -> None:
        check_budget(self.max_tiles, self.palettes)


def check_budget(max_tiles: int, palettes: int | None) -> None:
    """One clear line for tile budgets and palette caps that cannot work."""
    if int(max_tiles) < 0:
        raise NesganError(f"--max-tiles must be 0 (every distinct tile) or more, got {max_tiles}")
    if palettes is None:
        return
    if not 1 <= int(palettes) <= MAX_SUBPALETTES:
        raise NesganError(f"--palettes must be 1–{MAX_SUBPALETTES} (the NES has 4 background "
                          f"sub-palettes), got {palettes}")
    if int(max_tiles) == 0:
        raise NesganError("--palettes needs a tile budget: --max-tiles 0 keeps every quantized tile as "
                          "it is; give --max-tiles N (e.g. 256)")
    if int(max_tiles) < int(palettes):
        raise NesganError(f"--max-tiles {max_tiles} is smaller than --palettes {palettes}: every "
                          f"sub-palette needs at least one tile; raise --max-tiles to {palettes} or more")


@dataclass
class Sheet:
    tiles: np.ndarray  # (T, 16, 16) uint8 NES indices, ≤ 4 colours each; grouped by sub-palette, by use
    labels: np.ndarray  # (U,) int: the tile each input cell is drawn with
    counts: np.ndarray  # (T,) weighted use
    backdrop: int | None  # NES index of the shared backdrop (with --palettes; else None)
    subpalettes: list[tuple[int, ...]]  # with --palettes: ≤K sub-palettes of ≤3 NES indices, most used
    # first; without: each distinct colour set of ≤4 (no shared backdrop)
    tile_sub: np.ndarray  # (T,) index into subpalettes
    # per tile: ≤ 3 input cells (the one it was drawn from, else the nearest; a median; the farthest)
    members: list[list[int]] = field(default_factory=list)

    def patterns_8x8(self) -> int:
        """Distinct 8×8 2-bpp patterns the sheet needs in a pattern table (NES holds 256)."""
        return len(np.unique(self.pattern_values().reshape(-1, 2, 8, 2, 8).swapaxes(2, 3)
                             .reshape(-1, 64), axis=0))

    def pattern_values(self) -> np.ndarray:
        """(T, 16, 16) uint8 2-bit values: 0 backdrop, 1–3 the tile's sub-palette colours in order
        (without a shared backdrop: 0–3 the tile's own colours in order)."""
        lut = np.zeros((len(self.tiles), 64), np.uint8)
        start = 0 if self.backdrop is None else 1
        for t, s in enumerate(self.tile_sub.tolist()):
            for v, c in enumerate(self.subpalettes[s], start=start):
                lut[t, c] = v
        return np.take_along_axis(lut, self.tiles.reshape(len(self.tiles), -1).astype(np.intp),
                                  axis=1).reshape(self.tiles.shape)


# ---------------------------------------------------------------------------------------------
# measures


def orphan_rate(screens: np.ndarray | list[np.ndarray]) -> float:
    """Share of interior pixels that differ from all four neighbours (speckle). Real NES frames
    show ≈ 0.4 %, the embedded museum ≈ 1.1 %, raw GAN output tens of percent."""
    lone = total = 0
    for s in screens:
        s = np.asarray(s)
        c = s[1:-1, 1:-1]
        iso = (c != s[:-2, 1:-1]) & (c != s[2:, 1:-1]) & (c != s[1:-1, :-2]) & (c != s[1:-1, 2:])
        lone += int(iso.sum())
        total += iso.size
    return lone / total if total else 0.0


def colours_per_tile(tiles: np.ndarray) -> np.ndarray:
    """(T,) number of distinct colours in each (T, 16, 16) tile."""
    flat = np.sort(np.asarray(tiles).reshape(len(tiles), -1), axis=1)
    return 1 + (np.diff(flat, axis=1) != 0).sum(1)


# ---------------------------------------------------------------------------------------------
# 1. features


@dataclass(frozen=True)
class _Projection:
    lab: np.ndarray  # (64, 3) float32 OKLab of every NES index
    mean: np.ndarray  # (768,)
    basis: np.ndarray  # (768, d)

    def __call__(self, cells: np.ndarray) -> np.ndarray:
        """(n, 16, 16) NES indices -> (n, d) float32 features, in chunks."""
        n = len(cells)
        out = np.empty((n, self.basis.shape[1]), np.float32)
        shift = self.mean @ self.basis  # (d,)
        for s in range(0, n, CHUNK):
            x = self.lab[_sample(cells[s : s + CHUNK])]  # (c, P', 3)
            out[s : s + CHUNK] = x.reshape(len(x), -1) @ self.basis - shift
        return out


def _sample(cells: np.ndarray) -> np.ndarray:
    """(n, 16, 16) -> (n, P') the pixels features are computed from (FEATURE_STRIDE apart)."""
    return cells[:, ::FEATURE_STRIDE, ::FEATURE_STRIDE].reshape(len(cells), -1)


def _projection(cells: np.ndarray, lab: np.ndarray, rng: np.random.Generator) -> _Projection:
    pick = rng.choice(len(cells), size=min(len(cells), FIT_SAMPLE), replace=False)
    from scipy.linalg import eigh

    x = lab[_sample(cells[np.sort(pick)])].reshape(len(pick), -1)  # (s, 3·P') float32
    mean = x.mean(0)
    x -= mean
    gram = (x.T @ x).astype(np.float64)  # (768, 768)
    d = min(PCA_DIMS, gram.shape[0])
    _, evecs = eigh(gram, subset_by_index=[gram.shape[0] - d, gram.shape[0] - 1])  # ascending
    basis = evecs[:, ::-1]
    return _Projection(lab, mean.astype(np.float32), np.ascontiguousarray(basis, dtype=np.float32))


def _nearest(feats: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Nearest centre per row (squared Euclidean), in chunks."""
    ct = centres.astype(np.float32).T
    cn = (ct**2).sum(0) / 2  # argmin ‖f − c‖² = argmin (‖c‖²/2 − f·c)
    lab = np.empty(len(feats), np.intp)
    for s in range(0, len(feats), CHUNK):
        d = feats[s : s + CHUNK] @ ct  # (c, k)
        np.subtract(cn, d, out=d)
        lab[s : s + CHUNK] = d.argmin(1)
    return lab


def _group_means(labels: np.ndarray, w: np.ndarray, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted mean of x's rows per label (one sparse product, one pass) and each label's weight."""
    from scipy.sparse import csr_matrix

    member = csr_matrix((w, (labels, np.arange(len(labels)))), shape=(k, len(labels)))
    mass = np.asarray(member.sum(1)).ravel()
    sums = np.asarray(member @ x, dtype=np.float64)
    return sums / np.maximum(mass, 1e-12)[:, None], mass


# ---------------------------------------------------------------------------------------------
# 2. grouping


def _merge_by_vote(pc: np.ndarray, k: int) -> np.ndarray:
    """Merge groups pairwise until k remain, cheapest first, given their vote costs pc (m, 256, 54).

    Group i drawn with group j's voted tile costs C[i, j] = Σ_p pc[i, p, tile_j[p]]; merging i
    and j costs min(C[i, j] − C[i, i], C[j, i] − C[j, j]) (the smaller drawn with the larger's
    tile, weighted by use). Two halves of one drawing vote the same tile and merge for free; a
    rare drawing merges only when its pixels are cheap to change. Returns (m,) group 0…k-1."""
    m = len(pc)
    flat_t = np.ascontiguousarray(pc.reshape(m, -1).T, dtype=np.float32)  # (256·54, m): rows gather fast
    cols = np.arange(PIXELS) * pc.shape[2]
    tiles = pc.argmin(2)  # (m, 256) each group's free vote
    cost = np.stack([flat_t[cols + t].sum(0) for t in tiles], 1)  # (m, m): C[i, j]
    extra = cost - np.diag(cost)[:, None]
    delta = np.minimum(extra, extra.T)
    np.fill_diagonal(delta, np.inf)
    alive = np.ones(m, bool)
    group = np.arange(m)
    for _ in range(m - k):
        i, j = divmod(int(delta.argmin()), m)
        flat_t[:, i] += flat_t[:, j]
        flat_t[:, j] = 0
        alive[j] = False
        tiles[i] = flat_t[:, i].reshape(PIXELS, -1).argmin(1)
        group[group == j] = i
        mine = flat_t[:, i].reshape(PIXELS, -1)
        row = mine[np.arange(PIXELS), tiles].sum(1)  # (m,) group i drawn with every tile
        col = flat_t[cols + tiles[i]].sum(0)  # (m,) every group drawn with i's tile
        diag = np.diag(cost).copy()
        diag[i] = row[i]
        cost[:, i] = col
        cost[i, :] = row
        d = np.minimum(row - row[i], col - diag)  # i drawn with another's tile, or another with i's
        d[~alive] = np.inf
        d[i] = np.inf
        delta[i, :] = delta[:, i] = d
        delta[j, :] = delta[:, j] = np.inf
    _, dense = np.unique(group, return_inverse=True)
    return dense


def _kmeans(x: np.ndarray, w: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(k, d) centres: greedy k-means++ seeding (each new centre the best of a few drawn in
    proportion to the weighted squared distance from the chosen ones, so rare drawings get
    centres), then Lloyd steps."""
    x64 = x.astype(np.float64)
    xx = (x64**2).sum(1)  # ‖x‖²: distances as ‖x‖² − 2x·c + ‖c‖², one matrix product per step
    centres = np.empty((k, x.shape[1]))
    centres[0] = x64[rng.choice(len(x), p=w / w.sum())]
    d2 = np.maximum(xx - 2 * x64 @ centres[0] + (centres[0] ** 2).sum(), 0)
    trials = 2 + int(np.log(k))  # greedy k-means++: the best of a few draws each time
    for j in range(1, k):
        p = w * d2
        if p.sum() <= 0:
            centres[j:] = x64[rng.integers(len(x), size=k - j)]
            break
        cand = rng.choice(len(x), size=trials, p=p / p.sum())
        cd = np.maximum(xx[None, :] - 2 * x64[cand] @ x64.T + xx[cand][:, None], 0)  # (t, n)
        nd2 = np.minimum(d2[None, :], cd)
        best = int((nd2 * w).sum(1).argmin())
        centres[j] = x64[cand[best]]
        d2 = nd2[best]
    for _ in range(KMEANS_STEPS):
        means, mass = _group_means(_nearest(x, centres), w, x64, k)
        live = mass > 0
        centres[live] = means[live]
    return centres.astype(np.float32)


def _group(cells: np.ndarray, feats: np.ndarray, weights: np.ndarray, k: int, dist: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    pick = np.sort(rng.choice(len(feats), size=min(len(feats), FIT_SAMPLE), replace=False))
    k0 = min(len(pick), OVERCLUSTER * k)
    lab = _nearest(feats, _kmeans(feats[pick], weights[pick], k0, rng))
    mass = np.bincount(lab, weights=weights, minlength=k0)
    used = np.flatnonzero(mass > 0)
    lab = np.searchsorted(used, lab)
    if len(used) <= k:
        return lab, vote_costs(cells, weights, lab, len(used), dist)
    pc = vote_costs(cells, weights, lab, len(used), dist)
    merged = _merge_by_vote(pc, k)
    total = np.zeros((k, *pc.shape[1:]))
    np.add.at(total, merged, pc)  # vote costs add up: the merged groups' costs without another pass
    return merged[lab], total


def _representatives(cells: np.ndarray, w: np.ndarray, labels: np.ndarray, pc: np.ndarray,
                     dist: np.ndarray, known: np.ndarray | None = None, reference: Reference | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Each group's drawing: its medoid, unless the pixel vote explains the members far better.

    With `known` (the sorted 3×3 partition keys of the training art, `nesgan.patterns`), the
    medoid is chosen among the members that invent no 3×3 pattern, where the group has any: on
    the demo's 24 generated screens (64 tiles) the rebuilt map's invented share fell from 5.2 %
    to 0.0 % at the same divergence (0.535); on two other runs from 12.9 to 1.8 % and 7.0 to
    1.8 % (divergence 0.60 → 0.51 and 0.45 → 0.48).

    The medoid is the member whose pixels the group's vote costs pc (k, 256, 54) charge least: a
    real drawn cell. The vote is the colour of least cost at each pixel: it removes the noise of
    noisy copies of one drawing, but where a group holds different drawings (a 64-tile budget
    over clean pattern-drawn screens) it blends them into fills and fragments. So the vote stands
    only where it costs less than 1/MEDOID_RATIO of the medoid. Measured on the demo (its 24
    generated screens, 64 tiles, --palettes 4): every group kept its medoid and the rebuilt map's
    tile-pattern divergence fell from 0.76 to 0.55; on a heavily spoiled copy of clean screens 96 %
    of the groups voted and 99.3 % of the pixels came back (medoids alone: 97.2 %).
    Returns the costs the colour step solves ((k, 256, 54): a medoid's pixels weighted by its
    group's use, as heavily as a vote's) and the medoid cell of each group (-1 where it voted).

    With `reference` (the training art's window counts) the drawing is then chosen among the
    members that draw the group about as well as the medoid does (`_closest_members`)."""
    k = len(pc)
    flat = cells.reshape(len(cells), -1)
    own = np.empty(len(cells))
    rows = np.arange(PIXELS)
    for s in range(0, len(cells), CHUNK):  # each cell's cost under its own group's vote costs
        own[s : s + CHUNK] = pc[labels[s : s + CHUNK, None], rows, _POS[flat[s : s + CHUNK]]].sum(1)
    invents = np.zeros(len(cells), bool) if known is None else _invents(cells, known)
    order = np.lexsort((own, invents, labels))  # per group: inventing nothing first, then least cost
    medoid = order[np.searchsorted(labels[order], np.arange(k))]
    mass = np.bincount(labels, weights=w, minlength=k)
    keep = own[medoid] <= MEDOID_RATIO * pc.min(2).sum(1) + 1e-9
    if reference is not None:
        medoid = _closest_members(cells, w, labels, own, invents, medoid, mass, reference)
    costs = np.where(keep[:, None, None], mass[:, None, None] * dist[flat[medoid]], pc)
    return costs, np.where(keep, medoid, -1)


def _closest_members(cells: np.ndarray, w: np.ndarray, labels: np.ndarray, own: np.ndarray,
                     invents: np.ndarray, medoid: np.ndarray, mass: np.ndarray, reference: Reference
                     ) -> np.ndarray:
    """Each group's drawing, chosen among its members so that the map the sheet rebuilds comes
    closest to the training art (`Reference.closest_choice`, starting from the medoids).

    The medoid draws the group's cells with the fewest changed pixels, but it is the group's most
    ordinary member: where a group holds several drawings it shows the commonest, and the
    others' windows go missing from the map (in one demo's map 1.8 % of the art's 3×3 windows and
    5.8 % of its 4×4, each costing the divergence 9–10× its share). A member may stand for its group
    instead when it draws the group about as faithfully — its pixels cost at most
    `CLOSEST_RATIO` times the medoid's, it invents no 3×3 pattern the medoid does not — and it
    is one of the group's own drawings, not one cell's stray mark: it draws at least
    `CLOSEST_SUPPORT` of the group's cells (by use) with fewer changed pixels than the medoid.
    Without that last test the choice lowered the divergence further by putting one cell's dot
    or dash on every cell of a big group (a dotted grid over the whole sky): the windows the dot
    brought back had each been missing, and showing them far too often cost less."""
    k = len(medoid)
    by_group = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[by_group], np.arange(k + 1))
    options, groups, start = [], [], np.empty(k, np.intp)
    offset = 0
    for g in range(k):
        mine = by_group[bounds[g] : bounds[g + 1]]
        fine = mine[(own[mine] <= CLOSEST_RATIO * own[medoid[g]] + 1e-9) & (invents[mine] <= invents[medoid[g]])
                    & (mine != medoid[g])]
        fine = fine[np.argsort(-w[fine], kind="stable")][:CLOSEST_CANDIDATES]
        if len(fine):
            judges = mine[np.argsort(-w[mine], kind="stable")][:SUPPORT_MEMBERS]  # the most used members
            pixels = cells[judges].reshape(len(judges), 1, -1)
            worse = (pixels != cells[medoid[g]].reshape(1, 1, -1)).sum(2)  # (J, 1): changed pixels, medoid
            better = np.concatenate([(pixels != cells[fine[a : a + 16]].reshape(1, -1, PIXELS)).sum(2) < worse
                                     for a in range(0, len(fine), 16)], axis=1)  # (J, C)
            support = w[judges] @ better
            fine = fine[support >= CLOSEST_SUPPORT * w[judges].sum()]
        fine = np.concatenate([medoid[g : g + 1], fine])
        options.append(fine)
        groups.append(offset + np.arange(len(fine)))
        start[g] = offset
        offset += len(fine)
    cell_ids = np.concatenate(options)
    return cell_ids[reference.closest_choice(cells[cell_ids], groups, mass, start)]


def _drawing_weights(cells: np.ndarray, drawings: np.ndarray | None,
                     weight: float = DRAWING_WEIGHT) -> np.ndarray | float:
    """(U,) weight factor: `weight` for a cell of two or more colours that is, up to a
    palette swap and a mirror, one of `drawings` (sorted `partition_hashes` of the training tiles:
    the mirrors are taken on this side, the few cells, not on the training set's side), else 1."""
    if drawings is None or len(drawings) == 0:
        return 1.0
    flat = (cells == cells[:, :1, :1]).all((1, 2))
    whole = np.any([np.isin(partition_hashes(f), drawings) for f in flips(cells)], axis=0) & ~flat
    return np.where(whole, weight, 1.0)


def _invents(cells: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(U,) bool: the cell holds a 3×3 window partition that `known` lacks (in chunks; each
    cell read as a one-cell screen)."""
    return np.concatenate([inventing_cells(known, cells[s : s + CHUNK]).ravel()
                           for s in range(0, len(cells), CHUNK)])


def _recolour(tiles: np.ndarray, assign: np.ndarray, cells: np.ndarray, drawn_from: np.ndarray,
              bg: int, subs: list[tuple[int, ...]], palette: Palette) -> None:
    """Redraw each medoid tile (in place) in the shared colours by a one-to-one recolouring.

    With --palettes the 24 screens' palettes fold into one backdrop and K sub-palettes; snapping
    each pixel to its nearest allowed colour then merges colours a drawing kept apart (a dark
    outline and a black sky become one), which erases the drawing. So a medoid with ≤ 4 colours
    takes, over every sub-palette, the one-to-one map of its colours onto [backdrop, sub-palette]
    of least squared sRGB distance (weighted by pixel count): the drawing stays, its colours
    change as an NES game's palette swap would. Measured on 24 training screens of the demo
    museum against all 186 (--palettes 4; `nesgan.patterns.divergence`): every distinct cell kept,
    0.32 with the snap, 0.048 recoloured (the 24 screens as they are: 0.029); 64 tiles, 0.46 and
    0.107. Medoids with more colours than [backdrop, sub-palette] holds keep the snap."""
    from itertools import permutations

    rgb = palette.rgb.astype(np.float64)
    sq = ((rgb[:, None, :] - rgb[EMITTABLE][None, :, :]) ** 2).sum(-1)  # (64, 54)
    options = [np.array([bg, *s], np.intp) for s in subs]
    for t in np.flatnonzero(drawn_from >= 0):
        cell = cells[drawn_from[t]]
        colours, inverse, count = np.unique(cell, return_inverse=True, return_counts=True)
        best = None
        for j, allowed in enumerate(options):
            if len(colours) > len(allowed):
                continue
            for perm in permutations(range(len(allowed)), len(colours)):
                cost = float((count * sq[colours, allowed[list(perm)]]).sum())
                if best is None or cost < best[0]:
                    best = (cost, j, allowed[list(perm)])
        if best is not None:
            assign[t] = best[1]
            tiles[t] = EMITTABLE[best[2][inverse.reshape(TILE, TILE)]]


# ---------------------------------------------------------------------------------------------
# the sheet


def build_sheet(cells: np.ndarray, weights: np.ndarray | None, palette: Palette, config: SheetConfig,
                known: np.ndarray | None = None, drawings: np.ndarray | None = None,
                reference: Reference | None = None) -> Sheet:
    """Group (U, 16, 16) NES-index cells (each used `weights[i]` times) into ≤ max_tiles legal tiles;
    with `known` (the training art's 3×3 partition keys) each tile is drawn from a cell that
    invents none where its group has one; with `drawings` (the training tiles' `partition_hashes`,
    sorted) a cell of two or more colours that is one of them, or a mirror of one, weighs
    `config.drawing_weight` times its use in the grouping; with `reference` (the training art's window
    counts) a group may show, instead of its medoid, the member that brings the rebuilt map
    closest to the art (`_closest_members`)."""
    cells = np.ascontiguousarray(np.asarray(cells, dtype=np.uint8))
    if cells.ndim != 3 or cells.shape[1:] != (TILE, TILE) or len(cells) == 0:
        raise NesganError("no 16×16 cells to build a tile sheet from")
    if config.max_tiles < 1:
        raise NesganError("build_sheet needs --max-tiles ≥ 1 (0 keeps every distinct tile without a sheet)")
    w = np.ones(len(cells)) if weights is None else np.asarray(weights, dtype=np.float64)
    rng = np.random.default_rng(config.seed)
    lab = srgb_to_oklab(palette.rgb).astype(np.float32)  # (64, 3)
    dist = vote_distance(palette)  # (64, 54)
    k = min(config.max_tiles, len(cells))

    # 1. features; 2. groups
    proj = _projection(cells, lab, rng)
    feats = proj(cells)
    if len(cells) <= k:
        labels = np.arange(len(cells))
        pc = vote_costs(cells, w, labels, len(cells), dist)
    else:
        labels, pc = _group(cells, feats, w * _drawing_weights(cells, drawings, config.drawing_weight), k, dist, rng)
    k = int(labels.max()) + 1
    pc, drawn_from = _representatives(cells, w, labels, pc, dist, known, reference)
    # backdrop candidates: the most used colours, and black
    use = np.zeros(64)
    unit = bool(np.all(w == 1))
    for s in range(0, len(cells), CHUNK):  # colour use, weighted by cell use (in chunks: no 256× copy of w)
        chunk = cells[s : s + CHUNK].reshape(-1)
        use += (np.bincount(chunk, minlength=64) if unit else
                np.bincount(chunk, minlength=64, weights=np.repeat(w[s : s + CHUNK], PIXELS)))
    backdrops = [int(_POS[c]) for c in np.argsort(-use, kind="stable")[:4] if use[c] > 0] + [int(_POS[BLACK])]

    # 3–4. vote, legal colours
    tiles, bg, subs, assign = legal_tiles(pc, np.bincount(labels, weights=w, minlength=k), backdrops,
                                           config.palettes)
    if bg is not None:  # shared sub-palettes: recolour each medoid rather than snap its colours
        _recolour(tiles, assign, cells, drawn_from, bg, subs, palette)
    # groups that voted the same tile become one
    tiles, same, _ = dedupe(tiles)
    first = np.zeros(len(tiles), np.intp)
    first[same[::-1]] = np.arange(k)[::-1]  # the first group of each distinct tile
    assign = assign[first]
    labels = same[labels]
    k = len(tiles)
    centre, counts = _group_means(labels, w, feats, k)
    d2 = ((feats - centre.astype(np.float32)[labels]) ** 2).sum(1)  # each cell's distance from its members' mean

    # order by sub-palette (most used first), then by use
    used = np.arange(k)
    sub_use = np.bincount(assign, weights=counts, minlength=len(subs))
    sub_rank = np.empty(len(subs), np.intp)
    sub_rank[np.argsort(-sub_use, kind="stable")] = np.arange(len(subs))
    order = used[np.lexsort((used, -counts, sub_rank[assign]))]
    new_id = np.empty(k, np.intp)
    new_id[order] = np.arange(k)
    kept_subs = sorted(set(assign.tolist()), key=lambda s: sub_rank[s])
    sub_id = {s: i for i, s in enumerate(kept_subs)}
    labels = new_id[labels]

    members: list[list[int]] = []
    by_tile = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[by_tile], np.arange(len(order) + 1))
    source = np.full(k, -1, np.intp)  # per sheet tile: the cell it was drawn from (-1: voted)
    source[same[::-1]] = drawn_from[::-1]
    for t in range(len(order)):
        mine = by_tile[bounds[t] : bounds[t + 1]]
        ranked = mine[np.argsort(d2[mine], kind="stable")]
        own = source[order[t]]
        picks = [own if own >= 0 else ranked[0], ranked[len(ranked) // 2], ranked[-1]]
        members.append(list(dict.fromkeys(int(p) for p in picks)))
    return Sheet(
        tiles=tiles[order],
        labels=labels,
        counts=counts[order],
        backdrop=None if bg is None else int(EMITTABLE[bg]),
        subpalettes=[tuple(int(EMITTABLE[c]) for c in subs[s]) for s in kept_subs],
        tile_sub=np.array([sub_id[s] for s in assign[order].tolist()], np.intp),
        members=members,
    )


PATTERN_TABLE = 256  # 8×8 patterns in one NES pattern table
_BLANK_SPARE = 1  # export-nes may add an all-backdrop pattern for the screen around the map
SHEET_TRIES = 8  # seedings of the grouping tried where the training art is known (`build_fitting_sheet`)
TRY_CELLS = 50_000  # … while tries × distinct cells stay within this many
# At most this share of a sheet's tiles of two or more colours may be near-copies of training
# tiles (issue 21's bound on originality); where whole drawings weighing `DRAWING_WEIGHT` break
# it, `build_fitting_sheet` weighs them less, in these steps (docs/tile-sheet.md).
COPY_SHARE = 0.25
LIGHTER_DRAWINGS = (2.0, 1.0)


def build_fitting_sheet(cells: np.ndarray, weights: np.ndarray | None, palette: Palette,
                        config: SheetConfig, known: np.ndarray | None = None,
                        drawings: np.ndarray | None = None, reference: Reference | None = None,
                        copies: Callable[[np.ndarray], float] | None = None) -> tuple[Sheet, int]:
    """`build_sheet`, and with shared sub-palettes (`config.palettes`) one that fits one NES
    pattern table (`_fitting_sheet`). With `reference`, the sheet is drawn `_tries(len(cells))`
    times, from seeds `config.seed`, `config.seed + 1`, …, and the one whose map comes closest to
    the art (`Reference.cells_divergence`, the first on a tie) is kept: the k-means seeding
    decides which rare drawings get a group of their own, and one seeding may leave out windows
    another keeps. Measured on five seeds' 24 generated screens (`tiny`, 128 tiles, --palettes 4;
    docs/generator-patterns.md, ninth round): the rebuilt map's divergence from seed 0 alone
    0.104–0.120 (mean 0.111), best of 4: 0.097–0.120 (mean 0.106); the sheets' near-copies and
    named drawings the same. The seedings' maps spread widely (one demo's eight at one weight:
    0.114–0.151), so more tries find closer ones, with less gain each: at ≤ 1,200 steps (tenth
    round) best of 4 / 8 measured 0.099 / 0.097 over five runs (16 on two of them: 0.001 less on
    one), and best of 4 / 8 / 16 0.125 / 0.114 / 0.112 on the demo's screens (at 2×, below).

    With `copies` (a sheet's tiles → the share of those of two or more colours that are
    near-copies of training tiles), a sheet over `COPY_SHARE` is drawn again with whole drawings
    weighing less (`LIGHTER_DRAWINGS`), and the first within the bound is kept (where none is,
    the one with the fewest near-copies): the weight keeps the drawings G drew whole, and it is
    what makes a sheet copy. Measured on the demo's 24 screens of one training run (best of 4
    seedings): 29 % near-copies at the default weight, 20 % at 2 (rebuilt map 0.118 → 0.125,
    named drawings 25 → 21); five other runs' sheets were within the bound at the default and
    stay as they were.
    Returns the sheet and the budget used."""
    if reference is None:
        return _fitting_sheet(cells, weights, palette, config, known, drawings)
    weights_tried = (config.drawing_weight, *(w for w in LIGHTER_DRAWINGS if w < config.drawing_weight))
    over: list[tuple[float, tuple[Sheet, int]]] = []  # (near-copy share, sheet) of each weight over the bound
    for weight in weights_tried:
        tried = (_fitting_sheet(cells, weights, palette, replace(config, seed=config.seed + t, drawing_weight=weight),
                                known, drawings, reference) for t in range(_tries(len(cells))))
        fitted = min(tried, key=lambda f: reference.cells_divergence(f[0].tiles, f[0].counts))
        if copies is None:
            return fitted
        share = copies(fitted[0].tiles)
        if share <= COPY_SHARE:
            return fitted
        over.append((share, fitted))
    return min(over, key=lambda s: s[0])[1]


def _tries(cells: int) -> int:
    """How many seedings `build_fitting_sheet` tries for this many distinct cells: `SHEET_TRIES`
    where that costs at most `TRY_CELLS` cells' work in all (24 screens: ~1,500 cells, about a
    second a try), fewer for more, one from `TRY_CELLS` cells on (10,000 screens: one, as before)."""
    return max(1, min(SHEET_TRIES, TRY_CELLS // max(cells, 1)))


def _fitting_sheet(cells: np.ndarray, weights: np.ndarray | None, palette: Palette,
                   config: SheetConfig, known: np.ndarray | None = None,
                   drawings: np.ndarray | None = None, reference: Reference | None = None
                   ) -> tuple[Sheet, int]:
    """`build_sheet`, and with shared sub-palettes (`config.palettes`) one that fits one NES
    pattern table: where the sheet's tiles need more than 255 distinct 8×8 patterns the budget is
    lowered and the sheet drawn again. A 16×16 tile is up to four patterns, but tiles drawn from
    a pattern-table generator share most of theirs (the demo: 128 tiles in 91 patterns), so a
    tile budget of 256/4 = 64 wastes most of the table. With `reference`, where the members
    chosen for their closeness to the art (`_closest_members`) need more patterns than fit, the
    medoids at the asked budget are the other way to fit; of the two sheets, the one whose map
    comes closer to the art is kept (`Reference.cells_divergence`). Measured: a demo's 24 screens
    at 128 tiles, 125 chosen tiles at a lowered budget drew a map of divergence 0.147 where 125
    medoids drew 0.263; 1,008 screens of 30 runs at 256 tiles, 128 chosen tiles 0.146 where 245
    medoids drew 0.354. Returns the sheet and the budget used."""
    limit = PATTERN_TABLE - _BLANK_SPARE
    budget = config.max_tiles
    sheet = build_sheet(cells, weights, palette, config, known, drawings, reference)
    if config.palettes is None:
        return sheet, budget
    medoids: tuple[Sheet, int] | None = None  # with `reference`: the medoid sheet at the asked budget, if it fits
    if reference is not None and sheet.patterns_8x8() > limit:
        plain = build_sheet(cells, weights, palette, config, known, drawings)
        if plain.patterns_8x8() <= limit:
            medoids = (plain, budget)
    while (need := sheet.patterns_8x8()) > limit and budget > config.palettes:
        budget = max(int(config.palettes), min(budget - 1, budget * limit // need))
        sheet = build_sheet(cells, weights, palette, replace(config, max_tiles=budget), known, drawings, reference)
    if medoids is not None and reference is not None and (
            sheet.patterns_8x8() > limit or reference.cells_divergence(medoids[0].tiles, medoids[0].counts)
            <= reference.cells_divergence(sheet.tiles, sheet.counts)):
        return medoids
    return sheet, budget
