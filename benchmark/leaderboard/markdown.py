"""Render the board as ``leaderboards/README.md`` (GitHub-flavoured Markdown).

The generalization gap comes first, with one table per task (every score metric of the catalogue,
the held-out Psi beside the public one when the held-out zoo was scored); each other target gets
one compact table of Psi per task. Then the figures, the downloads, how to cite, how to read it,
failures, protocol notes and the predictors with links to their papers.
"""

from __future__ import annotations

import math

from benchmark.leaderboard.board import RANK_METRIC, Board, PredictorInfo, Row, TaskBoard
from benchmark.leaderboard.exports import bibtex, downloads
from benchmark.leaderboard.figures import COST_FIGURE, psi_axes_path
from benchmark.leaderboard.tables import OVERALL, target_label
from benchmark.leaderboard.text import (
    agreement_text,
    drift_text,
    heldout_header,
    interval_text,
    marks,
    n_units_doc,
    ranked_by_text,
    table_title,
    target_heading,
    target_intro,
    units_text,
)
from benchmark.metrics.catalog import METRICS

__all__ = ["md_escape", "render_markdown"]


def md_escape(text: str) -> str:
    """Escape text for a Markdown table cell or inline prose (pipes, newlines, emphasis marks)."""
    out = " ".join(str(text).split())
    for ch in ("\\", "|", "*", "_", "`", "<", ">", "[", "]"):
        out = out.replace(ch, "\\" + ch)
    return out


def _code(text: str) -> str:
    return "`" + str(text).replace("`", "'") + "`"


def _link(text: str, info: PredictorInfo) -> str:
    label = md_escape(text) or "paper"
    if not info.link:
        return label
    return f"[{label}](<{info.link.replace('>', '%3E')}>)"


def _predictor_cell(board: Board, row: Row, tb: TaskBoard | None) -> str:
    labels = [m.label for m in marks(board.info(row.predictor), tb)]
    return _code(row.predictor) + (f" *({md_escape(', '.join(labels))})*" if labels else "")


def _metric_cell(metric: str, row: Row, *, heldout: bool = False) -> str:
    cell = row.heldout_cell(metric) if heldout else row.cell(metric)
    text = interval_text(metric, cell)
    units = units_text(cell)
    return f"{text} ({units})" if units else text


def _beats_cell(row: Row, tb: TaskBoard) -> str:
    if row.beats_best_baseline is None:
        return "—"
    return f"**yes** (> {md_escape(tb.best_baseline or '')})" if row.beats_best_baseline else "no"


def _rank(row: Row) -> str:
    return str(row.rank) if row.rank is not None else "—"


def _table_note(tb: TaskBoard) -> str:
    note = f"Zoo size: {tb.size_text}. Ranked by {ranked_by_text(tb)}."
    if tb.best_baseline is not None:
        best = tb.row(tb.best_baseline)
        note += f" Best baseline: {_code(tb.best_baseline)}, {METRICS[RANK_METRIC].short} " \
                f"{interval_text(RANK_METRIC, tb.ranking_cell(best))}."
    if tb.agreement is not None:
        note += " " + agreement_text(tb)
    return note


def _task_table(board: Board, tb: TaskBoard) -> list[str]:
    title = "Overall (all tasks)" if tb.task == OVERALL else f"Task {_code(tb.task)}"
    lines = [f"### {title}", "", _table_note(tb), ""]
    headers = ["#", "predictor"]
    if tb.has_heldout:
        headers.append(heldout_header())
    headers += [METRICS[m].short + (" public" if tb.has_heldout and m == RANK_METRIC else "") for m in board.metrics]
    headers += [METRICS["seconds_per_model"].short, METRICS["failure_rate"].short, "n scored", "beats best baseline"]
    n_numeric = len(headers) - 3
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("| " + " | ".join(["---:", ":---"] + ["---:"] * n_numeric + [":---"]) + " |")
    for row in tb.rows:
        cells = [_rank(row), _predictor_cell(board, row, tb)]
        if tb.has_heldout:
            cells.append(_metric_cell(RANK_METRIC, row, heldout=True))
        cells += [_metric_cell(m, row) for m in board.metrics]
        cells.append(METRICS["seconds_per_model"].format(row.seconds_per_model))
        cells.append(METRICS["failure_rate"].format(row.failure_rate))
        cells.append(str(row.n_models_scored))
        cells.append(_beats_cell(row, tb))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _compact_target(board: Board, target: str) -> list[str]:
    """One table for a secondary target: Psi per task (overall first), rows in its first table's order."""
    tbs = board.boards[target]
    psi = METRICS[RANK_METRIC].short
    lines = [f"## {target_heading(target)}", "", target_intro(board, target) + " "
             f"{psi} per task with 95% intervals; every metric is in [index.html](index.html) and "
             "[data/scores.csv](data/scores.csv).", ""]
    first = tbs[0]
    if first.agreement is not None:
        lines += [f"{table_title(first)}: {agreement_text(first)}", ""]
    order = [r.predictor for r in first.rows]
    order += sorted({r.predictor for tb in tbs for r in tb.rows} - set(order))
    heldout = first.has_heldout
    headers = ["#", "predictor"] + ([f"{heldout_header()} {first.task}"] if heldout else [])
    headers += [f"{psi} {tb.task}" for tb in tbs]
    lines.append("| " + " | ".join(headers) + " |")
    lines.append("| " + " | ".join(["---:", ":---"] + ["---:"] * (len(headers) - 2)) + " |")
    for name in order:
        row = first.row(name)
        cells = [_rank(row) if row else "—", _predictor_cell(board, row, None) if row else _code(name)]
        if heldout:
            cells.append(_metric_cell(RANK_METRIC, row, heldout=True) if row else "n/a")
        for tb in tbs:
            r = tb.row(name)
            cells.append(_metric_cell(RANK_METRIC, r) if r else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _how_to_read(board: Board) -> list[str]:
    psi = METRICS[RANK_METRIC].short
    lines = [
        "## How to read this",
        "",
        "- A predictor's score should be higher for models with a larger generalization gap (test error − train "
        "error). The gap is the main target; the test error (and, for audio, the error on held-out speakers) are "
        "ranked the same way.",
        "- Every number comes with its **95% bootstrap interval**: `0.42 [0.31, 0.55]`. Rows whose intervals overlap "
        "are not distinguishable on this zoo. `(n=12)`: the number of units a value averages over, shown when they "
        f"are not the models scored ({md_escape(n_units_doc())}).",
        f"- **Public and held-out**: the public zoo (models and answers published) is for development; the official "
        f"ranking is the held-out {psi} (a twin zoo with other seeds and shifted grid values, of which only aggregate "
        "scores are published). The rank agreement (Kendall τ between the two columns over predictors) says how "
        "stable the ranking is.",
        f"- `#` is the rank by the ranking {psi} (ties share a rank; — : no ranking value). *(baseline)* marks the "
        "simple baselines; *(noise floor)* the seed oracle, which scores a model with the gap of another seed of the "
        "same configuration; *(reads hparams)* a predictor that reads the hyperparameters and so could look answers "
        "up in the published public zoo; *(not sandboxed)* a run without the sandbox; *(drift x)* beside a predictor "
        "that reads the trajectory: the task's median share of the recorded window explained by a linear drift "
        "(0 stationary, 1 pure drift).",
        f"- **beats best baseline**: *yes* when the predictor's ranking {psi} interval lies entirely above the best "
        "baseline's (its `ci_low` > the baseline's `ci_high`).",
        "- Cost columns: median seconds per model and the failure rate over all the task's models; failed models are "
        "left out of the scores (see *Failures*).",
        "",
        "| metric | column | better | what it measures | reference |",
        "| :--- | :--- | :--- | :--- | :--- |",
    ]
    for spec in METRICS.values():
        better = "higher" if spec.higher_is_better else "lower"
        lines.append(f"| {md_escape(spec.display)} ({_code(spec.name)}) | {md_escape(spec.short)} | {better} | "
                     f"{md_escape(spec.description)} | {md_escape(spec.reference) or '—'} |")
    return lines + [""]


def _failures(board: Board) -> list[str]:
    lines = ["## Failures", ""]
    if not board.failures:
        return lines + ["No predictor failed on any model.", ""]
    lines += ["| predictor | task | failed | most common reasons |", "| :--- | :--- | ---: | :--- |"]
    for f in board.failures:
        reasons = "; ".join(f"{md_escape(r)} (×{n})" for r, n in f.reasons)
        rate = METRICS["failure_rate"].format(f.n_failed / f.n_total if f.n_total else math.nan)
        lines.append(f"| {_code(f.predictor)} | {_code(f.task)} | {f.n_failed}/{f.n_total} ({rate}) | {reasons} |")
    return lines + [""]


def _notes(board: Board) -> list[str]:
    noted = sorted((p for p in board.predictors if p.notes), key=lambda p: p.predictor)
    if not noted:
        return []
    return ["## Protocol notes", ""] + [f"- {_code(p.predictor)}: {md_escape(p.notes)}" for p in noted] + [""]


def _predictors(board: Board) -> list[str]:
    lines = ["## Predictors", "",
             "| predictor | version | kind | family | requires | reference | code hash |",
             "| :--- | :--- | :--- | :--- | :--- | :--- | :--- |"]
    for p in sorted(board.predictors, key=lambda p: p.predictor):
        lines.append(
            f"| {_code(p.predictor)} | {md_escape(p.version)} | {md_escape(p.kind)} | {md_escape(p.family) or '—'} | "
            f"{md_escape(', '.join(p.requires)) or '—'} | {_link(p.reference, p) if p.reference else '—'} | "
            f"{_code(p.code_hash) if p.code_hash else '—'} |")
    return lines + [""]


def _downloads() -> list[str]:
    lines = ["## Data", "", "Every table the board is rendered from, in three formats (rows sorted by the table's key; "
             "the JSON files carry the column descriptions). `board_meta.json` names the zoos, commit and date.", "",
             "| table | what it holds | CSV | JSON | parquet |", "| :--- | :--- | :--- | :--- | :--- |"]
    for d in downloads():
        lines.append(f"| {_code(d.name)} | {md_escape(d.description)} | [{d.name}.csv]({d.csv}) | "
                     f"[{d.name}.json]({d.json}) | [{d.name}.parquet]({d.parquet}) |")
    return lines + ["", "[board\\_meta.json](data/board_meta.json)", ""]


def _cite(board: Board) -> list[str]:
    return ["## How to cite", "",
            "Cite the benchmark with the zoo, commit and date of the board you used "
            "(the repository's `CITATION.cff` describes the software):", "",
            "```bibtex", bibtex(board.meta).rstrip("\n"), "```", ""]


def _figures(board: Board) -> list[str]:
    lines = ["## Figures", "", f"![Cost vs {METRICS[RANK_METRIC].short}]({COST_FIGURE})", ""]
    for tb in board.tasks:
        if tb.axes:
            lines += [f"![{md_escape(METRICS[board.axis_metrics[0]].display) if board.axis_metrics else ''}, "
                      f"{md_escape(tb.task)}]({psi_axes_path(tb.task)})", ""]
    return lines


def _header(board: Board) -> list[str]:
    meta = board.meta
    sizes = ", ".join(f"{_code(t)} {n}" for t, n in sorted(meta.public.n_models.items()))
    lines = [
        "# gapbench leaderboard", "",
        "<!-- Generated by `gapbench leaderboard` from leaderboards/data/; do not edit by hand. -->", "",
        "How well do predictors of generalization rank trained models by their generalization gap? "
        "Open [index.html](index.html) for sortable tables with a filter, a target switch and score-vs-target "
        "plots per predictor; download every table as CSV or JSON ([Data](#data)); cite it with the BibTeX entry "
        "under [How to cite](#how-to-cite).", "",
        f"- public zoo: {_code(meta.public.zoo_id)} (spec {_code(meta.public.spec_name)}, content hash "
        f"{_code(meta.public.content_hash[:12])}); models per task: {sizes}",
    ]
    if meta.heldout is not None:
        lines.append(f"- held-out zoo (the official ranking; only aggregate scores are published): "
                     f"{_code(meta.heldout.zoo_id)} (spec {_code(meta.heldout.spec_name)})")
    lines += [
        f"- git commit: {_code(meta.git_commit)}; date: {md_escape(meta.date)}" +
        ("" if meta.sandboxed else "; **run without the sandbox**"),
        f"- predictors: {len(board.predictors)} ({sum(p.kind == 'baseline' for p in board.predictors)} baselines, "
        f"{sum(p.kind == 'oracle' for p in board.predictors)} noise floor); targets: "
        + ", ".join(target_label(t) for t in board.targets),
    ]
    trajectory = [p.predictor for p in board.predictors if p.uses_trajectory]
    if trajectory and board.drift:
        per_task = ", ".join(f"{_code(t)} {drift_text(v)}" for t, v in sorted(board.drift.items()) if t != OVERALL)
        lines.append(f"- trajectory window (read by {len(trajectory)} predictors): median drift share {per_task} "
                     "(0 stationary, 1 pure drift)")
    return lines + [""]


def render_markdown(board: Board) -> str:
    """The README.md text of ``board`` (deterministic: depends only on the board)."""
    lines = _header(board)
    first = board.targets[0]
    lines += [f"## {target_heading(first)}", "", target_intro(board, first), ""]
    for tb in board.boards[first]:
        lines += _task_table(board, tb)
    for target in board.targets[1:]:
        lines += _compact_target(board, target)
    lines += _figures(board)
    lines += _downloads()
    lines += _cite(board)
    lines += _how_to_read(board)
    lines += _failures(board)
    lines += _notes(board)
    lines += _predictors(board)
    return "\n".join(lines).rstrip("\n") + "\n"

