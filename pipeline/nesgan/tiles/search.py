"""Nearest training tile under the palette-swap- and flip-invariant pixel distance.

Distance between tiles a and b (0–256):

    d(a, b) = min over the 4 flips f of  256 − max over colour bijections σ of #{p : f(a)[p] = σ(b[p])}

i.e. how many pixels must change before a, mirrored one way or another, is b with its colours
swapped. A palette swap or a mirror is distance 0; a 3-pixel edit is at most 3.

Search is candidates, then exact re-ranking (features → search → decide):

1. **Pigeonhole groups: guaranteed recall within K.** Split the 256 pixels into K + 1 strided
   groups (pixel p goes to group p mod (K+1), so every group samples the whole tile). On a group
   that holds none of the differing pixels, f(a) and b are equal up to the colour bijection, so
   their palette-free forms (`block_forms`) hash the same; a sorted array of group hashes per
   group finds every such training tile with one `searchsorted`. At most K groups hold a
   differing pixel, so if d(a, b) ≤ K at least one group matches: no near-copy can be missed.
   (A group form shared by more than POSTING_CAP training tiles is near-flat and carries no
   information; a query that meets one is marked not `exact`, which `make bench` counts.)
2. **Fine blocks: a cheap filter.** Each group is split in two fine blocks (p mod 2(K+1)). A tile
   within K matches at least 2(K+1) − K = K + 2 of them, and one matching m of them is at least
   2(K+1) − m away; comparing the stored fine hashes leaves almost only true matches to re-rank.
3. **Candidates for everything else.** Each query also keeps its few best fine-count candidates,
   and queries with no candidate that can be within K ask, in each of the 4 flips, a
   palette-free embedding (where the tile shows its 1st, 2nd and 3rd most common colour, PCA to
   8 dimensions, scikit-learn kd-tree), so every tile gets a nearest training tile and its
   distance — exact whenever ≤ K, the best among candidates otherwise.
4. **Exact re-rank.** Per candidate and flip, the co-occurrence matrix of colours: the best
   bijection lies between a greedy matching and the row/column-maxima bound, which agree almost
   always; where they do not and the pair could still beat its query's best, the Hungarian
   algorithm (scipy) decides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nesgan.errors import NesganError
from nesgan.tiles.tile import TILE, flips, hash_rows

PIXELS = TILE * TILE
EMBED_DIMS = 8  # PCA dimensions: enough to rank drawings, few enough for a fast kd-tree
EMBED_RANKS = 3  # colours per tile in the embedding (most common first): NES cells show ≤ 4
EMBED_NEIGHBOURS = 8  # candidates per query from the embedding
COUNT_CANDIDATES = 8  # candidates per query from the highest block-match counts
PCA_SAMPLE = 20000  # training tiles the PCA is fitted on
LABEL_CAP = 16  # colours per tile the vectorised matcher tells apart (NES cells have ≤ 4, + sprites)
MIN_BLOCK = 8  # pixels per block: smaller blocks match too much by chance (e.g. all one colour)
BRUTE_PAIRS = 4 * 10**7  # (query, flip, training tile) triples the brute-force path accepts
POSTING_CAP = 4000  # a group form shared by more training tiles is low-information: read this far
CHUNK = 50000  # pairs re-ranked at a time: bounds memory to ~100 MB
KNN_ALGORITHM = "kd_tree"  # exact tree search: at 10⁶ tiles ~10× faster than brute force in 16-d


def majority_pixels(tiles: np.ndarray) -> np.ndarray:
    """(N, 16, 16) -> (N,) pixel count of each tile's most common colour."""
    flat = np.asarray(tiles).reshape(len(tiles), PIXELS).astype(np.intp)
    n = len(flat)
    counts = np.bincount((np.arange(n)[:, None] * 64 + flat).ravel(), minlength=n * 64)
    return counts.reshape(n, 64).max(1)


def frequency_labels(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 16, 16) -> labels (N, 256) uint8 by colour frequency rank (0 = most common), capped at
    LABEL_CAP − 1, and (N,) number of distinct colours."""
    flat = np.asarray(tiles).reshape(len(tiles), PIXELS).astype(np.intp)
    n = len(flat)
    counts = np.bincount((np.arange(n)[:, None] * 64 + flat).ravel(), minlength=n * 64).reshape(n, 64)
    order = np.argsort(-counts, axis=1, kind="stable")  # (N, 64) colours, most common first
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(64), order.shape), axis=1)
    labels = np.minimum(np.take_along_axis(rank, flat, axis=1), LABEL_CAP - 1).astype(np.uint8)
    return labels, (counts > 0).sum(1)


def block_forms(blocks: np.ndarray, transposed: bool = False) -> np.ndarray:
    """(N, L) colours < 64 (or (L, N) with `transposed`) -> (N,) uint64 hash of the palette-free
    form: for each pixel, the position of the first pixel of its colour (equal forms <=> equal
    up to a colour bijection)."""
    xt_all = blocks if transposed else blocks.T  # (L, N)
    n_all = xt_all.shape[1]
    out = np.empty(n_all, dtype=np.uint64)
    step = 1 << 16
    first = np.empty((min(step, n_all), 64), dtype=np.uint8)  # colour -> first position
    for s in range(0, n_all, step):
        xt = xt_all[:, s : s + step]  # (L, n): rows contiguous when the caller transposed
        n = xt.shape[1]
        rows = np.arange(n)
        for j in range(len(xt) - 1, -1, -1):  # the last write wins: walk backwards
            first[rows, xt[j]] = j
        out[s : s + step] = hash_rows(first[rows[None, :], xt].T)  # (n, L) -> (n,)
    return out


def _rank_features(tiles: np.ndarray) -> np.ndarray:
    """(N, 16, 16) -> (N, 768) float32: where each tile shows its 1st, 2nd and 3rd most common
    colour. Palette-free; Euclidean distance² between two of them is ≈ 2 × the pixel distance
    when the best bijection pairs colours by frequency, as it does for similar tiles."""
    lab, _ = frequency_labels(tiles)  # (N, 256)
    return np.concatenate([lab == r for r in range(EMBED_RANKS)], 1).astype(np.float32)


def _bounds(qlab: np.ndarray, tlab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _hungarian(q: np.ndarray, t: np.ndarray) -> int:
    """Exact max-bijection co-occurring pixels of two (256,) colour arrays (any colour count)."""
    from scipy.optimize import linear_sum_assignment

    qa, qi = np.unique(q, return_inverse=True)
    ta, ti = np.unique(t, return_inverse=True)
    m = np.zeros((len(qa), len(ta)), dtype=np.int64)
    np.add.at(m, (qi, ti), 1)
    r, c = linear_sum_assignment(m, maximize=True)
    return int(m[r, c].sum())


def _assign(q_tiles: np.ndarray, t_tiles: np.ndarray, q_lab: np.ndarray, q_cols: np.ndarray) -> np.ndarray:
    """Exact max-bijection co-occurring pixels for aligned (P, 16, 16) pairs (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    p = len(q_tiles)
    out = np.zeros(p, np.int64)
    if p == 0:
        return out
    t_lab, t_cols = frequency_labels(t_tiles)
    many = (q_cols >= LABEL_CAP) | (t_cols >= LABEL_CAP)
    cc = LABEL_CAP * LABEL_CAP
    codes = q_lab.reshape(p, -1).astype(np.intp) * LABEL_CAP + t_lab  # (P, 256)
    m = np.bincount((np.arange(p)[:, None] * cc + codes).ravel(), minlength=p * cc)
    m = m.reshape(p, LABEL_CAP, LABEL_CAP)  # exact co-occurrences where labels are not capped
    for i in range(p):
        if many[i]:
            out[i] = _hungarian(q_tiles[i].ravel(), t_tiles[i].ravel())
        else:
            r, c = linear_sum_assignment(m[i], maximize=True)
            out[i] = m[i][r, c].sum()
    return out


def oriented_distances(q_tiles: np.ndarray, t_tiles: np.ndarray, q_lab=None, q_cols=None,
                       limit: np.ndarray | None = None) -> np.ndarray:
    """Exact 256 − max-bijection matches for aligned (P, 16, 16) pairs, no flips.

    With `limit` (P,), a pair whose lower bound is ≥ its limit may return that bound instead
    (it cannot beat the limit, so its exact value is not needed)."""
    if q_lab is None:
        q_lab, q_cols = frequency_labels(q_tiles)
    t_lab, t_cols = frequency_labels(t_tiles)
    lo, hi = _bounds(q_lab.reshape(len(q_lab), PIXELS), t_lab)
    many = (q_cols >= LABEL_CAP) | (t_cols >= LABEL_CAP)  # capped labels: bounds only
    d, d_lo = PIXELS - lo, PIXELS - hi  # achievable, and unbeatable
    unsure = many | (d_lo < d)
    if limit is not None:
        unsure &= d_lo < limit
    qf, tf = q_tiles.reshape(len(q_tiles), PIXELS), t_tiles.reshape(len(t_tiles), PIXELS)
    for i in np.flatnonzero(unsure):
        d[i] = PIXELS - _hungarian(qf[i], tf[i])
    d[many & ~unsure] = d_lo[many & ~unsure]
    return d


def exact_distances(queries: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact d for aligned pairs: (P, 16, 16) × (P, 16, 16) -> distance (P,), best flip (P,)."""
    p = len(queries)
    dist = np.full(p, PIXELS + 1, dtype=np.int64)
    best_flip = np.zeros(p, dtype=np.int64)
    for f, qf in enumerate(flips(np.asarray(queries))):
        d = oriented_distances(qf, np.asarray(train), limit=dist)
        better = d < dist
        dist[better], best_flip[better] = d[better], f
    return dist, best_flip


def brute_nearest(query: np.ndarray, train: np.ndarray) -> tuple[int, int]:
    """Exact nearest (distance, training id) of one (16, 16) query against every training tile.

    The reference the search is checked against: bounds for every pair and flip, then the
    Hungarian algorithm only where a pair could beat the best distance already achieved."""
    train = np.asarray(train, dtype=np.uint8)
    qf = flips(np.asarray(query)[None])[:, 0]  # (4, 16, 16)
    lab, cols = frequency_labels(qf)
    d_lo, d_hi = [], []
    for f in range(4):
        for s in range(0, len(train), CHUNK):
            t_lab, t_cols = frequency_labels(train[s : s + CHUNK])
            lo, hi = _bounds(np.repeat(lab[f][None], len(t_lab), 0), t_lab)
            many = (cols[f] >= LABEL_CAP) | (t_cols >= LABEL_CAP)
            d_hi.append(np.where(many, PIXELS + 1, PIXELS - lo))
            d_lo.append(PIXELS - hi)
    d_hi, d_lo = np.concatenate(d_hi), np.concatenate(d_lo)  # (4·M,) flip-major
    m = len(train)
    for i in np.flatnonzero((d_lo < d_hi) & (d_lo < d_hi.min())):
        d_hi[i] = PIXELS - _hungarian(qf[i // m].ravel(), train[i % m].ravel())
    best = int(d_hi.argmin())
    return int(d_hi[best]), best % m


@dataclass
class Found:
    """What the search found for each query tile."""

    train_id: np.ndarray  # (Q,) index into the training tiles (-1: no training tiles at all)
    distance: np.ndarray  # (Q,) exact distance to that tile
    flip: np.ndarray  # (Q,) flip of the query (0 none, 1 h, 2 v, 3 hv) that matches it
    exact: np.ndarray  # (Q,) True when it is certainly the nearest (always so within K)
    complete: np.ndarray | None = None  # (Q,) False where a posting list was cut short


def plan_blocks(k: int) -> tuple[int, int]:
    """(groups, fine blocks) for K: K + 1 groups, each split in two fine blocks while those keep
    ≥ MIN_BLOCK pixels; (0, 0) when K + 1 groups would be under MIN_BLOCK pixels (brute force)."""
    groups = k + 1
    if PIXELS // groups < MIN_BLOCK:
        return 0, 0
    return groups, (2 * groups if PIXELS // (2 * groups) >= MIN_BLOCK else groups)


class TileSearch:
    """Search structures over (M, 16, 16) training tiles for one K (see the module docstring)."""

    def __init__(self, tiles: np.ndarray, k: int):
        self.k = int(k)
        self.tiles = np.ascontiguousarray(np.asarray(tiles, dtype=np.uint8))
        self.groups, self.fine = plan_blocks(self.k)
        self.need = self.fine - self.k  # fine blocks a tile within K must match
        m = len(self.tiles)
        flat = self.tiles.reshape(m, -1)
        flat_t = np.ascontiguousarray(flat.T)  # (256, M): every block's pixel rows contiguous
        self.fine_hash = self._fine_forms(flat_t)  # (M, F) uint64
        self.group_hash: list[np.ndarray] = []
        self.group_ids: list[np.ndarray] = []
        for g in range(self.groups):
            h = block_forms(flat_t[g :: self.groups], transposed=True)
            order = np.argsort(h, kind="stable").astype(np.int32)
            self.group_hash.append(h[order])
            self.group_ids.append(order)
        # a flattest training tile (most pixels like its top-left one): what trivial tiles are near
        flat_score = (flat == flat[:, :1]).sum(1) if m else np.zeros(0, np.int64)
        self.flattest = int(flat_score.argmax()) if m else -1
        self.nn = None
        if m > EMBED_NEIGHBOURS:
            self._fit_embedding()

    def _fine_forms(self, flat_t: np.ndarray) -> np.ndarray:
        """(256, N) transposed tiles -> (N, F) uint64 palette-free hashes of the fine blocks."""
        if self.fine == 0:
            return np.zeros((flat_t.shape[1], 0), np.uint64)
        return np.stack([block_forms(flat_t[b :: self.fine], transposed=True) for b in range(self.fine)], 1)

    def _fit_embedding(self) -> None:
        """PCA of the rank features (numpy eigh of the 768×768 covariance), then a kNN index."""
        from sklearn.neighbors import NearestNeighbors
        from threadpoolctl import threadpool_limits

        m = len(self.tiles)
        rng = np.random.default_rng(0)
        sample = _rank_features(self.tiles[rng.choice(m, size=min(m, PCA_SAMPLE), replace=False)])
        mean = sample.mean(0)  # (768,)
        x = sample - mean
        with threadpool_limits(1, user_api="blas"):  # threaded BLAS crawls on a busy 2-core box
            _, vecs = np.linalg.eigh((x.T @ x).astype(np.float64))  # ascending eigenvalues
        self.project = vecs[:, ::-1][:, :EMBED_DIMS].astype(np.float32)  # (768, dims)
        self.offset = mean @ self.project  # (dims,)
        emb = np.concatenate([self._embed(self.tiles[s : s + 65536]) for s in range(0, m, 65536)])
        self.nn = NearestNeighbors(n_neighbors=EMBED_NEIGHBOURS, algorithm=KNN_ALGORITHM).fit(emb)

    def _embed(self, tiles: np.ndarray) -> np.ndarray:
        return _rank_features(tiles) @ self.project - self.offset  # (N, dims) float32

    def _block_triples(self, queries: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Triples (query, flip, train id) sharing a group form, their fine-block match counts,
        and per query whether every posting was read in full (else its recall is not certain)."""
        m = len(self.tiles)
        keys, complete, fine_q = [], np.ones(len(queries), bool), []
        for f, qf in enumerate(flips(queries)):  # (Q, 16, 16) each
            flat_t = np.ascontiguousarray(qf.reshape(len(qf), PIXELS).T)  # (256, Q)
            fine_q.append(self._fine_forms(flat_t))
            for g in range(self.groups):
                h = block_forms(flat_t[g :: self.groups], transposed=True)  # (Q,)
                lo = np.searchsorted(self.group_hash[g], h, "left")
                n = np.searchsorted(self.group_hash[g], h, "right") - lo
                complete &= n <= POSTING_CAP
                n = np.minimum(n, POSTING_CAP)
                if not n.any():
                    continue
                q = np.repeat(np.arange(len(qf)), n)
                start = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
                ids = self.group_ids[g][start + np.arange(len(q))]
                keys.append((q * 4 + f).astype(np.int64) * m + ids)
        if not keys:
            e = np.zeros(0, np.int64)
            return e, e, e, e, complete
        keys = np.unique(np.concatenate(keys))
        qq, ff, rr = keys // m // 4, keys // m % 4, keys % m
        fine_q = np.stack(fine_q)  # (4, Q, F)
        counts = np.zeros(len(keys), np.int64)
        for s in range(0, len(keys), 1 << 20):
            sl = slice(s, s + (1 << 20))
            counts[sl] = (fine_q[ff[sl], qq[sl]] == self.fine_hash[rr[sl]]).sum(1)
        return qq, ff, rr, counts, complete

    def search(self, queries: np.ndarray, trivial: np.ndarray | None = None) -> Found:
        """Nearest training tile for each (Q, 16, 16) query; exact for every distance ≤ K.

        `trivial` (Q,) marks near-flat queries: they skip the block search (their blocks match
        every near-flat training tile) and are compared with the flattest training tile instead.
        """
        queries = np.ascontiguousarray(np.asarray(queries, dtype=np.uint8))
        q, m = len(queries), len(self.tiles)
        if m == 0:
            return Found(np.full(q, -1), np.full(q, PIXELS), np.zeros(q, np.int64), np.zeros(q, bool))
        trivial = np.zeros(q, bool) if trivial is None else np.asarray(trivial, bool)
        if self.groups == 0:  # K too large for selective blocks: compare with everything
            if 4 * q * m > BRUTE_PAIRS:
                raise NesganError(
                    f"--near-copy-pixels {self.k} is too large for an indexed search (K ≤ "
                    f"{PIXELS // MIN_BLOCK - 1}), and comparing all {q:,} × {m:,} tile pairs "
                    "would take too long; use a smaller K"
                )
            qq, ff = np.repeat(np.arange(q), 4 * m), np.tile(np.repeat(np.arange(4), m), q)
            rr = np.tile(np.arange(m), 4 * q)
            certain = np.ones(q, bool)
        else:
            live = np.flatnonzero(~trivial)
            qq, ff, rr, counts, complete = self._block_triples(queries[live])
            qq = live[qq]
            certain = np.zeros(q, bool)
            certain[live] = complete
            # keep every triple that can be within K, plus each query's best few by count
            strong = counts >= self.need
            order = np.lexsort((-counts, qq))
            rank = np.arange(len(order)) - np.searchsorted(qq[order], qq[order], "left")
            top = np.zeros(len(order), bool)
            top[order[rank < COUNT_CANDIDATES]] = True
            keep = strong | top
            settled = np.zeros(q, bool)  # a strong triple is a candidate within K for its query
            settled[qq[strong]] = True
            qq, ff, rr = qq[keep], ff[keep], rr[keep]
            # trivial queries: the flattest training tile (any flip will do)
            qq = np.concatenate([qq, np.flatnonzero(trivial)])
            ff = np.concatenate([ff, np.zeros(int(trivial.sum()), np.int64)])
            rr = np.concatenate([rr, np.full(int(trivial.sum()), self.flattest)])
            # queries with no candidate that can be within K ask the embedding, in each flip
            ask = np.flatnonzero(~settled & ~trivial)
            if self.nn is not None and len(ask):
                for f, qf in enumerate(flips(queries[ask])):
                    _, nbr = self.nn.kneighbors(self._embed(qf))  # (A, EMBED_NEIGHBOURS)
                    qq = np.concatenate([qq, np.repeat(ask, nbr.shape[1])])
                    ff = np.concatenate([ff, np.full(nbr.size, f)])
                    rr = np.concatenate([rr, nbr.ravel()])
            uniq = np.unique((qq * 4 + ff).astype(np.int64) * m + rr)
            qq, ff, rr = uniq // m // 4, uniq // m % 4, uniq % m
        return self._rerank(queries, qq, ff, rr, certain)

    def _rerank(self, queries: np.ndarray, qq: np.ndarray, ff: np.ndarray, rr: np.ndarray,
                certain: np.ndarray) -> Found:
        """Exact distances of candidate triples (query, flip, train id); the best per query.

        1. bounds for every triple (vectorised); 2. the Hungarian algorithm only where a triple's
        lower bound could beat the best distance its query already achieves; 3. per query, the
        smallest distance (ties: the earlier flip, then the first-seen training tile).
        """
        q = len(queries)
        q_flips = flips(queries)  # (4, Q, 16, 16)
        lab, cols = frequency_labels(queries)
        lab_flips = flips(lab.reshape(-1, TILE, TILE))  # (4, Q, 16, 16): flips commute with labels
        d_hi = np.empty(len(qq), np.int64)  # achievable distance
        d_lo = np.empty(len(qq), np.int64)  # no bijection does better
        for s in range(0, len(qq), CHUNK):
            cq, cf, cr = qq[s : s + CHUNK], ff[s : s + CHUNK], rr[s : s + CHUNK]
            t_lab, t_cols = frequency_labels(self.tiles[cr])
            lo, hi = _bounds(lab_flips[cf, cq].reshape(len(cq), PIXELS), t_lab)
            many = (cols[cq] >= LABEL_CAP) | (t_cols >= LABEL_CAP)  # capped labels: bound only
            d_hi[s : s + CHUNK] = np.where(many, PIXELS + 1, PIXELS - lo)
            d_lo[s : s + CHUNK] = PIXELS - hi
        best = np.full(q, PIXELS + 1, np.int64)
        np.minimum.at(best, qq, d_hi)
        res = np.flatnonzero((d_lo < d_hi) & (d_lo < best[qq]))  # could still beat the best
        d_hi[res] = PIXELS - _assign(q_flips[ff[res], qq[res]], self.tiles[rr[res]],
                                     lab_flips[ff[res], qq[res]], cols[qq[res]])
        order = np.lexsort((rr, ff, d_hi, qq))
        firsts = order[np.r_[True, qq[order[1:]] != qq[order[:-1]]]] if len(order) else order
        best_r = np.zeros(q, np.int64)
        best_f = np.zeros(q, np.int64)
        best[:] = PIXELS + 1
        best[qq[firsts]], best_r[qq[firsts]], best_f[qq[firsts]] = d_hi[firsts], rr[firsts], ff[firsts]
        exact = certain & (best <= self.k) if self.groups else certain
        return Found(best_r, np.minimum(best, PIXELS), best_f, exact, certain)
