"""Robust sign error over single-axis environments (Dziugaite et al. 2020).

Dziugaite, Drouin, Neal, Rajkumar, Caballero, Wang, Mitliagkas, Roy, "In Search of Robust
Measures of Generalization", NeurIPS 2020. A "coupled-network" experiment trains two networks
whose configurations differ in one hyperparameter and asks whether the measure C orders their
generalization gaps g correctly; the loss on a pair of runs (w, w') is the sign error

    l(w, w') = 1/2 * (1 - sgn(C(w') - C(w)) * sgn(g(w') - g(w)))

(0 = right order, 1 = wrong order, 1/2 = C tied). An environment's error is the expectation of
l over its pairs of runs (over seeds), and the *robust* error is the worst environment's.

Our definition, precisely:

- Environment: an unordered pair {a, b} of configurations (seed-averaging not applied) whose hp
  strings differ on exactly one of the given axes. Its runs are all |seeds(a)| x |seeds(b)|
  cross-seed model pairs.
- Weighting (Dziugaite et al. leave out pairs whose gap difference is within Monte Carlo noise):
  a model pair has weight 1 when |g(w') - g(w)| > ``min_gap_diff`` and 0 otherwise; with the
  default 0 only pairs whose gaps tie exactly (no right answer) are left out. Pass a noise level
  (e.g. the seed standard deviation of the gap) to filter as the paper does.
- Environment error = weighted mean of l over its pairs; an environment whose pairs all have
  weight 0 is dropped.
- Summaries over environments, each environment counting once: mean, 90th percentile
  (``numpy.percentile``, linear interpolation) and max (the robust sign error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.metrics._frame import TaskArrays, prepare

__all__ = ["Environments", "SignErrorResult", "environments", "robust_sign_error", "summarise"]


@dataclass(frozen=True)
class Environments:
    """Environments of one task with their sign errors (configs are indices into TaskArrays).

    Attributes:
        a, b: ``(E,)`` the two configs of each environment (a < b).
        axis: ``(E,)`` index of the axis they differ in.
        error: ``(E,)`` weighted sign error.
        weight: ``(E,)`` number of model pairs with weight 1.
        n_pairs: ``(E,)`` number of model pairs.
    """

    a: np.ndarray
    b: np.ndarray
    axis: np.ndarray
    error: np.ndarray
    weight: np.ndarray
    n_pairs: np.ndarray


def environments(arr: TaskArrays, min_gap_diff: float = 0.0) -> Environments:
    """All single-axis environments of a task and their weighted sign errors."""
    if min_gap_diff < 0:
        raise ValueError(f"min_gap_diff must be >= 0, got {min_gap_diff}")
    codes = arr.codes
    n_cfg = arr.n_configs
    diff = codes[:, None, :] != codes[None, :, :]
    one = np.triu(diff.sum(axis=2) == 1, k=1)
    a, b = np.nonzero(one)
    axis = np.argmax(diff[a, b], axis=1) if a.size else np.zeros(0, dtype=np.int64)
    env_of = np.full((n_cfg, n_cfg), -1, dtype=np.int64)
    env_of[a, b] = np.arange(a.size)

    mc = arr.model_config
    e = env_of[mc[:, None], mc[None, :]]
    on = e >= 0
    e = e[on]
    ds = np.sign(arr.model_score[:, None] - arr.model_score[None, :])[on]
    dt = arr.model_target[:, None] - arr.model_target[None, :]
    dt = dt[on]
    loss = 0.5 * (1.0 - ds * np.sign(dt))
    w = (np.abs(dt) > min_gap_diff).astype(float)
    n_env = a.size
    wsum = np.bincount(e, weights=w, minlength=n_env)
    lsum = np.bincount(e, weights=w * loss, minlength=n_env)
    n_pairs = np.bincount(e, minlength=n_env)
    keep = wsum > 0
    return Environments(
        a=a[keep],
        b=b[keep],
        axis=axis[keep],
        error=lsum[keep] / wsum[keep],
        weight=wsum[keep],
        n_pairs=n_pairs[keep],
    )


def summarise(
    error: np.ndarray, multiplicity: np.ndarray | None = None
) -> tuple[float, float, float]:
    """(mean, 90th percentile, max) of environment errors, each repeated ``multiplicity`` times."""
    if multiplicity is not None:
        error = np.repeat(error, multiplicity)
    if error.size == 0:
        return float("nan"), float("nan"), float("nan")
    return float(error.mean()), float(np.percentile(error, 90)), float(error.max())


@dataclass(frozen=True)
class SignErrorResult:
    """Robust sign error of one task.

    Attributes:
        mean, p90, max: over environments (max is Dziugaite et al.'s robust sign error).
        per_env: one row per environment: ``axis, config_a, config_b, value_a, value_b, error,
            n_pairs`` (model pairs) and ``n_weighted`` (pairs that entered the error).
    """

    mean: float
    p90: float
    max: float
    per_env: pd.DataFrame


def _sign_error_from_arrays(arr: TaskArrays, min_gap_diff: float = 0.0) -> SignErrorResult:
    env = environments(arr, min_gap_diff)
    mean, p90, worst = summarise(env.error)
    ax = env.axis
    val_a = [arr.values[k][arr.codes[i, k]] for i, k in zip(env.a, ax)]
    val_b = [arr.values[k][arr.codes[j, k]] for j, k in zip(env.b, ax)]
    per_env = pd.DataFrame(
        {
            "axis": [arr.axes[k] for k in ax],
            "config_a": arr.config_ids[env.a],
            "config_b": arr.config_ids[env.b],
            "value_a": val_a,
            "value_b": val_b,
            "error": env.error,
            "n_pairs": env.n_pairs.astype(np.int64),
            "n_weighted": env.weight.astype(np.int64),
        }
    )
    return SignErrorResult(mean=mean, p90=p90, max=worst, per_env=per_env)


def robust_sign_error(
    df: pd.DataFrame, axes: Sequence[str], target: str = "gap", *, min_gap_diff: float = 0.0
) -> SignErrorResult:
    """Robust sign error (Dziugaite et al. 2020) over single-axis environments.

    For each environment {a, b} (configs differing in exactly one axis),

        err(a, b) = sum_{m in a, m' in b} w * 1/2 (1 - sgn(s_m - s_m') sgn(t_m - t_m')) / sum w,

    with w = [|t_m - t_m'| > min_gap_diff] over the cross-seed model pairs; returns the mean,
    90th percentile and max of err over environments (see the module docstring). 0 is perfect,
    0.5 a coin flip, 1 always wrong.
    """
    return _sign_error_from_arrays(prepare(df, axes, target), min_gap_diff)
