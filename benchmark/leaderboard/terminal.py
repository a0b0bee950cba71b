"""The board as plain text for the terminal: what `gapbench evaluate` prints.

When the evaluated zoo holds exactly the published board's models (same content hash), the
published rows join the local ones, so a submission is shown in rank order between its
neighbours on the published board, with intervals. Rows are ranked by the public Psi here (a
local run has no held-out scores); the published held-out Psi is shown beside it when present.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from benchmark.leaderboard.board import RANK_METRIC, Board, build_board
from benchmark.leaderboard.tables import OVERALL, read_tables, target_label
from benchmark.leaderboard.text import heldout_header, interval_text
from benchmark.metrics.catalog import METRICS
from benchmark.tables import BoardMeta

__all__ = ["merged_tables", "render_terminal"]

N_METRICS = 3
"""Score metrics shown per row: the catalogue's first ones present on the board."""
MERGED = ("scores", "runs", "predictions", "points")


def merged_tables(results_dir: Path, published: Path | None) -> tuple[BoardMeta, dict[str, pd.DataFrame], int]:
    """Local tables, plus the published rows of predictors not evaluated locally when the zoo
    content matches; returns (meta, tables, number of published predictors added).
    """
    meta, tables = read_tables(results_dir)
    if published is None or not (published / "board_meta.json").is_file():
        return meta, tables, 0
    try:
        pub_meta, pub = read_tables(published)
    except (ValueError, OSError):
        return meta, tables, 0
    if pub_meta.public.content_hash != meta.public.content_hash:
        return meta, tables, 0
    local = set(tables["scores"]["predictor"])
    for name in MERGED:
        extra = pub[name][~pub[name]["predictor"].isin(local)]
        tables[name] = pd.concat([tables[name], extra], ignore_index=True)
    added = len(set(pub["scores"]["predictor"]) - local)
    return meta, tables, added


def _fmt_seconds(seconds: float) -> str:
    return f"{seconds:8.3f}" if math.isfinite(seconds) else f"{'n/a':>8s}"


def render_terminal(results_dir: str | Path, *, highlight: list[str] | None = None,
                    published: str | Path | None = None, target: str = "gap") -> str:
    """Per task: the first score metrics with intervals, cost and failure rate, rows by public Psi."""
    meta, tables, added = merged_tables(Path(results_dir), Path(published) if published else None)
    board: Board = build_board(meta, tables, rank_by="public")
    if target not in board.boards:
        raise ValueError(f"{results_dir}: no scores for target {target!r}; targets: {list(board.boards)}")
    columns = list(board.metrics[:N_METRICS])
    marks = set(highlight or [])
    width = max([len(p.predictor) for p in board.predictors] + [9]) + 1
    lines = []
    if added:
        lines.append(f"(with the {added} published predictors of the board in {published}: same zoo content)")
    for tb in board.boards[target]:
        lines.append(f"\n== {tb.task} (target: {target_label(target)}, {tb.size_text}) ==")
        heads = [METRICS[m].short for m in columns] + ([heldout_header()] if tb.has_heldout else [])
        lines.append(f" {'#':>3} {'predictor':{width}s} {'kind':9s}" + "".join(f" {h:>22s}" for h in heads)
                     + f" {METRICS['seconds_per_model'].short:>8s} {METRICS['failure_rate'].short:>6s}")
        for row in tb.rows:
            cells = [interval_text(m, row.cell(m)) for m in columns]
            if tb.has_heldout:
                cells.append(interval_text(RANK_METRIC, row.heldout_cell(RANK_METRIC)))
            rank = str(row.rank) if row.rank is not None else "-"
            lines.append(
                f"{'*' if row.predictor in marks else ' '}{rank:>3} {row.predictor:{width}s} {row.kind:9s}"
                + "".join(f" {c:>22s}" for c in cells)
                + f" {_fmt_seconds(row.seconds_per_model)} {METRICS['failure_rate'].format(row.failure_rate):>6s}"
            )
        if tb.task == OVERALL:
            lines.append("")
    if marks:
        lines.append("\n* = evaluated in this run")
    return "\n".join(lines)
