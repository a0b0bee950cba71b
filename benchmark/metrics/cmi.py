"""Conditional mutual information (CMI) as in the PGDL 2020 competition's scoring program.

Reproduced from the PGDL scoring program (``scoring_program/mutual_information.py`` of the
NeurIPS 2020 "Predicting Generalization in Deep Learning" starting kit, Yiding Jiang), read and
re-implemented, vectorised. For every ordered pair of hyperparameter axes (h1, h2), h1 != h2:

1. Over **all ordered pairs** (i, j) of models, *including i == j*, set
   V_ij = [target_i > target_j] and M_ij = [score_i > score_j] (strict: ties and the self pair
   fall in the "-" cell), and put the pair in the bin
   k_ij = (h1_i, h1_j, h2_i, h2_j), the two models' values on the two axes.
2. In every bin, a 2x2 contingency table of (V, M) gives the plug-in mutual information
   I_k(V; M) (bits) and the entropy H_k(V) = -sum_v p_v log2(p_v + 1e-12) (PGDL's epsilon).
3. CMI(h1, h2) = mean_k I_k / mean_k H_k, bins weighted equally (not by their pair counts).
4. The task's CMI is the minimum over axis pairs, and the competition score is x100.

What PGDL's code implies and we keep: self pairs (i, i) count (in the cell V=0, M=0), so a
predictor and its negation do *not* get the same CMI (the self pairs agree with the first and
disagree with the second; see ``include_self_pairs``); ordered axis pairs (h1, h2) and (h2, h1)
give the same bins up to relabelling, so the unordered pairs are enough.

Where we had to decide (PGDL's code is undefined there):

- Models vs configs: PGDL had one model per config. We compute on seed-averaged configs
  (``average_over_seeds``); with one seed per config it is PGDL's computation.
- Empty bins: PGDL allocates a bin for every combination of *possible* values and required a
  complete grid; an empty bin would give 0/0 = NaN there. We average over non-empty bins, which
  is the same on a complete grid. Bins are keyed by the value tuple, not by PGDL's concatenated
  strings (str(v) + str(w)), which can collide (("1", "11") vs ("11", "1")).
- Degenerate conditioning: when mean_k H_k is 0 (within every bin the target order is
  constant, e.g. a grid of only two axes with one model per config, where a bin holds one
  pair) the ratio is 0/0 and we return NaN for that axis pair; the minimum skips NaN pairs.
- Fewer than two axes (PGDL would return +inf): one axis conditions on that axis alone,
  no axis gives the unconditional normalised mutual information.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.metrics._frame import TaskArrays, prepare

__all__ = [
    "CmiResult",
    "cmi_details",
    "cmi_kernel",
    "cmi_signed",
    "conditioning_sets",
    "conditional_mutual_information",
]

_EPS = 1e-12  # PGDL's entropy epsilon: H = -sum p log2(p + 1e-12)
_DEGENERATE = 1e-9  # mean entropy below this: the conditioning leaves no target order to explain


def conditioning_sets(n_axes: int) -> list[tuple[int, ...]]:
    """The axis index tuples CMI conditions on: unordered pairs, else the lone axis, else ()."""
    if n_axes >= 2:
        return list(itertools.combinations(range(n_axes), 2))
    if n_axes == 1:
        return [(0,)]
    return [()]


def _bins(codes: np.ndarray, levels: np.ndarray, cond: tuple[int, ...]) -> np.ndarray:
    """``(n, n)`` bin index of each ordered pair: the tuple (a_i, a_j, b_i, b_j, ...) raveled."""
    n = codes.shape[0]
    b = np.zeros((n, n), dtype=np.int64)
    for ax in cond:
        c = codes[:, ax]
        k = int(levels[ax])
        b = (b * k + c[:, None]) * k + c[None, :]
    return b


def cmi_kernel(
    codes: np.ndarray,
    levels: np.ndarray,
    s: np.ndarray,
    t: np.ndarray,
    *,
    include_self_pairs: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Per conditioning set, the normalised CMI (a fraction, not x100) and the bin agreement.

    Agreement A = mean over non-empty bins of the bin's mean of sgn(s_i - s_j) sgn(t_i - t_j)
    (self and tied pairs count 0): its sign is the direction of the relation CMI detected.
    Returns two arrays aligned with :func:`conditioning_sets`.
    """
    n = s.shape[0]
    v = t[:, None] > t[None, :]
    m = s[:, None] > s[None, :]
    cell = 2 * v.astype(np.int64) + m.astype(np.int64)
    agree = np.sign(s[:, None] - s[None, :]) * np.sign(t[:, None] - t[None, :])
    if include_self_pairs:
        keep = np.ones((n, n), dtype=bool)
    else:
        # A config with itself, or with a repeated bootstrap draw of itself.
        keep = np.any(codes[:, None, :] != codes[None, :, :], axis=2)
    cell = cell[keep]
    agree = agree[keep]

    sets = conditioning_sets(codes.shape[1])
    # Every set's bins side by side in one index space, so one bincount fills all tables.
    n_raw = np.array(
        [int(np.prod(levels[list(c)].astype(np.int64) ** 2)) if c else 1 for c in sets]
    )
    offsets = np.concatenate([[0], np.cumsum(n_raw)[:-1]])
    total_bins = int(n_raw.sum())
    b = np.concatenate([_bins(codes, levels, c)[keep] + off for c, off in zip(sets, offsets)])
    table = np.bincount(b * 4 + np.tile(cell, len(sets)), minlength=4 * total_bins)
    table = table.reshape(total_bins, 2, 2)
    agree_sum = np.bincount(b, weights=np.tile(agree, len(sets)), minlength=total_bins)
    set_of_bin = np.repeat(np.arange(len(sets)), n_raw)

    total = table.sum(axis=(1, 2))
    used = total > 0
    table = table[used].astype(float)
    total = total[used].astype(float)
    set_of_bin = set_of_bin[used]
    p = table / total[:, None, None]
    pv = p.sum(axis=2)  # marginal of the target order V
    pm = p.sum(axis=1)  # marginal of the score order M
    outer = pv[:, :, None] * pm[:, None, :]
    pos = p > 0
    ratio = np.ones_like(p)
    ratio[pos] = p[pos] / outer[pos]
    mi = np.sum(p * np.log2(ratio), axis=(1, 2))  # I_k(V; M) in bits; 0 log 0 = 0
    h = -np.sum(pv * np.log2(pv + _EPS), axis=1)  # H_k(V) as PGDL computes it

    n_bins = np.bincount(set_of_bin, minlength=len(sets)).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_mi = np.bincount(set_of_bin, weights=mi, minlength=len(sets)) / n_bins
        mean_h = np.bincount(set_of_bin, weights=h, minlength=len(sets)) / n_bins
        agreement = (
            np.bincount(set_of_bin, weights=agree_sum[used] / total, minlength=len(sets)) / n_bins
        )
    ok = mean_h > _DEGENERATE
    cmi = np.where(ok, mean_mi / np.where(ok, mean_h, 1.0), np.nan)
    return cmi, agreement


@dataclass(frozen=True)
class CmiResult:
    """CMI of one task.

    Attributes:
        cmi: min over conditioning sets of the normalised CMI, x100 (NaN if all are NaN).
        cmi_signed: ``cmi * sign(agreement)`` of the minimising set.
        argmin: the axes of the minimising conditioning set.
        per_set: normalised CMI x100 per conditioning set (axis-name tuples).
        agreement: the bin-averaged sign agreement per conditioning set.
    """

    cmi: float
    cmi_signed: float
    argmin: tuple[str, ...]
    per_set: dict[tuple[str, ...], float]
    agreement: dict[tuple[str, ...], float]


def _cmi_from_arrays(arr: TaskArrays, include_self_pairs: bool = True) -> CmiResult:
    cmi, agreement = cmi_kernel(
        arr.codes, arr.levels, arr.score, arr.target, include_self_pairs=include_self_pairs
    )
    return _summarise(arr.axes, cmi, agreement)


def _summarise(axes: Sequence[str], cmi: np.ndarray, agreement: np.ndarray) -> CmiResult:
    sets = [tuple(axes[i] for i in cond) for cond in conditioning_sets(len(axes))]
    if np.all(np.isnan(cmi)):
        value, signed, arg = float("nan"), float("nan"), ()
    else:
        k = int(np.nanargmin(cmi))
        value = 100.0 * float(cmi[k])
        signed = value * float(np.sign(agreement[k]))
        arg = sets[k]
    return CmiResult(
        cmi=value,
        cmi_signed=signed,
        argmin=arg,
        per_set={st: 100.0 * float(c) for st, c in zip(sets, cmi)},
        agreement={st: float(a) for st, a in zip(sets, agreement)},
    )


def cmi_details(
    df: pd.DataFrame, axes: Sequence[str], target: str = "gap", *, include_self_pairs: bool = True
) -> CmiResult:
    """CMI with its per-axis-pair values, the minimising pair and the sign agreement."""
    return _cmi_from_arrays(prepare(df, axes, target), include_self_pairs)


def conditional_mutual_information(
    df: pd.DataFrame, axes: Sequence[str], target: str = "gap", *, include_self_pairs: bool = True
) -> float:
    """PGDL 2020 conditional mutual information x100 (0 = no information, 100 = perfect).

    CMI = 100 * min_{h1 != h2} [ mean_k I_k([t_i > t_j]; [s_i > s_j]) / mean_k H_k([t_i > t_j]) ],
    bins k = (h1_i, h1_j, h2_i, h2_j) over ordered pairs of seed-averaged configs, self pairs
    included as in PGDL (``include_self_pairs=False`` drops them, and any pair of configs with
    identical hyperparameters, e.g. repeated bootstrap draws); see this module's docstring
    for every detail. A predictor that is a function of one hyperparameter scores 0: within a
    bin that hyperparameter, hence the score order, is fixed. CMI ignores direction: a
    predictor that ranks the gaps backwards also scores high (see :func:`cmi_signed`).
    """
    return cmi_details(df, axes, target, include_self_pairs=include_self_pairs).cmi


def cmi_signed(
    df: pd.DataFrame, axes: Sequence[str], target: str = "gap", *, include_self_pairs: bool = True
) -> float:
    """CMI with the direction of the relation: ``cmi * sign(A)``.

    A is the agreement of the minimising axis pair: the mean over its bins of the bin's mean
    sgn(s_i - s_j) sgn(t_i - t_j) (self and tied pairs count 0), i.e. a bin-averaged Kendall
    tau-a. An inverted predictor (score -> -score) gets A -> -A, hence a negative value; with
    ``include_self_pairs=False`` exactly the negative of the original's.
    """
    return cmi_details(df, axes, target, include_self_pairs=include_self_pairs).cmi_signed
