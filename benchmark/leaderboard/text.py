"""Wording shared by the README and the HTML page: row marks, target headings, the reading guide.

Metric names, displays and descriptions come from the catalogue (benchmark/metrics/catalog.py);
what the targets and ``n_units`` mean comes from the table declarations (benchmark/tables.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from benchmark.leaderboard.board import RANK_METRIC, Board, Cell, PredictorInfo, TaskBoard
from benchmark.leaderboard.tables import HELDOUT, OVERALL, kind_label, target_doc, target_label
from benchmark.metrics.catalog import METRICS, SCORE_METRICS, format_interval
from benchmark.tables import SCORES

__all__ = [
    "Mark",
    "agreement_text",
    "drift_text",
    "heldout_header",
    "interval_text",
    "marks",
    "n_units_doc",
    "target_heading",
    "units_text",
    "units_title",
]

DRIFT_FMT = ".2f"


@dataclass(frozen=True)
class Mark:
    """A mark shown beside a predictor's name: its CSS class, short label and explanation."""

    css: str
    label: str
    title: str


def drift_text(value: float) -> str:
    """The median window drift share as shown, e.g. "0.11" ("n/a" when not recorded)."""
    return format(value, DRIFT_FMT) if math.isfinite(value) else "n/a"


def marks(info: PredictorInfo, tb: TaskBoard | None = None) -> list[Mark]:
    """The marks shown beside a predictor: kind, reads hparams, not sandboxed, trajectory drift."""
    out = []
    label = kind_label(info.kind)
    if label:
        out.append(Mark(f"tag-{info.kind}", label, "the seed oracle: another seed's target, the noise floor"
                        if info.kind == "oracle" else "a simple baseline every claim has to beat"))
    if info.reads_hparams:
        out.append(Mark("tag-hparams", "reads hparams", "it reads the hyperparameters, so it could look the answers "
                        "up in a published public zoo: compare it on the held-out ranking"))
    if not info.sandboxed:
        out.append(Mark("tag-unsandboxed", "not sandboxed", "run with --no-sandbox: its workers could read more than "
                        "one model's public files"))
    if info.uses_trajectory and tb is not None and math.isfinite(tb.drift_median):
        out.append(Mark("tag-drift", f"drift {drift_text(tb.drift_median)}", "it reads the trajectory window; median "
                        f"share of the window explained by a linear drift on {tb.task} (0 stationary, 1 pure drift)"))
    return out


def interval_text(metric: str, cell: Cell) -> str:
    """``0.42 [0.31, 0.55]`` from the catalogue's format."""
    return format_interval(metric, cell.value, cell.low, cell.high)


def units_text(cell: Cell) -> str:
    """``n=12`` when the value averages over other units than the models scored, else ""."""
    if cell.n_units > 0 and cell.n_units != cell.n_models and math.isfinite(cell.value):
        return f"n={cell.n_units}"
    return ""


def units_title(metric: str, cell: Cell) -> str:
    """``12 environments kept``: the count with the catalogue's unit of ``metric``."""
    unit = METRICS[metric].unit
    return f"{cell.n_units} {unit}" if unit else f"{cell.n_units} units"


def n_units_doc() -> str:
    """What ``n_units`` counts per metric: the catalogue's units, else the scores table's declaration."""
    units = [f"{METRICS[m].short}: {METRICS[m].unit}" for m in SCORE_METRICS if METRICS[m].unit]
    return "; ".join(units) if units else next(c.doc for c in SCORES.columns if c.name == "n_units")


def target_heading(target: str) -> str:
    """A target section's heading, e.g. "Target: test error"."""
    return f"Target: {target_label(target)}"


def target_intro(board: Board, target: str) -> str:
    """One sentence on what the target's tables rank."""
    return (f"Scores are ranked against the models' {target_label(target)} ({target_doc(target)}); "
            f"rows are sorted by {METRICS[RANK_METRIC].display} ({METRICS[RANK_METRIC].short})"
            + (", held-out zoo first (the official ranking)" if any(tb.has_heldout for tb in board.boards[target])
               else "") + ".")


def heldout_header() -> str:
    """Header of the official (held-out) Psi column."""
    return f"{METRICS[RANK_METRIC].short} held-out"


def agreement_text(tb: TaskBoard) -> str:
    """The stability figure: rank agreement between the public and the held-out Psi."""
    if tb.agreement is None:
        return ""
    a = tb.agreement
    tau = METRICS["kendall_tau"].format(a.tau) if math.isfinite(a.tau) else "n/a"
    return (f"Rank agreement of the public and held-out {METRICS[RANK_METRIC].short}: Kendall τ = {tau} "
            f"over {a.n} predictors (seed oracle left out).")


def table_title(tb: TaskBoard) -> str:
    """"Overall (all tasks)" or "Task x" (plain text)."""
    return "Overall (all tasks)" if tb.task == OVERALL else f"Task {tb.task}"


def ranked_by_text(tb: TaskBoard) -> str:
    """Which Psi orders a table."""
    psi = METRICS[RANK_METRIC].short
    return f"held-out {psi} (official)" if tb.ranked_by == HELDOUT else f"public {psi}"
