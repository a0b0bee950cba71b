"""Render the board as one static ``index.html`` (inline CSS, JS and data; works offline from file://).

The page has a toolbar (target switch, filter by name / family / kind, the hyperparameter that
colours the scatter plots), one set of tables per target (the gap's shown first), the predictors
with links to their papers, a detail panel per predictor (every metric on every target and zoo,
psi per axis, score-vs-target scatters drawn from the embedded data), the figures, the downloads,
the BibTeX entry, the reading guide and the failures. See :mod:`benchmark.leaderboard.assets`.
"""

from __future__ import annotations

import json
import math
from html import escape

import matplotlib
from matplotlib.colors import to_hex

from benchmark.leaderboard.assets import CSS, JS
from benchmark.leaderboard.board import RANK_METRIC, Board, PredictorInfo, Row, TaskBoard
from benchmark.leaderboard.exports import bibtex, downloads
from benchmark.leaderboard.figures import COST_FIGURE, psi_axes_path
from benchmark.leaderboard.tables import HELDOUT, KINDS, OVERALL, PUBLIC, slug, target_doc, target_label
from benchmark.leaderboard.text import (
    agreement_text,
    drift_text,
    heldout_header,
    marks,
    n_units_doc,
    ranked_by_text,
    target_intro,
    units_text,
    units_title,
)
from benchmark.metrics.catalog import METRICS, MetricSpec

__all__ = ["detail_id", "render_html", "scatter_data", "table_id"]


def detail_id(predictor: str) -> str:
    """The HTML id of a predictor's detail panel."""
    return f"p-{slug(predictor)}"


def table_id(task: str, target: str = "gap") -> str:
    """The HTML id of a (target, task) table."""
    return f"board-{slug(target)}-{slug(task)}"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _v(value: float) -> str:
    """A sort key for ``data-v``: repr of the float, or "" when missing."""
    return "" if value is None or not math.isfinite(value) else repr(float(value))


def _metric_td(spec: MetricSpec, value: float, low: float = math.nan, high: float = math.nan, *, units: str = "",
               units_title: str = "", key: bool = False) -> str:
    cls = ' class="key"' if key else ""
    text = spec.format(value)
    if text == "n/a":
        return f'<td{cls} data-v=""><span class="na">n/a</span></td>'
    ci = ""
    if math.isfinite(low) and math.isfinite(high):
        ci = f'<span class="ci">[{_e(spec.format(low))}, {_e(spec.format(high))}]</span>'
    nu = f'<span class="nu" title="{_e(units_title)}">{_e(units)}</span>' if units else ""
    return f'<td{cls} data-v="{_v(value)}"><span class="v">{_e(text)}</span>{ci}{nu}</td>'


def _cell_td(metric: str, row: Row, *, heldout: bool = False, key: bool = False) -> str:
    c = row.heldout_cell(metric) if heldout else row.cell(metric)
    return _metric_td(METRICS[metric], c.value, c.low, c.high, units=units_text(c),
                      units_title=units_title(metric, c), key=key)


def _metric_th(spec: MetricSpec, label: str | None = None, extra: str = "") -> str:
    first = "descending" if spec.higher_is_better else "ascending"
    better = "higher" if spec.higher_is_better else "lower"
    unit = f" n: {spec.unit}." if spec.unit else ""
    title = f"{spec.display} ({better} is better). {spec.description}{unit}"
    label = label or spec.short
    return (f'<th data-metric="{_e(spec.name)}" data-first="{first}" data-label="{_e(label)}" title="{_e(title)}"'
            f"{extra}>{_e(label)}</th>")


def _tags(info: PredictorInfo, tb: TaskBoard | None) -> str:
    tags = "".join(f'<span class="tag {_e(m.css)}" title="{_e(m.title)}">{_e(m.label)}</span>' for m in marks(info, tb))
    return f'<span class="tags">{tags}</span>' if tags else ""


def _name_td(info: PredictorInfo, tb: TaskBoard) -> str:
    name = info.predictor
    return (f'<td class="text name" data-v="{_e(name.lower())}"><a href="#{_e(detail_id(name))}">'
            f"<code>{_breakable(name)}</code></a>{_tags(info, tb)}</td>")


def _breakable(name: str) -> str:
    """The escaped name with a line-break opportunity after each underscore (narrow screens)."""
    return "_<wbr>".join(_e(part) for part in name.split("_"))


def _beats_td(row: Row, tb: TaskBoard) -> str:
    if row.beats_best_baseline is None:
        return '<td class="text" data-v=""><span class="na">—</span></td>'
    if row.beats_best_baseline:
        return (f'<td class="text" data-v="1" title="{_e(METRICS[RANK_METRIC].short)} interval above '
                f'{_e(tb.best_baseline)}&#39;s"><span class="beats">✓ yes</span></td>')
    return '<td class="text" data-v="0">no</td>'


def _row_attrs(info: PredictorInfo, extra: str = "") -> str:
    return (f'data-predictor="{_e(info.predictor)}" data-family="{_e(info.family)}" data-kind="{_e(info.kind)}"'
            f"{extra}")


def _task_section(board: Board, tb: TaskBoard) -> str:
    title = "Overall (all tasks)" if tb.task == OVERALL else f"Task <code>{_e(tb.task)}</code>"
    out = [f'<section id="{_e(slug(tb.target))}-{_e(slug(tb.task))}"><h3>{title}</h3>']
    psi = METRICS[RANK_METRIC]
    note = f"Zoo size: {tb.size_text}. Ranked by {_e(ranked_by_text(tb))}."
    if tb.best_baseline is not None:
        c = tb.ranking_cell(tb.row(tb.best_baseline))
        interval = psi.format(c.value) + (f" [{psi.format(c.low)}, {psi.format(c.high)}]"
                                          if math.isfinite(c.low) and math.isfinite(c.high) else "")
        note += f" Best baseline: <code>{_e(tb.best_baseline)}</code>, {_e(psi.short)} {_e(interval)}."
    if tb.agreement is not None:
        note += f' <span class="agreement">{_e(agreement_text(tb))}</span>'
    rank_label = heldout_header() if tb.ranked_by == HELDOUT else psi.short
    out.append(f'<p class="note">{note} <span class="muted"># ranks by <b class="rank-by">{_e(rank_label)}</b>; '
               "click a header to sort, a row for details.</span></p>")
    out.append(f'<div class="tablewrap"><table class="sortable board" id="{_e(table_id(tb.task, tb.target))}" '
               'data-rank-col="0">')
    heads = ['<th class="rank" data-first="ascending" data-label="#" title="Rank by the sorted column (ties share a '
             'rank)">#</th>',
             '<th class="text name" data-first="ascending">predictor</th>']
    sorted_by = ' aria-sort="descending"'
    if tb.has_heldout:
        heads.append(_metric_th(psi, heldout_header(), sorted_by if tb.ranked_by == HELDOUT else ""))
    for m in board.metrics:
        label = f"{METRICS[m].short} public" if tb.has_heldout and m == RANK_METRIC else None
        heads.append(_metric_th(METRICS[m], label, sorted_by if m == RANK_METRIC and tb.ranked_by == PUBLIC else ""))
    heads += [_metric_th(METRICS["seconds_per_model"]), _metric_th(METRICS["failure_rate"]),
              '<th data-first="descending" title="Models with a score (converged, not failed)">n</th>',
              f'<th class="text" data-first="descending" title="Ranking {_e(psi.short)} interval entirely above the '
              f'best baseline&#39;s (ci_low &gt; its ci_high)">beats baseline</th>']
    out.append("<thead><tr>" + "".join(heads) + "</tr></thead><tbody>")
    for row in tb.rows:
        info = board.info(row.predictor)
        rank = "" if row.rank is None else str(row.rank)
        tds = [f'<td class="rank" data-v="{rank}">{rank or "—"}</td>', _name_td(info, tb)]
        if tb.has_heldout:
            tds.append(_cell_td(RANK_METRIC, row, heldout=True, key=tb.ranked_by == HELDOUT))
        tds += [_cell_td(m, row, key=m == RANK_METRIC and tb.ranked_by == PUBLIC) for m in board.metrics]
        tds.append(_metric_td(METRICS["seconds_per_model"], row.seconds_per_model))
        tds.append(_metric_td(METRICS["failure_rate"], row.failure_rate))
        tds.append(f'<td data-v="{row.n_models_scored}">{row.n_models_scored}</td>')
        tds.append(_beats_td(row, tb))
        out.append(f'<tr class="kind-{_e(row.kind)}" {_row_attrs(info)} data-detail="{_e(detail_id(row.predictor))}">'
                   + "".join(tds) + "</tr>")
    out.append("</tbody></table></div></section>")
    return "\n".join(out)


def _target_view(board: Board, target: str, first: bool) -> str:
    hidden = "" if first else " hidden"
    out = [f'<div class="target-view" data-target-view="{_e(target)}"{hidden}>',
           f'<h2 id="target-{_e(slug(target))}">Target: {_e(target_label(target))}</h2>',
           f'<p class="note">{_e(target_intro(board, target))}</p>']
    out += [_task_section(board, tb) for tb in board.boards[target]]
    out.append("</div>")
    return "\n".join(out)


def _reference(info: PredictorInfo) -> str:
    if not info.reference:
        return '<span class="na">—</span>'
    if info.link:
        return f'<a href="{_e(info.link)}" rel="noopener">{_e(info.reference)}</a>'
    return _e(info.reference)


def _predictors_section(board: Board) -> str:
    out = ['<section id="predictors"><h2>Predictors</h2>',
           '<p class="note">Each reference links to its paper where the predictor declares one.</p>',
           '<div class="tablewrap"><table class="sortable" id="predictors-table"><thead><tr>',
           '<th class="text" data-first="ascending">predictor</th><th class="text" data-first="ascending">version</th>'
           '<th class="text" data-first="ascending">kind</th><th class="text" data-first="ascending">family</th>'
           '<th class="text" data-first="ascending">requires</th><th class="text" data-first="ascending">reference</th>'
           '<th class="text" data-first="ascending">code hash</th></tr></thead><tbody>']
    for p in sorted(board.predictors, key=lambda p: p.predictor):
        out.append(
            f"<tr {_row_attrs(p)}><td class=\"text\" data-v=\"{_e(p.predictor.lower())}\">"
            f'<a href="#{_e(detail_id(p.predictor))}"><code>{_e(p.predictor)}</code></a>{_tags(p, None)}</td>'
            f'<td class="text">{_e(p.version)}</td><td class="text">{_e(p.kind)}</td>'
            f'<td class="text">{_e(p.family) or "—"}</td><td class="text">{_e(", ".join(p.requires)) or "—"}</td>'
            f'<td class="text">{_reference(p)}</td><td class="text"><code>{_e(p.code_hash) or "—"}</code></td></tr>')
    out.append("</tbody></table></div></section>")
    return "\n".join(out)


def _detail(board: Board, info: PredictorInfo) -> str:
    name = info.predictor
    out = [f'<section class="detail" id="{_e(detail_id(name))}">', f"<h2><code>{_e(name)}</code></h2>",
           _tags(info, None), "<dl>"]
    fields = [("version", _e(info.version)), ("kind", _e(info.kind)), ("family", _e(info.family)),
              ("requires", _e(", ".join(info.requires))), ("reference", _reference(info) if info.reference else ""),
              ("code hash", f"<code>{_e(info.code_hash)}</code>" if info.code_hash else ""),
              ("sandboxed", "yes" if info.sandboxed else "<b>no</b> (run with --no-sandbox)"),
              ("notes", _e(info.notes))]
    out += [f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in fields if v]
    out.append("</dl>")
    out.append("<h3>All metrics (95% intervals)</h3>")
    out.append('<div class="tablewrap"><table class="sortable"><thead><tr>'
               '<th class="text" data-first="ascending">target</th><th class="text" data-first="ascending">zoo</th>'
               '<th class="text" data-first="ascending">task</th>'
               + "".join(_metric_th(METRICS[m]) for m in board.metrics)
               + _metric_th(METRICS["seconds_per_model"]) + _metric_th(METRICS["failure_rate"])
               + "</tr></thead><tbody>")
    for target in board.targets:
        for split in (PUBLIC, HELDOUT):
            for tb in board.boards[target]:
                row = tb.row(name)
                if row is None or (split == HELDOUT and not row.heldout):
                    continue
                tds = [f'<td class="text">{_e(target_label(target))}</td>',
                       f'<td class="text">{"held-out" if split == HELDOUT else "public"}</td>',
                       f'<td class="text">{_e(tb.task)}</td>']
                tds += [_cell_td(m, row, heldout=split == HELDOUT) for m in board.metrics]
                tds.append(_metric_td(METRICS["seconds_per_model"], row.seconds_per_model if split == PUBLIC
                                      else math.nan))
                tds.append(_metric_td(METRICS["failure_rate"], row.failure_rate if split == PUBLIC else math.nan))
                out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody></table></div>")
    axes = sorted({a for tb in board.tasks for a in tb.psi_axis.get(name, {})})
    if axes and board.axis_metrics:
        spec = METRICS[board.axis_metrics[0]]
        tasks = [tb for tb in board.tasks if name in tb.psi_axis]
        out.append(f"<h3>{_e(spec.display)} (public zoo, target {_e(target_label(board.targets[0]))})</h3>")
        out.append('<div class="tablewrap"><table class="sortable"><thead><tr>'
                   '<th class="text" data-first="ascending">axis</th>'
                   + "".join(f'<th data-first="descending">{_e(tb.task)}</th>' for tb in tasks)
                   + "</tr></thead><tbody>")
        for axis in axes:
            tds = [f'<td class="text" data-v="{_e(axis)}">{_e(axis)}</td>']
            for tb in tasks:
                c = tb.psi_axis[name].get(axis)
                tds.append('<td data-v=""><span class="na">n/a</span></td>' if c is None
                           else _metric_td(spec, c.value, c.low, c.high))
            out.append("<tr>" + "".join(tds) + "</tr>")
        out.append("</tbody></table></div>")
    out.append("<h3>Score vs target</h3>")
    out.append('<p class="note">One point per converged model scored; the target and the colouring follow the '
               "toolbar. Hover a point for its model and hyperparameter.</p>")
    out.append(f'<div class="plots" data-predictor="{_e(name)}"><noscript>The plots need JavaScript; the points are '
               "in data/points.csv.</noscript></div>")
    out.append('<p><a href="#top">back to the tables</a></p></section>')
    return "\n".join(out)


def _numeric_order(values: list[str]) -> list[str]:
    try:
        return sorted(values, key=lambda v: (float(v), v))
    except ValueError:
        return sorted(values)


def _colours(n: int, numeric: bool) -> list[str]:
    if not numeric:
        cmap = matplotlib.colormaps["tab10"]
        return [to_hex(cmap(i % 10)) for i in range(n)]
    cmap = matplotlib.colormaps["viridis"]
    return [to_hex(cmap(0.45 if n == 1 else 0.9 * i / (n - 1))) for i in range(n)]


def _short(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(format(float(x), ".6g"))


def scatter_data(board: Board) -> dict:
    """The data the page's scatter plots are drawn from (deterministic, compact)."""
    pts = board.points
    hp_values: dict[str, set[str]] = {}
    varies: dict[str, int] = {}  # axis -> number of tasks in which it takes several values
    tasks: dict[str, dict] = {}
    for task, group in pts.groupby("task", sort=True):
        models = group.drop_duplicates("model_id").sort_values("model_id")
        hps = [json.loads(h) if isinstance(h, str) else {} for h in models["hp"]]
        seen: dict[str, set[str]] = {}
        for hp in hps:
            for axis, value in hp.items():
                hp_values.setdefault(axis, set()).add(str(value))
                seen.setdefault(axis, set()).add(str(value))
        for axis, values in seen.items():
            varies[axis] = varies.get(axis, 0) + (len(values) > 1)
        tasks[str(task)] = {"models": list(models["model_id"]), "hp": hps,
                            "targets": {t: [_short(v) for v in models[t]] for t in board.targets if t in models}}
    levels = {}
    for axis, values in sorted(hp_values.items()):
        ordered = _numeric_order(sorted(values))
        numeric = all(_is_number(v) for v in ordered)
        levels[axis] = {"values": ordered, "colours": _colours(len(ordered), numeric)}
    scores: dict[str, dict[str, list]] = {}
    for task, info in tasks.items():
        index = {m: i for i, m in enumerate(info["models"])}
        info["hp"] = {axis: [levels[axis]["values"].index(str(hp[axis])) if axis in hp else None for hp in info["hp"]]
                      for axis in levels}
        sel = pts[pts["task"] == task]
        for pred, group in sel.groupby("predictor", sort=True):
            scores.setdefault(str(pred), {})[task] = [[index[m], _short(s)] for m, s in zip(group["model_id"],
                                                                                             group["score"])]
    stats: dict[str, dict[str, dict[str, str]]] = {}
    for target, tbs in board.boards.items():
        for tb in tbs:
            for row in tb.rows:
                parts = [f"{METRICS[m].short} {METRICS[m].format(row.cell(m).value)}"
                         for m in ("kendall_tau", RANK_METRIC) if m in board.metrics]
                stats.setdefault(row.predictor, {}).setdefault(target, {})[tb.task] = ", ".join(parts)
    # the default colouring: the axis that varies within the most tasks (a grid axis), ties by name
    default = min(levels, key=lambda a: (-varies.get(a, 0), -len(levels[a]["values"]), a)) if levels else ""
    return {"targets": {t: target_label(t) for t in board.targets}, "defaultTarget": board.targets[0],
            "defaultAxis": default, "levels": levels, "tasks": tasks, "scores": scores,
            "stats": stats, "nPredictors": len(board.predictors)}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _json_script(data: dict) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="board-data">{text}</script>'


def _toolbar(board: Board, axes: list[str], default: str) -> str:
    targets = "".join(
        f'<label title="{_e(target_doc(t))}"><input type="radio" name="target" value="{_e(t)}"'
        f'{" checked" if i == 0 else ""}> {_e(target_label(t))}</label>' for i, t in enumerate(board.targets))
    families = sorted({p.family for p in board.predictors if p.family})
    kinds = [k for k in KINDS if any(p.kind == k for p in board.predictors)]
    fam = "".join(f'<option value="{_e(f)}">{_e(f)}</option>' for f in families)
    kind = "".join(f'<option value="{_e(k)}">{_e(k)}</option>' for k in kinds)
    colour = "".join(f'<option value="{_e(a)}"{" selected" if a == default else ""}>{_e(a)}</option>' for a in axes)
    return ('<div class="toolbar" id="toolbar">'
            f'<fieldset id="target-switch"><legend>Target</legend>{targets}</fieldset>'
            '<label>Search <input type="search" id="filter-name" placeholder="predictor name" '
            'aria-label="filter predictors by name"></label>'
            f'<label>Family <select id="filter-family"><option value="">all</option>{fam}</select></label>'
            f'<label>Kind <select id="filter-kind"><option value="">all</option>{kind}</select></label>'
            + (f'<label>Colour plots by <select id="colour-by">{colour}</select></label>' if axes else "")
            + '<span id="filter-count" aria-live="polite"></span></div>')


def _how_to_read(board: Board) -> str:
    psi = METRICS[RANK_METRIC].short
    out = ['<section id="how"><h2>How to read this</h2><ul class="note">',
           "<li>A predictor should score models with a larger <b>generalization gap</b> (test error − train error) "
           "higher. The switch above ranks the same scores against the test error, and (audio) the error on held-out "
           "speakers.</li>",
           "<li>Numbers come with <b>95% bootstrap intervals</b>, in grey below the value; rows whose intervals "
           f"overlap are not distinguishable on this zoo. <span class=\"nu\">n=12</span>: the number of units a value "
           f"averages over, shown when they are not the models scored ({_e(n_units_doc())}).</li>",
           f"<li><b>Public and held-out</b>: the public zoo is for development; the official ranking is the held-out "
           f"{_e(psi)} (a twin zoo with other seeds and shifted grid values; only aggregate scores are published). "
           "The rank agreement (Kendall τ between the two over predictors) says how stable the ranking is.</li>",
           '<li><span class="tag">baseline</span> simple baselines; <span class="tag tag-oracle">noise floor</span> '
           "the seed oracle (another seed&#39;s gap); <span class=\"tag tag-hparams\">reads hparams</span> reads the "
           "hyperparameters, so it could look answers up in the published public zoo; "
           '<span class="tag tag-unsandboxed">not sandboxed</span> run without the sandbox; '
           '<span class="tag tag-drift">drift x</span> reads the trajectory: the task&#39;s median share of the '
           "recorded window explained by a linear drift (0 stationary, 1 pure drift).</li>",
           f"<li><b>#</b> ranks by the sorted column (ties share a rank). <b>beats baseline</b> "
           f'<span class="beats">✓ yes</span>: the ranking {_e(psi)} interval lies entirely above the best '
           "baseline&#39;s.</li>",
           "<li>Cost: median seconds per model and failure rate over the task&#39;s models; failed models are left "
           "out of the scores.</li></ul>",
           '<dl class="metrics">']
    for spec in METRICS.values():
        better = "higher is better" if spec.higher_is_better else "lower is better"
        ref = f" <i>{_e(spec.reference)}</i>" if spec.reference else ""
        out.append(f'<dt id="metric-{_e(spec.name)}">{_e(spec.display)} <code>{_e(spec.name)}</code> '
                   f'<span class="muted">({_e(spec.short)}, {better})</span></dt><dd>{_e(spec.description)}{ref}</dd>')
    out.append("</dl></section>")
    return "\n".join(out)


def _failures_and_notes(board: Board) -> str:
    out = ['<section id="failures"><h2>Failures</h2>']
    if not board.failures:
        out.append('<p class="note">No predictor failed on any model.</p>')
    else:
        out.append('<div class="tablewrap"><table class="sortable"><thead><tr>'
                   '<th class="text" data-first="ascending">predictor</th><th class="text" data-first="ascending">'
                   'task</th><th data-first="descending">failed</th>' + _metric_th(METRICS["failure_rate"])
                   + '<th class="text" data-first="ascending">most common reasons</th></tr></thead><tbody>')
        for f in board.failures:
            rate = f.n_failed / f.n_total if f.n_total else math.nan
            reasons = "; ".join(f"{r} (×{n})" for r, n in f.reasons)
            out.append(f'<tr><td class="text" data-v="{_e(f.predictor)}"><code>{_e(f.predictor)}</code></td>'
                       f'<td class="text" data-v="{_e(f.task)}">{_e(f.task)}</td>'
                       f'<td data-v="{f.n_failed}">{f.n_failed}/{f.n_total}</td>'
                       f"{_metric_td(METRICS['failure_rate'], rate)}"
                       f'<td class="text" style="white-space: normal">{_e(reasons)}</td></tr>')
        out.append("</tbody></table></div>")
    out.append("</section>")
    noted = sorted((p for p in board.predictors if p.notes), key=lambda p: p.predictor)
    if noted:
        out.append('<section id="notes"><h2>Protocol notes</h2><ul class="note">')
        out += [f"<li><code>{_e(p.predictor)}</code>: {_e(p.notes)}</li>" for p in noted]
        out.append("</ul></section>")
    return "\n".join(out)


def _data_and_cite(board: Board) -> str:
    out = ['<section id="data"><h2>Data</h2>',
           '<p class="note">Every table the board is rendered from, in three formats (rows sorted by the table&#39;s '
           "key; the JSON files carry the column descriptions). "
           '<a href="data/board_meta.json">board_meta.json</a> names the zoos, commit and date.</p>',
           '<div class="tablewrap"><table id="downloads"><thead><tr><th class="text">table</th>'
           '<th class="text">what it holds</th><th class="text">download</th></tr></thead><tbody>']
    for d in downloads():
        out.append(f'<tr><td class="text"><code>{_e(d.name)}</code></td>'
                   f'<td class="text" style="white-space: normal">{_e(d.description)}</td>'
                   f'<td class="text"><a href="{_e(d.csv)}" download>CSV</a> · <a href="{_e(d.json)}" download>JSON</a>'
                   f' · <a href="{_e(d.parquet)}" download>parquet</a></td></tr>')
    out.append("</tbody></table></div></section>")
    out.append('<section id="cite"><h2>How to cite</h2><p class="note">Cite the benchmark with the zoo, commit and '
               "date of the board you used (the repository&#39;s CITATION.cff describes the software):</p>"
               f'<pre id="bibtex"><code>{_e(bibtex(board.meta).rstrip())}</code></pre></section>')
    return "\n".join(out)


def _header(board: Board) -> str:
    meta = board.meta
    sizes = ", ".join(f"{_e(t)} {n}" for t, n in sorted(meta.public.n_models.items()))
    held = ""
    if meta.heldout is not None:
        held = (f" · held-out zoo <code>{_e(meta.heldout.zoo_id)}</code> (the official ranking; aggregate scores "
                "only)")
    drift = ""
    if any(p.uses_trajectory for p in board.predictors) and board.drift:
        drift = ("<p>Trajectory window, median drift share per task: " + ", ".join(
            f"{_e(t)} {drift_text(v)}" for t, v in sorted(board.drift.items()) if t != OVERALL)
            + " (0 stationary, 1 pure drift).</p>")
    nav = " ".join(f'<a href="#target-{_e(slug(t))}">{_e(target_label(t))}</a>' for t in board.targets[:1])
    return (
        '<header id="top"><h1>gapbench leaderboard</h1>'
        "<p>How well do predictors of generalization rank trained models by their generalization gap?</p>"
        f"<p>Public zoo <code>{_e(meta.public.zoo_id)}</code> (spec <code>{_e(meta.public.spec_name)}</code>, "
        f"content hash <code>{_e(meta.public.content_hash[:12])}</code>; models per task: {sizes}){held} · "
        f"commit <code>{_e(meta.git_commit[:12])}</code> · {_e(meta.date)}"
        + ("" if meta.sandboxed else " · <b>run without the sandbox</b>") + "</p>" + drift +
        f'<nav>{nav} <a href="#predictors">predictors</a> <a href="#figures">figures</a> <a href="#data">data '
        '(CSV, JSON)</a> <a href="#cite">how to cite</a> <a href="#how">how to read this</a> '
        '<a href="#failures">failures</a></nav></header>'
    )


def render_html(board: Board) -> str:
    """The index.html text of ``board`` (deterministic: depends only on the board)."""
    meta = board.meta
    data = scatter_data(board)
    axes = [a for a in data["levels"] if len(data["levels"][a]["values"]) > 1 or a == data["defaultAxis"]]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>gapbench leaderboard: {_e(meta.zoo_id)}</title>",
        "<!-- Generated by `gapbench leaderboard`; do not edit by hand. -->",
        f"<style>{CSS}</style></head><body>",
        _header(board),
        _toolbar(board, axes, data["defaultAxis"]),
        "<main>",
    ]
    parts += [_target_view(board, t, i == 0) for i, t in enumerate(board.targets)]
    parts.append(_predictors_section(board))
    parts.append('<div id="details">')
    parts += [_detail(board, info) for info in board.predictors]
    parts.append("</div>")
    figs = [f'<img src="{COST_FIGURE}" alt="cost vs {_e(METRICS[RANK_METRIC].short)}" loading="lazy">']
    figs += [f'<img src="{_e(psi_axes_path(tb.task))}" alt="psi per axis, {_e(tb.task)}" loading="lazy">'
             for tb in board.tasks if tb.axes]
    parts.append('<section id="figures"><h2>Figures</h2><div class="figs">' + "".join(figs) + "</div></section>")
    parts.append(_data_and_cite(board))
    parts.append(_how_to_read(board))
    parts.append(_failures_and_notes(board))
    parts.append(f"</main><footer>Generated from the tables in data/ of zoo <code>{_e(meta.zoo_id)}</code> at commit "
                 f"<code>{_e(meta.git_commit)}</code>. Intervals are 95% bootstrap intervals.</footer>")
    parts.append(_json_script(data))
    parts.append(f"<script>{JS}</script></body></html>")
    return "\n".join(parts) + "\n"
