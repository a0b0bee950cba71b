"""Tail index of symmetric alpha-stable noise: the Mohammadi et al. (2015) estimator.

Used by Simsekli, Sagun & Gurbuzbalaban 2019 ("A tail-index analysis of stochastic gradient
noise in deep neural networks", ICML) on stochastic-gradient noise, and here also on the
increments of a training trajectory.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mohammadi_alpha", "alpha_from_increments"]

# Guards log(0) for exactly-zero entries (e.g. frozen coordinates); the same role as the
# machine-epsilon offset in Simsekli et al.'s reference code.
_LOG_EPS = float(np.spacing(1.0))


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

    ``k1`` is the block length K1 (default round(sqrt(N)) over the rows); trailing rows that
    do not fill a block are dropped. The result is not clipped: values slightly above 2 mean
    Gaussian-like noise (alpha = 2 is the Gaussian), and the caller decides whether to clip.
    Assumes independent, centred, symmetric samples.
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"mohammadi_alpha: x must be 1-D [N] or 2-D [N, d], got shape {arr.shape}")
    n = arr.shape[0]
    if k1 is None:
        k1 = int(round(math.sqrt(n)))
    if k1 < 2 or n // k1 < 1:
        raise ValueError(
            f"mohammadi_alpha: need at least one block of length k1>=2 over {n} rows (k1={k1}); "
            "pass more samples or a smaller k1"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("mohammadi_alpha: x contains NaN or inf; drop non-finite samples first")
    k2 = n // k1
    arr = arr[: k1 * k2]
    blocks = arr.reshape(k2, k1, arr.shape[1]).sum(axis=1)
    log_y = np.log(np.abs(blocks) + _LOG_EPS).mean()
    log_x = np.log(np.abs(arr) + _LOG_EPS).mean()
    inv_alpha = (log_y - log_x) / math.log(k1)
    if inv_alpha <= 0:
        raise ValueError(
            f"mohammadi_alpha: block sums are not larger than the samples (1/alpha={inv_alpha:.3g}); "
            "the samples look strongly anti-correlated or not centred, so no tail index exists"
        )
    return float(1.0 / inv_alpha)


def alpha_from_increments(iterates: np.ndarray, k1: int | None = None) -> float:
    """Tail index of the increments w_{t+1} - w_t of a trajectory ``iterates`` [T, d].

    The increments are centred per coordinate (removing the drift of the mean update, since
    the estimator assumes symmetric, zero-centred noise) and pooled over coordinates with
    :func:`mohammadi_alpha` on the [T-1, d] array (blocks run along time within a coordinate).
    """
    w = np.asarray(iterates, dtype=np.float64)
    if w.ndim == 1:
        w = w[:, None]
    if w.ndim != 2 or w.shape[0] < 5:
        raise ValueError(
            f"alpha_from_increments: iterates must be [T, d] with T >= 5, got shape {w.shape}"
        )
    inc = np.diff(w, axis=0)
    inc = inc - inc.mean(axis=0, keepdims=True)
    # Coordinates that never move carry no information and would only add log(eps) terms.
    moving = np.any(inc != 0.0, axis=0)
    if not np.any(moving):
        raise ValueError("alpha_from_increments: the trajectory never moves (all increments equal)")
    return mohammadi_alpha(inc[:, moving], k1=k1)
