"""Quality numbers for generated screens, each beside the training screens' own value.

Measured on screens snapped to nesgan's default NES palette (what `nesgan quantize` and
`export-tiles` do to them), so that speckle a quantizer would make counts against the run:

- orphan rate: share of pixels that differ from all 4 neighbours (the checkerboard texture of
  transposed convolutions shows here; real NES frames ~0.4 %, the demo museum ~1 %),
- distinct-tile share: distinct 16×16 cells / cells, per screen (NES screens reuse tiles),
- colours per 16×16 cell (median over cells: the NES allows 4 without sprites),
- diversity: mean pairwise distance of the screens box-downscaled to 28×28, over the same for
  the training screens (mode collapse shows here first),
- mode coverage: share of the k-means clusters of the training screens (at 28×28) that some
  screen falls into, within the distance of the cluster's own training members,
- invented patterns and tile-pattern divergence (`nesgan.patterns`): the share of cells with a
  3×3 window partition no training cell shows, and the symmetric KL of the 2×2/3×3/4×4 window
  partitions against all (up to 512) training screens; their training values are a held-out
  quarter of those screens against the other three quarters.

The training value of each is measured once, at the start, on a random subset of the training
screens as large as the sample set, so "diversity" and "coverage" of real data read ~1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from nesgan import patterns
from nesgan.colour.palette import Palette
from nesgan.gan.data import nes_indices
from nesgan.images import TILE

CELL = TILE  # NES attribute cell / tile side
DOWN = 8  # box-downscale factor for diversity and coverage: 224 → 28
CLUSTERS = 12  # k-means clusters of the training screens (at most one per 4 screens)
COVER_QUANTILE = 0.9  # a sample reaches a cluster when nearer than this quantile of its members


def orphan_rate(indices: np.ndarray) -> float:
    """Share of interior pixels of (N, H, W) index images unlike all 4 of their neighbours."""
    c = indices[:, 1:-1, 1:-1]
    lonely = ((c != indices[:, :-2, 1:-1]) & (c != indices[:, 2:, 1:-1])
              & (c != indices[:, 1:-1, :-2]) & (c != indices[:, 1:-1, 2:]))
    return float(lonely.mean())


def _cells(indices: np.ndarray) -> np.ndarray:
    """(N, H, W) → (N, cells, 256): each screen's 16×16 cells, row-major, flattened."""
    n, h, w = indices.shape
    x = indices[:, : h - h % CELL, : w - w % CELL]
    x = x.reshape(n, h // CELL, CELL, w // CELL, CELL).transpose(0, 1, 3, 2, 4)
    return x.reshape(n, -1, CELL * CELL)


def distinct_tile_share(indices: np.ndarray) -> float:
    """Mean over screens of distinct 16×16 cells / cells."""
    cells = _cells(indices)
    return float(np.mean([len(set(map(bytes, c))) / len(c) for c in cells]))


def colours_per_cell(indices: np.ndarray) -> float:
    """Median over all 16×16 cells of the number of distinct colours in the cell."""
    cells = np.sort(_cells(indices).reshape(-1, CELL * CELL), axis=1)
    counts = 1 + (np.diff(cells, axis=1) != 0).sum(axis=1)
    return float(np.median(counts))


def small(screens: np.ndarray) -> np.ndarray:
    """uint8 (N, 224, 224, 3) → float32 (N, 28·28·3) in [0, 1]: 8×8 box averages."""
    x = torch.from_numpy(np.ascontiguousarray(screens)).permute(0, 3, 1, 2).float() / 255.0
    return F.avg_pool2d(x, DOWN).flatten(1).numpy()


def mean_pairwise_distance(vectors: np.ndarray) -> float:
    """Mean Euclidean distance over all pairs i < j of the rows (per-value RMS scale)."""
    x = torch.from_numpy(vectors).double()
    d = torch.cdist(x, x)
    n = x.shape[0]
    if n < 2:
        return 0.0
    return float(d.sum() / (n * (n - 1)) / np.sqrt(x.shape[1]))


@dataclass(frozen=True)
class Reference:
    """The training screens' own values, and what coverage measures against."""

    orphan: float
    tile_share: float
    colours_per_cell: float
    distance: float  # mean pairwise distance of all (up to 512) training screens at 28×28
    diversity: float  # a same-size training subset's distance / `distance`
    coverage: float  # a same-size training subset's coverage
    centroids: np.ndarray  # (k, 28·28·3)
    radius: np.ndarray  # (k,) COVER_QUANTILE distance of each cluster's members to its centroid
    windows: patterns.Reference | None = None  # the training window partitions
    invented: float = 0.0  # a held-out quarter's invented share against the rest
    divergence: float = 0.0  # and its divergence

    def row(self) -> dict[str, float]:
        return {"orphan_train": round(self.orphan, 5), "tile_share_train": round(self.tile_share, 4),
                "colours_per_cell_train": self.colours_per_cell,
                "diversity_train": round(self.diversity, 4), "coverage_train": round(self.coverage, 4),
                "invented_train": round(self.invented, 5), "divergence_train": round(self.divergence, 4)}


def coverage(vectors: np.ndarray, centroids: np.ndarray, radius: np.ndarray) -> float:
    """Share of clusters some row of `vectors` falls into (nearest centroid, within its radius)."""
    d = torch.cdist(torch.from_numpy(vectors).double(), torch.from_numpy(centroids).double()).numpy()
    nearest = d.argmin(axis=1)
    inside = d[np.arange(len(d)), nearest] <= radius[nearest]
    return len(set(nearest[inside].tolist())) / len(centroids)


def reference(screens: np.ndarray, count: int, seed: int = 0) -> Reference:
    """Training values from uint8 (N, 224, 224, 3) screens; `count` = size of the sample sets."""
    from sklearn.cluster import KMeans

    rng = np.random.default_rng(seed)
    n = len(screens)
    pool = screens if n <= 512 else screens[np.sort(rng.choice(n, 512, replace=False))]
    vectors = small(Palette.builtin().to_rgb(nes_indices(pool)))
    k = max(1, min(CLUSTERS, len(pool) // 4))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(vectors)
    centroids = km.cluster_centers_.astype(np.float64)
    d = np.linalg.norm(vectors - centroids[km.labels_], axis=1)
    radius = np.array([np.quantile(d[km.labels_ == c], COVER_QUANTILE) if (km.labels_ == c).any()
                       else 0.0 for c in range(k)])
    distance = mean_pairwise_distance(vectors)
    subset = np.sort(rng.choice(len(pool), min(count, len(pool)), replace=False))
    idx = nes_indices(pool[subset])
    windows = patterns.Reference(nes_indices(pool), seed=seed)
    held_out = windows.floor()
    return Reference(
        windows=windows, invented=held_out["invented"],
        divergence=held_out["divergence"],
        orphan=orphan_rate(idx), tile_share=distinct_tile_share(idx),
        colours_per_cell=colours_per_cell(idx),
        distance=distance,
        diversity=mean_pairwise_distance(vectors[subset]) / max(distance, 1e-12),
        coverage=coverage(vectors[subset], centroids, radius),
        centroids=centroids, radius=radius)


def measure(screens: np.ndarray, ref: Reference) -> dict[str, float]:
    """The quality numbers of uint8 (N, 224, 224, 3) generated screens, with `ref`'s beside."""
    idx = nes_indices(screens)
    vectors = small(Palette.builtin().to_rgb(idx))
    return {
        "orphan": round(orphan_rate(idx), 5),
        "tile_share": round(distinct_tile_share(idx), 4),
        "colours_per_cell": colours_per_cell(idx),
        "diversity": round(mean_pairwise_distance(vectors) / max(ref.distance, 1e-12), 4),
        "coverage": round(coverage(vectors, ref.centroids, ref.radius), 4),
        **({} if ref.windows is None else {"invented": round(ref.windows.invented(idx), 5),
                                           "divergence": round(ref.windows.divergence(idx), 4)}),
        **ref.row(),
    }
