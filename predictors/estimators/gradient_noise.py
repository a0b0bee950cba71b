"""Gradient noise scale of McCandlish, Kaplan, Amodei et al. 2018 ("An empirical model of
large-batch training", Appendix A.1): B_simple = tr(Sigma) / |G|^2, by their unbiased
two-batch-size estimator or, when the full-batch gradient of a finite training set is known,
by the finite-population form the board uses (:func:`noise_scale_full_batch`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["NoiseScaleResult", "gradient_noise_scale", "noise_scale_from_norms", "noise_scale_full_batch"]


@dataclass(frozen=True)
class NoiseScaleResult:
    """B_simple = S / |G|^2 with S = tr(Sigma) and |G|^2 the true gradient's squared norm."""

    b_simple: float
    trace_sigma: float
    grad_norm_sq: float
    n_repeats: int


def noise_scale_from_norms(
    small_norms_sq: np.ndarray, big_norms_sq: np.ndarray, b_small: int, b_big: int
) -> NoiseScaleResult:
    """Two-batch-size estimator from squared gradient norms measured at B_small and B_big.

    Since E|G_B|^2 = |G|^2 + tr(Sigma) / B,
        |G|^2_est = (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small),
        S_est     = (|G_small|^2 - |G_big|^2) / (1/B_small - 1/B_big)
    are unbiased; both are averaged over the repeats *before* taking the ratio
    B_simple = S_est / |G|^2_est (the ratio of means is far less biased than the mean of ratios).
    """
    small = np.asarray(small_norms_sq, dtype=np.float64)
    big = np.asarray(big_norms_sq, dtype=np.float64)
    if not (0 < b_small < b_big):
        raise ValueError(f"noise scale: need 0 < b_small < b_big, got {b_small}, {b_big}")
    if small.size == 0 or small.shape != big.shape:
        raise ValueError(f"noise scale: need equally many small/big norms, got {small.shape}, {big.shape}")
    s_small, s_big = float(small.mean()), float(big.mean())
    g2 = (b_big * s_big - b_small * s_small) / (b_big - b_small)
    trace = (s_small - s_big) / (1.0 / b_small - 1.0 / b_big)
    if g2 <= 0:
        raise ValueError(
            f"noise scale: estimated |G|^2 = {g2:.3g} <= 0 (the gradient is dominated by noise); "
            "use more repeats or a larger b_big"
        )
    return NoiseScaleResult(float(trace / g2), float(trace), float(g2), int(small.size))


def gradient_noise_scale(
    grad_fn: Callable[[np.ndarray], np.ndarray],
    n_examples: int,
    b_small: int,
    b_big: int,
    n_repeats: int = 10,
    seed: int = 0,
) -> NoiseScaleResult:
    """B_simple from ``n_repeats`` pairs of minibatch gradients.

    ``grad_fn(indices)`` returns the mean gradient (flat array or tensor) over the examples
    with those indices. Each repeat draws a batch of b_small and an independent batch of b_big
    distinct indices (seeded) and records |G_small|^2 and |G_big|^2 in float64; see
    :func:`noise_scale_from_norms`. Sampling without replacement shrinks the noise term by the
    finite-population factor (n - B)/(n - 1), negligible when B << n_examples.
    """
    if b_big > n_examples:
        raise ValueError(f"noise scale: b_big={b_big} exceeds n_examples={n_examples}")
    if n_repeats < 1:
        raise ValueError(f"noise scale: n_repeats must be >= 1, got {n_repeats}")
    rng = np.random.default_rng(seed)
    small, big = np.empty(n_repeats), np.empty(n_repeats)
    for r in range(n_repeats):
        for b, out in ((b_small, small), (b_big, big)):
            idx = rng.choice(n_examples, size=b, replace=False)
            g = grad_fn(idx)
            g = g.detach().cpu().numpy() if hasattr(g, "detach") else np.asarray(g)
            out[r] = float(np.sum(np.asarray(g, dtype=np.float64) ** 2))
    return noise_scale_from_norms(small, big, b_small, b_big)


def noise_scale_full_batch(
    small_norms_sq: np.ndarray, full_norm_sq: float, b_small: int, n_examples: int
) -> NoiseScaleResult:
    """B_simple when the full-batch gradient G over a finite set of n examples is known exactly.

    Sampling B distinct examples out of n gives E|G_B|^2 = |G|^2 + ((n - B) / (n - 1)) tr(Sigma) / B
    (finite-population correction; Sigma the per-example gradient covariance, ddof 0), so
        tr(Sigma)_est = (mean |G_small|^2 - |G|^2) * B (n - 1) / (n - B),   B_simple = tr(Sigma) / |G|^2.
    Unlike the two-batch estimator, |G|^2 cannot come out negative: at a converged minimum,
    where |G| is tiny and the two-batch difference is dominated by noise, this is the form to use.
    """
    small = np.asarray(small_norms_sq, dtype=np.float64)
    if not (0 < b_small < n_examples):
        raise ValueError(f"noise scale: need 0 < b_small < n_examples, got {b_small}, {n_examples}")
    if small.size == 0:
        raise ValueError("noise scale: no small-batch gradient norms")
    if not full_norm_sq > 0:
        raise ValueError(f"noise scale: the full-batch gradient is exactly zero (|G|^2 = {full_norm_sq})")
    trace = (float(small.mean()) - full_norm_sq) * b_small * (n_examples - 1) / (n_examples - b_small)
    return NoiseScaleResult(float(trace / full_norm_sq), float(trace), float(full_norm_sq), int(small.size))
