"""Conditional mutual information (CMI) as the PGDL 2020 scoring program computes it, bias-corrected.

Reproduced from the PGDL scoring program (``scoring_program/mutual_information.py`` of the
NeurIPS 2020 "Predicting Generalization in Deep Learning" starting kit, Yiding Jiang), read and
re-implemented, vectorised. For every pair of hyperparameter axes (h1, h2), h1 != h2:

1. Over **all ordered pairs** (i, j) of configurations, *including i == j*, set
   V_ij = [target_i > target_j] and M_ij = [score_i > score_j] (strict: ties and the self pair
   fall in the "-" cell), and put the pair in the bin k_ij = (h1_i, h1_j, h2_i, h2_j).
2. In every bin, a 2x2 contingency table of (V, M) gives the plug-in mutual information
   I_k(V; M) (bits) and the entropy H_k(V) = -sum_v p_v log2(p_v + 1e-12) (PGDL's epsilon).
3. CMI(h1, h2) = mean_k I_k / mean_k H_k, bins weighted equally (not by their pair counts).
4. The task's CMI is the minimum over axis pairs; the board shows it x100.

PGDL iterates over ordered axis pairs; (h1, h2) and (h2, h1) give the same bins up to relabelling,
so the unordered pairs are enough. Self pairs count as in PGDL (``include_self_pairs``), so a
predictor and its negation do not get the same plug-in CMI.

Where we had to decide (PGDL's code is undefined there):

- Models vs configs: PGDL had one model per config. We compute on seed-averaged configs; with one
  seed per config it is PGDL's computation.
- Empty bins: PGDL allocates a bin for every combination of possible values and requires a complete
  grid; an empty bin gives 0/0 there. We average over non-empty bins (the same on a complete grid).
  Bins are keyed by value codes, not PGDL's concatenated strings (which can collide).
- Degenerate conditioning: when mean_k H_k is 0 (within every bin the target order is constant,
  e.g. two axes and one config per cell) the ratio is 0/0: NaN for that axis pair; the minimum
  skips NaN pairs. Fewer than two axes: one axis conditions on it alone, none on nothing.

**Bias correction** (the board's ``cmi``; the plug-in value above is ``bias_corrected=False``).
The plug-in I_k is biased upward when a bin's pairs are few or dependent (pairs share configs), so a
predictor of pure noise scores CMI ~ 4 on a zoo-sized grid instead of 0. The board estimates that
bias with the seed bootstrap it already draws and subtracts it (Efron's bootstrap bias correction,
evaluated at the expected tables): with T*_r the bin tables of replicate r and T-bar their average
(the tables' expectation in the bootstrap world),

    bias = mean_r CMI(T*_r) - CMI(T-bar),      CMI_bc = CMI(T) - bias.

A perfect predictor (identical tables in every replicate) keeps 100; noise goes to ~0. The
correction is measured against a permutation-null mean and Miller-Madow in docs/metrics.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.metrics._frame import TaskArrays, prepare

__all__ = [
    "CmiDesign",
    "CmiResult",
    "CmiTables",
    "cmi_design",
    "cmi_details",
    "cmi_from_tables",
    "cmi_signed",
    "cmi_tables",
    "conditional_mutual_information",
    "conditioning_sets",
]

_EPS = 1e-12  # PGDL's entropy epsilon: H = -sum p log2(p + 1e-12)
_DEGENERATE = 1e-9  # mean entropy below this: the conditioning leaves no target order to explain
_CHUNK_ENTRIES = 4_000_000  # replicate chunk: at most this many config-pair entries held at once


def conditioning_sets(n_axes: int) -> list[tuple[int, ...]]:
    """The axis index tuples CMI conditions on: unordered pairs, else the lone axis, else ()."""
    if n_axes >= 2:
        return list(itertools.combinations(range(n_axes), 2))
    if n_axes == 1:
        return [(0,)]
    return [()]


@dataclass(frozen=True)
class CmiDesign:
    """What CMI's bins are for a task's grid (fixed across replicates).

    Attributes:
        sets: the conditioning sets (axis index tuples).
        onehots: per set, ``(C, L)`` one-hot of each config's cell (its values on the set's axes).
        n_pairs: ``(B,)`` ordered config pairs in each non-empty bin, all sets' bins side by side.
        used: per set, the flat indices (cell_i * L + cell_j) of its non-empty bins.
        bin_set: ``(B,)`` the set of each bin.
        include_self_pairs: whether the pairs (i, i) count (PGDL: yes).
    """

    sets: tuple[tuple[int, ...], ...]
    onehots: tuple[np.ndarray, ...]
    n_pairs: np.ndarray
    used: tuple[np.ndarray, ...]
    bin_set: np.ndarray
    include_self_pairs: bool


def cmi_design(codes: np.ndarray, levels: np.ndarray, *, include_self_pairs: bool = True) -> CmiDesign:
    """Cells and non-empty bins of every conditioning set of a grid (``codes`` ``(C, A)``)."""
    n_cfg = codes.shape[0]
    sets = tuple(conditioning_sets(codes.shape[1]))
    onehots, used, n_pairs, bin_set = [], [], [], []
    for k, cond in enumerate(sets):
        cell = np.zeros(n_cfg, dtype=np.int64)
        for ax in cond:
            cell = cell * int(levels[ax]) + codes[:, ax]
        n_cells = int(np.prod([int(levels[ax]) for ax in cond])) if cond else 1
        g = np.zeros((n_cfg, n_cells))
        g[np.arange(n_cfg), cell] = 1.0
        per_cell = g.sum(axis=0)
        pairs = np.outer(per_cell, per_cell)
        if not include_self_pairs:
            pairs = pairs - np.diag(per_cell)
        flat = pairs.ravel()
        nz = np.flatnonzero(flat > 0)
        onehots.append(g)
        used.append(nz)
        n_pairs.append(flat[nz])
        bin_set.append(np.full(nz.size, k, dtype=np.int64))
    return CmiDesign(
        sets=sets,
        onehots=tuple(onehots),
        n_pairs=np.concatenate(n_pairs).astype(float),
        used=tuple(used),
        bin_set=np.concatenate(bin_set),
        include_self_pairs=include_self_pairs,
    )


@dataclass(frozen=True)
class CmiTables:
    """Per-bin sufficient statistics of a batch: ``(R, B)`` counts of V=1, of M=1 and of V=M=1."""

    n_v: np.ndarray
    n_m: np.ndarray
    n_vm: np.ndarray


def cmi_tables(design: CmiDesign, score: np.ndarray, target: np.ndarray) -> CmiTables:
    """Bin tables of a batch of config-level (score, target), ``(R, C)`` each.

    The bins of a conditioning set are (cell_i, cell_j) blocks of the ``(C, C)`` pair matrix, so a
    quantity's bin sums are ``G' Q G`` with G the cell one-hot: one matrix product against all
    sets' one-hots side by side, then a small one per set (float32: the sums are integers below
    2^24). Self pairs hold V = M = 0; without them only the bins' pair counts change.
    """
    n_rep, n_cfg = score.shape
    g_all = np.concatenate(design.onehots, axis=1).astype(np.float32)
    bounds = np.concatenate([[0], np.cumsum([g.shape[1] for g in design.onehots])])
    onehots = [g.astype(np.float32) for g in design.onehots]
    chunk = max(1, _CHUNK_ENTRIES // max(n_cfg * n_cfg, 1))
    out: dict[str, list[np.ndarray]] = {"n_v": [], "n_m": [], "n_vm": []}
    for lo in range(0, n_rep, chunk):
        s = score[lo : lo + chunk]
        t = target[lo : lo + chunk]
        r = s.shape[0]
        v = np.empty((r, n_cfg, n_cfg), dtype=np.float32)
        m = np.empty((r, n_cfg, n_cfg), dtype=np.float32)
        np.greater(t[:, :, None], t[:, None, :], out=v, casting="unsafe")
        np.greater(s[:, :, None], s[:, None, :], out=m, casting="unsafe")
        for name, q in (("n_v", v), ("n_m", m), ("n_vm", v * m)):
            y = (q.reshape(r * n_cfg, n_cfg) @ g_all).reshape(r, n_cfg, -1)  # sums over j per cell of j
            parts = []
            for k, nz in enumerate(design.used):
                yk = np.ascontiguousarray(y[:, :, bounds[k] : bounds[k + 1]].transpose(0, 2, 1))  # (r, L, C)
                z = (yk.reshape(-1, n_cfg) @ onehots[k]).reshape(r, yk.shape[1], -1)  # [cell_j, cell_i]
                parts.append(z.transpose(0, 2, 1).reshape(r, -1)[:, nz])
            out[name].append(np.concatenate(parts, axis=1).astype(np.float64))
    return CmiTables(**{k: np.concatenate(v, axis=0) for k, v in out.items()})


def _entropy2(p: np.ndarray) -> np.ndarray:
    """Binary entropy in bits with PGDL's epsilon, elementwise on P(1) = p."""
    q = 1.0 - p
    return -(p * np.log2(p + _EPS) + q * np.log2(q + _EPS))


def _plogp_ratio(joint: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
    """joint * log2(joint / (row col)) with 0 log 0 = 0.

    A cell counts only when its row and column marginals are positive too: averaged tables are
    fractional, and a marginal that rounds to 0 leaves a rounding residue in the cell.
    """
    ok = (joint > 0) & (row > 0) & (col > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = joint * np.log2(joint / (row * col))
    return np.where(ok, val, 0.0)


def bin_information(design: CmiDesign, tables: CmiTables) -> tuple[np.ndarray, np.ndarray]:
    """``(R, B)`` plug-in I_k(V; M) and H_k(V) in bits of every bin.

    Cells come from the (integer) counts before dividing, so a cell is empty exactly when its
    count is 0 (subtracting probabilities would leave rounding residues in empty cells).
    """
    n = design.n_pairs[None, :]
    c11 = tables.n_vm
    c10 = tables.n_v - tables.n_vm
    c01 = tables.n_m - tables.n_vm
    c00 = n - tables.n_v - tables.n_m + tables.n_vm
    pv1, pv0 = tables.n_v / n, (n - tables.n_v) / n
    pm1, pm0 = tables.n_m / n, (n - tables.n_m) / n
    mi = (
        _plogp_ratio(c11 / n, pv1, pm1)
        + _plogp_ratio(c10 / n, pv1, pm0)
        + _plogp_ratio(c01 / n, pv0, pm1)
        + _plogp_ratio(c00 / n, pv0, pm0)
    )
    return mi, _entropy2(pv1)


def cmi_from_tables(design: CmiDesign, tables: CmiTables) -> tuple[np.ndarray, np.ndarray]:
    """``(R, S)`` normalised CMI (a fraction) and direction of every conditioning set.

    The direction ("agreement") is the bin-averaged covariance of V and M, P(V=1, M=1) - P(V=1) P(M=1):
    positive when the score orders pairs as the target does more often than chance.
    """
    mi, h = bin_information(design, tables)
    starts = np.flatnonzero(np.r_[True, np.diff(design.bin_set) != 0])  # bins are grouped by set
    n_bins = np.diff(np.r_[starts, design.bin_set.size]).astype(float)
    mean_mi = np.add.reduceat(mi, starts, axis=1) / n_bins
    mean_h = np.add.reduceat(h, starts, axis=1) / n_bins
    n = design.n_pairs[None, :]
    covariance = tables.n_vm / n - (tables.n_v / n) * (tables.n_m / n)
    agreement = np.add.reduceat(covariance, starts, axis=1) / n_bins
    ok = mean_h > _DEGENERATE
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(ok, mean_mi / np.where(ok, mean_h, 1.0), np.nan)
    return ratio, agreement


def average_tables(tables: CmiTables) -> CmiTables:
    """The replicates' mean tables, as a batch of one (the tables' expectation in the bootstrap world)."""
    return CmiTables(**{k: getattr(tables, k).mean(axis=0, keepdims=True) for k in ("n_v", "n_m", "n_vm")})


def minimum_over_sets(ratio: np.ndarray, agreement: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(R,)`` CMI x100, signed CMI x100 and the argmin set index (-1 where all sets are NaN)."""
    allnan = np.all(np.isnan(ratio), axis=1)
    arg = np.where(allnan, -1, np.argmin(np.where(np.isnan(ratio), np.inf, ratio), axis=1))
    rows = np.arange(ratio.shape[0])
    safe = np.maximum(arg, 0)
    value = np.where(allnan, np.nan, 100.0 * ratio[rows, safe])
    signed = value * np.sign(agreement[rows, safe])
    return value, signed, arg


@dataclass(frozen=True)
class CmiResult:
    """CMI of one task.

    Attributes:
        cmi: min over conditioning sets of the normalised CMI, x100 (NaN if all are NaN).
        cmi_signed: ``cmi * sign(agreement)`` of the minimising set.
        argmin: the axes of the minimising conditioning set.
        per_set: normalised CMI x100 per conditioning set (axis-name tuples).
        agreement: the bin-averaged covariance of [t_i > t_j] and [s_i > s_j] per conditioning set.
        bias: the subtracted bootstrap bias estimate (0.0 for the plug-in value).
        n_bins: non-empty bins of the minimising set.
    """

    cmi: float
    cmi_signed: float
    argmin: tuple[str, ...]
    per_set: dict[tuple[str, ...], float]
    agreement: dict[tuple[str, ...], float]
    bias: float = 0.0
    n_bins: int = 0


def _result(axes: Sequence[str], design: CmiDesign, ratio: np.ndarray, agreement: np.ndarray, bias: float) -> CmiResult:
    value, signed, arg = minimum_over_sets(ratio[None, :], agreement[None, :])
    names = [tuple(axes[i] for i in cond) for cond in design.sets]
    k = int(arg[0])
    corrected = float(value[0]) - bias
    sign = float(np.sign(agreement[k])) if k >= 0 else float("nan")
    return CmiResult(
        cmi=corrected,
        cmi_signed=corrected * sign,
        argmin=names[k] if k >= 0 else (),
        per_set={st: 100.0 * float(c) for st, c in zip(names, ratio)},
        agreement={st: float(a) for st, a in zip(names, agreement)},
        bias=bias,
        n_bins=int(np.sum(design.bin_set == k)) if k >= 0 else 0,
    )


def cmi_bias(design: CmiDesign, replicate_tables: CmiTables) -> float:
    """Bootstrap bias of the plug-in CMI x100 from replicate tables (NaN when undefined).

    ``mean_r CMI(T*_r) - CMI(mean_r T*_r)``: the plug-in's excess over its value at the expected
    tables, in the bootstrap world (see the module docstring). NaN replicates are ignored.
    """
    ratio, agreement = cmi_from_tables(design, replicate_tables)
    value, _, _ = minimum_over_sets(ratio, agreement)
    r_bar, a_bar = cmi_from_tables(design, average_tables(replicate_tables))
    v_bar, _, _ = minimum_over_sets(r_bar, a_bar)
    if not np.isfinite(value).any() or not np.isfinite(v_bar[0]):
        return float("nan")
    return float(np.nanmean(value) - v_bar[0])


def _cmi_from_arrays(
    arr: TaskArrays, *, include_self_pairs: bool, bias_corrected: bool, n_boot: int, seed: int
) -> CmiResult:
    from benchmark.metrics.bootstrap import seed_world, simulate

    design = cmi_design(arr.codes, arr.levels, include_self_pairs=include_self_pairs)
    tables = cmi_tables(design, arr.score[None, :], arr.target[None, :])
    ratio, agreement = cmi_from_tables(design, tables)
    bias = 0.0
    if bias_corrected:
        values = {"score": arr.model_score, "target": arr.model_target}
        zoo = simulate(seed_world(arr.codes, arr.levels, arr.members, values), n_boot, seed)
        s, t = np.nanmean(zoo["score"], axis=2), np.nanmean(zoo["target"], axis=2)
        bias = cmi_bias(design, cmi_tables(design, s, t))
        bias = bias if np.isfinite(bias) else 0.0
    return _result(arr.axes, design, ratio[0], agreement[0], bias)


def cmi_details(
    df: pd.DataFrame,
    axes: Sequence[str],
    target: str = "gap",
    *,
    include_self_pairs: bool = True,
    bias_corrected: bool = True,
    n_boot: int = 200,
    seed: int = 0,
) -> CmiResult:
    """CMI with its per-axis-pair plug-in values, the minimising pair, the sign and the bias removed."""
    return _cmi_from_arrays(
        prepare(df, axes, target),
        include_self_pairs=include_self_pairs,
        bias_corrected=bias_corrected,
        n_boot=n_boot,
        seed=seed,
    )


def conditional_mutual_information(
    df: pd.DataFrame,
    axes: Sequence[str],
    target: str = "gap",
    *,
    include_self_pairs: bool = True,
    bias_corrected: bool = True,
    n_boot: int = 200,
    seed: int = 0,
) -> float:
    """PGDL 2020 conditional mutual information x100 (0 = no information, 100 = perfect), bias-corrected.

    Plug-in (``bias_corrected=False``, PGDL's number):
    CMI = 100 * min_{h1 != h2} [ mean_k I_k([t_i > t_j]; [s_i > s_j]) / mean_k H_k([t_i > t_j]) ],
    bins k = (h1_i, h1_j, h2_i, h2_j) over ordered pairs of seed-averaged configs, self pairs
    included as in PGDL. The board's value subtracts the bootstrap bias estimate
    (``n_boot`` seed-resampling replicates under ``seed``); see this module's docstring. A
    predictor that is a function of one hyperparameter scores 0. CMI ignores direction: a
    predictor that ranks the gaps backwards also scores high (see :func:`cmi_signed`).
    """
    return cmi_details(
        df, axes, target, include_self_pairs=include_self_pairs, bias_corrected=bias_corrected, n_boot=n_boot,
        seed=seed,
    ).cmi


def cmi_signed(
    df: pd.DataFrame,
    axes: Sequence[str],
    target: str = "gap",
    *,
    include_self_pairs: bool = True,
    bias_corrected: bool = True,
    n_boot: int = 200,
    seed: int = 0,
) -> float:
    """CMI with the direction of the relation: ``cmi * sign(A)``.

    A is the direction of the minimising axis pair: the mean over its bins of the covariance of
    V = [t_i > t_j] and M = [s_i > s_j], i.e. of the dependence the mutual information measures.
    An inverted predictor (score -> -score) gets a negative value.
    """
    return cmi_details(
        df, axes, target, include_self_pairs=include_self_pairs, bias_corrected=bias_corrected, n_boot=n_boot,
        seed=seed,
    ).cmi_signed
