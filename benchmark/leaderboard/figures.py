"""The board's static figures (matplotlib, Agg, byte-for-byte reproducible).

- ``figures/cost_vs_psi.png``: median seconds per model against the ranking Psi (overall, gap),
  one numbered marker per predictor (the number is its rank) and a key beside the plot, so no
  name is drawn over another; the numbers themselves are placed where they overlap nothing.
- ``figures/psi_axes__<task>.png``: psi per hyperparameter axis of every predictor (public zoo).

The score-vs-target scatters are drawn by the page itself (index.html), coloured by the
hyperparameter the reader picks.

Reproducibility: no pyplot global state (a ``Figure`` with its own Agg canvas), one bundled font
(DejaVu Sans) at fixed sizes, fixed DPI, figure sizes and margins, inputs sorted before plotting,
and PNGs saved with ``metadata={"Software": None}`` so no version string or date is embedded.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from benchmark.leaderboard.board import RANK_METRIC, Board, Row, TaskBoard
from benchmark.leaderboard.tables import HELDOUT, OVERALL, kind_label, slug, target_label
from benchmark.metrics.catalog import METRICS

__all__ = ["COST_FIGURE", "KIND_STYLE", "cost_figure", "place_labels", "psi_axes_path", "render_figures"]

COST_FIGURE = "figures/cost_vs_psi.png"
DPI = 100
KIND_STYLE = {  # marker, colour, label
    "predictor": ("o", "#1f5fa8", "predictor"),
    "baseline": ("s", "#6f6f6f", "baseline"),
    "oracle": ("D", "#c0392b", "seed oracle (noise floor)"),
}
RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.hashsalt": "gapbench",
    "path.simplify": False,
    "image.interpolation": "nearest",
}
_OFFSETS = ((5, 4), (5, -11), (-11, 4), (-11, -11), (-3, 8), (-3, -15), (8, -3), (-15, -3))
"""Candidate offsets (points) of a marker's number from the marker, tried first, in order."""
_RINGS = 14
"""Rings of candidates further out (each with more angles), tried when the near ones are taken."""
LEADER_POINTS = 14.0
"""A number placed further than this from its marker (points) gets a thin leader line."""


def psi_axes_path(task: str) -> str:
    """Path, relative to the board's directory, of a task's psi-per-axis heat map."""
    return f"figures/psi_axes__{slug(task)}.png"


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _overlap(a: Bbox, b: Bbox) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _candidates(w: float, h: float, scale: float):
    """Lower-left offsets (pixels) of a w x h label around a point: near offsets, then rings."""
    for dx, dy in _OFFSETS:
        yield dx * scale, dy * scale
    for k in range(1, _RINGS + 1):
        radius = (8.0 + 7.0 * k) * scale
        n = 8 + 4 * k
        for i in range(n):
            angle = math.pi / 4 + 2 * math.pi * i / n
            yield radius * math.cos(angle) - w / 2, radius * math.sin(angle) - h / 2


def place_labels(anchors: list[tuple[float, float]], sizes: list[tuple[float, float]], bounds: Bbox,
                 obstacles: list[Bbox], scale: float) -> list[tuple[float, float]]:
    """Greedy label placement: for each anchor (display pixels) the first candidate position whose box
    overlaps no placed label and no obstacle and stays inside ``bounds``; else the least-overlapping.

    Candidates are a few offsets next to the point, then rings further out. ``sizes`` are the
    labels' (width, height) in pixels, ``scale`` pixels per point. Returns each label's lower-left
    corner in pixels. Deterministic: anchors are handled in the given order.
    """
    placed: list[Bbox] = []
    corners = []
    for (x, y), (w, h) in zip(anchors, sizes):
        best, best_cost = None, math.inf
        for dx, dy in _candidates(w, h, scale):
            box = Bbox.from_bounds(x + dx, y + dy, w, h)
            inside = bounds.x0 <= box.x0 and box.x1 <= bounds.x1 and bounds.y0 <= box.y0 and box.y1 <= bounds.y1
            cost = sum(_overlap(box, b) for b in placed) + sum(_overlap(box, b) for b in obstacles)
            cost += 0.0 if inside else 1e6
            if cost < best_cost:
                best, best_cost = box, cost
            if cost == 0:
                break
        placed.append(best)
        corners.append((best.x0, best.y0))
    return corners


def _cost_rows(tb: TaskBoard) -> list[Row]:
    return [r for r in tb.rows if math.isfinite(tb.ranking_cell(r).value)
            and math.isfinite(r.seconds_per_model) and r.seconds_per_model > 0]


def cost_figure(board: Board) -> Figure:
    """The cost-vs-Psi figure (overall table of the first target): numbered markers and a key."""
    task = OVERALL if any(t.task == OVERALL for t in board.tasks) else board.tasks[0].task
    tb = board.task(task)
    rows = _cost_rows(tb)
    n = len(rows)
    height = max(4.2, 1.5 + 0.2 * n)  # room for the key: one line per predictor and the legend
    width = 8.4
    fig = Figure(figsize=(width, height), dpi=DPI)
    canvas = FigureCanvasAgg(fig)
    left, right = 0.75 / width, 5.7 / width
    ax = fig.add_axes((left, 0.62 / height, right - left, 1 - 1.0 / height))
    key = fig.add_axes((right + 0.2 / width, 0.1 / height, 1 - right - 0.25 / width, 1 - 0.4 / height))
    key.set_axis_off()
    psi_label = METRICS[RANK_METRIC].short + (" (held-out)" if tb.ranked_by == HELDOUT else "")
    ax.set_title(f"Cost vs {psi_label}: {task}, target {target_label(tb.target)}")
    ax.set_xlabel("median seconds per model (log scale)")
    ax.set_ylabel(f"{psi_label} with 95% interval")
    ax.set_xscale("log")
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.axhline(0.0, color="#999999", linewidth=0.8, linestyle=":")
    if rows:
        xs = np.array([r.seconds_per_model for r in rows])
        cells = [tb.ranking_cell(r) for r in rows]
        lows = np.array([c.low if math.isfinite(c.low) else c.value for c in cells])
        highs = np.array([c.high if math.isfinite(c.high) else c.value for c in cells])
        lx, hx = np.log10(xs.min()), np.log10(xs.max())
        pad = max(0.3, 0.12 * (hx - lx))
        ax.set_xlim(10 ** (lx - pad), 10 ** (hx + pad))
        span = max(0.2, float(highs.max() - lows.min()))
        ax.set_ylim(float(lows.min()) - 0.12 * span, float(highs.max()) + 0.12 * span)
    seen: set[str] = set()
    for r in rows:
        marker, colour, label = KIND_STYLE.get(r.kind, KIND_STYLE["predictor"])
        c = tb.ranking_cell(r)
        lo = c.value - c.low if math.isfinite(c.low) else 0.0
        hi = c.high - c.value if math.isfinite(c.high) else 0.0
        ax.errorbar([r.seconds_per_model], [c.value], yerr=[[lo], [hi]], fmt=marker, color=colour, ecolor=colour,
                    elinewidth=1, capsize=2, markersize=5, label=None if r.kind in seen else label, zorder=3)
        seen.add(r.kind)
    if seen:
        handles, labels = ax.get_legend_handles_labels()
        key.legend(handles, labels, loc="lower left", frameon=False, borderaxespad=0.0, fontsize=7.5)
    renderer = canvas.get_renderer()
    scale = fig.dpi / 72.0
    anchors = [tuple(ax.transData.transform((r.seconds_per_model, tb.ranking_cell(r).value))) for r in rows]
    numbers = [str(r.rank) if r.rank is not None else "–" for r in rows]
    probes = [ax.text(0, 0, n, fontsize=7.5, ha="left", va="bottom") for n in numbers]
    sizes = [(t.get_window_extent(renderer).width, t.get_window_extent(renderer).height) for t in probes]
    for t in probes:
        t.remove()
    markers = [Bbox.from_bounds(x - 4 * scale, y - 4 * scale, 8 * scale, 8 * scale) for x, y in anchors]
    corners = place_labels(anchors, sizes, ax.get_window_extent(renderer), markers, scale)
    for r, number, (x, y), (x0, y0), (w, h) in zip(rows, numbers, anchors, corners, sizes):
        far = math.hypot(x0 + w / 2 - x, y0 + h / 2 - y) > LEADER_POINTS * scale
        offset = ((x0 - x) / scale, (y0 - y) / scale)
        ax.annotate(number, (r.seconds_per_model, tb.ranking_cell(r).value), xytext=offset, textcoords="offset points",
                    ha="left", va="bottom", fontsize=7.5, color="#222222", zorder=4,
                    arrowprops={"arrowstyle": "-", "color": "#9a9a9a", "linewidth": 0.5, "shrinkA": 0, "shrinkB": 3}
                    if far else None)
    lines = [f"{r.rank if r.rank is not None else '–':>2}  {r.predictor}" + (f" ({kind_label(r.kind)})"
             if kind_label(r.kind) else "") for r in sorted(rows, key=lambda r: (r.rank or 10**6, r.predictor))]
    step = 0.2 / (1 - 0.4 / height) / height
    for i, (line, r) in enumerate(zip(lines, sorted(rows, key=lambda r: (r.rank or 10**6, r.predictor)))):
        key.text(0.0, 1.0 - i * step, line, transform=key.transAxes, fontsize=7.5, va="top",
                 color=KIND_STYLE.get(r.kind, KIND_STYLE["predictor"])[1], family="DejaVu Sans")
    if not rows:
        ax.text(0.5, 0.5, "no predictor with both a cost and a Psi", transform=ax.transAxes, ha="center")
    return fig


def _psi_axes(board: Board, task: str, out_dir: Path) -> Path | None:
    tb = board.task(task)
    if not tb.axes:
        return None
    names = [r.predictor for r in tb.rows]
    grid = np.full((len(names), len(tb.axes)), np.nan)
    for i, name in enumerate(names):
        for j, axis in enumerate(tb.axes):
            cell = tb.psi_axis.get(name, {}).get(axis)
            if cell is not None:
                grid[i, j] = cell.value
    labels = [f"{n} ({kind_label(board.info(n).kind)})" if kind_label(board.info(n).kind) else n for n in names]
    metric = board.axis_metrics[0] if board.axis_metrics else RANK_METRIC
    height = 1.2 + 0.32 * len(names)
    width = 2.6 + 0.85 * len(tb.axes)
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#eeeeee")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(tb.axes)), labels=list(tb.axes), rotation=30, ha="right")
    ax.set_yticks(range(len(names)), labels=labels)
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            value = grid[i, j]
            text = "n/a" if math.isnan(value) else METRICS[metric].format(value)
            colour = "white" if not math.isnan(value) and abs(value) > 0.6 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color=colour)
    ax.set_title(f"{METRICS[metric].display}: {task}")
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03, label=METRICS[metric].short)
    return _save(fig, out_dir / psi_axes_path(task))


def render_figures(board: Board, out_dir: str | Path) -> list[Path]:
    """Write every figure of ``board`` under ``out_dir/figures``; return the paths written."""
    out_dir = Path(out_dir)
    written: list[Path] = []
    with matplotlib.rc_context(RC):
        for tb in board.tasks:
            path = _psi_axes(board, tb.task, out_dir)
            if path is not None:
                written.append(path)
        written.append(_save(cost_figure(board), out_dir / COST_FIGURE))
    return written
