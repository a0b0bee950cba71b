"""Persistent-homology (PH0) dimension of a point cloud or of a finite pseudo-metric space.

Birdal, Lou, Simsekli & Zhu 2021 ("Intrinsic dimension, persistent homology and
generalization in neural networks", NeurIPS): the alpha-weighted PH0 lifetime sum of a finite
set equals the alpha-weighted length of its Euclidean minimum spanning tree,
E^0_alpha(W) = sum_{e in MST(W)} |e|^alpha, and for n points sampled from a set of dimension
m, E^0_alpha(W_n) ~ n^{(m - alpha)/m}. Fitting log E = b log n + c over subsample sizes n gives
dim_PH = alpha / (1 - b). Dupuis, Deligiannidis & Simsekli 2023 ("Generalization bounds using
data-dependent fractal dimensions", ICML) replace the Euclidean metric on the iterates by a
loss-based pseudo-metric; the same fit runs on any distance matrix.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import cdist

__all__ = [
    "PHDimResult",
    "PHDimensionError",
    "mst_length",
    "mst_length_from_distances",
    "ph_dimension",
    "ph_dimension_from_distances",
    "loss_distance_matrix",
]

# Above this many points the full n x n fp64 distance matrix is not materialised; Prim's
# algorithm then computes one row at a time (same numbers, O(n) memory).
_DENSE_MAX_POINTS = 4000


class PHDimensionError(ValueError):
    """The log-log fit of MST length against sample size gives no finite positive dimension."""


@dataclass(frozen=True)
class PHDimResult:
    """PH0 dimension and the fit behind it: log(lengths) = slope * log(ns) + c, with r2."""

    dim: float
    slope: float
    r2: float
    ns: tuple[int, ...]
    lengths: tuple[float, ...]
    n_distinct: int


def _prim(n: int, row: Callable[[int], np.ndarray], alpha: float) -> float:
    """Prim's algorithm on a complete graph given row(i) = distances from vertex i.

    Works on the dense distances directly, so zero-length edges (duplicate points) are real
    edges contributing 0**alpha = 0, unlike scipy's sparse MST which drops zero entries.
    """
    if n <= 1:
        return 0.0
    in_tree = np.zeros(n, dtype=bool)
    in_tree[0] = True
    best = np.array(row(0), dtype=np.float64, copy=True)
    best[0] = np.inf
    total = 0.0
    for _ in range(n - 1):
        j = int(np.argmin(best))
        total += float(best[j]) ** alpha if best[j] > 0 else 0.0
        in_tree[j] = True
        np.minimum(best, row(j), out=best)
        best[in_tree] = np.inf
    return total


def _centred(points: np.ndarray) -> np.ndarray:
    x = np.asarray(points, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"points must be [n, d], got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("points contain NaN or inf")
    # Centring before any arithmetic keeps nearby iterates far from the cancellation regime.
    return x - x.mean(axis=0, keepdims=True)


def _check_alpha(alpha: float) -> None:
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (the MST edge-length exponent), got {alpha}")


def mst_length(points: np.ndarray, alpha: float = 1.0) -> float:
    """E^0_alpha = sum over Euclidean MST edges of |e|^alpha, in float64 after centring.

    Distances are computed coordinate-wise as sqrt(sum (x_i - y_i)^2) (scipy cdist), not from
    a Gram matrix, so nearby points keep their relative precision; duplicated points add
    zero-length edges and leave the length unchanged.
    """
    _check_alpha(alpha)
    x = _centred(points)
    n = x.shape[0]
    if n <= _DENSE_MAX_POINTS:
        d = cdist(x, x)
        return _prim(n, lambda i: d[i], alpha)
    return _prim(n, lambda i: np.sqrt(np.sum((x - x[i]) ** 2, axis=1)), alpha)


def _check_distances(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"distance matrix must be square [n, n], got shape {d.shape}")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ValueError("distance matrix must be finite and non-negative")
    if not np.allclose(d, d.T, rtol=1e-10, atol=0.0):
        raise ValueError("distance matrix must be symmetric")
    return d


def mst_length_from_distances(distances: np.ndarray, alpha: float = 1.0) -> float:
    """E^0_alpha of a finite (pseudo-)metric space given its [n, n] distance matrix."""
    _check_alpha(alpha)
    d = _check_distances(distances)
    return _prim(d.shape[0], lambda i: d[i], alpha)


def _size_grid(n_total: int, n_min: int | None, n_max: int | None, n_steps: int) -> np.ndarray:
    n_max = n_total if n_max is None else n_max
    n_min = max(10, n_max // 10) if n_min is None else n_min
    if not (2 <= n_min < n_max <= n_total):
        raise PHDimensionError(
            f"need 2 <= n_min < n_max <= number of distinct points ({n_total}); got n_min={n_min}, "
            f"n_max={n_max}. Give more points or a smaller n_min"
        )
    ns = np.unique(np.round(np.geomspace(n_min, n_max, n_steps)).astype(int))
    if ns.size < 3:
        raise PHDimensionError(f"size grid {ns.tolist()} has fewer than 3 distinct sizes; widen [n_min, n_max]")
    return ns


def _fit(ns: np.ndarray, lengths: np.ndarray, alpha: float, n_distinct: int) -> PHDimResult:
    if np.any(lengths <= 0):
        raise PHDimensionError(
            f"MST length is zero for some subsample (sizes {ns.tolist()}): the points are all "
            "identical there; the trajectory did not move"
        )
    lx, ly = np.log(ns.astype(np.float64)), np.log(lengths)
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + intercept)
    ss_tot = float(np.sum((ly - ly.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 0.0
    if not math.isfinite(slope) or slope >= 1.0 - 1e-9:
        raise PHDimensionError(
            f"log-log slope b={slope:.4g} >= 1 gives no finite dimension alpha/(1-b); the "
            "subsamples are too few or too far from the scaling regime (use more points)"
        )
    dim = alpha / (1.0 - slope)
    return PHDimResult(
        dim=float(dim),
        slope=float(slope),
        r2=float(r2),
        ns=tuple(int(n) for n in ns),
        lengths=tuple(float(v) for v in lengths),
        n_distinct=int(n_distinct),
    )


def _ph_dimension(
    n_total: int,
    mst_of: Callable[[np.ndarray], float],
    n_min: int | None,
    n_max: int | None,
    n_steps: int,
    n_repeats: int,
    alpha: float,
    seed: int,
) -> PHDimResult:
    _check_alpha(alpha)
    ns = _size_grid(n_total, n_min, n_max, n_steps)
    rng = np.random.default_rng(seed)
    lengths = np.empty(ns.size)
    for k, n in enumerate(ns):
        vals = [mst_of(rng.choice(n_total, size=int(n), replace=False)) for _ in range(n_repeats)]
        lengths[k] = float(np.mean(vals))
    return _fit(ns, lengths, alpha, n_total)


def ph_dimension(
    points: np.ndarray,
    *,
    n_min: int | None = None,
    n_max: int | None = None,
    n_steps: int = 10,
    n_repeats: int = 1,
    alpha: float = 1.0,
    seed: int = 0,
) -> PHDimResult:
    """PH0 dimension of a point cloud [n, d] (Birdal et al. 2021).

    For each n on a geometric grid of ``n_steps`` sizes in [n_min, n_max] (defaults:
    n_max = all points, n_min = max(10, n_max // 10)), draw ``n_repeats`` subsamples of n
    points without replacement (seeded) from the exactly-distinct points (duplicates are
    dropped first, keeping first occurrences in order), average E^0_alpha over them, fit
    log E = b log n + c by least squares and return dim = alpha / (1 - b).
    Raises :class:`PHDimensionError` when b >= 1 or the lengths vanish.
    """
    x = _centred(points)
    # The dimension is a property of the *set*: repeated iterates (a stalled trajectory) would
    # otherwise make large subsamples hold fewer distinct points and flatten the slope.
    _, first = np.unique(x, axis=0, return_index=True)
    x = x[np.sort(first)]
    return _ph_dimension(
        x.shape[0], lambda idx: mst_length(x[idx], alpha), n_min, n_max, n_steps, n_repeats, alpha, seed
    )


def ph_dimension_from_distances(
    distances: np.ndarray,
    *,
    n_min: int | None = None,
    n_max: int | None = None,
    n_steps: int = 10,
    n_repeats: int = 1,
    alpha: float = 1.0,
    seed: int = 0,
) -> PHDimResult:
    """PH0 dimension of a finite pseudo-metric space given by its distance matrix.

    Same grid, subsampling and fit as :func:`ph_dimension`; subsample MSTs use the rows and
    columns of ``distances`` for the chosen indices, after merging points at distance 0
    (duplicates). With the same seed and the Euclidean
    distance matrix of a point cloud it reproduces :func:`ph_dimension` on that cloud.
    """
    d = _check_distances(distances)
    # Quotient by zero distance (an equivalence for a pseudo-metric): keep the first of each class.
    zero = d == 0.0
    keep = ~np.any(np.tril(zero, k=-1), axis=1)
    d = d[np.ix_(keep, keep)]
    return _ph_dimension(
        d.shape[0],
        lambda idx: mst_length_from_distances(d[np.ix_(idx, idx)], alpha),
        n_min,
        n_max,
        n_steps,
        n_repeats,
        alpha,
        seed,
    )


def loss_distance_matrix(losses: np.ndarray) -> np.ndarray:
    """Dupuis et al. 2023 data-dependent pseudo-metric between iterates.

    ``losses`` is [T, n]: losses[t, j] = l(w_t, z_j), the loss of iterate t on example j of
    a fixed batch. Returns the [T, T] matrix
        rho_S(w, w') = (1/n) * sum_j |l(w, z_j) - l(w', z_j)|  = ||l_S(w) - l_S(w')||_1 / n,
    the normalised l1 distance between loss vectors (the pseudo-metric rho_S of Dupuis et al.,
    Section 3). Computed in float64.
    """
    ell = np.asarray(losses, dtype=np.float64)
    if ell.ndim != 2 or ell.shape[1] < 1:
        raise ValueError(f"losses must be [n_iterates, n_examples], got shape {ell.shape}")
    if not np.all(np.isfinite(ell)):
        raise ValueError("losses contain NaN or inf (a diverged iterate?); drop those iterates")
    return cdist(ell, ell, metric="cityblock") / ell.shape[1]
