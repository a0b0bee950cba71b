"""The metric schema: one place that says what every number on the board means.

Both leaderboard outputs (``README.md`` and ``index.html``) and the tracking code read display
names, directions, formats and descriptions from here, so a metric is described once.

Example::

    >>> from benchmark.schema import format_interval, metric_spec
    >>> metric_spec("psi").higher_is_better
    True
    >>> format_interval("psi", 0.42, 0.31, 0.55)
    '0.42 [0.31, 0.55]'
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

__all__ = [
    "METRICS",
    "MetricSpec",
    "SCORE_METRICS",
    "COST_METRICS",
    "format_interval",
    "format_value",
    "metric_spec",
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
        description: what it measures and the formula in words.
        reference: the paper the definition follows ("" for plain bookkeeping numbers).
    """

    name: str
    display: str
    short: str
    higher_is_better: bool
    fmt: str
    description: str
    reference: str = ""

    def format(self, value: float | None) -> str:
        """Format one value; missing or non-finite values print as ``n/a``."""
        if value is None or not math.isfinite(float(value)):
            return "n/a"
        text = format(float(value), self.fmt)
        # "-0.00" reads as a signal where there is none.
        if text.startswith("-") and float(text.rstrip("%s")) == 0.0:
            text = text[1:]
        return text


_METRIC_LIST: tuple[MetricSpec, ...] = (
    MetricSpec(
        name="kendall_tau",
        display="Kendall τ",
        short="τ",
        higher_is_better=True,
        fmt=".2f",
        description=(
            "Rank correlation between a predictor's scores and the models' generalization gaps "
            "over all converged models of a task: (concordant pairs - discordant pairs) / pairs. "
            "+1 means the scores order the models exactly by gap, 0 means no relation."
        ),
        reference="Kendall 1938; used as in Jiang et al. 2020, 'Fantastic Generalization Measures'",
    ),
    MetricSpec(
        name="psi",
        display="Granulated Kendall Ψ",
        short="Ψ",
        higher_is_better=True,
        fmt=".2f",
        description=(
            "For each hyperparameter axis, Kendall τ within every group of configurations that "
            "differ only along that axis, averaged over the groups (ψ per axis); Ψ is the mean of "
            "the per-axis ψ. It rewards predictors that track the gap when one thing changes at a "
            "time, rather than ones that only separate architectures or tasks. Rows are sorted by Ψ."
        ),
        reference="Jiang et al. 2020, 'Fantastic Generalization Measures and Where to Find Them'",
    ),
    MetricSpec(
        name="psi_axis",
        display="ψ per axis",
        short="ψ(axis)",
        higher_is_better=True,
        fmt=".2f",
        description=(
            "The per-axis term of Ψ: Kendall τ between score and gap within groups of configurations "
            "that differ only in this hyperparameter, averaged over groups."
        ),
        reference="Jiang et al. 2020, 'Fantastic Generalization Measures and Where to Find Them'",
    ),
    MetricSpec(
        name="cmi",
        display="Conditional mutual information (CMI)",
        short="CMI",
        higher_is_better=True,
        fmt=".2f",
        description=(
            "As the PGDL 2020 scoring program: over ordered pairs of models, the mutual information "
            "between [gap_i > gap_j] and [score_i > score_j] conditioned on the values of each pair "
            "of hyperparameters, normalised by the conditional entropy of the gap sign; the minimum "
            "over hyperparameter pairs, x100. 0 = no information; it ignores the sign of the relation."
        ),
        reference="Jiang et al. 2020 (NeurIPS 2020 PGDL competition); Jiang et al. 2020 'Fantastic'",
    ),
    MetricSpec(
        name="cmi_signed",
        display="Signed CMI",
        short="CMI±",
        higher_is_better=True,
        fmt=".2f",
        description=(
            "CMI with the sign of the relation restored: negative when the scores rank the gaps "
            "backwards (CMI alone rewards a predictor that is consistently wrong)."
        ),
        reference="this benchmark; variant of the PGDL 2020 CMI",
    ),
    MetricSpec(
        name="sign_error_mean",
        display="Robust sign error (mean)",
        short="sign err mean",
        higher_is_better=False,
        fmt=".3f",
        description=(
            "Environments are pairs of configurations that differ in one hyperparameter. In each, "
            "the weighted fraction of model pairs whose score difference has the wrong sign "
            "relative to their gap difference; averaged over environments. 0 is perfect, 0.5 chance. "
            "Pairs whose gaps differ by less than the task's seed noise (median seed-to-seed gap "
            "difference) are ignored, as Dziugaite et al. drop insignificant differences."
        ),
        reference="Dziugaite et al. 2020, 'In Search of Robust Measures of Generalization'",
    ),
    MetricSpec(
        name="sign_error_p90",
        display="Robust sign error (90th percentile)",
        short="sign err p90",
        higher_is_better=False,
        fmt=".3f",
        description=(
            "The 90th percentile over environments of the weighted sign error (see the mean): how "
            "badly the predictor fails in its hard environments."
        ),
        reference="Dziugaite et al. 2020, 'In Search of Robust Measures of Generalization'",
    ),
    MetricSpec(
        name="sign_error_max",
        display="Worst-environment sign error",
        short="worst sign err",
        higher_is_better=False,
        fmt=".3f",
        description=(
            "The maximum over environments of the weighted sign error: the robust measure of "
            "Dziugaite et al.; a predictor is only as good as its worst environment. "
            "Above 0.5 means some single-axis change fools it more often than a coin flip."
        ),
        reference="Dziugaite et al. 2020, 'In Search of Robust Measures of Generalization'",
    ),
    MetricSpec(
        name="regret",
        display="Model-selection regret",
        short="regret",
        higher_is_better=False,
        fmt=".3f",
        description=(
            "Test error of the model the predictor would pick (the one it scores lowest, i.e. "
            "with the smallest predicted gap) minus the best test error among the task's models. "
            "0 means it picks the best model."
        ),
        reference="this benchmark; cf. Jiang et al. 2020",
    ),
    MetricSpec(
        name="seconds_per_model",
        display="Seconds per model",
        short="s/model",
        higher_is_better=False,
        fmt=".3g",
        description=(
            "Median wall-clock seconds the predictor spent on one model in its isolated worker "
            "(budget 300 s per model, as PGDL)."
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

SCORE_METRICS: tuple[str, ...] = (
    "kendall_tau",
    "psi",
    "psi_axis",
    "cmi",
    "cmi_signed",
    "sign_error_mean",
    "sign_error_p90",
    "sign_error_max",
    "regret",
)
"""Metrics that appear in the ``metric`` column of ``scores.parquet``."""

COST_METRICS: tuple[str, ...] = ("seconds_per_model", "failure_rate")
"""Metrics computed from ``predictions.parquet`` / ``runs.parquet`` rather than scores."""


def metric_spec(name: str) -> MetricSpec:
    """Return the spec of metric ``name``; an unknown name raises with "did you mean"."""
    try:
        return METRICS[name]
    except KeyError:
        close = difflib.get_close_matches(name, METRICS, n=3)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(
            f"unknown metric {name!r}.{hint} Known metrics: {', '.join(METRICS)} "
            "(benchmark/schema.py)."
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
