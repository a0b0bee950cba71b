"""Every leaderboard metric of one (predictor, task) with its bootstrap interval, fast.

The task is validated and reduced to arrays once (:func:`benchmark.metrics._frame.prepare`); what
does not change across replicates (the pairs Psi compares, CMI's bins, the sign error's
environments) is built once; then the estimate and all replicate zoos
(:mod:`benchmark.metrics.bootstrap`) are evaluated as batches in the (replicate, configuration,
seed) layout. The metrics are computed into a dict keyed by (metric, axis) and checked against the
catalogue (:func:`benchmark.metrics.catalog.score_keys`), which alone lists them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.metrics._frame import TaskArrays, prepare
from benchmark.metrics.bootstrap import layout, percentile_interval, recentre, seed_world, simulate
from benchmark.metrics.catalog import METRICS, score_keys
from benchmark.metrics.cmi import (
    CmiDesign,
    CmiTables,
    cmi_bias,
    cmi_design,
    cmi_from_tables,
    cmi_tables,
    minimum_over_sets,
)
from benchmark.metrics.rank import PsiDesign, psi_design, psi_kernel, psi_total, tau_batch
from benchmark.metrics.selection import regret_kernel
from benchmark.metrics.sign_error import Environments, environments, sign_error_kernel

__all__ = ["score_task"]

Key = tuple[str, str]


@dataclass(frozen=True)
class _Design:
    """What stays fixed across the replicates of one task."""

    arr: TaskArrays
    psi: PsiDesign
    cmi: CmiDesign
    env: Environments
    valid: np.ndarray  # (C, S) which seed slots hold a model


@dataclass
class _Batch:
    """Metric values of a batch of zoos, keyed (metric, axis), what they average over, CMI tables."""

    values: dict[Key, np.ndarray]
    units: dict[Key, np.ndarray]
    tables: list[CmiTables]


def _oracle_scores(gap: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(R, C, S)``: each model's score as the seed oracle's, the mean gap of its config's other seeds."""
    g = np.where(valid[None], gap, 0.0)
    n = valid.sum(axis=1)[None, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        other = (g.sum(axis=2, keepdims=True) - g) / (n - 1)
    return np.where(valid[None] & (n >= 2), other, np.nan)


def _fold_slices(values: np.ndarray, valid: np.ndarray) -> list[np.ndarray]:
    """Per fold f, ``(R, C)``: each config's seed slot f (slot f mod n_c when it has fewer seeds)."""
    n = np.maximum(valid.sum(axis=1), 1)
    return [values[:, np.arange(values.shape[1]), f % n] for f in range(values.shape[2])]


def _average(parts: list[np.ndarray]) -> np.ndarray:
    if len(parts) == 1:
        return parts[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        return np.nanmean(np.stack(parts), axis=0)


def _evaluate(d: _Design, zoo: dict[str, np.ndarray]) -> _Batch:
    """All metrics of a batch of zoos ``name -> (R, C, S)`` (the estimate is a batch of one)."""
    arr = d.arr
    score, target = zoo["score"], zoo["target"]
    n_rep = score.shape[0]
    values: dict[Key, np.ndarray] = {}
    units: dict[Key, np.ndarray] = {}
    if arr.folded:
        # The seed oracle: config-level metrics and tau on one model per config at a time.
        slices = list(zip(_fold_slices(score, d.valid), _fold_slices(target, d.valid)))
        select = _fold_slices(zoo["selection"], d.valid) if "selection" in zoo else None
        taus = [tau_batch(s, t) for s, t in slices]
        tau_units = float(arr.n_configs)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            slices = [(np.nanmean(score, axis=2), np.nanmean(target, axis=2))]
            select = [np.nanmean(zoo["selection"], axis=2)] if "selection" in zoo else None
        flat = d.valid.ravel()
        taus = [tau_batch(score.reshape(n_rep, -1)[:, flat], target.reshape(n_rep, -1)[:, flat])]
        tau_units = float(arr.n_models)
    values[("kendall_tau", "")] = _average(taus)
    units[("kendall_tau", "")] = np.full(n_rep, tau_units)

    psis, counts, cmis, tables = [], [], [], []
    for s, t in slices:
        per_axis, count = psi_kernel(d.psi, s, t)
        psis.append(per_axis)
        counts.append(count)
        tab = cmi_tables(d.cmi, s, t)
        tables.append(tab)
        cmis.append(minimum_over_sets(*cmi_from_tables(d.cmi, tab)))
    per_axis = _average(psis)
    count = np.mean(np.stack(counts), axis=0)
    values[("psi", "")] = _average([psi_total(p) for p in psis])
    units[("psi", "")] = count.sum(axis=1)
    for i, axis in enumerate(arr.axes):
        values[("psi_axis", axis)] = per_axis[:, i]
        units[("psi_axis", axis)] = count[:, i]
    values[("cmi", "")] = _average([c[0] for c in cmis])
    values[("cmi_signed", "")] = _average([c[1] for c in cmis])
    n_bins = np.bincount(d.cmi.bin_set, minlength=len(d.cmi.sets)).astype(float)
    arg = cmis[0][2]
    units[("cmi", "")] = np.where(arg >= 0, n_bins[np.maximum(arg, 0)], 0.0)
    units[("cmi_signed", "")] = units[("cmi", "")]

    mean, p90, kept = sign_error_kernel(d.env, score.reshape(n_rep, -1), target.reshape(n_rep, -1))
    for name, v in (("sign_error_mean", mean), ("sign_error_p90", p90)):
        values[(name, "")] = v
        units[(name, "")] = kept.astype(float)

    if select is None:
        values[("regret", "")] = np.full(n_rep, np.nan)
    else:
        values[("regret", "")] = _average([regret_kernel(s, e) for (s, _), e in zip(slices, select)])
    units[("regret", "")] = np.full(n_rep, float(arr.n_configs))
    return _Batch(values=values, units=units, tables=tables)


def _empty(keys: list[Key], n_boot: int, return_replicates: bool) -> list[dict] | tuple[list[dict], np.ndarray]:
    nan = float("nan")
    rows = [
        {"metric": m, "axis": a, "value": nan, "ci_low": nan, "ci_high": nan, "n_models": 0, "n_units": 0}
        for m, a in keys
    ]
    return (rows, np.full((n_boot, len(keys)), nan)) if return_replicates else rows


def _model_values(arr: TaskArrays, target: str, selection_target: str) -> dict[str, np.ndarray]:
    """The per-model variables a replicate zoo redraws (score, target, selection error, gap)."""
    values = {"score": arr.model_score, "target": arr.model_target}
    selection = arr.model_target if selection_target == target else arr.model_extra.get(selection_target)
    if selection is not None and np.all(np.isfinite(selection)):
        values["selection"] = selection
    if arr.folded:
        gap = arr.model_target if target == "gap" else arr.model_extra.get("gap")
        if gap is None or not np.all(np.isfinite(gap)):
            raise ValueError(
                "score_task: a frame with a 'fold' column (the seed oracle) needs a finite 'gap' column: "
                "its replicate scores are the other seeds' gaps."
            )
        values["gap"] = gap
    return values


def score_task(
    df: pd.DataFrame,
    axes: Sequence[str],
    target: str = "gap",
    n_boot: int = 200,
    seed: int = 0,
    *,
    selection_target: str = "test_error",
    level: float = 0.95,
    include_self_pairs: bool = True,
    n_eval: int | None = None,
    min_ess: float | None = None,
    return_replicates: bool = False,
) -> list[dict] | tuple[list[dict], np.ndarray]:
    """All scores of one predictor on one task, as tidy rows with bootstrap intervals.

    Rows ``{metric, axis, value, ci_low, ci_high, n_models, n_units}``, one per
    ``benchmark.metrics.catalog.score_keys(axes)`` in that order: ``kendall_tau`` (over models),
    ``psi``, ``psi_axis`` (one row per axis), ``cmi`` and ``cmi_signed`` (bias-corrected) on
    seed-averaged configurations, ``sign_error_mean``/``_p90`` (Dziugaite et al.'s weighted
    environments; ``n_eval`` = test examples behind each target value, ``min_ess`` their ESS
    threshold, see :mod:`benchmark.metrics.sign_error`), and ``regret`` (selection by lowest mean
    score, on ``selection_target``; NaN when the frame lacks it). ``n_units`` counts what the value
    averages over: models (tau), defined groups (psi, psi_axis), bins of the minimising
    hyperparameter pair (CMI), environments kept (sign error), configurations (regret).

    Intervals: ``n_boot`` replicate zoos (``seed``) redraw the seeds of every configuration
    (:mod:`benchmark.metrics.bootstrap`); the interval is the ``level`` percentile interval of the
    replicates re-centred on the estimate, so it always contains it. A frame with a ``fold`` column
    (the seed oracle, whose score is the other seeds' mean gap) is scored one seed per
    configuration at a time and averaged over folds (:mod:`benchmark.metrics._frame`); its replicate
    scores are recomputed from the replicate's gaps.

    Models whose ``score`` or ``target`` is not finite (failed predictions) are left out first;
    ``n_models`` counts the models scored. With none left, every value is NaN.

    With ``return_replicates=True`` it returns ``(rows, replicates)``: ``replicates[:, k]`` holds
    row k's re-centred bootstrap values (replicate r is the same resampled zoo for every row), so
    e.g. means over tasks can be bootstrapped with intervals that contain their estimate.
    """
    keys = score_keys(list(axes))
    for col in ("score", target):
        if col not in df.columns:
            raise ValueError(
                f"score_task: the frame lacks column {col!r}; it has {list(df.columns)}. "
                "Hint: join predictions (score) with answers (gap, test_error) on model_id."
            )
    ok = np.ones(len(df), dtype=bool)
    for col in ("score", target):
        ok &= np.isfinite(pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float))
    clean = df.loc[ok]
    if len(clean) == 0:
        return _empty(keys, n_boot, return_replicates)

    arr = prepare(clean, axes, target)
    design = _Design(
        arr=arr,
        psi=psi_design(arr.codes),
        cmi=cmi_design(arr.codes, arr.levels, include_self_pairs=include_self_pairs),
        env=environments(arr, n_eval=n_eval, min_ess=min_ess),
        valid=arr.members >= 0,
    )
    model_values = _model_values(arr, target, selection_target)
    point = _evaluate(design, {k: layout(v, arr.members) for k, v in model_values.items()})
    zoo = simulate(seed_world(arr.codes, arr.levels, arr.members, model_values), n_boot, seed)
    if arr.folded:
        zoo["score"] = _oracle_scores(zoo["gap"], design.valid)
    boots = _evaluate(design, zoo)

    computed = set(point.values)
    if computed != set(keys):
        raise RuntimeError(
            f"benchmark.metrics.score_task computes {sorted(computed - set(keys))} beyond and misses "
            f"{sorted(set(keys) - computed)} of the catalogue (benchmark/metrics/catalog.py): add a "
            "metric to both or neither."
        )
    estimate = np.array([float(point.values[k][0]) for k in keys])
    raw = np.column_stack([boots.values[k] for k in keys])
    # CMI's bootstrap bias correction (benchmark.metrics.cmi); folds are averaged, so are their biases.
    bias = np.array([cmi_bias(design.cmi, tables) for tables in boots.tables], dtype=float)
    k_cmi, k_signed = keys.index(("cmi", "")), keys.index(("cmi_signed", ""))
    if np.isfinite(bias).any() and np.isfinite(estimate[k_cmi]):
        sign = np.sign(estimate[k_signed]) if estimate[k_cmi] != 0 else 1.0
        estimate[k_cmi] -= float(np.nanmean(bias))
        estimate[k_signed] = estimate[k_cmi] * sign
    replicates = recentre(estimate, raw)
    for k, (metric, _) in enumerate(keys):
        lo, hi = METRICS[metric].bounds
        if np.isfinite(estimate[k]):
            np.clip(replicates[:, k], min(lo, estimate[k]), max(hi, estimate[k]), out=replicates[:, k])
    rows = []
    for k, (metric, axis) in enumerate(keys):
        low, high = percentile_interval(replicates[:, k], level)
        if np.isfinite(estimate[k]) and np.isfinite(low) and np.isfinite(high):
            # re-centring moves replicates by (estimate - median): the percentiles can miss the
            # estimate by a rounding error (1e-16); the interval contains it exactly
            low, high = min(low, float(estimate[k])), max(high, float(estimate[k]))
        rows.append(
            {
                "metric": metric,
                "axis": axis,
                "value": float(estimate[k]),
                "ci_low": low,
                "ci_high": high,
                "n_models": arr.n_models,
                "n_units": int(round(float(point.units[(metric, axis)][0]))),
            }
        )
    return (rows, replicates) if return_replicates else rows
