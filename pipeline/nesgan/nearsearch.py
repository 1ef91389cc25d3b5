"""Nearest training tile under the palette-swap- and flip-invariant pixel distance.

Distance between tiles a and b (0–256):

    d(a, b) = min over the 4 flips f of  256 − max over colour bijections σ of #{p : f(a)[p] = σ(b[p])}

i.e. how many pixels must change before a, mirrored one way or another, is b with its colours
swapped. A palette swap or a mirror is distance 0; a 3-pixel edit is at most 3.

Search is candidates-then-exact (compute features, then search, then decide):

1. **Pigeonhole blocks (guaranteed recall within K).** Split the 256 pixels into K + 1 strided
   blocks (pixel p goes to block p mod (K+1), so every block samples the whole tile). If
   d(a, b) ≤ K, some block holds none of the ≤ K differing pixels, so on that block f(a) and b
   are equal up to the colour bijection, and their palette-free block forms (`first_positions`)
   hash the same. A sorted array of block hashes per block finds every such training tile with
   one `searchsorted`. No near-copy within K can be missed.
2. **Embedding kNN (nearest for the rest).** Palette-free features (does each pixel equal its
   right / lower neighbour: 480 bits), PCA to 16 dimensions, scikit-learn kNN: candidates for
   tiles with no near-copy, so every tile still gets a nearest training tile and its distance.
3. **Exact re-rank.** For every candidate pair and flip, the co-occurrence matrix of colours;
   the best bijection is bounded above by row/column maxima and below by a greedy matching,
   which agree almost always; the rest go to the Hungarian algorithm (scipy).

Training tiles are first reduced to one representative per key (palette swaps and mirrors of a
drawing are equally near to everything), the first one seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nesgan.tiles import TILE, first_positions, flips, hash_rows, shape_keys

PIXELS = TILE * TILE
EMBED_DIMS = 16  # PCA dimensions for the kNN stage: enough to rank drawings, small enough to be fast
EMBED_NEIGHBOURS = 4  # candidates per query flip from the kNN stage
PCA_SAMPLE = 20000  # tiles the PCA is fitted on
LABEL_CAP = 8  # colours per tile handled by the vectorised matcher (NES cells have ≤ 4, +sprites)
POSTING_CAP = 50000  # a block hash shared by more training tiles is searched only this far
MIN_BLOCK = 8  # pigeonhole blocks smaller than this are not selective: use brute force instead


def majority_pixels(tiles: np.ndarray) -> np.ndarray:
    """(N, 16, 16) -> (N,) pixel count of each tile's most common colour."""
    flat = np.asarray(tiles).reshape(len(tiles), -1).astype(np.intp)
    n = len(flat)
    counts = np.bincount((np.arange(n)[:, None] * 64 + flat).ravel(), minlength=n * 64)
    return counts.reshape(n, 64).max(1)


def frequency_labels(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 16, 16) -> labels (N, 256) uint8 by colour frequency rank (0 = most common), capped at
    LABEL_CAP − 1, and (N,) number of distinct colours."""
    flat = np.asarray(tiles).reshape(len(tiles), -1).astype(np.intp)
    n = len(flat)
    counts = np.bincount((np.arange(n)[:, None] * 64 + flat).ravel(), minlength=n * 64).reshape(n, 64)
    order = np.argsort(-counts, axis=1, kind="stable")  # (N, 64) colours, most common first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(64)[None, :].repeat(n, 0), axis=1)
    labels = np.minimum(np.take_along_axis(rank, flat, axis=1), LABEL_CAP - 1).astype(np.uint8)
    return labels, (counts > 0).sum(1)


def _edge_features(tiles: np.ndarray) -> np.ndarray:
    """(N, 16, 16) -> (N, 480) float32: 1 where a pixel equals its right / lower neighbour."""
    t = np.asarray(tiles)
    right = t[:, :, 1:] == t[:, :, :-1]  # (N, 16, 15)
    down = t[:, 1:, :] == t[:, :-1, :]  # (N, 15, 16)
    return np.concatenate([right.reshape(len(t), -1), down.reshape(len(t), -1)], 1).astype(np.float32)


def _matched_pixels(qlab: np.ndarray, tlab: np.ndarray, exact_needed: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of (P, 256) labels -> (lower, upper) bounds on max-bijection co-occurring pixels."""
    p = len(qlab)
    codes = qlab.astype(np.intp) * LABEL_CAP + tlab  # (P, 256)
    m = np.bincount((np.arange(p)[:, None] * LABEL_CAP * LABEL_CAP + codes).ravel(),
                    minlength=p * LABEL_CAP * LABEL_CAP).reshape(p, LABEL_CAP, LABEL_CAP)
    upper = np.minimum(m.max(2).sum(1), m.max(1).sum(1))  # (P,)
    # greedy matching: take the largest remaining cell, strike its row and column
    work = m.copy()
    lower = np.zeros(p, dtype=np.int64)
    rows = np.arange(p)
    for _ in range(LABEL_CAP):
        flat = work.reshape(p, -1)
        j = flat.argmax(1)
        v = flat[rows, j]
        if not v.any():
            break
        lower += v
        a, b = j // LABEL_CAP, j % LABEL_CAP
        work[rows, a, :] = 0
        work[rows, :, b] = 0
    return lower, upper


def _hungarian(q: np.ndarray, t: np.ndarray) -> int:
    """Exact max-bijection co-occurring pixels of two (256,) colour arrays (any colour count)."""
    from scipy.optimize import linear_sum_assignment

    qa, qi = np.unique(q, return_inverse=True)
    ta, ti = np.unique(t, return_inverse=True)
    m = np.zeros((len(qa), len(ta)), dtype=np.int64)
    np.add.at(m, (qi, ti), 1)
    r, c = linear_sum_assignment(m, maximize=True)
    return int(m[r, c].sum())


def exact_distances(queries: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact d for aligned pairs: (P, 16, 16) × (P, 16, 16) -> distance (P,), best flip (P,)."""
    p = len(queries)
    dist = np.full(p, PIXELS + 1, dtype=np.int64)
    best_flip = np.zeros(p, dtype=np.int64)
    if p == 0:
        return dist, best_flip
    tlab, tcols = frequency_labels(train)
    qf = flips(queries)  # (4, P, 16, 16)
    qlab0, qcols = frequency_labels(queries)
    qlab_f = flips(qlab0.reshape(-1, TILE, TILE)).reshape(4, p, PIXELS)
    many = (qcols > LABEL_CAP - 1) | (tcols > LABEL_CAP - 1)  # capped labels: bounds only
    for f in range(4):
        lo, hi = _matched_pixels(qlab_f[f], tlab)
        d_hi = PIXELS - lo  # an achievable distance (upper bound)
        d_lo = PIXELS - hi  # no bijection does better (lower bound)
        d = np.where(many, PIXELS + 1, d_hi)
        unsure = np.flatnonzero((many | (d_lo < d_hi)) & (d_lo < dist))
        qflat, tflat = qf[f].reshape(p, -1), np.asarray(train).reshape(p, -1)
        for i in unsure:
            d[i] = PIXELS - _hungarian(qflat[i], tflat[i])
        better = d < dist
        dist[better] = d[better]
        best_flip[better] = f
    return dist, best_flip


@dataclass
class Found:
    """What the search found for each query tile."""

    train_id: np.ndarray  # (Q,) index into the training tiles (-1: no training tiles at all)
    distance: np.ndarray  # (Q,) exact distance to that tile
    flip: np.ndarray  # (Q,) flip of the query (0 none, 1 h, 2 v, 3 hv) that matches it
    exact: np.ndarray  # (Q,) True when the distance is the exact nearest (always within K)


class TileSearch:
    """Search structures over training tiles for one K (see the module docstring)."""

    def __init__(self, tiles: np.ndarray, k: int):
        self.k = int(k)
        tiles = np.asarray(tiles, dtype=np.uint8)
        keys = shape_keys(tiles) if len(tiles) else np.zeros(0, np.uint64)
        _, first = np.unique(keys, return_index=True)
        self.rep = np.sort(first)  # (R,) training ids, one per key, first seen
        self.rep_tiles = tiles[self.rep]  # (R, 16, 16)
        self.blocks = self.k + 1
        self.brute = PIXELS // self.blocks < MIN_BLOCK or len(self.rep) == 0
        flat = self.rep_tiles.reshape(len(self.rep), -1)
        self.block_hash: list[np.ndarray] = []
        self.block_ids: list[np.ndarray] = []
        if not self.brute:
            for b in range(self.blocks):
                h = hash_rows(first_positions(flat[:, b :: self.blocks]))
                order = np.argsort(h, kind="stable")
                self.block_hash.append(h[order])
                self.block_ids.append(order)
        maj = majority_pixels(self.rep_tiles) if len(self.rep) else np.zeros(0, np.int64)
        self.flattest = int(maj.argmax()) if len(maj) else -1
        self._fit_embedding()

    def _fit_embedding(self) -> None:
        from sklearn.decomposition import PCA
        from sklearn.neighbors import NearestNeighbors

        self.nn = None
        r = len(self.rep)
        if r <= EMBED_NEIGHBOURS:
            return
        rng = np.random.default_rng(0)
        sample = self.rep_tiles[rng.choice(r, size=min(r, PCA_SAMPLE), replace=False)]
        dims = min(EMBED_DIMS, len(sample) - 1)
        self.pca = PCA(n_components=dims, random_state=0).fit(_edge_features(sample))
        emb = np.concatenate([self.pca.transform(_edge_features(self.rep_tiles[s : s + 65536]))
                              for s in range(0, r, 65536)]).astype(np.float32)  # (R, dims)
        self.nn = NearestNeighbors(n_neighbors=EMBED_NEIGHBOURS).fit(emb)

    def _pigeonhole_pairs(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Candidate (query, rep) pairs sharing a block form in some flip; and whether complete."""
        qs, rs, complete = [], [], True
        for qf in flips(queries):  # (Q, 16, 16) each
            flat = qf.reshape(len(qf), -1)
            for b in range(self.blocks):
                h = hash_rows(first_positions(flat[:, b :: self.blocks]))  # (Q,)
                lo = np.searchsorted(self.block_hash[b], h, "left")
                hi = np.searchsorted(self.block_hash[b], h, "right")
                n = hi - lo
                if (n > POSTING_CAP).any():
                    complete = False
                    n = np.minimum(n, POSTING_CAP)
                if not n.any():
                    continue
                q = np.repeat(np.arange(len(qf)), n)
                start = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
                qs.append(q)
                rs.append(self.block_ids[b][start + np.arange(len(q))])
        if not qs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), complete
        return np.concatenate(qs), np.concatenate(rs), complete

    def _embedding_pairs(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.nn is None:
            r = len(self.rep)
            return np.repeat(np.arange(len(queries)), r), np.tile(np.arange(r), len(queries))
        qs, rs = [], []
        for qf in flips(queries):
            emb = self.pca.transform(_edge_features(qf)).astype(np.float32)
            _, nbr = self.nn.kneighbors(emb)  # (Q, EMBED_NEIGHBOURS)
            qs.append(np.repeat(np.arange(len(qf)), nbr.shape[1]))
            rs.append(nbr.ravel())
        return np.concatenate(qs), np.concatenate(rs)

    def search(self, queries: np.ndarray, trivial: np.ndarray | None = None) -> Found:
        """Nearest training tile for each (Q, 16, 16) query; exact for every distance ≤ K.

        `trivial` (Q,) bool marks near-flat queries: they skip the block search (their blocks
        match every near-flat training tile) and are compared with the flattest training tile.
        """
        queries = np.asarray(queries, dtype=np.uint8)
        q = len(queries)
        if len(self.rep) == 0:
            return Found(np.full(q, -1), np.full(q, PIXELS), np.zeros(q, np.int64), np.zeros(q, bool))
        trivial = np.zeros(q, bool) if trivial is None else np.asarray(trivial, bool)
        exact = np.zeros(q, bool)
        if self.brute:  # K so large that blocks are unselective: compare with everything
            qi = np.repeat(np.arange(q), len(self.rep))
            ri = np.tile(np.arange(len(self.rep)), q)
            exact[:] = True
        else:
            live = np.flatnonzero(~trivial)
            pq, pr, complete = self._pigeonhole_pairs(queries[live])
            eq, er = self._embedding_pairs(queries)
            qi = np.concatenate([live[pq], eq, np.flatnonzero(trivial)])
            ri = np.concatenate([pr, er, np.full(int(trivial.sum()), self.flattest)])
            exact[live] = complete
        pairs = np.unique(np.stack([qi, ri], 1), axis=0)  # (P, 2)
        best = np.full(q, PIXELS + 1, dtype=np.int64)
        best_rep = np.zeros(q, dtype=np.int64)
        best_flip = np.zeros(q, dtype=np.int64)
        for s in range(0, len(pairs), 100000):  # bounded memory: ~100k pairs at a time
            chunk = pairs[s : s + 100000]
            d, f = exact_distances(queries[chunk[:, 0]], self.rep_tiles[chunk[:, 1]])
            # per query, the smallest distance in this chunk (ties: lowest rep id, i.e. first seen)
            order = np.lexsort((chunk[:, 1], d, chunk[:, 0]))
            firsts = order[np.r_[True, chunk[order[1:], 0] != chunk[order[:-1], 0]]]
            qq = chunk[firsts, 0]
            better = d[firsts] < best[qq]
            best[qq[better]] = d[firsts][better]
            best_rep[qq[better]] = chunk[firsts, 1][better]
            best_flip[qq[better]] = f[firsts][better]
        if not self.brute:  # the block search is complete within K only
            exact &= best <= self.k
        return Found(self.rep[best_rep], np.minimum(best, PIXELS), best_flip, exact)
