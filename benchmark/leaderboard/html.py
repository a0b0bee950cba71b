"""Render the board as one static ``index.html`` (inline CSS and JS, works offline from file://).

Every table is sortable by clicking a column header: numeric columns sort by the raw value kept
in each cell's ``data-v`` attribute (missing values last in both directions); the first click
puts the best values first (per the schema's ``higher_is_better``), the next click reverses.
Clicking a row opens that predictor's detail panel (all metrics, psi per axis, scatter plots).
"""

from __future__ import annotations

import math
from html import escape

from benchmark.leaderboard.assets import CSS, JS
from benchmark.leaderboard.figures import COST_FIGURE, psi_axes_path, scatter_path, scatter_tasks
from benchmark.leaderboard.markdown import TABLE_METRICS
from benchmark.leaderboard.tables import OVERALL, Board, PredictorInfo, Row, TaskBoard, kind_label, slug
from benchmark.schema import METRICS, SCORE_METRICS, MetricSpec

__all__ = ["detail_id", "render_html", "table_id"]


def detail_id(predictor: str) -> str:
    """The HTML id of a predictor's detail panel."""
    return f"p-{slug(predictor)}"


def table_id(task: str) -> str:
    """The HTML id of a task's table."""
    return f"board-{slug(task)}"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _v(value: float) -> str:
    """A sort key for ``data-v``: repr of the float, or "" when missing."""
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def _metric_td(spec: MetricSpec, value: float, low: float = math.nan, high: float = math.nan,
               *, key: bool = False) -> str:
    cls = ' class="key"' if key else ""
    text = spec.format(value)
    if text == "n/a":
        return f'<td{cls} data-v=""><span class="na">n/a</span></td>'
    ci = ""
    if math.isfinite(low) and math.isfinite(high):
        ci = f' <span class="ci">[{_e(spec.format(low))}, {_e(spec.format(high))}]</span>'
    return f'<td{cls} data-v="{_v(value)}">{_e(text)}{ci}</td>'


def _metric_th(spec: MetricSpec) -> str:
    first = "descending" if spec.higher_is_better else "ascending"
    better = "higher" if spec.higher_is_better else "lower"
    title = f"{spec.display} ({better} is better). {spec.description}"
    return f'<th data-metric="{_e(spec.name)}" data-first="{first}" title="{_e(title)}">{_e(spec.short)}</th>'


def _name_cell(name: str, kind: str) -> str:
    label = kind_label(kind)
    tag = f'<span class="tag tag-{_e(kind)}">{_e(label)}</span>' if label else ""
    return (f'<td class="text" data-v="{_e(name.lower())}"><a href="#{_e(detail_id(name))}">'
            f"<code>{_e(name)}</code></a>{tag}</td>")


def _beats_td(row: Row, tb: TaskBoard) -> str:
    if row.beats_best_baseline is None:
        return '<td class="text" data-v=""><span class="na">—</span></td>'
    if row.beats_best_baseline:
        return (f'<td class="text" data-v="1" title="Ψ interval above {_e(tb.best_baseline)}&#39;s">'
                '<span class="beats">✓ yes</span></td>')
    return '<td class="text" data-v="0">no</td>'


def _task_section(tb: TaskBoard) -> str:
    title = "Overall (all tasks)" if tb.task == OVERALL else f"Task <code>{_e(tb.task)}</code>"
    out = [f'<section id="task-{_e(slug(tb.task))}"><h2>{title}</h2>']
    note = f"Zoo size: {tb.zoo_size} models."
    if tb.best_baseline is not None:
        best = next(r for r in tb.rows if r.predictor == tb.best_baseline)
        c = best.cell("psi")
        interval = METRICS["psi"].format(c.value)
        if math.isfinite(c.low) and math.isfinite(c.high):
            interval += f" [{METRICS['psi'].format(c.low)}, {METRICS['psi'].format(c.high)}]"
        note += f" Best baseline: <code>{_e(tb.best_baseline)}</code>, Ψ {_e(interval)}."
    out.append(f'<p class="note">{note} Click a column header to sort, a row for details.</p>')
    out.append(f'<div class="tablewrap"><table class="sortable board" id="{_e(table_id(tb.task))}">')
    heads = ['<th data-first="ascending" title="Rank by Ψ">#</th>',
             '<th class="text" data-first="ascending">predictor</th>']
    heads += [_metric_th(METRICS[m]) for m in TABLE_METRICS]
    heads += [_metric_th(METRICS["seconds_per_model"]), _metric_th(METRICS["failure_rate"])]
    heads += ['<th data-first="descending" title="Models with a score (converged, not failed)">n</th>',
              '<th class="text" data-first="ascending">version</th>',
              '<th class="text" data-first="descending" title="Ψ interval entirely above the best '
              'baseline&#39;s (ci_low &gt; its ci_high)">beats baseline</th>']
    psi_col = 2 + TABLE_METRICS.index("psi")
    heads[psi_col] = heads[psi_col].replace("<th ", '<th aria-sort="descending" ', 1)
    out.append("<thead><tr>" + "".join(heads) + "</tr></thead><tbody>")
    for rank, row in enumerate(tb.rows, start=1):
        tds = [f'<td data-v="{rank}">{rank}</td>', _name_cell(row.predictor, row.kind)]
        for m in TABLE_METRICS:
            c = row.cell(m)
            tds.append(_metric_td(METRICS[m], c.value, c.low, c.high, key=m == "psi"))
        tds.append(_metric_td(METRICS["seconds_per_model"], row.seconds_per_model))
        tds.append(_metric_td(METRICS["failure_rate"], row.failure_rate))
        tds.append(f'<td data-v="{row.n_models_scored}">{row.n_models_scored}</td>')
        tds.append(f'<td class="text" data-v="{_e(row.version)}">{_e(row.version)}</td>')
        tds.append(_beats_td(row, tb))
        out.append(
            f'<tr class="kind-{_e(row.kind)}" data-predictor="{_e(row.predictor)}" '
            f'data-detail="{_e(detail_id(row.predictor))}">' + "".join(tds) + "</tr>"
        )
    out.append("</tbody></table></div></section>")
    return "\n".join(out)


def _detail(board: Board, info: PredictorInfo) -> str:
    name = info.predictor
    label = kind_label(info.kind)
    tag = f' <span class="tag tag-{_e(info.kind)}">{_e(label)}</span>' if label else ""
    out = [f'<section class="detail" id="{_e(detail_id(name))}">',
           f"<h2><code>{_e(name)}</code>{tag}</h2>", "<dl>"]
    fields = [("version", info.version), ("kind", info.kind), ("family", info.family),
              ("requires", info.requires), ("reference", info.reference), ("code hash", info.code_hash),
              ("notes", info.notes)]
    for key, value in fields:
        if value:
            out.append(f"<dt>{_e(key)}</dt><dd>{_e(value)}</dd>")
    out.append("</dl>")

    # every score metric per task
    out.append("<h3>All metrics (95% intervals)</h3>")
    out.append('<div class="tablewrap"><table class="sortable"><thead><tr>'
               '<th class="text" data-first="ascending">task</th>')
    metrics = [m for m in SCORE_METRICS if m != "psi_axis"]
    out.append("".join(_metric_th(METRICS[m]) for m in metrics))
    out.append(_metric_th(METRICS["seconds_per_model"]) + _metric_th(METRICS["failure_rate"]))
    out.append("</tr></thead><tbody>")
    for tb in board.tasks:
        row = next((r for r in tb.rows if r.predictor == name), None)
        if row is None:
            continue
        tds = [f'<td class="text" data-v="{_e(tb.task)}">{_e(tb.task)}</td>']
        for m in metrics:
            c = row.cell(m)
            tds.append(_metric_td(METRICS[m], c.value, c.low, c.high))
        tds.append(_metric_td(METRICS["seconds_per_model"], row.seconds_per_model))
        tds.append(_metric_td(METRICS["failure_rate"], row.failure_rate))
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")

    # psi per axis: axes x tasks
    axes = sorted({a for tb in board.tasks for a in tb.psi_axis.get(name, {})})
    if axes:
        tasks = [tb for tb in board.tasks if name in tb.psi_axis]
        out.append("<h3>ψ per hyperparameter axis</h3>")
        out.append('<div class="tablewrap"><table class="sortable"><thead><tr>'
                   '<th class="text" data-first="ascending">axis</th>')
        for tb in tasks:
            out.append(f'<th data-first="descending">{_e(tb.task)}</th>')
        out.append("</tr></thead><tbody>")
        for axis in axes:
            tds = [f'<td class="text" data-v="{_e(axis)}">{_e(axis)}</td>']
            for tb in tasks:
                c = tb.psi_axis[name].get(axis)
                if c is None:
                    tds.append('<td data-v=""><span class="na">n/a</span></td>')
                else:
                    tds.append(_metric_td(METRICS["psi_axis"], c.value, c.low, c.high))
            out.append("<tr>" + "".join(tds) + "</tr>")
        out.append("</tbody></table></div>")

    # scatter plots
    out.append("<h3>Score vs generalization gap</h3>")
    tasks_with_plots = scatter_tasks(board, name)
    if tasks_with_plots:
        out.append('<div class="plots">')
        for task in tasks_with_plots:
            src = scatter_path(name, task)
            out.append(f'<figure><img src="{_e(src)}" alt="{_e(name)} score vs gap on {_e(task)}" '
                       f'width="420" height="320" loading="lazy"><figcaption>{_e(task)}</figcaption></figure>')
        out.append("</div>")
    missing = [tb.task for tb in board.tasks if tb.task != OVERALL and tb.task not in tasks_with_plots]
    if missing:
        out.append(f'<p class="muted">No scored models (all failed or none converged) on: '
                   f'{_e(", ".join(missing))}.</p>')
    out.append('<p><a href="#top">back to the tables</a></p></section>')
    return "\n".join(out)


def _how_to_read() -> str:
    out = ['<section id="how"><h2>How to read this</h2><ul class="note">',
           "<li>The target is the <b>generalization gap</b> (test error − train error) of converged models; "
           "a predictor should score models with a larger gap higher.</li>",
           "<li>Numbers come with <b>95% bootstrap intervals</b> (configurations resampled), in grey. "
           "Rows whose intervals overlap are not distinguishable on this zoo.</li>",
           '<li><span class="tag tag-baseline">baseline</span> marks the simple baselines; '
           '<span class="tag tag-oracle">noise floor</span> marks the seed oracle, which scores a model '
           "with the gap of another seed of the same configuration: it shows how much of the ranking "
           "seed noise leaves to be predicted at all.</li>",
           '<li><b>beats baseline</b> <span class="beats">✓ yes</span>: the predictor&#39;s Ψ interval '
           "lies entirely above the best baseline&#39;s (its ci_low &gt; the baseline&#39;s ci_high).</li>",
           "<li>Cost: median seconds per model and failure rate over the task&#39;s models; failed "
           "models are left out of the scores.</li></ul>",
           '<dl class="metrics">']
    for spec in METRICS.values():
        better = "higher is better" if spec.higher_is_better else "lower is better"
        ref = f" <i>{_e(spec.reference)}</i>" if spec.reference else ""
        out.append(f'<dt id="metric-{_e(spec.name)}">{_e(spec.display)} <code>{_e(spec.name)}</code> '
                   f'<span class="muted">({_e(spec.short)}, {better})</span></dt>'
                   f"<dd>{_e(spec.description)}{ref}</dd>")
    out.append("</dl></section>")
    return "\n".join(out)


def _failures_and_notes(board: Board) -> str:
    out = ['<section id="failures"><h2>Failures</h2>']
    if not board.failures:
        out.append('<p class="note">No predictor failed on any model.</p>')
    else:
        out.append('<div class="tablewrap"><table class="sortable"><thead><tr>'
                   '<th class="text" data-first="ascending">predictor</th>'
                   '<th class="text" data-first="ascending">task</th>'
                   '<th data-first="descending">failed</th>'
                   f'{_metric_th(METRICS["failure_rate"])}'
                   '<th class="text" data-first="ascending">most common reasons</th></tr></thead><tbody>')
        for f in board.failures:
            rate = f.n_failed / f.n_total if f.n_total else math.nan
            reasons = "; ".join(f"{r} (×{n})" for r, n in f.reasons)
            out.append(
                f'<tr><td class="text" data-v="{_e(f.predictor)}"><code>{_e(f.predictor)}</code></td>'
                f'<td class="text" data-v="{_e(f.task)}">{_e(f.task)}</td>'
                f'<td data-v="{f.n_failed}">{f.n_failed}/{f.n_total}</td>'
                f"{_metric_td(METRICS['failure_rate'], rate)}"
                f'<td class="text">{_e(reasons)}</td></tr>'
            )
        out.append("</tbody></table></div>")
    out.append("</section>")
    noted = sorted((p for p in board.predictors if p.notes), key=lambda p: p.predictor)
    if noted:
        out.append('<section id="notes"><h2>Protocol notes</h2><ul class="note">')
        for p in noted:
            out.append(f"<li><code>{_e(p.predictor)}</code>: {_e(p.notes)}</li>")
        out.append("</ul></section>")
    return "\n".join(out)


def render_html(board: Board) -> str:
    """The index.html text of ``board`` (deterministic: depends only on the board)."""
    meta = board.meta
    sizes = ", ".join(f"{_e(t)} {n}" for t, n in sorted(meta.n_models.items()))
    nav = " ".join(
        f'<a href="#task-{_e(slug(tb.task))}">{_e(tb.task)}</a>' for tb in board.tasks
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>gapbench leaderboard: {_e(meta.zoo_id)}</title>",
        "<!-- Generated by `gapbench leaderboard`; do not edit by hand. -->",
        f"<style>{CSS}</style></head><body>",
        '<header id="top"><h1>gapbench leaderboard</h1>',
        "<p>How well do predictors of generalization rank trained models by their generalization gap?</p>",
        f"<p>Zoo <code>{_e(meta.zoo_id)}</code> (spec <code>{_e(meta.spec_name)}</code>) · models per task: "
        f"{sizes} · commit <code>{_e(meta.git_commit[:12])}</code> · {_e(meta.date)}</p>",
        f'<nav>{nav} <a href="#figures">figures</a> <a href="#how">how to read this</a> '
        '<a href="#failures">failures</a></nav></header><main>',
    ]
    parts += [_task_section(tb) for tb in board.tasks]
    parts.append('<div id="details">')
    parts += [_detail(board, info) for info in board.predictors]
    parts.append("</div>")
    figs = [f'<img src="{COST_FIGURE}" alt="cost vs Psi" width="640" height="400" loading="lazy">']
    for tb in board.tasks:
        if tb.axes:
            figs.append(f'<img src="{_e(psi_axes_path(tb.task))}" alt="psi per axis, {_e(tb.task)}" loading="lazy">')
    parts.append('<section id="figures"><h2>Figures</h2><div class="figs">' + "".join(figs) + "</div></section>")
    parts.append(_how_to_read())
    parts.append(_failures_and_notes(board))
    parts.append(
        f'</main><footer>Generated from the score tables of zoo <code>{_e(meta.zoo_id)}</code> at '
        f"commit <code>{_e(meta.git_commit)}</code>. Intervals are 95% bootstrap intervals.</footer>"
    )
    parts.append(f"<script>{JS}</script></body></html>")
    return "\n".join(parts) + "\n"
