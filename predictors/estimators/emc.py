"""Effective model complexity of Nakkiran et al. 2019 ("Deep double descent: where bigger
models and more data hurt", Definition 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["EMCEvaluation", "EMCResult", "effective_model_complexity"]


@dataclass(frozen=True)
class EMCEvaluation:
    """Train errors of the procedure at sample size n, one per seed, and their mean."""

    n: int
    errors: tuple[float, ...]
    mean_error: float


@dataclass(frozen=True)
class EMCResult:
    emc: int
    evaluations: tuple[EMCEvaluation, ...]


def effective_model_complexity(
    train_error_at: Callable[[int, int], float],
    n_min: int,
    n_max: int,
    *,
    eps: float = 0.1,
    n_seeds: int = 1,
    tol: int = 1,
) -> EMCResult:
    """EMC_{D,eps}(T) = max { n : E_{S ~ D^n} [ Error_S(T(S)) ] <= eps }.

    ``train_error_at(n, seed)`` trains the procedure T on n samples drawn with ``seed`` and
    returns its training error. The expectation is the mean over seeds 0..n_seeds-1.
    Assuming the mean train error is non-decreasing in n, the largest passing n is found by
    bisection on [n_min, n_max] until the bracket is at most ``tol`` wide (tol=1: exact).
    Returns n_max if n_max passes and n_min - 1 if n_min already fails. Every evaluation is
    recorded, in call order.
    """
    if not (1 <= n_min <= n_max) or tol < 1 or n_seeds < 1:
        raise ValueError(
            f"EMC: need 1 <= n_min <= n_max, tol >= 1, n_seeds >= 1; got n_min={n_min}, "
            f"n_max={n_max}, tol={tol}, n_seeds={n_seeds}"
        )
    evals: list[EMCEvaluation] = []
    cache: dict[int, float] = {}

    def passes(n: int) -> bool:
        if n not in cache:
            errs = tuple(float(train_error_at(int(n), s)) for s in range(n_seeds))
            if not all(np.isfinite(errs)):
                raise FloatingPointError(f"EMC: train_error_at({n}, seed) returned {errs}")
            cache[n] = float(np.mean(errs))
            evals.append(EMCEvaluation(int(n), errs, cache[n]))
        return cache[n] <= eps

    if passes(n_max):
        return EMCResult(n_max, tuple(evals))
    if not passes(n_min):
        return EMCResult(n_min - 1, tuple(evals))
    lo, hi = n_min, n_max  # passes(lo), not passes(hi)
    while hi - lo > tol:
        mid = (lo + hi) // 2
        if passes(mid):
            lo = mid
        else:
            hi = mid
    return EMCResult(lo, tuple(evals))
