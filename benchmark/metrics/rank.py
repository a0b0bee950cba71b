"""Rank agreement between scores and targets: Kendall's tau-b and the granulated Kendall Psi.

Kendall's tau is Kendall's (1938) rank correlation; with ties it is his tau-b (Kendall 1945), the
value ``scipy.stats.kendalltau`` returns. Psi is Jiang et al.'s (2020) granulated coefficient.
The ``*_kernel`` functions work on arrays (one task reduced by :func:`benchmark.metrics._frame.prepare`)
and on a batch of bootstrap replicates at once; the public functions take a task frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.metrics._frame import TaskArrays, prepare

__all__ = [
    "PsiDesign",
    "PsiResult",
    "granulated_psi",
    "group_ids",
    "kendall_tau",
    "psi_design",
    "psi_kernel",
    "psi_total",
    "tau_b_kernel",
    "tau_batch",
]

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
    """Kendall's tau-b between ``score`` and ``target`` (Kendall 1938; ties as Kendall 1945).

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


_TAU_CHUNK_ENTRIES = 4_000_000  # pair-matrix entries held at once by tau_batch


def tau_batch(score: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``(R,)`` Kendall tau-b of each row of ``score`` and ``target`` ``(R, N)`` (finite values).

    The batched form of :func:`tau_b_kernel` on boolean pair matrices G = [s_i > s_j] and
    H = [t_i > t_j]: over ordered pairs, sum sgn(ds) sgn(dt) = 2 (sum G & H - sum G & H'), and the
    untied pairs number 2 sum G and 2 sum H (exact with ties); NaN where either row is constant.
    """
    score = np.atleast_2d(score)
    target = np.atleast_2d(target)
    n_rep, n = score.shape
    out = np.full(n_rep, np.nan)
    if n < 2:
        return out
    chunk = max(1, _TAU_CHUNK_ENTRIES // (n * n))
    for lo in range(0, n_rep, chunk):
        s = score[lo : lo + chunk]
        t = target[lo : lo + chunk]
        g = s[:, :, None] > s[:, None, :]
        h = t[:, :, None] > t[:, None, :]
        r = g.shape[0]
        same = np.count_nonzero((g & h).reshape(r, -1), axis=1)
        crossed = np.count_nonzero((g & h.transpose(0, 2, 1)).reshape(r, -1), axis=1)
        nx = np.count_nonzero(g.reshape(r, -1), axis=1).astype(float)
        ny = np.count_nonzero(h.reshape(r, -1), axis=1).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            tau = (same - crossed) / np.sqrt(nx * ny)
        out[lo : lo + chunk] = np.where((nx > 0) & (ny > 0), tau, np.nan)
    return out


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


@dataclass(frozen=True)
class PsiDesign:
    """The pairs Psi compares, fixed for a task's grid.

    Attributes:
        first, second: ``(P,)`` configs of each unordered pair that differs only in one axis.
        group: ``(P,)`` global index of the pair's group (axes' groups numbered one after another).
        group_axis: ``(G,)`` axis of each group.
        group_pairs: ``(G,)`` number of unordered pairs in each group.
        n_axes: number of axes.
    """

    first: np.ndarray
    second: np.ndarray
    group: np.ndarray
    group_axis: np.ndarray
    group_pairs: np.ndarray
    n_axes: int


def psi_design(codes: np.ndarray) -> PsiDesign:
    """List, per axis, the pairs of configurations in each group (configs equal on all other axes)."""
    gids = group_ids(codes)
    firsts, seconds, groups, group_axis = [], [], [], []
    offset = 0
    for i in range(codes.shape[1]):
        g = gids[i]
        a, b = np.nonzero(np.triu((g[:, None] == g[None, :]) & (codes[:, None, i] != codes[None, :, i]), k=1))
        n_groups = int(g.max()) + 1 if g.size else 0
        firsts.append(a)
        seconds.append(b)
        groups.append(g[a] + offset)
        group_axis.append(np.full(n_groups, i, dtype=np.int64))
        offset += n_groups
    group = np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)
    order = np.argsort(group, kind="stable")  # pairs sorted by group: sums are reduceat's
    return PsiDesign(
        first=(np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.int64))[order],
        second=(np.concatenate(seconds) if seconds else np.zeros(0, dtype=np.int64))[order],
        group=group[order],
        group_axis=np.concatenate(group_axis) if group_axis else np.zeros(0, dtype=np.int64),
        group_pairs=np.bincount(group, minlength=offset).astype(float),
        n_axes=codes.shape[1],
    )


def psi_kernel(design: PsiDesign, score: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis psi and defined-group counts of a batch of config-level (score, target).

    ``score`` and ``target`` are ``(R, C)``. A group's tau is Jiang et al.'s eq. 2 over its pairs
    (pairs tied in score or target count 0); a group whose score or whose target is constant has
    no ranking to compare and is undefined (dropped). psi_i is the mean over axis i's defined
    groups, NaN with none. Returns ``(R, A)`` psi and ``(R, A)`` numbers of defined groups.
    """
    n_rep = score.shape[0]
    n_groups = design.group_axis.size
    if design.group.size == 0:
        return np.full((n_rep, design.n_axes), np.nan), np.zeros((n_rep, design.n_axes), dtype=np.int64)
    sx = np.sign(score[:, design.first] - score[:, design.second])
    sy = np.sign(target[:, design.first] - target[:, design.second])
    # Groups with pairs, in order; groups of one config have none and are never defined.
    present, starts = np.unique(design.group, return_index=True)
    num = np.zeros((n_rep, n_groups))
    moves_s = np.zeros((n_rep, n_groups))
    moves_t = np.zeros((n_rep, n_groups))
    num[:, present] = np.add.reduceat(sx * sy, starts, axis=1)
    moves_s[:, present] = np.add.reduceat(np.abs(sx), starts, axis=1)
    moves_t[:, present] = np.add.reduceat(np.abs(sy), starts, axis=1)
    defined = (moves_s > 0) & (moves_t > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = np.where(defined, num / np.maximum(design.group_pairs, 1.0)[None, :], 0.0)
    axis_onehot = np.zeros((n_groups, design.n_axes))
    axis_onehot[np.arange(n_groups), design.group_axis] = 1.0
    count = defined.astype(float) @ axis_onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        psi = np.where(count > 0, (tau @ axis_onehot) / np.maximum(count, 1.0), np.nan)
    return psi, count.astype(np.int64)


def psi_total(per_axis: np.ndarray) -> np.ndarray:
    """Psi from ``(R, A)`` per-axis psi: the mean over axes where psi_i is defined (NaN if none)."""
    finite = np.isfinite(per_axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(finite, per_axis, 0.0).sum(axis=1) / finite.sum(axis=1)
    return np.where(finite.any(axis=1), out, np.nan)


@dataclass(frozen=True)
class PsiResult:
    """Granulated Kendall coefficient of one task.

    Attributes:
        psi: Psi, the mean of ``per_axis`` over axes with at least one defined group (NaN if none).
        per_axis: psi_i per axis (NaN for an axis without a defined group).
        n_groups: number of defined groups that entered psi_i, per axis.
    """

    psi: float
    per_axis: dict[str, float]
    n_groups: dict[str, int]


def _psi_from_arrays(arr: TaskArrays) -> PsiResult:
    per, count = psi_kernel(psi_design(arr.codes), arr.score[None, :], arr.target[None, :])
    return PsiResult(
        psi=float(psi_total(per)[0]),
        per_axis={a: float(v) for a, v in zip(arr.axes, per[0])},
        n_groups={a: int(n) for a, n in zip(arr.axes, count[0])},
    )


def granulated_psi(df: pd.DataFrame, axes: Sequence[str], target: str = "gap") -> PsiResult:
    """Granulated Kendall rank coefficient Psi (Jiang et al. 2020, "Fantastic Generalization
    Measures and Where to Find Them", Sec. 4.2 and eq. 2-3), on seed-averaged configurations.

    For axis i, configs are grouped by their values on all other axes (compared as the exact
    hp strings); each group g of n_g >= 2 configs gets Jiang et al.'s eq. 2 coefficient

        tau_g = 1 / (n_g (n_g - 1)) * sum_{k != l in g} sgn(s_k - s_l) sgn(t_k - t_l),

    psi_i = mean of tau_g over the axis's defined groups, Psi = mean of psi_i over the axes.

    A group whose score is constant (e.g. a hyperparameter-only predictor along another axis), or
    whose target is constant, has no ranking to compare: its tau is undefined and the group is
    dropped, as Kendall's tau is (tau-b is 0/0 there), not counted as 0. Pairs tied in only some
    places count 0 (eq. 2). An axis with no defined group is NaN and left out of Psi. Groups of one
    config (a non-converged model can leave one) have no pair and are skipped.
    """
    return _psi_from_arrays(prepare(df, axes, target))
