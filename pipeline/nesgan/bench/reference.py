"""Reference distances for tests and benchmarks: slow, simple, and what the search is checked
against. Not used by the product (`nesgan.tiles.distance` and `search` are)."""

from __future__ import annotations

import numpy as np

from nesgan.tiles.distance import (
    CHUNK,
    LABEL_CAP,
    PIXELS,
    frequency_labels,
    hungarian_matches,
    match_bounds,
    merge_distances,
    oriented_distances,
)
from nesgan.tiles.tile import flips


def exact_distances(queries: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact one-to-one distance for aligned pairs: (P, 16, 16) × (P, 16, 16) -> distance (P,),
    best flip (P,)."""
    p = len(queries)
    dist = np.full(p, PIXELS + 1, dtype=np.int64)
    best_flip = np.zeros(p, dtype=np.int64)
    for f, qf in enumerate(flips(np.asarray(queries))):
        d = oriented_distances(qf, np.asarray(train), limit=dist)
        better = d < dist
        dist[better], best_flip[better] = d[better], f
    return dist, best_flip


def merge_exact_distances(queries: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact merge distance for aligned pairs, over the 4 flips: distance (P,), best flip (P,)."""
    d = np.stack([merge_distances(qf, np.asarray(train)) for qf in flips(np.asarray(queries))])  # (4, P)
    return d.min(0), d.argmin(0)


def brute_nearest(query: np.ndarray, train: np.ndarray) -> tuple[int, int]:
    """Exact nearest (one-to-one distance, training id) of one (16, 16) query against every
    training tile: bounds for every pair and flip, then the Hungarian algorithm only where a pair
    could beat the best distance already achieved."""
    train = np.asarray(train, dtype=np.uint8)
    qf = flips(np.asarray(query)[None])[:, 0]  # (4, 16, 16)
    lab, cols = frequency_labels(qf)
    d_lo, d_hi = [], []
    for f in range(4):
        for s in range(0, len(train), CHUNK):
            t_lab, t_cols = frequency_labels(train[s : s + CHUNK])
            lo, hi = match_bounds(np.repeat(lab[f][None], len(t_lab), 0), t_lab)
            many = (cols[f] >= LABEL_CAP) | (t_cols >= LABEL_CAP)
            d_hi.append(np.where(many, PIXELS + 1, PIXELS - lo))
            d_lo.append(PIXELS - hi)
    d_hi, d_lo = np.concatenate(d_hi), np.concatenate(d_lo)  # (4·M,) flip-major
    m = len(train)
    for i in np.flatnonzero((d_lo < d_hi) & (d_lo < d_hi.min())):
        d_hi[i] = PIXELS - hungarian_matches(qf[i // m].ravel(), train[i % m].ravel())
    best = int(d_hi.argmin())
    return int(d_hi[best]), best % m


def brute_nearest_merge(query: np.ndarray, train: np.ndarray) -> tuple[int, int]:
    """Exact nearest (merge distance, training id) of one (16, 16) query against every training
    tile, comparing with each of them in each flip."""
    train = np.asarray(train, dtype=np.uint8)
    best_d, best_i = PIXELS + 1, -1
    for s in range(0, len(train), CHUNK):
        part = train[s : s + CHUNK]
        d, _ = merge_exact_distances(np.repeat(np.asarray(query)[None], len(part), 0), part)
        i = int(d.argmin())
        if d[i] < best_d:
            best_d, best_i = int(d[i]), s + i
    return best_d, best_i
