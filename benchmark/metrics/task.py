"""Every leaderboard metric of one (predictor, task) with its bootstrap interval, fast.

The public functions (``granulated_psi`` etc.) validate a DataFrame each call; here the task is
validated and reduced to arrays once, and each bootstrap replicate only re-indexes those arrays
(configs drawn by :func:`benchmark.metrics.bootstrap.resample_configs`, the same draw
:func:`benchmark.metrics.bootstrap_ci` makes), so intervals match ``bootstrap_ci`` applied to the
public functions under the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from benchmark.metrics._frame import TaskArrays, prepare
from benchmark.metrics.bootstrap import percentile_interval, resample_configs
from benchmark.metrics.cmi import _summarise, cmi_kernel
from benchmark.metrics.rank import group_ids, psi_kernel, tau_b_kernel
from benchmark.metrics.selection import regret_kernel
from benchmark.metrics.sign_error import environments, summarise
from benchmark.schema import SCORE_METRICS

__all__ = ["score_task"]

_COMPUTED = frozenset(
    {
        "kendall_tau",
        "psi",
        "psi_axis",
        "cmi",
        "cmi_signed",
        "sign_error_mean",
        "sign_error_p90",
        "sign_error_max",
        "regret",
    }
)


def _keys(axes: Sequence[str]) -> list[tuple[str, str]]:
    """(metric, axis) of each row, in ``benchmark.schema.SCORE_METRICS`` order."""
    unknown = [m for m in SCORE_METRICS if m not in _COMPUTED]
    if unknown:
        raise RuntimeError(
            f"benchmark.schema.SCORE_METRICS lists {unknown}, which benchmark.metrics.score_task "
            "does not compute. Hint: add the metric to benchmark/metrics/task.py too."
        )
    keys: list[tuple[str, str]] = []
    for m in SCORE_METRICS:
        keys += [(m, a) for a in axes] if m == "psi_axis" else [(m, "")]
    return keys


class _Kernels:
    """The task's arrays plus what does not change across replicates."""

    def __init__(
        self,
        arr: TaskArrays,
        selection_error: np.ndarray | None,
        include_self_pairs: bool,
        min_gap_diff: float,
    ) -> None:
        self.arr = arr
        self.gids = group_ids(arr.codes)
        self.env = environments(arr, min_gap_diff)
        self.selection_error = selection_error
        self.include_self_pairs = include_self_pairs

    def values(self, sel: np.ndarray) -> dict[tuple[str, str], float]:
        """All metrics on the configs ``sel`` (indices, repeats allowed), keyed (metric, axis)."""
        arr = self.arr
        models = arr.members[sel].ravel()
        models = models[models >= 0]
        out = {("kendall_tau", ""): tau_b_kernel(arr.model_score[models], arr.model_target[models])}

        s, t = arr.score[sel], arr.target[sel]
        per_axis, _ = psi_kernel(self.gids[:, sel], arr.codes[sel], s, t)
        finite = per_axis[np.isfinite(per_axis)]
        out[("psi", "")] = float(finite.mean()) if finite.size else float("nan")
        out.update({("psi_axis", a): float(v) for a, v in zip(arr.axes, per_axis)})

        cmi, agree = cmi_kernel(
            arr.codes[sel], arr.levels, s, t, include_self_pairs=self.include_self_pairs
        )
        c = _summarise(arr.axes, cmi, agree)
        out[("cmi", "")], out[("cmi_signed", "")] = c.cmi, c.cmi_signed

        counts = np.bincount(sel, minlength=arr.n_configs)
        mean, p90, worst = summarise(self.env.error, counts[self.env.a] * counts[self.env.b])
        out[("sign_error_mean", "")] = mean
        out[("sign_error_p90", "")] = p90
        out[("sign_error_max", "")] = worst

        out[("regret", "")] = (
            regret_kernel(s, self.selection_error[sel])
            if self.selection_error is not None
            else float("nan")
        )
        return out


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
    min_gap_diff: float = 0.0,
    return_replicates: bool = False,
) -> list[dict] | tuple[list[dict], np.ndarray]:
    """All scores of one predictor on one task, as tidy rows with bootstrap intervals.

    Rows ``{metric, axis, value, ci_low, ci_high, n_models}`` for ``kendall_tau`` (per model),
    ``psi``, ``psi_axis`` (one row per axis, ``axis`` set), ``cmi``, ``cmi_signed`` (seed-averaged
    configs), ``sign_error_mean``/``_p90``/``_max`` (cross-seed pairs in single-axis environments)
    and ``regret`` (selection by lowest mean score, on ``selection_target``; NaN when the frame
    lacks that column). ``value`` is the metric on the task, the interval a ``level`` percentile
    bootstrap over configurations (``n_boot`` replicates, ``seed``); the caller adds ``zoo_id``,
    ``predictor``, ``task``, ``target`` etc. (docs/ARCHITECTURE.md, scores.parquet).

    Models whose ``score`` or ``target`` is not finite (failed predictions) are left out first;
    ``n_models`` counts the models scored. With none left, every value is NaN.

    With ``return_replicates=True`` it returns ``(rows, replicates)``, ``replicates`` an
    ``(n_boot, len(rows))`` array whose column k holds row k's bootstrap values (replicate r uses
    the same configuration draw for every row, so e.g. means over tasks can be bootstrapped).
    """
    keys = _keys(list(axes))
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
        nan = float("nan")
        empty = [
            {"metric": m, "axis": a, "value": nan, "ci_low": nan, "ci_high": nan, "n_models": 0}
            for m, a in keys
        ]
        return (empty, np.full((n_boot, len(keys)), nan)) if return_replicates else empty

    arr = prepare(clean, axes, target)
    if selection_target == target:
        selection_error = arr.target
    else:
        selection_error = arr.extra.get(selection_target)
        if selection_error is None and selection_target in clean.columns:
            selection_error = prepare(clean, axes, selection_target).target
    kernels = _Kernels(arr, selection_error, include_self_pairs, min_gap_diff)

    point = kernels.values(np.arange(arr.n_configs))
    draws = resample_configs(arr.n_configs, n_boot, seed)
    boots = [kernels.values(sel) for sel in draws]
    replicates = np.array([[b[key] for key in keys] for b in boots], dtype=float)
    rows = []
    for k, key in enumerate(keys):
        metric, axis = key
        low, high = percentile_interval(replicates[:, k], level)
        rows.append(
            {
                "metric": metric,
                "axis": axis,
                "value": float(point[key]),
                "ci_low": low,
                "ci_high": high,
                "n_models": arr.n_models,
            }
        )
    return (rows, replicates) if return_replicates else rows
