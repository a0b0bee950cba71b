"""Render the board as ``leaderboards/README.md`` (GitHub-flavoured Markdown)."""

from __future__ import annotations

import math

from benchmark.leaderboard.figures import COST_FIGURE, psi_axes_path
from benchmark.leaderboard.tables import OVERALL, Board, Row, TaskBoard, kind_label
from benchmark.schema import METRICS, format_interval

__all__ = ["TABLE_METRICS", "render_markdown"]

TABLE_METRICS = ("kendall_tau", "psi", "cmi", "sign_error_max", "regret")
"""Score metrics with a column in each task table, in order."""


def md_escape(text: str) -> str:
    """Escape text for a Markdown table cell or inline prose (pipes, newlines, emphasis marks)."""
    out = " ".join(str(text).split())
    for ch in ("\\", "|", "*", "_", "`", "<", ">", "[", "]"):
        out = out.replace(ch, "\\" + ch)
    return out


def _code(text: str) -> str:
    return "`" + str(text).replace("`", "'") + "`"


def _beats_cell(row: Row, tb: TaskBoard) -> str:
    if row.beats_best_baseline is None:
        return "—"
    return f"**yes** (> {md_escape(tb.best_baseline or '')})" if row.beats_best_baseline else "no"


def _predictor_cell(row: Row) -> str:
    name = _code(row.predictor)
    label = kind_label(row.kind)
    return f"{name} *({label})*" if label else name


def _task_table(tb: TaskBoard) -> list[str]:
    title = "Overall (all tasks)" if tb.task == OVERALL else f"Task {_code(tb.task)}"
    lines = [f"## {title}", ""]
    lines.append(f"Zoo size: {tb.zoo_size} models.")
    if tb.best_baseline is not None:
        best = next(r for r in tb.rows if r.predictor == tb.best_baseline)
        c = best.cell("psi")
        lines[-1] += (
            f" Best baseline: {_code(tb.best_baseline)}, Ψ {format_interval('psi', c.value, c.low, c.high)}."
        )
    lines.append("")
    headers = ["#", "predictor"]
    headers += [METRICS[m].short for m in TABLE_METRICS]
    headers += [METRICS["seconds_per_model"].short, METRICS["failure_rate"].short, "n scored",
                "version", "beats best baseline"]
    align = ["---:", ":---"] + ["---:"] * (len(TABLE_METRICS) + 3) + [":---", ":---"]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("| " + " | ".join(align) + " |")
    for rank, row in enumerate(tb.rows, start=1):
        cells = [str(rank), _predictor_cell(row)]
        for m in TABLE_METRICS:
            c = row.cell(m)
            cells.append(format_interval(m, c.value, c.low, c.high))
        cells.append(METRICS["seconds_per_model"].format(row.seconds_per_model))
        cells.append(METRICS["failure_rate"].format(row.failure_rate))
        cells.append(str(row.n_models_scored))
        cells.append(md_escape(row.version))
        cells.append(_beats_cell(row, tb))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def _how_to_read() -> list[str]:
    lines = [
        "## How to read this",
        "",
        "- The target is the **generalization gap** (test error − train error) of converged models; "
        "a predictor's score should be higher for models with a larger gap.",
        "- Every number is given with its **95% bootstrap interval** (configurations resampled): "
        "`0.42 [0.31, 0.55]`. Two rows whose intervals overlap are not distinguishable on this zoo.",
        "- Rows are sorted by Ψ. *(baseline)* marks the simple baselines; *(noise floor)* marks the "
        "seed oracle, which scores a model with the gap of another seed of the same configuration: "
        "it shows how much of the ranking seed noise leaves to be predicted at all.",
        "- **beats best baseline**: *yes* when the predictor's Ψ interval lies entirely above the "
        "best baseline's (its `ci_low` > the baseline's `ci_high`).",
        "- Cost columns: median seconds per model and the failure rate over all the task's models; "
        "failed models are left out of the scores (see *Failures*).",
        "",
        "| metric | column | better | what it measures | reference |",
        "| :--- | :--- | :--- | :--- | :--- |",
    ]
    for spec in METRICS.values():
        better = "higher" if spec.higher_is_better else "lower"
        lines.append(
            f"| {md_escape(spec.display)} ({_code(spec.name)}) | {md_escape(spec.short)} | {better} | "
            f"{md_escape(spec.description)} | {md_escape(spec.reference) or '—'} |"
        )
    lines.append("")
    return lines


def _failures(board: Board) -> list[str]:
    lines = ["## Failures", ""]
    if not board.failures:
        return lines + ["No predictor failed on any model.", ""]
    lines += [
        "| predictor | task | failed | most common reasons |",
        "| :--- | :--- | ---: | :--- |",
    ]
    for f in board.failures:
        reasons = "; ".join(f"{md_escape(r)} (×{n})" for r, n in f.reasons)
        rate = METRICS["failure_rate"].format(f.n_failed / f.n_total if f.n_total else math.nan)
        lines.append(f"| {_code(f.predictor)} | {_code(f.task)} | {f.n_failed}/{f.n_total} ({rate}) | {reasons} |")
    lines.append("")
    return lines


def _notes(board: Board) -> list[str]:
    noted = [p for p in board.predictors if p.notes]
    if not noted:
        return []
    lines = ["## Protocol notes", ""]
    for p in sorted(noted, key=lambda p: p.predictor):
        lines.append(f"- {_code(p.predictor)}: {md_escape(p.notes)}")
    return lines + [""]


def _predictors(board: Board) -> list[str]:
    lines = [
        "## Predictors",
        "",
        "| predictor | version | kind | family | requires | reference | code hash |",
        "| :--- | :--- | :--- | :--- | :--- | :--- | :--- |",
    ]
    for p in sorted(board.predictors, key=lambda p: p.predictor):
        lines.append(
            f"| {_code(p.predictor)} | {md_escape(p.version)} | {md_escape(p.kind)} | "
            f"{md_escape(p.family) or '—'} | {md_escape(p.requires) or '—'} | "
            f"{md_escape(p.reference) or '—'} | {_code(p.code_hash) if p.code_hash else '—'} |"
        )
    return lines + [""]


def render_markdown(board: Board) -> str:
    """The README.md text of ``board`` (deterministic: depends only on the board)."""
    meta = board.meta
    sizes = ", ".join(f"{_code(t)} {n}" for t, n in sorted(meta.n_models.items()))
    lines = [
        "# gapbench leaderboard",
        "",
        "<!-- Generated by `gapbench leaderboard` from leaderboards/data/; do not edit by hand. -->",
        "",
        "How well do predictors of generalization rank trained models by their generalization gap? "
        "Open [index.html](index.html) for sortable tables, per-predictor plots and ψ per axis.",
        "",
        f"- zoo: {_code(meta.zoo_id)} (spec {_code(meta.spec_name)})",
        f"- models per task: {sizes}",
        f"- git commit: {_code(meta.git_commit)}",
        f"- date: {md_escape(meta.date)}",
        f"- predictors: {len(board.predictors)} "
        f"({sum(p.kind == 'baseline' for p in board.predictors)} baselines, "
        f"{sum(p.kind == 'oracle' for p in board.predictors)} noise floor)",
        "",
    ]
    for tb in board.tasks:
        lines += _task_table(tb)
    lines += [f"![Cost vs Ψ]({COST_FIGURE})", ""]
    for tb in board.tasks:
        if tb.axes:
            lines += [f"![ψ per axis, {tb.task}]({psi_axes_path(tb.task)})", ""]
    lines += _how_to_read()
    lines += _failures(board)
    lines += _notes(board)
    lines += _predictors(board)
    return "\n".join(lines).rstrip("\n") + "\n"
