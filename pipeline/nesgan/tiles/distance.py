"""Distances between two 16×16 tiles, and their vectorised helpers (aligned pairs, no index).

The **merge distance** from a training tile t to a query tile q (0–256):

    d(q, t) = min over the 4 flips f of  256 − max over maps σ of #{p : f(q)[p] = σ(t[p])}

over every map σ from t's colours to q's, many-to-one allowed: how many pixels must change
before q, mirrored one way or another, is t recoloured — where recolouring may also give two of
t's colours the same new colour (a game's night palette merging a hill's outline into the
backdrop). For one pair it is 256 − Σ over t's colours of its largest co-occurrence count with
one of q's colours. A palette swap, a merge or a mirror is distance 0; a 3-pixel edit is at most 3.
The stricter **one-to-one distance** (σ a bijection: Hungarian matching, `oriented_distances`)
is never smaller; `pair_readings` reports both, and the plain pixel distance, for a found pair.

Colours are compared by frequency rank (`frequency_labels`), so a palette swap changes nothing;
`label_masks`/`mask_matches` count co-occurrences with 64-bit words, `merge_matches` with one
bincount per chunk. Finding the nearest training tile under these distances is `search.py`.
"""

from __future__ import annotations

import numpy as np

from nesgan.tiles.tile import TILE, flips

PIXELS = TILE * TILE
LABEL_CAP = 16  # colours per tile the vectorised matcher tells apart (NES cells have ≤ 4, + sprites)
CHUNK = 50000  # pairs re-ranked at a time: bounds memory to ~100 MB
MASK_LABELS = 6  # labels told apart by the bit-mask re-rank; the rest share one mask


def majority_pixels(tiles: np.ndarray) -> np.ndarray:
    """(N, 16, 16) -> (N,) pixel count of each tile's most common colour."""
    flat = np.asarray(tiles).reshape(len(tiles), PIXELS).astype(np.intp)
    n = len(flat)
    counts = np.bincount((np.arange(n)[:, None] * 64 + flat).ravel(), minlength=n * 64)
    return counts.reshape(n, 64).max(1)


def frequency_labels(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 16, 16) -> labels (N, 256) uint8 by colour frequency rank (0 = most common; ties: the
    lower colour index first), capped at LABEL_CAP − 1, and (N,) number of distinct colours."""
    flat = np.asarray(tiles).reshape(len(tiles), PIXELS)
    n = len(flat)
    base = np.arange(n, dtype=np.intp)[:, None] * 64
    idx = base + flat  # (N, 256) into the per-tile colour table
    counts = np.bincount(idx.ravel(), minlength=n * 64).reshape(n, 64)
    order = np.argsort(np.arange(64) - counts * 64, axis=1)  # distinct keys: most common first
    rank = np.empty(n * 64, np.uint8)
    rank[(base + order).ravel()] = np.tile(np.minimum(np.arange(64), LABEL_CAP - 1).astype(np.uint8), n)
    return rank[idx], (counts > 0).sum(1)



def match_bounds(qlab: np.ndarray, tlab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, 256) label pairs -> (greedy, upper) bounds on the max-bijection co-occurring pixels."""
    p = len(qlab)
    cc = LABEL_CAP * LABEL_CAP
    codes = qlab.astype(np.intp) * LABEL_CAP + tlab  # (P, 256)
    m = np.bincount((np.arange(p)[:, None] * cc + codes).ravel(), minlength=p * cc)
    m = m.reshape(p, LABEL_CAP, LABEL_CAP).astype(np.int16)  # (P, A, B) co-occurrence counts
    upper = np.minimum(m.max(2).sum(1), m.max(1).sum(1))  # (P,)
    # greedy matching: take the largest remaining cell, strike its row and column
    lower = np.zeros(p, dtype=np.int64)
    rows = np.arange(p)
    for _ in range(LABEL_CAP):
        j = m.reshape(p, -1).argmax(1)
        v = m.reshape(p, -1)[rows, j]
        if not v.any():
            break
        lower += v
        m[rows, j // LABEL_CAP, :] = 0
        m[rows, :, j % LABEL_CAP] = 0
    return lower, upper


def hungarian_matches(q: np.ndarray, t: np.ndarray) -> int:
    """Exact max-bijection co-occurring pixels of two (256,) colour arrays (any colour count)."""
    from scipy.optimize import linear_sum_assignment

    qa, qi = np.unique(q, return_inverse=True)
    ta, ti = np.unique(t, return_inverse=True)
    m = np.zeros((len(qa), len(ta)), dtype=np.int64)
    np.add.at(m, (qi, ti), 1)
    r, c = linear_sum_assignment(m, maximize=True)
    return int(m[r, c].sum())



def oriented_distances(q_tiles: np.ndarray, t_tiles: np.ndarray, q_lab=None, q_cols=None,
                       limit: np.ndarray | None = None) -> np.ndarray:
    """Exact 256 − max-bijection matches for aligned (P, 16, 16) pairs, no flips.

    With `limit` (P,), a pair whose lower bound is ≥ its limit may return that bound instead
    (it cannot beat the limit, so its exact value is not needed)."""
    if q_lab is None:
        q_lab, q_cols = frequency_labels(q_tiles)
    t_lab, t_cols = frequency_labels(t_tiles)
    lo, hi = match_bounds(q_lab.reshape(len(q_lab), PIXELS), t_lab)
    many = (q_cols >= LABEL_CAP) | (t_cols >= LABEL_CAP)  # capped labels: bounds only
    d, d_lo = PIXELS - lo, PIXELS - hi  # achievable, and unbeatable
    unsure = many | (d_lo < d)
    if limit is not None:
        unsure &= d_lo < limit
    qf, tf = q_tiles.reshape(len(q_tiles), PIXELS), t_tiles.reshape(len(t_tiles), PIXELS)
    for i in np.flatnonzero(unsure):
        d[i] = PIXELS - hungarian_matches(qf[i], tf[i])
    d[many & ~unsure] = d_lo[many & ~unsure]
    return d



def label_masks(lab: np.ndarray) -> np.ndarray:
    """(N, 256) frequency labels -> (N, MASK_LABELS + 1, 4) uint64 bit masks: where each of the
    first MASK_LABELS labels is, then where all the others are."""
    n = len(lab)
    out = np.empty((n, MASK_LABELS + 1, 4), np.uint64)
    for slot in range(MASK_LABELS + 1):
        hit = lab == slot if slot < MASK_LABELS else lab >= MASK_LABELS
        out[:, slot] = np.packbits(hit, axis=1).view(np.uint64)
    return out


def mask_matches(t_masks: np.ndarray, q_masks: np.ndarray) -> np.ndarray:
    """(P, S, 4) training and query masks -> (P,) pixels the best many-to-one map keeps: exact
    when both tiles show ≤ MASK_LABELS colours, else an upper bound (the query's other colours
    count as one, the training tile's other pixels as kept)."""
    co = np.bitwise_count(t_masks[:, :MASK_LABELS, None, :] & q_masks[:, None, :, :]).sum(-1, dtype=np.int64)
    return co.max(2).sum(1) + np.bitwise_count(t_masks[:, MASK_LABELS]).sum(-1, dtype=np.int64)


def merge_matches(q_lab: np.ndarray, t_lab: np.ndarray) -> np.ndarray:
    """(P, 256) label pairs (< LABEL_CAP) -> (P,) Σ over training labels of the largest
    co-occurrence count: the pixels the best many-to-one map from t's colours to q's keeps."""
    p = len(q_lab)
    out = np.empty(p, np.int64)
    cc = LABEL_CAP * LABEL_CAP
    for s in range(0, p, CHUNK):
        ql, tl = q_lab[s : s + CHUNK], t_lab[s : s + CHUNK]
        n = len(ql)
        codes = tl.astype(np.intp) * LABEL_CAP + ql  # (n, 256)
        m = np.bincount((np.arange(n)[:, None] * cc + codes).ravel(), minlength=n * cc)
        out[s : s + CHUNK] = m.reshape(n, LABEL_CAP, LABEL_CAP).max(2).sum(1)
    return out


def merge_matches_one(q: np.ndarray, t: np.ndarray) -> int:
    """merge_matches for one pair of (256,) colour arrays with any number of colours."""
    m = np.zeros((64, 64), np.int64)
    np.add.at(m, (t.astype(np.intp), q.astype(np.intp)), 1)
    return int(m.max(1).sum())


def merge_distances(q_tiles: np.ndarray, t_tiles: np.ndarray, q_lab=None, q_cols=None) -> np.ndarray:
    """Exact merge distance (no flips) for aligned (P, 16, 16) pairs."""
    if q_lab is None:
        q_lab, q_cols = frequency_labels(q_tiles)
    t_lab, t_cols = frequency_labels(t_tiles)
    p = len(t_lab)
    d = PIXELS - merge_matches(q_lab.reshape(p, PIXELS), t_lab)
    many = np.flatnonzero((q_cols >= LABEL_CAP) | (t_cols >= LABEL_CAP))  # capped labels
    qf, tf = np.asarray(q_tiles).reshape(p, PIXELS), np.asarray(t_tiles).reshape(p, PIXELS)
    for i in many:
        d[i] = PIXELS - merge_matches_one(qf[i], tf[i])
    return d


def recolour_map(query: np.ndarray, train: np.ndarray) -> np.ndarray:
    """(64,) uint8 lookup: each colour of the aligned training tile to the query colour it meets
    most (the best many-to-one map); other entries map to themselves."""
    m = np.zeros((64, 64), np.int64)
    np.add.at(m, (np.asarray(train).ravel().astype(np.intp), np.asarray(query).ravel().astype(np.intp)), 1)
    lut = np.arange(64, dtype=np.uint8)
    seen = m.sum(1) > 0
    lut[seen] = m[seen].argmax(1)
    return lut


def pair_readings(queries: np.ndarray, train: np.ndarray) -> dict[str, np.ndarray]:
    """For aligned (P, 16, 16) pairs, the smallest distance over the 4 flips under each reading:
    `exact` (plain pixels), `recolour` (one-to-one colour map), `merge` (many-to-one)."""
    queries, train = np.asarray(queries, np.uint8), np.asarray(train, np.uint8)
    p = len(queries)
    out = {k: np.full(p, PIXELS, np.int64) for k in ("exact", "recolour", "merge")}
    if p == 0:
        return out
    for qf in flips(queries):
        out["exact"] = np.minimum(out["exact"], (qf != train).reshape(p, -1).sum(1))
        out["recolour"] = np.minimum(out["recolour"], oriented_distances(qf, train))
        out["merge"] = np.minimum(out["merge"], merge_distances(qf, train))
    return out



def unique_sorted(keys: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an int64 array (a sort: faster here than np.unique's hashing)."""
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys

