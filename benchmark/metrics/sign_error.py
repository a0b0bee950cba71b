"""Robust sign error over single-axis environments, as Dziugaite et al. (2020) define and compute it.

Dziugaite, Drouin, Neal, Rajkumar, Caballero, Wang, Mitliagkas, Roy, "In Search of Robust
Measures of Generalization", NeurIPS 2020; their released code
(github.com/nitarshan/robust-generalization-measures, ``experiments/coupled_networks``:
``common.py`` for the weight and the loss, ``create_environments.py`` for the accumulation,
``figure_cdf_all_measures.py`` for the filter and the summaries). Read and re-implemented:

- **Environment**: a pair of configurations whose hyperparameters differ in exactly one axis.
  Their code keys environments by *ordered* pairs (h1, h2) and sees each one twice; the error is
  symmetric, so we keep unordered pairs and count each twice where it matters (the percentile).
- **Pairs and loss**: every cross-seed pair of runs (w in h1, w' in h2) has the sign error
  l = (1 - sgn(C(w) - C(w')) sgn(g(w) - g(w'))) / 2 (a tied score costs 1/2).
- **Monte Carlo weight** (``hoeffding_weight`` with ``shift=0``, then ``(w - 0.5)_+``): with n the
  number of test examples a gap was measured on, phi(x) = 2 exp(-2 n (x/2)^2) bounds the chance that
  an estimate is x/2 off; w = max(0, 1 - phi(|g(w) - g(w')|))^2 is the probability that the two gaps
  truly differ, and pairs enter with weight max(w - 0.5, 0).
- **Effective sample size** of an environment: ESS = (sum w)^2 / sum w^2; environments with
  ESS below ``min_ess`` are dropped (their code: ``ESS >= min_ess``, ``np.isclose`` included).
- **Environment error**: sum w l / sum w; the board reads the distribution over the kept
  environments: mean and 90th percentile (``numpy.percentile``, linear, over the ordered
  environments as their code does), with the number of environments kept.

Two parameters change with our zoos, and both are documented on the board (docs/metrics.md):
n is the task's test-set size (their code hard-codes 10,000; FSDD has 250 test clips), and the
ESS threshold. They use ``min_ess=12``; an environment of two 3-seed configurations has 9
cross-seed pairs, so ESS <= 9 and 12 would drop every environment. The default here,
``min_ess=None``, keeps their rule's intent relative to the zoo: half the cross-seed pairs of a
complete environment (S^2 / 2 with S the task's usual number of seeds, 4.5 at 3 seeds, 2 at 2).
With no test-set size given, every pair gets weight 1 except exact gap ties (their
``filter_noise=False``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.metrics._frame import TaskArrays, prepare

__all__ = [
    "Environments",
    "SignErrorResult",
    "default_min_ess",
    "environments",
    "hoeffding_weight",
    "robust_sign_error",
    "sign_error_kernel",
]

MIN_WEIGHT = 0.5
"""Their ``min_weight``: a pair enters with weight (w - 0.5)_+."""


def hoeffding_weight(delta: np.ndarray, n_eval: int | None) -> np.ndarray:
    """Dziugaite et al.'s Monte Carlo weight of gap differences ``delta`` measured on ``n_eval`` examples.

    ``max(0, 1 - 2 exp(-2 n (|delta|/2)^2))^2 - 0.5``, floored at 0 (their ``hoeffding_weight``
    with ``shift=0`` followed by ``(w - min_weight)_+``). With ``n_eval=None`` (no noise filter)
    the weight is 1 where ``delta != 0`` and 0 for an exact tie (no right order to get).

    >>> hoeffding_weight(np.array([0.0, 0.01, 0.1]), 10_000).round(4).tolist()
    [0.0, 0.0, 0.5]
    """
    d = np.abs(np.asarray(delta, dtype=float))
    if n_eval is None:
        return (d > 0).astype(float)
    if n_eval < 1:
        raise ValueError(f"n_eval must be a positive number of test examples, got {n_eval}")
    phi = 2.0 * np.exp(-2.0 * n_eval * (d / 2.0) ** 2)
    w = np.maximum(0.0, 1.0 - phi) ** 2
    return np.where(w > MIN_WEIGHT, w - MIN_WEIGHT, 0.0)


def default_min_ess(n_seeds: np.ndarray) -> float:
    """Half the cross-seed pairs of a complete environment: S^2 / 2, S the most common seed count."""
    n = np.asarray(n_seeds, dtype=np.int64)
    n = n[n > 0]
    if n.size == 0:
        return 0.0
    typical = int(np.bincount(n).argmax())
    return typical * typical / 2.0


@dataclass(frozen=True)
class Environments:
    """The single-axis environments of a task and their cross-seed pairs (fixed across replicates).

    Models are addressed by their slot in the ``(C, S)`` (configuration, seed) layout, flattened
    to ``c * S + j``, so a replicate zoo in the same layout is scored without re-indexing.

    Attributes:
        a, b: ``(E,)`` the two configs of each environment (a < b).
        axis: ``(E,)`` index of the axis they differ in.
        pair_env: ``(P,)`` environment of each cross-seed pair, sorted.
        pair_first, pair_second: ``(P,)`` flat slots of the pair's two models (in a, in b).
        n_eval: test examples behind each target value (None: no Monte Carlo weight).
        min_ess: the effective-sample-size threshold used.
    """

    a: np.ndarray
    b: np.ndarray
    axis: np.ndarray
    pair_env: np.ndarray
    pair_first: np.ndarray
    pair_second: np.ndarray
    n_eval: int | None
    min_ess: float


def environments(arr: TaskArrays, *, n_eval: int | None = None, min_ess: float | None = None) -> Environments:
    """All single-axis environments of a task and their cross-seed slot pairs."""
    codes = arr.codes
    diff = codes[:, None, :] != codes[None, :, :]
    a, b = np.nonzero(np.triu(diff.sum(axis=2) == 1, k=1))
    axis = np.argmax(diff[a, b], axis=1) if a.size else np.zeros(0, dtype=np.int64)
    width = arr.members.shape[1]
    valid = arr.members >= 0
    slot = np.arange(width)
    fa = (a[:, None, None] * width + slot[None, :, None]).repeat(width, axis=2)
    fb = (b[:, None, None] * width + slot[None, None, :]).repeat(width, axis=1)
    ok = valid[a][:, :, None] & valid[b][:, None, :]
    env = np.broadcast_to(np.arange(a.size)[:, None, None], fa.shape)
    threshold = default_min_ess(arr.n_seeds) if min_ess is None else float(min_ess)
    if threshold < 0:
        raise ValueError(f"min_ess must be >= 0, got {min_ess}")
    if n_eval is not None and n_eval < 1:
        raise ValueError(f"n_eval must be a positive number of test examples, got {n_eval}")
    return Environments(
        a=a, b=b, axis=axis, pair_env=env[ok], pair_first=fa[ok], pair_second=fb[ok], n_eval=n_eval,
        min_ess=threshold,
    )


def environment_errors(env: Environments, score: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(R, E)`` error of each environment (NaN where dropped) and ``(R, E)`` its ESS.

    ``score`` and ``target`` are ``(R, C * S)``: replicate zoos in the flat slot layout.
    """
    n_rep = score.shape[0]
    if env.a.size == 0:
        return np.zeros((n_rep, 0)), np.zeros((n_rep, 0))
    ds = np.sign(score[:, env.pair_first] - score[:, env.pair_second])
    dt = target[:, env.pair_first] - target[:, env.pair_second]
    w = hoeffding_weight(dt, env.n_eval)
    loss = 0.5 * (1.0 - ds * np.sign(dt))
    starts = np.flatnonzero(np.r_[True, np.diff(env.pair_env) != 0])  # pairs are sorted by environment
    sw = np.add.reduceat(w, starts, axis=1)
    sw2 = np.add.reduceat(w**2, starts, axis=1)
    swl = np.add.reduceat(w * loss, starts, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ess = np.where(sw2 > 0, sw**2 / np.where(sw2 > 0, sw2, 1.0), 0.0)
        keep = (sw > 0) & ((ess > env.min_ess) | np.isclose(ess, env.min_ess))
        error = np.where(keep, swl / np.where(sw > 0, sw, 1.0), np.nan)
    return error, ess


def sign_error_kernel(env: Environments, score: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(R,)`` mean and 90th percentile of the kept environments' errors, and ``(R,)`` how many were kept."""
    error, _ = environment_errors(env, score, target)
    kept = np.isfinite(error).sum(axis=1)
    with np.errstate(invalid="ignore"):
        mean = np.where(kept > 0, np.nansum(error, axis=1) / np.maximum(kept, 1), np.nan)
    p90 = np.full(error.shape[0], np.nan)
    for r in np.flatnonzero(kept > 0):
        e = error[r][np.isfinite(error[r])]
        p90[r] = float(np.percentile(np.repeat(e, 2), 90))  # ordered environments, as their code
    return mean, p90, kept


@dataclass(frozen=True)
class SignErrorResult:
    """Robust sign error of one task.

    Attributes:
        mean, p90: over the kept environments.
        n_environments: environments that passed the ESS filter.
        per_env: one row per environment: ``axis, config_a, config_b, value_a, value_b, error``
            (NaN when dropped), ``ess``, ``kept``, ``n_pairs`` (cross-seed model pairs).
    """

    mean: float
    p90: float
    n_environments: int
    per_env: pd.DataFrame


def _sign_error_from_arrays(arr: TaskArrays, n_eval: int | None, min_ess: float | None) -> SignErrorResult:
    from benchmark.metrics.bootstrap import layout

    env = environments(arr, n_eval=n_eval, min_ess=min_ess)
    s = layout(arr.model_score, arr.members).reshape(1, -1)
    t = layout(arr.model_target, arr.members).reshape(1, -1)
    error, ess = environment_errors(env, s, t)
    mean, p90, kept = sign_error_kernel(env, s, t)
    ax = env.axis
    per_env = pd.DataFrame(
        {
            "axis": [arr.axes[k] for k in ax],
            "config_a": arr.config_ids[env.a],
            "config_b": arr.config_ids[env.b],
            "value_a": [arr.values[k][arr.codes[i, k]] for i, k in zip(env.a, ax)],
            "value_b": [arr.values[k][arr.codes[j, k]] for j, k in zip(env.b, ax)],
            "error": error[0],
            "ess": ess[0],
            "kept": np.isfinite(error[0]),
            "n_pairs": np.bincount(env.pair_env, minlength=env.a.size).astype(np.int64),
        }
    )
    return SignErrorResult(mean=float(mean[0]), p90=float(p90[0]), n_environments=int(kept[0]), per_env=per_env)


def robust_sign_error(
    df: pd.DataFrame,
    axes: Sequence[str],
    target: str = "gap",
    *,
    n_eval: int | None = None,
    min_ess: float | None = None,
) -> SignErrorResult:
    """Robust sign error (Dziugaite et al. 2020) over single-axis environments.

    For each environment {a, b} (configs differing in exactly one axis), over the cross-seed model
    pairs (m in a, m' in b) with w = (hoeffding(|t_m - t_m'|, n_eval) - 0.5)_+,

        err(a, b) = sum w * (1 - sgn(s_m - s_m') sgn(t_m - t_m')) / 2 / sum w,

    kept when (sum w)^2 / sum w^2 >= ``min_ess`` (default: half the cross-seed pairs of a complete
    environment). Returns the mean and 90th percentile of err over the kept environments and their
    number (see the module docstring). 0 is perfect, 0.5 a coin flip, 1 always wrong.
    """
    return _sign_error_from_arrays(prepare(df, axes, target), n_eval, min_ess)
