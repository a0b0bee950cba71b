"""Inline CSS and JavaScript of ``index.html`` (no CDN: the page works offline from file://).

The script does five things, all on the page's own data:

- sorts a table when a column header is clicked (raw values in ``data-v``; missing values last in
  both directions; the first click puts the best first, per the catalogue's ``higher_is_better``)
  and renumbers the rank column by the sorted column (ties share a rank);
- filters the predictor rows of every table by name, family and kind;
- switches the target (gap / test error / shift error) the tables and plots show;
- opens a predictor's detail panel when its row is clicked;
- draws each panel's score-vs-target scatters (SVG) from the embedded JSON, one colour per value of
  the hyperparameter chosen in the toolbar.
"""

from __future__ import annotations

__all__ = ["CSS", "JS"]

CSS = """
:root { --fg: #1d2330; --muted: #5b6372; --line: #dde1e8; --bg: #ffffff; --band: #f6f7f9;
        --accent: #1f5fa8; --good: #17803d; --oracle: #b03a2e; --warn: #9a5b00; --rank-w: 38px; }
* { box-sizing: border-box; }
body { margin: 0; font: 13.5px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Roboto, Helvetica, Arial, sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 16px 24px 10px; border-bottom: 1px solid var(--line); background: var(--band); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 2px 0; color: var(--muted); overflow-wrap: anywhere; }
header code { color: var(--fg); }
nav { margin-top: 8px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
.toolbar { position: sticky; top: 0; z-index: 5; display: flex; flex-wrap: wrap; align-items: center; gap: 6px 16px;
           padding: 8px 24px; background: #fff; border-bottom: 1px solid var(--line); }
.toolbar fieldset { border: 0; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: 2px 10px;
                    align-items: center; }
.toolbar legend { float: left; margin-right: 6px; font-weight: 600; padding: 0; }
.toolbar label { white-space: nowrap; }
.toolbar input[type=search] { width: 11em; }
.toolbar select, .toolbar input { font: inherit; }
#filter-count { color: var(--muted); }
main { padding: 4px 24px 40px; }
section, .detail, h2 { scroll-margin-top: 56px; }  /* anchors clear the sticky toolbar */
h2 { font-size: 18px; margin: 24px 0 6px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
h2 code, h3 code { font-size: 0.95em; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font: 12.5px/1.3 "DejaVu Sans Mono", Menlo, Consolas, monospace; }
pre { background: var(--band); border: 1px solid var(--line); border-radius: 4px; padding: 8px 10px;
      overflow-x: auto; max-width: 100%; }
.muted { color: var(--muted); }
.tablewrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: separate; border-spacing: 0; margin: 6px 0 4px; }
th, td { padding: 4px 7px; border-bottom: 1px solid var(--line); text-align: right; vertical-align: top;
         background: #fff; }
td { white-space: nowrap; }
th { background: var(--band); font-weight: 600; position: relative; vertical-align: bottom; line-height: 1.2; }
th.text, td.text { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; padding-right: 17px; }
table.sortable th:hover { background: #eceff4; }
table.sortable th::after { content: "\\2195"; position: absolute; right: 4px; bottom: 5px; color: #b3b9c4;
                           font-size: 11px; }
table.sortable th[aria-sort="ascending"]::after { content: "\\25B2"; color: var(--accent); }
table.sortable th[aria-sort="descending"]::after { content: "\\25BC"; color: var(--accent); }
table.board th { max-width: 92px; white-space: normal; }
table.board tbody tr { cursor: pointer; }
table.board tbody tr:hover td { background: #eef4fb; }
table.board .rank { position: sticky; left: 0; z-index: 2; width: var(--rank-w); min-width: var(--rank-w);
                    max-width: var(--rank-w); text-align: right; }
table.board .name { position: sticky; left: var(--rank-w); z-index: 2; text-align: left; max-width: 260px;
                    white-space: normal; overflow-wrap: anywhere; box-shadow: inset -1px 0 0 var(--line); }
table.board th.rank, table.board th.name { z-index: 3; background: var(--band); }
td .v, td .ci, td .nu { display: block; }
tr.kind-baseline td { background: #fafafa; color: #4a4f59; }
tr.kind-oracle td { background: #fdf3f2; }
tr[hidden] { display: none; }
.tags { display: block; line-height: 1.2; }
.tag { display: inline-block; margin: 1px 4px 1px 0; padding: 0 6px; border-radius: 8px; font-size: 11px;
       line-height: 16px; background: #e6e8ec; color: #4a4f59; white-space: nowrap; }
.tag-oracle { background: #f6d9d5; color: var(--oracle); }
.tag-hparams, .tag-unsandboxed { background: #fbe9cc; color: var(--warn); }
.tag-drift { background: #e3eefb; color: #234d7a; }
.ci { color: var(--muted); font-size: 11px; }
.nu { color: #8a909b; font-size: 10.5px; }
td.key { font-weight: 600; }
td.key .ci, td.key .nu { font-weight: 400; }
.beats { color: var(--good); font-weight: 600; }
.na { color: #a0a6b0; }
.note { color: var(--muted); margin: 4px 0 8px; max-width: 1000px; }
.detail { display: none; border: 1px solid var(--line); border-radius: 6px; padding: 4px 16px 14px;
          margin: 18px 0; background: #fff; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.06); }
.detail:target, .detail.open { display: block; }
.detail table { font-size: 12.5px; }
.detail dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
.detail dt { color: var(--muted); }
.detail dd { margin: 0; overflow-wrap: anywhere; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots figure { margin: 0; max-width: 100%; }
.plots svg { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
.plots figcaption { color: var(--muted); font-size: 12px; }
.figs { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.figs img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
dl.metrics dt { font-weight: 600; margin-top: 8px; }
dl.metrics dd { margin: 2px 0 0 0; max-width: 1000px; }
footer { padding: 14px 24px; color: var(--muted); border-top: 1px solid var(--line); overflow-wrap: anywhere; }
@media (max-width: 700px) {
  header { padding: 10px 10px 8px; }
  header h1 { font-size: 19px; }
  .toolbar { padding: 6px 10px; gap: 4px 10px; position: static; }
  main { padding: 4px 8px 30px; }
  footer { padding: 12px 10px; }
  :root { --rank-w: 30px; }
  th, td { padding: 3px 5px; }
  table.board .name { max-width: 132px; min-width: 100px; }
  table.board .name code { font-size: 11px; }
  .detail { padding: 4px 8px 12px; }
  .detail dl { grid-template-columns: 1fr; }
}
"""

JS = r"""
(function () {
  'use strict';
  var DATA = JSON.parse(document.getElementById('board-data').textContent);
  var state = { target: DATA.defaultTarget, colour: DATA.defaultAxis, open: null };

  /* ---- sorting and ranks ---- */
  function cellKey(cell, numeric) {
    var v = cell.getAttribute('data-v');
    if (v === null) { v = cell.textContent.trim(); }
    if (v === '') { return null; }
    if (!numeric) { return v.toLowerCase(); }
    var x = parseFloat(v);
    return isNaN(x) ? null : x;
  }
  function compare(a, b, asc) {
    if (a === null && b === null) { return 0; }
    if (a === null) { return 1; }   /* missing values last in both directions */
    if (b === null) { return -1; }
    var r;
    if (typeof a === 'number' && typeof b === 'number') { r = a - b; }
    else { r = String(a) < String(b) ? -1 : (String(a) > String(b) ? 1 : 0); }
    return asc ? r : -r;
  }
  function rerank(table, keyed) {
    var rankCol = table.getAttribute('data-rank-col');
    if (rankCol === null) { return; }
    var col = parseInt(rankCol, 10), rank = 0, prev;
    keyed.forEach(function (k, i) {
      var cell = k.row.cells[col];
      if (k.key === null) { cell.textContent = '\u2014'; cell.setAttribute('data-v', ''); return; }
      if (i === 0 || k.key !== prev) { rank = i + 1; prev = k.key; }
      cell.textContent = String(rank);
      cell.setAttribute('data-v', String(rank));
    });
  }
  function sortTable(table, col, th) {
    var current = th.getAttribute('aria-sort');
    var dir;
    if (current === 'ascending') { dir = 'descending'; }
    else if (current === 'descending') { dir = 'ascending'; }
    else { dir = th.getAttribute('data-first') || 'ascending'; }
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute('aria-sort'); }
    th.setAttribute('aria-sort', dir);
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = !th.classList.contains('text');
    var keyed = rows.map(function (row, idx) {
      return { row: row, key: cellKey(row.cells[col], numeric), idx: idx };
    });
    var asc = dir === 'ascending';
    keyed.sort(function (x, y) { return compare(x.key, y.key, asc) || (x.idx - y.idx); });
    keyed.forEach(function (k) { body.appendChild(k.row); });
    if (numeric && !th.classList.contains('rank')) {
      rerank(table, keyed);
      var label = table.parentNode.parentNode.querySelector('.rank-by');
      if (label) { label.textContent = th.getAttribute('data-label') || th.textContent; }
    }
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.addEventListener('click', function () { sortTable(table, col, th); });
      th.addEventListener('keydown', function (ev) {
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); sortTable(table, col, th); }
      });
    });
  });

  /* ---- filter ---- */
  var fName = document.getElementById('filter-name');
  var fFamily = document.getElementById('filter-family');
  var fKind = document.getElementById('filter-kind');
  var counter = document.getElementById('filter-count');
  function applyFilter() {
    var q = fName.value.trim().toLowerCase(), fam = fFamily.value, kind = fKind.value;
    var shown = {};
    Array.prototype.forEach.call(document.querySelectorAll('tr[data-predictor]'), function (tr) {
      var ok = (!q || tr.getAttribute('data-predictor').toLowerCase().indexOf(q) >= 0) &&
               (!fam || tr.getAttribute('data-family') === fam) &&
               (!kind || tr.getAttribute('data-kind') === kind);
      tr.hidden = !ok;
      if (ok) { shown[tr.getAttribute('data-predictor')] = true; }
    });
    var n = Object.keys(shown).length;
    counter.textContent = (q || fam || kind) ? n + ' of ' + DATA.nPredictors + ' predictors shown' : '';
  }
  [fName, fFamily, fKind].forEach(function (el) {
    el.addEventListener('input', applyFilter);
    el.addEventListener('change', applyFilter);
  });

  /* ---- target switch ---- */
  function setTarget(target) {
    state.target = target;
    Array.prototype.forEach.call(document.querySelectorAll('[data-target-view]'), function (el) {
      el.hidden = el.getAttribute('data-target-view') !== target;
    });
    if (state.open) { drawPlots(state.open); }
  }
  Array.prototype.forEach.call(document.querySelectorAll('input[name="target"]'), function (input) {
    input.addEventListener('change', function () { if (input.checked) { setTarget(input.value); } });
  });
  var colourBy = document.getElementById('colour-by');
  if (colourBy) {
    colourBy.addEventListener('change', function () {
      state.colour = colourBy.value;
      if (state.open) { drawPlots(state.open); }
    });
  }

  /* ---- scatter plots (SVG) ---- */
  var SVGNS = 'http://www.w3.org/2000/svg';
  function el(name, attrs, text) {
    var node = document.createElementNS(SVGNS, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }
  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) { var d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; }
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / count)));
    var err = (hi - lo) / count / step;
    if (err >= 7.5) { step *= 10; } else if (err >= 3.5) { step *= 5; } else if (err >= 1.5) { step *= 2; }
    var ticks = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) { ticks.push(+t.toPrecision(12)); }
    return { lo: lo, hi: hi, ticks: ticks };
  }
  function fmt(x) {
    return Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(1) : String(+x.toPrecision(4));
  }
  function scatter(predictor, task) {
    var t = DATA.tasks[task], pts = (DATA.scores[predictor] || {})[task] || [];
    var ys = t.targets[state.target];
    var W = 400, H = 310, L = 56, R = 12, T = 44, B = 44;
    var svg = el('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'class': 'scatter',
                          'data-task': task, 'data-target': state.target, 'data-colour': state.colour || '' });
    var xy = [];
    pts.forEach(function (p) {
      var y = ys ? ys[p[0]] : null;
      if (y !== null && y !== undefined) { xy.push([p[1], y, p[0]]); }
    });
    var stats = ((DATA.stats[predictor] || {})[state.target] || {})[task];
    var title = task + (stats ? ' \u2014 ' + stats : '') + ', n = ' + xy.length;
    svg.appendChild(el('text', { x: L, y: 16, 'font-size': 12, 'font-weight': 600 }, title));
    if (!xy.length) {
      svg.appendChild(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', 'font-size': 12, fill: '#888' },
                         'no scored model for this target'));
      return svg;
    }
    var xs = xy.map(function (p) { return p[0]; }), yv = xy.map(function (p) { return p[1]; });
    var gx = niceTicks(Math.min.apply(null, xs), Math.max.apply(null, xs), 5);
    var gy = niceTicks(Math.min.apply(null, yv), Math.max.apply(null, yv), 5);
    var padx = 0.04 * ((gx.hi - gx.lo) || 1), pady = 0.05 * ((gy.hi - gy.lo) || 1);
    var x0 = gx.lo - padx, x1 = gx.hi + padx, y0 = gy.lo - pady, y1 = gy.hi + pady;
    gx.ticks = gx.ticks.filter(function (v) { return v >= x0 && v <= x1; });
    gy.ticks = gy.ticks.filter(function (v) { return v >= y0 && v <= y1; });
    function sx(v) { return L + (v - x0) / ((x1 - x0) || 1) * (W - L - R); }
    function sy(v) { return H - B - (v - y0) / ((y1 - y0) || 1) * (H - T - B); }
    gx.ticks.forEach(function (v) {
      svg.appendChild(el('line', { x1: sx(v), x2: sx(v), y1: T, y2: H - B, stroke: '#eee' }));
      svg.appendChild(el('text', { x: sx(v), y: H - B + 13, 'text-anchor': 'middle', 'font-size': 10, fill: '#555' },
                         fmt(v)));
    });
    gy.ticks.forEach(function (v) {
      svg.appendChild(el('line', { x1: L, x2: W - R, y1: sy(v), y2: sy(v), stroke: '#eee' }));
      svg.appendChild(el('text', { x: L - 4, y: sy(v) + 3, 'text-anchor': 'end', 'font-size': 10, fill: '#555' },
                         fmt(v)));
    });
    svg.appendChild(el('text', { x: (L + W - R) / 2, y: H - 8, 'text-anchor': 'middle', 'font-size': 11 },
                       'score (higher = larger predicted gap)'));
    svg.appendChild(el('text', { x: 12, y: (T + H - B) / 2, 'text-anchor': 'middle', 'font-size': 11,
                                 transform: 'rotate(-90 12 ' + (T + H - B) / 2 + ')' }, DATA.targets[state.target]));
    var axis = state.colour, levels = axis ? DATA.levels[axis] : null, codes = axis ? t.hp[axis] : null;
    xy.forEach(function (p) {
      var code = codes ? codes[p[2]] : null;
      var known = levels && code !== null && code !== undefined;
      var c = el('circle', { cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: 3.4,
                             fill: known ? levels.colours[code] : '#1f5fa8', 'fill-opacity': 0.85, stroke: '#fff',
                             'stroke-width': 0.5, 'data-level': known ? code : '' });
      var label = t.models[p[2]] + (known ? ', ' + axis + ' = ' + levels.values[code] : '');
      c.appendChild(el('title', {}, label + ', score ' + fmt(p[0]) + ', ' + DATA.targets[state.target] + ' ' +
                                    fmt(p[1])));
      svg.appendChild(c);
    });
    if (levels && codes) {
      var used = {};
      xy.forEach(function (p) { if (codes[p[2]] !== null) { used[codes[p[2]]] = true; } });
      var lx = L, ly = 31;  /* one row under the title, wrapping when full */
      var head = el('text', { x: lx, y: ly, 'font-size': 10, 'font-weight': 600 }, axis + ':');
      svg.appendChild(head);
      lx += 8 + 6.5 * axis.length;
      levels.values.forEach(function (v, i) {
        if (!used[i]) { return; }
        var w = 16 + 6 * String(v).length;
        if (lx + w > W - R) { lx = L; ly += 12; }
        svg.appendChild(el('circle', { cx: lx + 4, cy: ly - 3.5, r: 3.4, fill: levels.colours[i],
                                       'class': 'legend-dot' }));
        svg.appendChild(el('text', { x: lx + 10, y: ly, 'font-size': 10 }, v));
        lx += w;
      });
    }
    return svg;
  }
  function drawPlots(id) {
    var panel = document.getElementById(id);
    if (!panel) { return; }
    var box = panel.querySelector('.plots');
    if (!box) { return; }
    var predictor = box.getAttribute('data-predictor');
    while (box.firstChild) { box.removeChild(box.firstChild); }
    Object.keys(DATA.tasks).sort().forEach(function (task) {
      if (!((DATA.scores[predictor] || {})[task] || []).length) { return; }
      var fig = document.createElement('figure');
      fig.appendChild(scatter(predictor, task));
      box.appendChild(fig);
    });
  }

  /* ---- detail panels ---- */
  function showDetail(id) {
    var panels = document.querySelectorAll('.detail');
    for (var i = 0; i < panels.length; i++) { panels[i].classList.remove('open'); }
    var target = document.getElementById(id);
    if (target && target.classList.contains('detail')) {
      target.classList.add('open');
      state.open = id;
      drawPlots(id);
    }
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.board tbody tr'), function (tr) {
    tr.addEventListener('click', function (ev) {
      var target = tr.getAttribute('data-detail');
      if (!target) { return; }
      showDetail(target);
      if (!(ev.target && ev.target.closest && ev.target.closest('a'))) { window.location.hash = target; }
    });
  });
  window.addEventListener('hashchange', function () { showDetail(window.location.hash.slice(1)); });
  if (window.location.hash) { showDetail(window.location.hash.slice(1)); }
})();
"""
