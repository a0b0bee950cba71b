"""``render_leaderboard``: tables in; README.md, index.html, figures/ and data/ (CSV, JSON) out."""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.leaderboard.board import load_board
from benchmark.leaderboard.exports import export_tables
from benchmark.leaderboard.figures import render_figures
from benchmark.leaderboard.html import render_html
from benchmark.leaderboard.markdown import render_markdown

__all__ = ["render_leaderboard"]


def _write_text(path: Path, text: str) -> Path:
    """Write atomically (temp file, then rename), with Unix line ends on every platform."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def _remove_stale_figures(out_dir: Path, keep: set[Path]) -> None:
    """Delete PNGs under ``out_dir/figures`` that this rendering did not write (e.g. a removed
    predictor's plots), so the directory is exactly a function of the tables.
    """
    figures = out_dir / "figures"
    if not figures.is_dir():
        return
    for path in sorted(figures.rglob("*.png")):
        if path.resolve() not in keep:
            path.unlink()
    for folder in sorted((p for p in figures.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()


def render_leaderboard(data_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Render the leaderboard of the tables in ``data_dir`` into ``out_dir``.

    ``data_dir`` holds the board tables of ``benchmark.tables.BOARD_TABLES`` (parquet) and
    ``board_meta.json``. Writes ``out_dir/README.md``, ``out_dir/index.html``,
    ``out_dir/figures/*.png`` and ``out_dir/data/<table>.csv|.json`` (copying the parquet files and
    the header there when ``data_dir`` is another folder), removes PNGs under ``out_dir/figures``
    that are no longer produced, and returns the written paths, sorted. Same inputs give
    byte-identical files.
    """
    out_dir = Path(out_dir)
    board = load_board(data_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = render_figures(board, out_dir)
    _remove_stale_figures(out_dir, {p.resolve() for p in figures})
    written = [
        _write_text(out_dir / "README.md", render_markdown(board)),
        _write_text(out_dir / "index.html", render_html(board)),
        *figures,
        *export_tables(data_dir, out_dir / "data"),
    ]
    return sorted(written)
