"""Inline CSS and JavaScript of ``index.html`` (no CDN: the page works offline from file://)."""

from __future__ import annotations

__all__ = ["CSS", "JS"]

CSS = """
:root { --fg: #1d2330; --muted: #5b6372; --line: #dde1e8; --bg: #ffffff; --band: #f6f7f9;
        --accent: #1f5fa8; --good: #17803d; --oracle: #b03a2e; }
* { box-sizing: border-box; }
body { margin: 0; font: 13.5px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", Roboto, Helvetica, Arial, sans-serif;
       color: var(--fg); background: var(--bg); }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); background: var(--band); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 2px 0; color: var(--muted); }
header code { color: var(--fg); }
nav { margin-top: 8px; }
nav a { margin-right: 14px; }
main { padding: 8px 28px 40px; max-width: 1500px; }
h2 { font-size: 18px; margin: 26px 0 6px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
h2 code, h3 code { font-size: 0.95em; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font: 12.5px/1.3 "DejaVu Sans Mono", Menlo, Consolas, monospace; }
.muted { color: var(--muted); }
.tablewrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 4px; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: var(--band); font-weight: 600; position: relative; }
th.text, td.text { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; padding-right: 20px; }
table.sortable th:hover { background: #eceff4; }
table.sortable th::after { content: "\\2195"; position: absolute; right: 6px; color: #b3b9c4; font-size: 11px; }
table.sortable th[aria-sort="ascending"]::after { content: "\\25B2"; color: var(--accent); }
table.sortable th[aria-sort="descending"]::after { content: "\\25BC"; color: var(--accent); }
table.board tbody tr { cursor: pointer; }
table.board tbody tr:hover td { background: #eef4fb; }
tr.kind-baseline td { background: #fafafa; color: #4a4f59; }
tr.kind-oracle td { background: #fdf3f2; }
.tag { display: inline-block; margin-left: 6px; padding: 0 6px; border-radius: 8px; font-size: 11px;
       line-height: 17px; vertical-align: 1px; }
.tag-baseline { background: #e6e8ec; color: #4a4f59; }
.tag-oracle { background: #f6d9d5; color: var(--oracle); }
.ci { color: var(--muted); font-size: 11.5px; }
td.key { font-weight: 600; }
td.key .ci { font-weight: 400; }
.beats { color: var(--good); font-weight: 600; }
.na { color: #a0a6b0; }
.note { color: var(--muted); margin: 4px 0 10px; max-width: 1000px; }
.detail { display: none; border: 1px solid var(--line); border-radius: 6px; padding: 4px 18px 16px;
          margin: 18px 0; background: #fff; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.06); }
.detail:target, .detail.open { display: block; }
.detail table { font-size: 12.5px; }
.detail dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
.detail dt { color: var(--muted); }
.detail dd { margin: 0; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plots figure { margin: 0; }
.plots img, .figs img { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
.plots figcaption { color: var(--muted); font-size: 12px; }
.figs { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
dl.metrics dt { font-weight: 600; margin-top: 8px; }
dl.metrics dd { margin: 2px 0 0 0; max-width: 1000px; }
footer { padding: 14px 28px; color: var(--muted); border-top: 1px solid var(--line); }
"""

JS = """
(function () {
  'use strict';
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
  }
  function showDetail(id) {
    var panels = document.querySelectorAll('.detail');
    for (var i = 0; i < panels.length; i++) { panels[i].classList.remove('open'); }
    var el = document.getElementById(id);
    if (el) { el.classList.add('open'); }
  }
  var tables = document.querySelectorAll('table.sortable');
  Array.prototype.forEach.call(tables, function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.tabIndex = 0;
      th.addEventListener('click', function () { sortTable(table, col, th); });
      th.addEventListener('keydown', function (ev) {
        if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); sortTable(table, col, th); }
      });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll('table.board tbody tr'), function (tr) {
    tr.addEventListener('click', function (ev) {
      var target = tr.getAttribute('data-detail');
      if (!target) { return; }
      if (ev.target && ev.target.tagName === 'A') { showDetail(target); return; }
      showDetail(target);
      window.location.hash = target;
    });
  });
  window.addEventListener('hashchange', function () { showDetail(window.location.hash.slice(1)); });
  if (window.location.hash) { showDetail(window.location.hash.slice(1)); }
})();
"""
