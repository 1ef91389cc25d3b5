"""Nearest training tile under the merge distance (`distance.py`): an index over the training
tiles, built once per K, then searched.

Search is candidates, then exact re-ranking (features → search → decide):


1. **Pigeonhole groups: guaranteed recall within K, merges included.** Split the 256 pixels
   into K + 1 strided groups (pixel p goes to group p mod (K+1), so every group samples the whole
   tile). At most K groups hold a differing pixel, so if d(q, t) ≤ K, on at least one group
   f(q) = σ(t) exactly: the query block's colour *partition* (which pixels share a colour) is
   t's block partition with some classes merged. So each training block is indexed under its own
   partition and every coarser one (`coarsenings`): all 14 non-flat ones of a 4-colour block (an
   NES cell shows one sub-palette: ≤ 4 colours), all of a 2–3-colour block; a block of 5–8
   colours (sprites, scan noise) only under itself and each single merge of two colours, a block
   of more only under itself. One `searchsorted` per group and flip finds every training tile
   whose block can map onto the query's: no near-copy is missed whose matching block is one of
   those. (A query block that is flat can be the image of any block: with at most READ_ALL
   training tiles all of them are candidates; with more, the query is marked not `complete`,
   which `make bench` counts, as is one that meets a partition shared by more than POSTING_CAP
   training blocks.)
2. **Candidates for everything else.** Queries left with no candidate within K ask, in each of
   the 4 flips, a palette-free embedding (where the tile shows its 1st, 2nd and 3rd most common
   colour, PCA to 8 dimensions, scikit-learn kd-tree), so every tile gets a nearest training
   tile and its distance — exact whenever ≤ K, the best among candidates otherwise.
3. **Exact re-rank.** Per candidate and flip, the co-occurrence matrix of colours (by frequency
   rank) gives the merge distance directly: no matching problem to solve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nesgan.errors import NesganError
from nesgan.tiles.distance import (
    CHUNK,
    LABEL_CAP,
    MASK_LABELS,
    PIXELS,
    frequency_labels,
    label_masks,
    mask_matches,
    merge_matches,
    merge_matches_one,
    unique_sorted,
)
from nesgan.tiles.tile import TILE, flips

EMBED_DIMS = 8  # PCA dimensions: enough to rank drawings, few enough for a fast kd-tree
EMBED_RANKS = 3  # colours per tile in the embedding (most common first): NES cells show ≤ 4
EMBED_NEIGHBOURS = 8  # candidates per query from the embedding
PCA_SAMPLE = 20000  # training tiles the PCA is fitted on
MIN_BLOCK = 8  # pixels per block: smaller blocks match too much by chance (e.g. all one colour)
BRUTE_PAIRS = 4 * 10**7  # (query, flip, training tile) triples the brute-force path accepts
POSTING_CAP = 4000  # a block partition shared by more training tiles is low-information: read this far
READ_ALL = 600  # a flat query block reads every training tile when there are at most this many
KNN_ALGORITHM = "kd_tree"  # exact tree search: at 10⁶ tiles ~10× faster than brute force in 16-d
MERGE_ALL = 4  # blocks of ≤ this many colours are indexed under every coarser partition
MERGE_PAIRS = 8  # blocks of ≤ this many colours: under each single merge of two colours
# pixel weights of the block-partition hash: random integers < 2⁴⁰, so a block's class sums stay
# exact in float64 (fixed, so an index hashes the same in every run)
_WEIGHTS = np.random.default_rng(0xB10C).integers(1, 2**40, size=PIXELS).astype(np.float64)


def _rank_features(tiles: np.ndarray | None = None, lab: np.ndarray | None = None) -> np.ndarray:
    """(N, 16, 16) tiles (or their (N, 256) frequency labels) -> (N, 768) float32: where each
    tile shows its 1st, 2nd and 3rd most common colour. Palette-free; Euclidean distance² between
    two of them is ≈ 2 × the pixel distance when the best map pairs colours by frequency, as it
    does for similar tiles."""
    if lab is None:
        lab, _ = frequency_labels(tiles)  # (N, 256)
    return np.concatenate([lab == r for r in range(EMBED_RANKS)], 1).astype(np.float32)



def _restricted_growth(c: int) -> list[tuple[int, ...]]:
    """Every partition of c labels as a restricted growth string (label l goes to class r[l];
    classes numbered in order of first appearance, so each partition is listed once)."""
    out = [(0,)]
    for _ in range(c - 1):
        out = [(*r, k) for r in out for k in range(max(r) + 2)]
    return out


def coarsenings(c: int) -> np.ndarray:
    """(E, c) the partitions a block showing c colours is indexed under, identity first: every
    non-flat one for c ≤ MERGE_ALL; for c ≤ MERGE_PAIRS each colour merged into the block's
    first (its tile's most common) colour; for more colours only the identity."""
    ident = tuple(range(c))
    if c <= 1:
        return np.zeros((1, max(c, 1)), np.int64)
    if c <= MERGE_ALL:
        rest = [r for r in _restricted_growth(c) if r != ident and max(r) > 0]
    elif c <= MERGE_PAIRS:
        rest = [tuple(0 if x == j else (x if x < j else x - 1) for x in range(c)) for j in range(1, c)]
    else:
        rest = []
    return np.array([ident, *rest], np.int64)


def _class_matrix(c: int) -> tuple[np.ndarray, np.ndarray]:
    """For the non-identity coarsenings of c labels: a (c, T) 0/1 matrix whose columns are their
    classes, and the (E,) offsets where each coarsening's classes start."""
    cols, offsets = [], []
    for r in coarsenings(c)[1:]:
        offsets.append(len(cols))
        cols += [(r == k).astype(np.float64) for k in range(int(r.max()) + 1)]
    return (np.stack(cols, 1) if cols else np.zeros((c, 0))), np.array(offsets, np.intp)


_CLASSES = [_class_matrix(c) for c in range(MERGE_PAIRS + 1)]


def _g(x: np.ndarray) -> np.ndarray:
    """A 64-bit mixer with _g(0) = 0 (so absent labels add nothing to a partition hash)."""
    x = x.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x ^= x >> np.uint64(31)
    x *= np.uint64(0xD6E8FEB86659FD93)
    return x ^ (x >> np.uint64(29))


def label_weights(lab: np.ndarray) -> np.ndarray:
    """(N, L) colour labels < LABEL_CAP of a block -> (N, LABEL_CAP) float64: per label, the sum
    of its pixels' position weights (exact integers < 2⁴⁶; 0 where the label is absent)."""
    n, length = lab.shape
    idx = (np.arange(n)[:, None] * LABEL_CAP + lab).ravel()
    w = np.broadcast_to(_WEIGHTS[:length], (n, length)).ravel()
    return np.bincount(idx, weights=w, minlength=n * LABEL_CAP).reshape(n, LABEL_CAP)


def partition_hashes(weights: np.ndarray, *, coarse: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N, LABEL_CAP) label weights of N blocks -> (hashes (E,) uint64, block number (E,)).

    A partition's hash is Σ over its classes of _g(the class's weight): it does not depend on
    how the classes are named, and a coarser partition's class weights are sums of the finer
    ones'. With `coarse`, each block is also hashed under its coarsenings (`coarsenings`)."""
    ident = _g(weights).sum(1)  # (N,) uint64, wrapping
    n = len(weights)
    if not coarse:
        return ident, np.arange(n)
    present = weights > 0
    count = present.sum(1)
    slot = np.cumsum(present, axis=1) - 1  # where each present label goes: present ones first
    rows, labels = np.nonzero(present & (slot < MERGE_PAIRS))
    packed = np.zeros((n, MERGE_PAIRS))
    packed[rows, slot[rows, labels]] = weights[rows, labels]
    hashes, blocks = [ident], [np.arange(n)]
    for c in range(2, MERGE_PAIRS + 1):
        sel = np.flatnonzero(count == c)
        classes, offsets = _CLASSES[c]
        if not len(sel) or not len(offsets):
            continue
        sums = packed[sel, :c] @ classes  # (n_c, T) exact: integers < 2⁵³
        h = np.add.reduceat(_g(sums), offsets, axis=1)  # (n_c, E_c)
        hashes.append(h.ravel())
        blocks.append(np.repeat(sel, len(offsets)))
    return np.concatenate(hashes), np.concatenate(blocks)



def _row_matches(t_words: np.ndarray, q_words: np.ndarray) -> np.ndarray:
    """(P, S) first mask words (the top 4 rows) -> (P,) an upper bound on the pixels of those
    rows the best many-to-one map keeps: 4 training colours against 4 query colours and the
    query's rest lumped, the training tile's rest counted as kept."""
    q5 = q_words[:, :5].copy()
    for slot in range(5, MASK_LABELS + 1):
        q5[:, 4] |= q_words[:, slot]
    co = np.bitwise_count(t_words[:, :4, None] & q5[:, None, :])  # (P, 4, 5) uint8
    rest = t_words[:, 4].copy()
    for slot in range(5, MASK_LABELS + 1):
        rest |= t_words[:, slot]
    return co.max(2).sum(1, dtype=np.int64) + np.bitwise_count(rest)


@dataclass
class Found:
    """What the search found for each query tile."""

    train_id: np.ndarray  # (Q,) index into the training tiles (-1: no training tiles at all)
    distance: np.ndarray  # (Q,) exact merge distance to that tile
    flip: np.ndarray  # (Q,) flip of the query (0 none, 1 h, 2 v, 3 hv) that matches it
    exact: np.ndarray  # (Q,) True when it is certainly the nearest (always so within K)
    complete: np.ndarray | None = None  # (Q,) False where the block search could not guarantee recall


def plan_blocks(k: int) -> int:
    """Pigeonhole groups for K: K + 1, or 0 when K + 1 groups would be under MIN_BLOCK pixels
    (then every pair is compared: brute force)."""
    groups = k + 1
    return groups if PIXELS // groups >= MIN_BLOCK else 0


class TileSearch:
    """Search structures over (M, 16, 16) training tiles for one K (see the module docstring)."""

    def __init__(self, tiles: np.ndarray, k: int):
        self.k = int(k)
        self.tiles = np.ascontiguousarray(np.asarray(tiles, dtype=np.uint8))
        self.groups = plan_blocks(self.k)
        m = len(self.tiles)
        flat = self.tiles.reshape(m, -1)
        self.masks = np.empty((m, MASK_LABELS + 1, 4), np.uint64)  # for the exact re-rank
        self.colours = np.empty(m, np.int64)
        self.nn = None
        embed = m > EMBED_NEIGHBOURS
        if embed:
            self._fit_projection()
            emb = np.empty((m, EMBED_DIMS), np.float32)
        parts: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(self.groups)]
        step = 1 << 16
        for s in range(0, m, step):  # one labelling per tile serves every structure
            lab, self.colours[s : s + step] = frequency_labels(self.tiles[s : s + step])
            self.masks[s : s + step] = label_masks(lab)
            if embed:
                emb[s : s + step] = self._embed(lab=lab)
            for g in range(self.groups):
                h, ids = partition_hashes(label_weights(lab[:, g :: self.groups]), coarse=True)
                parts[g].append((h, (ids + s).astype(np.int32)))
        self.group_hash: list[np.ndarray] = []
        self.group_ids: list[np.ndarray] = []
        for g in range(self.groups):
            h = np.concatenate([p[0] for p in parts[g]])
            order = np.argsort(h)
            self.group_hash.append(h[order])
            self.group_ids.append(np.concatenate([p[1] for p in parts[g]])[order])
            parts[g] = []
        # a flattest training tile (most pixels like its top-left one): what trivial tiles are near
        flat_score = (flat == flat[:, :1]).sum(1) if m else np.zeros(0, np.int64)
        self.flattest = int(flat_score.argmax()) if m else -1
        if embed:
            from sklearn.neighbors import NearestNeighbors

            self.nn = NearestNeighbors(n_neighbors=EMBED_NEIGHBOURS, algorithm=KNN_ALGORITHM).fit(emb)

    def _fit_projection(self) -> None:
        """PCA of the rank features of a sample (numpy eigh of the 768×768 covariance)."""
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

    def _embed(self, tiles: np.ndarray | None = None, lab: np.ndarray | None = None) -> np.ndarray:
        return _rank_features(tiles, lab) @ self.project - self.offset  # (N, dims) float32

    def _block_triples(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Triples (query, flip, train id) where some training block can map onto the query's
        block, and per query whether every posting was read in full and no block was flat (else
        its recall is not certain)."""
        m = len(self.tiles)
        keys, complete = [], np.ones(len(queries), bool)
        lab, _ = frequency_labels(queries)
        for f, lf in enumerate(flips(lab.reshape(-1, TILE, TILE))):  # flips commute with labels
            lf = lf.reshape(len(lf), PIXELS)
            any_flat = np.zeros(len(lf), bool)
            for g in range(self.groups):
                w = label_weights(lf[:, g :: self.groups])
                h, _ = partition_hashes(w, coarse=False)  # (Q,)
                lo = np.searchsorted(self.group_hash[g], h, "left")
                n = np.searchsorted(self.group_hash[g], h, "right") - lo
                flat = (w > 0).sum(1) <= 1  # every training block can merge into a flat one
                if m <= READ_ALL:  # few enough to read them all (below, once per query and flip)
                    any_flat |= flat
                else:
                    complete &= ~flat
                complete &= n <= POSTING_CAP
                n = np.minimum(n, POSTING_CAP)
                if not n.any():
                    continue
                q = np.repeat(np.arange(len(lf)), n)
                start = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n)
                ids = self.group_ids[g][start + np.arange(len(q))]
                keys.append((q * 4 + f).astype(np.int64) * m + ids)
            if any_flat.any():
                fq = np.repeat(np.flatnonzero(any_flat), m)
                keys.append((fq * 4 + f).astype(np.int64) * m + np.tile(np.arange(m), int(any_flat.sum())))
        if not keys:
            e = np.zeros(0, np.int64)
            return e, e, e, complete
        keys = unique_sorted(np.concatenate(keys))
        return keys // m // 4, keys // m % 4, keys % m, complete

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
            found = self._rerank(queries, qq, ff, rr, np.ones(q, bool))
            found.exact[:] = True
            return found
        live = np.flatnonzero(~trivial)
        qq, ff, rr, complete = self._block_triples(queries[live])
        qq = live[qq]
        certain = np.zeros(q, bool)
        certain[live] = complete
        # trivial queries: the flattest training tile (any flip will do)
        qq = np.concatenate([qq, np.flatnonzero(trivial)])
        ff = np.concatenate([ff, np.zeros(int(trivial.sum()), np.int64)])
        rr = np.concatenate([rr, np.full(int(trivial.sum()), self.flattest)])
        found = self._rerank(queries, qq, ff, rr, certain, within_k=True)
        # queries with no candidate within K ask the embedding, in each flip (or, with a tiny
        # training set, every training tile)
        ask = np.flatnonzero((found.distance > self.k) & ~trivial)
        if len(ask):
            eq, ef, er = [], [], []
            for f, qf in enumerate(flips(queries[ask])):
                if self.nn is not None:
                    _, nbr = self.nn.kneighbors(self._embed(qf))  # (A, EMBED_NEIGHBOURS)
                else:
                    nbr = np.broadcast_to(np.arange(m), (len(ask), m))
                eq.append(np.repeat(ask, nbr.shape[1]))
                ef.append(np.full(nbr.size, f))
                er.append(nbr.ravel())
            more = self._rerank(queries, np.concatenate(eq), np.concatenate(ef), np.concatenate(er), certain)
            better = more.distance < found.distance
            for name in ("train_id", "distance", "flip"):
                getattr(found, name)[better] = getattr(more, name)[better]
            found.exact = certain & (found.distance <= self.k)
        return found

    def _rerank(self, queries: np.ndarray, qq: np.ndarray, ff: np.ndarray, rr: np.ndarray,
                certain: np.ndarray, within_k: bool = False) -> Found:
        """Exact merge distances of candidate triples (query, flip, train id); the best per query
        (ties: the earlier flip, then the lower training id).

        With `within_k`, triples that are more than K apart on the top 4 rows alone (a lower
        bound from one 64-bit word per colour) are dropped first. Bit masks then give every
        triple's distance at once (exact when both tiles show ≤ MASK_LABELS colours, else a
        lower bound); the co-occurrence count decides the others where the bound could still
        beat the best distance their query already has."""
        q, m = len(queries), len(self.tiles)
        uniq = unique_sorted((qq * 4 + ff).astype(np.int64) * m + rr)
        qq, ff, rr = uniq // m // 4, uniq // m % 4, uniq % m
        lab, cols = frequency_labels(queries)
        lab_flips = flips(lab.reshape(-1, TILE, TILE)).reshape(4, q, PIXELS)  # flips commute with labels
        q_masks = np.stack([label_masks(lf) for lf in lab_flips])  # (4, Q, S, 4)
        if within_k:
            keep = np.empty(len(qq), bool)
            for s in range(0, len(qq), CHUNK):
                sl = slice(s, s + CHUNK)
                keep[sl] = 64 - _row_matches(self.masks[rr[sl], :, 0], q_masks[ff[sl], qq[sl], :, 0]) <= self.k
            qq, ff, rr = qq[keep], ff[keep], rr[keep]
        d = np.empty(len(qq), np.int64)
        for s in range(0, len(qq), CHUNK):
            sl = slice(s, s + CHUNK)
            d[sl] = PIXELS - mask_matches(self.masks[rr[sl]], q_masks[ff[sl], qq[sl]])
        loose = (cols[qq] > MASK_LABELS) | (self.colours[rr] > MASK_LABELS)  # d is a lower bound
        best = np.full(q, PIXELS + 1, np.int64)
        np.minimum.at(best, qq[~loose], d[~loose])
        redo_mask = loose & (d < best[qq])
        redo = np.flatnonzero(redo_mask)
        if len(redo):
            t_lab, t_cols = frequency_labels(self.tiles[rr[redo]])
            d[redo] = PIXELS - merge_matches(lab_flips[ff[redo], qq[redo]], t_lab)
            many = redo[(cols[qq[redo]] >= LABEL_CAP) | (t_cols >= LABEL_CAP)]  # capped labels
            if len(many):
                q_flips = flips(queries)
                for i in many:
                    d[i] = PIXELS - merge_matches_one(q_flips[ff[i], qq[i]].ravel(), self.tiles[rr[i]].ravel())
        d[loose & ~redo_mask] = PIXELS + 1  # bounds that cannot win
        order = np.lexsort((rr, ff, d, qq))
        firsts = order[np.r_[True, qq[order[1:]] != qq[order[:-1]]]] if len(order) else order
        best = np.full(q, PIXELS, np.int64)
        best_r = np.zeros(q, np.int64)
        best_f = np.zeros(q, np.int64)
        best[qq[firsts]], best_r[qq[firsts]], best_f[qq[firsts]] = d[firsts], rr[firsts], ff[firsts]
        best = np.minimum(best, PIXELS)
        exact = certain & (best <= self.k) if self.groups else certain.copy()
        return Found(best_r, best, best_f, exact, certain)

