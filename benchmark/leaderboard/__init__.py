"""The published leaderboard: ``leaderboards/README.md``, ``index.html``, ``figures/`` and the
downloadable tables in ``data/`` (CSV, JSON), generated deterministically from the board tables.

Entry point for the CLI (``gapbench leaderboard``)::

    from benchmark.leaderboard import render_leaderboard
    render_leaderboard("leaderboards/data", "leaderboards")
"""

from benchmark.leaderboard.board import Board, build_board, load_board
from benchmark.leaderboard.render import render_leaderboard
from benchmark.leaderboard.tables import read_tables
from benchmark.leaderboard.terminal import render_terminal

__all__ = ["Board", "build_board", "load_board", "read_tables", "render_leaderboard", "render_terminal"]
