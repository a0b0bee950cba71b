"""Power-law fits of weight-matrix eigenvalue spectra (heavy-tailed self-regularisation).

Martin & Mahoney 2021 ("Predicting trends in the quality of state-of-the-art neural networks
without access to training or testing data", Nature Communications); the fit is the one
WeightWatcher delegates to the ``powerlaw`` package: the continuous power-law MLE of
Clauset, Shalizi & Newman 2009 ("Power-law distributions in empirical data", SIAM Review)
with xmin chosen by minimising the Kolmogorov-Smirnov distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["PowerLawFit", "fit_powerlaw", "esd", "alpha_hat"]


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_powerlaw`: pdf p(x) ~ x^(-alpha) for x >= xmin."""

    alpha: float
    xmin: float
    ks_distance: float
    n_tail: int


def _alpha_mle(tail: np.ndarray, xmin: float) -> float:
    return 1.0 + tail.size / float(np.sum(np.log(tail / xmin)))


def _ks_distance(tail: np.ndarray, xmin: float, alpha: float) -> float:
    """sup_x |S(x) - P(x)| over the sorted tail, P(x) = 1 - (x/xmin)^(1-alpha)."""
    n = tail.size
    cdf_fit = 1.0 - (tail / xmin) ** (1.0 - alpha)
    upper = np.arange(1, n + 1) / n
    lower = np.arange(0, n) / n
    return float(max(np.max(np.abs(upper - cdf_fit)), np.max(np.abs(lower - cdf_fit))))


def fit_powerlaw(
    eigenvalues: np.ndarray,
    xmin: float | None = None,
    *,
    min_tail: int = 10,
    max_candidates: int = 2000,
) -> PowerLawFit:
    """Fit a continuous power law to the upper tail of ``eigenvalues``.

    For a given xmin the MLE over the n tail values x_i >= xmin is
        alpha = 1 + n / sum_i log(x_i / xmin)                (Clauset et al. 2009, eq. 3.1)
    and the KS distance is D = max_x |S(x) - P(x)| between the empirical CDF S of the tail and
    the fitted CDF P(x) = 1 - (x/xmin)^(1-alpha). If ``xmin`` is None it is chosen among the
    observed values (leaving at least ``min_tail`` points in the tail) as the one minimising D,
    as the ``powerlaw`` package (and hence WeightWatcher) does; for long inputs the candidates
    are thinned to ``max_candidates`` evenly spaced order statistics to bound the O(n^2) cost.
    Non-positive and non-finite values are discarded (ESDs are >= 0; zeros are null space).
    """
    x = np.asarray(eigenvalues, dtype=np.float64).ravel()
    x = np.sort(x[np.isfinite(x) & (x > 0)])
    if x.size < min_tail + 1:
        raise ValueError(
            f"fit_powerlaw: need more than {min_tail} positive eigenvalues, got {x.size}; "
            "the matrix is too small for a power-law fit"
        )
    if xmin is not None:
        if xmin <= 0:
            raise ValueError(f"fit_powerlaw: xmin must be positive, got {xmin}")
        tail = x[x >= xmin]
        if tail.size < 2 or np.all(tail == tail[0]):
            raise ValueError(f"fit_powerlaw: fewer than 2 distinct values >= xmin={xmin}")
        alpha = _alpha_mle(tail, xmin)
        return PowerLawFit(alpha, float(xmin), _ks_distance(tail, xmin, alpha), int(tail.size))

    last = x.size - min_tail  # candidate start indices 0..last keep >= min_tail points
    candidates = np.unique(np.searchsorted(x, np.unique(x[: last + 1]), side="left"))
    if candidates.size > max_candidates:
        pick = np.linspace(0, candidates.size - 1, max_candidates).round().astype(int)
        candidates = candidates[np.unique(pick)]
    best: PowerLawFit | None = None
    for i in candidates:
        tail = x[i:]
        xm = tail[0]
        log_sum = float(np.sum(np.log(tail / xm)))
        if log_sum <= 0:
            continue  # all tail values equal xmin: no slope to fit
        alpha = 1.0 + tail.size / log_sum
        d = _ks_distance(tail, xm, alpha)
        if best is None or d < best.ks_distance:
            best = PowerLawFit(float(alpha), float(xm), d, int(tail.size))
    if best is None:
        raise ValueError("fit_powerlaw: all eigenvalues are equal; the spectrum has no tail")
    return best


def esd(weight: np.ndarray, *, normalize: bool = True) -> np.ndarray:
    """Empirical spectral density: eigenvalues of X = W^T W / N, sorted ascending.

    W is [N, M] after orienting it with N = max(rows, cols) (so X is M x M, M <= N) and the
    eigenvalues are the squared singular values of W, divided by N when ``normalize``
    (WeightWatcher's default normalisation). Shapes follow WeightWatcher:
      * 2-D (Linear [out, in], Embedding): used as is;
      * Conv1d [out, in, k] and Conv2d [out, in, kh, kw]: split into the k (kh*kw) matrices
        W[:, :, i, j] of shape [out, in], one per kernel position, whose eigenvalues are
        pooled into a single spectrum;
      * 1-D (biases, norms): rejected, they have no spectrum.
    Computed in float64.
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim < 2:
        raise ValueError(
            f"esd: weight of shape {w.shape} has no matrix spectrum; pass a Linear/Conv weight"
        )
    if w.ndim == 2:
        mats = [w]
    else:
        out_ch, in_ch = w.shape[:2]
        flat = w.reshape(out_ch, in_ch, -1)
        mats = [flat[:, :, k] for k in range(flat.shape[2])]
    evals = []
    for m in mats:
        n = max(m.shape)
        sv = np.linalg.svd(m, compute_uv=False)
        ev = sv**2
        evals.append(ev / n if normalize else ev)
    return np.sort(np.concatenate(evals))


def alpha_hat(alpha: float, lambda_max: float) -> float:
    """Weighted alpha of Martin & Mahoney 2021: alpha_hat = alpha * log10(lambda_max)."""
    if lambda_max <= 0 or not math.isfinite(lambda_max):
        raise ValueError(f"alpha_hat: lambda_max must be positive and finite, got {lambda_max}")
    return float(alpha * math.log10(lambda_max))
