"""Tail index of symmetric alpha-stable noise: the Mohammadi et al. (2015) estimator.

Used by Simsekli, Sagun & Gurbuzbalaban 2019 ("A tail-index analysis of stochastic gradient
noise in deep neural networks", ICML) on stochastic-gradient noise, and here also on the
increments of a training trajectory. Known answers (docs/estimators.md): on alpha-stable
samples shaped like the board's inputs the defaults recover alpha in {1.2, 1.5, 1.8} to 0.1.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "BLOCK_GRID_SIZE",
    "MIN_ITERATES",
    "block_lengths",
    "mohammadi_alpha",
    "symmetrized_pairs",
    "alpha_from_increments",
]

# Guards log(0) for exactly-zero entries (e.g. frozen coordinates); the same role as the
# machine-epsilon offset in Simsekli et al.'s reference code.
_LOG_EPS = float(np.spacing(1.0))

BLOCK_GRID_SIZE = 5
"""Block lengths K1 whose estimates are combined by the median (see :func:`block_lengths`)."""

MIN_ROWS = 4
"""Fewest sample rows :func:`mohammadi_alpha` accepts (one block of 2 needs 2 blocks to average)."""

MIN_ITERATES = 33
"""Fewest iterates :func:`alpha_from_increments` accepts: 16 symmetrised increment pairs."""


def block_lengths(n_rows: int, n_lengths: int = BLOCK_GRID_SIZE) -> np.ndarray:
    """The default block lengths K1 for ``n_rows`` samples: a geometric grid on [n^(1/4), n^(1/2)].

    Both ends grow with n, so every K1 (and their median) stays consistent for samples in the
    domain of attraction of a stable law, while the short blocks keep many block sums
    (K2 = n / K1) and so a small variance. At n = 10^4 the grid is 10, 18, 32, 56, 100.
    """
    if n_rows < MIN_ROWS:
        raise ValueError(f"block_lengths: need at least {MIN_ROWS} rows, got {n_rows}")
    lo, hi = max(2.0, n_rows**0.25), max(2.0, math.sqrt(n_rows))
    return np.unique(np.round(np.geomspace(lo, hi, n_lengths)).astype(int))


def _inverse_alpha(arr: np.ndarray, k1: int, row_log_means: np.ndarray | None = None) -> float:
    """(1 / log K1) * (mean_i log|Y_i| - mean_j log|X_j|) for blocks of K1 rows within each column.

    ``row_log_means[r]`` = mean over columns of log|x[r]|, if already computed (it is shared by
    every K1; only the rows that fill a block count).
    """
    k2 = arr.shape[0] // k1
    x = arr[: k1 * k2]
    blocks = x.reshape(k2, k1, x.shape[1]).sum(axis=1)
    log_y = np.log(np.abs(blocks) + _LOG_EPS).mean()
    if row_log_means is None:
        log_x = np.log(np.abs(x) + _LOG_EPS).mean()
    else:
        log_x = row_log_means[: k1 * k2].mean()
    return float((log_y - log_x) / math.log(k1))


def mohammadi_alpha(x: np.ndarray, k1: int | None = None) -> float:
    """Estimate the stability index alpha of i.i.d. symmetric alpha-stable samples.

    Mohammadi, Mohammadpour & Ogata 2015 ("On estimating the tail index and the spectral
    measure of multivariate alpha-stable distributions", Metrika), Corollary 2.4, as used by
    Simsekli et al. 2019. With N = K1 * K2 samples X_j, block sums
    Y_i = sum_{j=1}^{K1} X_{(i-1) K1 + j}, i = 1..K2 satisfy Y_i =d K1^{1/alpha} X_1, hence

        1 / alpha_hat = (1 / log K1) * ( mean_i log|Y_i| - mean_j log|X_j| ).

    ``x`` may be
      * 1-D ``[N]``: N scalar samples;
      * 2-D ``[N, d]``: N samples of d coordinates. Each coordinate is treated as its own
        sample sequence: blocks of K1 consecutive *rows* are summed within a column, and the
        log-moments are pooled over all columns. This is the "each coordinate is a sample"
        pooling of Simsekli et al.'s code, but blocks never mix coordinates, so coordinates
        with different scales do not bias the estimate (the estimator is scale-invariant per
        column). Pass ``x.ravel()`` to reproduce the fully flattened form instead.

    ``k1`` is the block length K1. By default (None) 1/alpha is estimated at each K1 of
    :func:`block_lengths` (a grid from N^(1/4) to N^(1/2) over the rows) and the median is
    inverted: any single K1 is unbiased for exactly stable samples, but one K1 = sqrt(N) has a
    large variance (on 10^4 scalar samples at alpha = 1.8 its error exceeds 0.1 for 7 of 40
    seeds; the median over the grid, for none). Trailing rows that do not fill a block are
    dropped. The result is not clipped: values slightly above 2 mean Gaussian-like noise
    (alpha = 2 is the Gaussian). Assumes independent, centred, symmetric samples.

    Raises ValueError when 1/alpha comes out <= 0 (block sums no larger than the samples:
    anti-correlated or discrete, e.g. two-valued, samples), which has no tail index.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"mohammadi_alpha: x must be 1-D [N] or 2-D [N, d], got shape {arr.shape}")
    n = arr.shape[0]
    if not np.all(np.isfinite(arr)):
        raise ValueError("mohammadi_alpha: x contains NaN or inf; drop non-finite samples first")
    if k1 is None:
        if n < MIN_ROWS:
            raise ValueError(f"mohammadi_alpha: need at least {MIN_ROWS} rows of samples, got {n}")
        row_log_means = np.log(np.abs(arr) + _LOG_EPS).mean(axis=1)
        inv = float(np.median([_inverse_alpha(arr, int(k), row_log_means) for k in block_lengths(n)]))
    else:
        if k1 < 2 or n // k1 < 1:
            raise ValueError(
                f"mohammadi_alpha: need at least one block of length k1>=2 over {n} rows (k1={k1}); "
                "pass more samples or a smaller k1"
            )
        inv = _inverse_alpha(arr, int(k1))
    if not inv > 0:
        raise ValueError(
            f"mohammadi_alpha: block sums are not larger than the samples (1/alpha={inv:.3g}); "
            "the samples look anti-correlated, discrete or not centred, so no tail index exists"
        )
    return float(1.0 / inv)


def symmetrized_pairs(x: np.ndarray) -> np.ndarray:
    """Differences of disjoint consecutive pairs of rows: ``x[2i+1] - x[2i]``, ``[N // 2, d]``.

    If the rows are i.i.d. S-alpha-S(sigma) plus any common location mu, the differences are
    i.i.d. S-alpha-S(2^(1/alpha) sigma) with no location at all: the classical symmetrisation,
    exact without estimating mu (a sample mean of heavy-tailed rows is itself heavy-tailed and
    biases the estimate, by -0.05 at alpha = 1.2 over 999 rows; a sample median of an odd
    number of rows sets one entry per column exactly to 0 and ruins it).
    """
    arr = np.asarray(x, dtype=np.float64)
    half = arr.shape[0] // 2
    return arr[1 : 2 * half : 2] - arr[0 : 2 * half : 2]


def alpha_from_increments(iterates: np.ndarray, k1: int | None = None) -> float:
    """Tail index of the increments w_{t+1} - w_t of a trajectory ``iterates`` [T, d].

    The increments may drift (the mean update of a non-stationary window); they are
    symmetrised by :func:`symmetrized_pairs` (differences of disjoint consecutive increments,
    which removes any drift exactly) and pooled over coordinates with :func:`mohammadi_alpha`
    (blocks run along time within a coordinate). Coordinates that never move are dropped.
    Needs at least MIN_ITERATES iterates (16 pairs): below that the estimate is not reliable
    and a ValueError says so.
    """
    w = np.asarray(iterates, dtype=np.float64)
    if w.ndim == 1:
        w = w[:, None]
    if w.ndim != 2:
        raise ValueError(f"alpha_from_increments: iterates must be [T, d], got shape {w.shape}")
    if w.shape[0] < MIN_ITERATES:
        raise ValueError(
            f"alpha_from_increments: the window has {w.shape[0]} iterates; the tail index needs at "
            f"least {MIN_ITERATES} (16 pairs of increments). Record a longer window"
        )
    pairs = symmetrized_pairs(np.diff(w, axis=0))
    # Coordinates that never move carry no information and would only add log(eps) terms.
    moving = np.any(pairs != 0.0, axis=0)
    if not np.any(moving):
        raise ValueError("alpha_from_increments: the trajectory never moves (all increments equal)")
    return mohammadi_alpha(pairs[:, moving], k1=k1)
