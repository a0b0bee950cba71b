"""The metric catalogue: one place that declares and explains every number on the board.

Both leaderboard outputs (``README.md`` and ``index.html``), the tracking code and
:func:`benchmark.metrics.score_task` read the metrics from here: their names, directions, formats,
descriptions, what ``n_units`` counts and their ranges. A metric is declared once; docs/metrics.md
gives the exact definitions.

Example::

    >>> from benchmark.metrics.catalog import format_interval, metric_spec
    >>> metric_spec("psi").higher_is_better
    True
    >>> format_interval("psi", 0.42, 0.31, 0.55)
    '0.42 [0.31, 0.55]'
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "METRICS",
    "MetricSpec",
    "SCORE_METRICS",
    "COST_METRICS",
    "format_interval",
    "format_value",
    "metric_spec",
    "score_keys",
]


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is named, ordered, printed and explained.

    Attributes:
        name: the metric's key in ``scores.parquet`` (column ``metric``) or a cost column.
        display: full name for prose and table headers (may contain Unicode, e.g. "Kendall τ").
        short: a compact column header.
        higher_is_better: direction of "better"; sorting a column by its best values first uses it.
        fmt: a ``str.format`` spec for the value, e.g. ``".2f"`` or ``".1%"``.
        description: what it measures, the formula in words, and how its interval is made.
        reference: the paper the definition follows ("" for plain bookkeeping numbers).
        per_axis: one row per hyperparameter axis (column ``axis`` set) instead of one per task.
        unit: what the scores table's ``n_units`` counts for this metric ("" for cost metrics).
        bounds: the range of the metric's true value; intervals are clipped to it (never past the
            estimate itself: a bias-corrected CMI estimate may dip below 0).
    """

    name: str
    display: str
    short: str
    higher_is_better: bool
    fmt: str
    description: str
    reference: str = ""
    per_axis: bool = False
    unit: str = ""
    bounds: tuple[float, float] = (-math.inf, math.inf)

    def format(self, value: float | None) -> str:
        """Format one value; missing or non-finite values print as ``n/a``."""
        if value is None or not math.isfinite(float(value)):
            return "n/a"
        text = format(float(value), self.fmt)
        # "-0.00" reads as a signal where there is none.
        if text.startswith("-") and float(text.rstrip("%s")) == 0.0:
            text = text[1:]
        return text


_INTERVAL = (
    " Its 95% interval: 200 bootstrap replicates redraw the training seeds of every configuration "
    "(the grid stays complete) around empirical-Bayes configuration means, re-centred on the "
    "estimate (docs/metrics.md)."
)
_KENDALL = "Kendall 1938 (tau); Kendall 1945 (tau-b's tie correction)"
_JIANG = "Jiang et al. 2020, 'Fantastic Generalization Measures and Where to Find Them' (Psi, eq. 2-3)"
_PGDL = "Jiang et al. 2020, NeurIPS 2020 PGDL competition scoring program (CMI)"
_DZIUGAITE = "Dziugaite et al. 2020, 'In Search of Robust Measures of Generalization'"
_SIGN_ERROR = (
    "Environments are pairs of configurations that differ in one hyperparameter. In each, every "
    "cross-seed pair of models costs 0 (score and gap differences agree in sign), 1 (they disagree) "
    "or 1/2 (scores tie), weighted by Dziugaite et al.'s Monte Carlo weight (w - 0.5)+ with "
    "w = max(0, 1 - 2 exp(-n d^2 / 2))^2, d the two gaps' difference and n the test-set size, so "
    "differences within test-set noise weigh 0. An environment is kept when its effective sample "
    "size (sum w)^2 / sum w^2 reaches S^2 / 2, S the task's seeds per configuration (their threshold, "
    "12, exceeds the 9 pairs 3 seeds give); its error is the weighted mean. 0 is perfect, 0.5 a coin flip."
)

_METRIC_LIST: tuple[MetricSpec, ...] = (
    MetricSpec(
        name="kendall_tau",
        display="Kendall τ",
        short="τ",
        higher_is_better=True,
        fmt=".2f",
        description=(
            "Rank correlation between a predictor's scores and the models' generalization gaps over "
            "all converged models of a task: (concordant - discordant pairs) / pairs, with Kendall's "
            "tie correction (tau-b, as scipy.stats.kendalltau). +1 orders the models exactly by gap, "
            "0 is no relation." + _INTERVAL
        ),
        reference=_KENDALL + "; used as in Jiang et al. 2020",
        unit="models",
        bounds=(-1.0, 1.0),
    ),
    MetricSpec(
        name="psi",
        display="Granulated Kendall Ψ",
        short="Ψ",
        higher_is_better=True,
        fmt=".2f",
        description=(
            "For each hyperparameter axis, Kendall's tau (Jiang et al.'s eq. 2) between the seed-averaged "
            "scores and gaps within every group of configurations that differ only along that axis, "
            "averaged over the groups (ψ per axis); Ψ is the mean of the per-axis ψ. A group where the "
            "score (or the gap) is constant has no ranking to compare and is dropped, not counted as 0; "
            "an axis with no such group is n/a and left out of Ψ. It rewards predictors that track the "
            "gap when one thing changes at a time. Rows are sorted by Ψ." + _INTERVAL
        ),
        reference=_JIANG,
        unit="groups",
        bounds=(-1.0, 1.0),
    ),
    MetricSpec(
        name="psi_axis",
        display="ψ per axis",
        short="ψ(axis)",
        higher_is_better=True,
        fmt=".2f",
        description=(
            "The per-axis term of Ψ: Kendall's tau between seed-averaged score and gap within groups "
            "of configurations that differ only in this hyperparameter, averaged over the groups where "
            "it is defined (n/a when none is: e.g. a predictor that ignores this hyperparameter)." + _INTERVAL
        ),
        reference=_JIANG,
        per_axis=True,
        unit="groups",
        bounds=(-1.0, 1.0),
    ),
    MetricSpec(
        name="cmi",
        display="Conditional mutual information (CMI)",
        short="CMI",
        higher_is_better=True,
        fmt=".2f",
        description=(
            "As the PGDL 2020 scoring program: over ordered pairs of seed-averaged configurations, the "
            "mutual information between [gap_i > gap_j] and [score_i > score_j] in bins of the two "
            "configurations' values of a pair of hyperparameters, averaged over bins and divided by the "
            "bin-averaged entropy of the gap order; the minimum over hyperparameter pairs, x100. The "
            "plug-in value is biased upward (noise scores 3-4 on a zoo-sized grid), so the board "
            "subtracts its bootstrap bias estimate: the mean plug-in CMI of the bootstrap replicates "
            "minus the CMI of their averaged bin tables. 0 = no information (an estimate may dip below "
            "0), 100 = perfect; it ignores the sign of the relation." + _INTERVAL
        ),
        reference=_PGDL,
        unit="bins (of the minimising hyperparameter pair)",
        bounds=(0.0, 100.0),
    ),
    MetricSpec(
        name="cmi_signed",
        display="Signed CMI",
        short="CMI±",
        higher_is_better=True,
        fmt=".2f",
        description=(
            "The bias-corrected CMI with the sign of the relation restored: the sign of the bin-averaged "
            "covariance of [gap_i > gap_j] and [score_i > score_j] on the minimising hyperparameter pair. "
            "Negative when the scores rank the gaps backwards (CMI alone rewards a predictor that is "
            "consistently wrong)." + _INTERVAL
        ),
        reference="this benchmark; variant of the PGDL 2020 CMI",
        unit="bins (of the minimising hyperparameter pair)",
        bounds=(-100.0, 100.0),
    ),
    MetricSpec(
        name="sign_error_mean",
        display="Robust sign error (mean)",
        short="sign err mean",
        higher_is_better=False,
        fmt=".3f",
        description=_SIGN_ERROR + " This is the mean over the environments kept (their number is shown)." + _INTERVAL,
        reference=_DZIUGAITE,
        unit="environments kept",
        bounds=(0.0, 1.0),
    ),
    MetricSpec(
        name="sign_error_p90",
        display="Robust sign error (90th percentile)",
        short="sign err p90",
        higher_is_better=False,
        fmt=".3f",
        description=(
            "The 90th percentile over the environments kept of the weighted sign error (see the mean): "
            "how badly the predictor fails in its hard environments, read from the distribution as "
            "Dziugaite et al. do rather than from its maximum (which 3 seeds make 1 for everyone)." + _INTERVAL
        ),
        reference=_DZIUGAITE,
        unit="environments kept",
        bounds=(0.0, 1.0),
    ),
    MetricSpec(
        name="regret",
        display="Model-selection regret",
        short="regret",
        higher_is_better=False,
        fmt=".3f",
        description=(
            "Seed-averaged test error of the configuration the predictor would pick (the one it scores "
            "lowest, i.e. with the smallest predicted gap; ties averaged) minus the best seed-averaged "
            "test error among the task's configurations. 0 means it picks the best one." + _INTERVAL
        ),
        reference="this benchmark; cf. Jiang et al. 2020",
        unit="configurations",
        bounds=(0.0, math.inf),
    ),
    MetricSpec(
        name="seconds_per_model",
        display="Seconds per model",
        short="s/model",
        higher_is_better=False,
        fmt=".3g",
        description=(
            "Median wall-clock seconds the predictor spent on one model in its isolated worker "
            "(within the runner's per-model budget, 300 s by default as in PGDL)."
        ),
    ),
    MetricSpec(
        name="failure_rate",
        display="Failure rate",
        short="fail",
        higher_is_better=False,
        fmt=".1%",
        description=(
            "Fraction of models on which the predictor failed (exception, NaN/inf, non-float, "
            "timeout or crashed worker). Failed models are left out of its scores, so a high "
            "failure rate makes the other columns less comparable."
        ),
    ),
)

METRICS: dict[str, MetricSpec] = {m.name: m for m in _METRIC_LIST}
"""Every metric, keyed by the name used in the tables."""

COST_METRICS: tuple[str, ...] = ("seconds_per_model", "failure_rate")
"""Metrics computed from ``predictions.parquet`` / ``runs.parquet`` rather than scores."""

SCORE_METRICS: tuple[str, ...] = tuple(m.name for m in _METRIC_LIST if m.name not in COST_METRICS)
"""Metrics in the ``metric`` column of ``scores.parquet``, in board order
(:func:`benchmark.metrics.score_task` computes exactly these)."""


def score_keys(axes: Sequence[str]) -> list[tuple[str, str]]:
    """The (metric, axis) of every row ``score_task`` returns for a task with these axes, in order."""
    keys: list[tuple[str, str]] = []
    for name in SCORE_METRICS:
        keys += [(name, a) for a in axes] if METRICS[name].per_axis else [(name, "")]
    return keys


def metric_spec(name: str) -> MetricSpec:
    """Return the spec of metric ``name``; an unknown name raises with "did you mean"."""
    try:
        return METRICS[name]
    except KeyError:
        close = difflib.get_close_matches(name, METRICS, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(
            f"unknown metric {name!r}.{hint} Known metrics: {', '.join(METRICS)} "
            "(benchmark/metrics/catalog.py)."
        ) from None


def format_value(name: str, value: float | None) -> str:
    """Format ``value`` with metric ``name``'s format (``n/a`` when missing)."""
    return metric_spec(name).format(value)


def format_interval(name: str, value: float | None, low: float | None, high: float | None) -> str:
    """Format a value with its 95% interval, e.g. ``0.42 [0.31, 0.55]``.

    The interval is left out when either bound is missing or non-finite.
    """
    spec = metric_spec(name)
    text = spec.format(value)
    if text == "n/a":
        return text
    if any(b is None or not math.isfinite(float(b)) for b in (low, high)):
        return text
    return f"{text} [{spec.format(low)}, {spec.format(high)}]"
