"""The board's figures (matplotlib, Agg, byte-for-byte reproducible).

Reproducibility: no pyplot global state (a ``Figure`` with its own Agg canvas), one bundled
font (DejaVu Sans) at fixed sizes, fixed DPI and figure sizes, inputs sorted before plotting,
and PNGs saved with ``metadata={"Software": None}`` so no version string or date is embedded.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmark.leaderboard.tables import OVERALL, Board, kind_label, slug
from benchmark.schema import METRICS

__all__ = [
    "COST_FIGURE",
    "psi_axes_path",
    "render_figures",
    "scatter_path",
    "scatter_tasks",
]

COST_FIGURE = "figures/cost_vs_psi.png"
DPI = 100
KIND_STYLE = {  # marker, colour, label
    "predictor": ("o", "#1f5fa8", "predictor"),
    "baseline": ("s", "#7a7a7a", "baseline"),
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


def scatter_path(predictor: str, task: str) -> str:
    """Path, relative to the board's directory, of the score-vs-gap scatter of one predictor."""
    return f"figures/scatter/{slug(predictor)}__{slug(task)}.png"


def psi_axes_path(task: str) -> str:
    """Path, relative to the board's directory, of a task's psi-per-axis heat map."""
    return f"figures/psi_axes__{slug(task)}.png"


def scatter_tasks(board: Board, predictor: str) -> list[str]:
    """Tasks for which ``predictor`` has scored models, hence a scatter plot."""
    pts = board.points
    on_board = {t.task for t in board.tasks}
    return sorted(set(pts.loc[pts["predictor"] == predictor, "task"].astype(str)) & on_board)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _scatter(board: Board, predictor: str, task: str, out_dir: Path) -> Path:
    pts = board.points
    sel = pts[(pts["predictor"] == predictor) & (pts["task"] == task)].sort_values("model_id")
    x = sel["score"].to_numpy(dtype=float)
    y = sel["gap"].to_numpy(dtype=float)
    row = next((r for r in board.task(task).rows if r.predictor == predictor), None)
    tau = METRICS["kendall_tau"].format(row.cell("kendall_tau").value if row else math.nan)
    psi = METRICS["psi"].format(row.cell("psi").value if row else math.nan)
    kind = board.info(predictor).kind
    marker, colour, _ = KIND_STYLE.get(kind, KIND_STYLE["predictor"])
    fig = Figure(figsize=(4.2, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(x, y, s=16, marker=marker, color=colour, alpha=0.75, linewidths=0)
    ax.set_xlabel("score (higher = larger predicted gap)")
    ax.set_ylabel("generalization gap (test - train error)")
    ax.set_title(f"{predictor} on {task}\nτ = {tau}, Ψ = {psi}, n = {len(x)}", fontsize=9)
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    return _save(fig, out_dir / scatter_path(predictor, task))


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
    labels = [f"{n} ({kind_label(board.info(n).kind)})" if kind_label(board.info(n).kind) else n
              for n in names]
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
            text = "n/a" if math.isnan(value) else METRICS["psi_axis"].format(value)
            colour = "white" if not math.isnan(value) and abs(value) > 0.6 else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7.5, color=colour)
    ax.set_title(f"ψ per hyperparameter axis: {task}")
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03, label="ψ (τ within one-axis groups)")
    return _save(fig, out_dir / psi_axes_path(task))


def _cost_vs_psi(board: Board, out_dir: Path) -> Path:
    task = OVERALL if any(t.task == OVERALL for t in board.tasks) else board.tasks[0].task
    tb = board.task(task)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    seen: set[str] = set()
    rows = [r for r in tb.rows if not math.isnan(r.cell("psi").value)
            and math.isfinite(r.seconds_per_model) and r.seconds_per_model > 0]
    for r in sorted(rows, key=lambda r: r.predictor):
        marker, colour, label = KIND_STYLE.get(r.kind, KIND_STYLE["predictor"])
        cell = r.cell("psi")
        lo = cell.value - cell.low if math.isfinite(cell.low) else 0.0
        hi = cell.high - cell.value if math.isfinite(cell.high) else 0.0
        ax.errorbar(
            [r.seconds_per_model], [cell.value], yerr=[[lo], [hi]], fmt=marker, color=colour,
            ecolor=colour, elinewidth=1, capsize=2, markersize=6,
            label=None if r.kind in seen else label,
        )
        seen.add(r.kind)
        ax.annotate(r.predictor, (r.seconds_per_model, cell.value), textcoords="offset points",
                    xytext=(5, 4), fontsize=7.5, color="#333333")
    ax.set_xscale("log")
    ax.margins(x=0.12, y=0.08)  # room for the name labels right of the points
    ax.axhline(0.0, color="#999999", linewidth=0.8, linestyle=":")
    ax.set_xlabel("median seconds per model (log scale)")
    ax.set_ylabel("Ψ with 95% interval")
    ax.set_title(f"Cost vs Ψ ({task})")
    ax.grid(True, color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    if seen:
        ax.legend(loc="best", frameon=False)
    return _save(fig, out_dir / COST_FIGURE)


def render_figures(board: Board, out_dir: str | Path) -> list[Path]:
    """Write every figure of ``board`` under ``out_dir/figures``; return the paths written.

    - ``figures/scatter/<predictor>__<task>.png``: score vs gap, one per predictor and task with
      scored models;
    - ``figures/psi_axes__<task>.png``: psi per axis of every predictor (tasks with per-axis rows);
    - ``figures/cost_vs_psi.png``: median seconds per model against Psi (overall).
    """
    out_dir = Path(out_dir)
    written: list[Path] = []
    with matplotlib.rc_context(RC):
        for info in sorted(board.predictors, key=lambda p: p.predictor):
            for task in scatter_tasks(board, info.predictor):
                written.append(_scatter(board, info.predictor, task, out_dir))
        for tb in board.tasks:
            path = _psi_axes(board, tb.task, out_dir)
            if path is not None:
                written.append(path)
        written.append(_cost_vs_psi(board, out_dir))
    return written
