"""Rank agreement between scores and targets: Kendall's tau-b and the granulated Kendall Psi."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.metrics._frame import TaskArrays, prepare

__all__ = ["PsiResult", "granulated_psi", "group_ids", "kendall_tau", "psi_kernel", "tau_b_kernel"]

_CHUNK = 2048  # rows of the pair matrix held at once (bounds memory at ~ _CHUNK * n floats)


def tau_b_kernel(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b of two finite 1-D arrays (no validation); NaN when either is constant."""
    n = x.shape[0]
    if n < 2:
        return float("nan")
    num = 0.0
    nx = 0
    ny = 0
    for lo in range(0, n, _CHUNK):
        sx = np.sign(x[lo : lo + _CHUNK, None] - x[None, :])
        sy = np.sign(y[lo : lo + _CHUNK, None] - y[None, :])
        num += float(np.sum(sx * sy))
        nx += int(np.count_nonzero(sx))
        ny += int(np.count_nonzero(sy))
    if nx == 0 or ny == 0:
        return float("nan")
    # Sums run over ordered pairs, so numerator and both pair counts are doubled alike.
    return num / float(np.sqrt(float(nx) * float(ny)))


def kendall_tau(score: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b between ``score`` and ``target`` (Kendall 1945), ties handled.

    tau_b = (n_c - n_d) / sqrt((n_0 - n_1) (n_0 - n_2)), where over the n_0 = n(n-1)/2 unordered
    pairs, n_c / n_d count concordant / discordant pairs and n_1 / n_2 the pairs tied in ``score``
    / in ``target``. Equals ``scipy.stats.kendalltau(score, target).statistic``; NaN when fewer
    than two values or either input is constant.

    >>> kendall_tau([1, 2, 3, 4], [0.1, 0.3, 0.2, 0.4])
    0.6666666666666666
    """
    x = np.asarray(score, dtype=float).ravel()
    y = np.asarray(target, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"kendall_tau: score has {x.size} values but target has {y.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("kendall_tau: score and target must be finite (drop failed models first)")
    return tau_b_kernel(x, y)


def group_ids(codes: np.ndarray) -> np.ndarray:
    """``(A, C)`` dense ids: for axis i, configs share an id iff they agree on all other axes."""
    n_cfg, n_axes = codes.shape
    out = np.zeros((n_axes, n_cfg), dtype=np.int64)
    for i in range(n_axes):
        others = np.delete(codes, i, axis=1)
        if others.shape[1] == 0:
            continue  # one axis: every config is in the single group
        _, inverse = np.unique(others, axis=0, return_inverse=True)
        out[i] = inverse.ravel()
    return out


def psi_kernel(
    gids: np.ndarray, codes: np.ndarray, s: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis psi and group counts from group ids ``(A, n)``, codes ``(n, A)`` and ``(n,)``
    config scores/targets.

    For axis i the pairs of a group g are P_g = {(k, l): k, l in g, value_i(k) != value_i(l)};
    tau_g = sum_{P_g} sgn(s_k - s_l) sgn(t_k - t_l) / |P_g| (Jiang et al. 2020, eq. 2, where
    |P_g| = n_g (n_g - 1) because a grid has one config per value); psi_i = mean over groups with
    P_g non-empty. Pairs of configs with identical hyperparameters (a bootstrap's repeated draws
    of one config) are not pairs: they compare nothing along axis i.
    """
    sg = np.sign(s[:, None] - s[None, :]) * np.sign(t[:, None] - t[None, :])
    n_axes = gids.shape[0]
    psi = np.full(n_axes, np.nan)
    n_groups = np.zeros(n_axes, dtype=np.int64)
    for i in range(n_axes):
        g = gids[i]
        c = codes[:, i]
        pair = (g[:, None] == g[None, :]) & (c[:, None] != c[None, :])
        k = int(g.max()) + 1 if g.size else 0
        num = np.bincount(g, weights=np.sum(sg * pair, axis=1), minlength=k)
        n_pairs = np.bincount(g, weights=pair.sum(axis=1), minlength=k)
        ok = n_pairs > 0
        n_groups[i] = int(ok.sum())
        if n_groups[i]:
            psi[i] = float(np.mean(num[ok] / n_pairs[ok]))
    return psi, n_groups


@dataclass(frozen=True)
class PsiResult:
    """Granulated Kendall coefficient of one task.

    Attributes:
        psi: Psi, the mean of ``per_axis`` over axes that have at least one group (NaN if none).
        per_axis: psi_i per axis (NaN for an axis without a group of >= 2 configs).
        n_groups: number of groups (with >= 2 values of the axis) that entered psi_i, per axis.
    """

    psi: float
    per_axis: dict[str, float]
    n_groups: dict[str, int]


def _psi_from_arrays(arr: TaskArrays) -> PsiResult:
    per, ng = psi_kernel(group_ids(arr.codes), arr.codes, arr.score, arr.target)
    finite = per[np.isfinite(per)]
    return PsiResult(
        psi=float(finite.mean()) if finite.size else float("nan"),
        per_axis={a: float(v) for a, v in zip(arr.axes, per)},
        n_groups={a: int(n) for a, n in zip(arr.axes, ng)},
    )


def granulated_psi(df: pd.DataFrame, axes: Sequence[str], target: str = "gap") -> PsiResult:
    """Granulated Kendall rank coefficient Psi (Jiang et al. 2020, "Fantastic Generalization
    Measures and Where to Find Them", Sec. 4.2), on seed-averaged configurations.

    For axis i, configs are grouped by their values on all other axes (compared as the exact
    hp strings); each group with n_g >= 2 configs gets Jiang et al.'s eq. 2 coefficient

        tau_g = 1 / (n_g (n_g - 1)) * sum_{i != j in g} sgn(s_i - s_j) sgn(t_i - t_j),

    psi_i = mean of tau_g over the groups, Psi = mean of psi_i over the axes.

    Ties: eq. 2 is Kendall's tau-a, so a tied pair contributes 0 and a group where score or
    target is constant gets tau_g = 0 (it counts, it is not skipped). Where neither has ties it
    equals tau-b. A group needs two configs with different values on axis i; groups of one
    config (a missing, e.g. non-converged, model can leave one) are skipped, and an axis with no
    group is NaN and left out of Psi. Pairs of configs with identical hyperparameters (repeated
    bootstrap draws) are not counted as pairs.
    """
    return _psi_from_arrays(prepare(df, axes, target))
