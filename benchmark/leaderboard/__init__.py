"""The published leaderboard: ``leaderboards/README.md``, ``index.html`` and ``figures/``,
generated (deterministically) from the tidy result tables.

Entry point for the CLI (``gapbench leaderboard``)::

    from benchmark.leaderboard import render_leaderboard
    render_leaderboard("leaderboards/data", "leaderboards")
"""

from benchmark.leaderboard.render import render_leaderboard
from benchmark.leaderboard.tables import Board, BoardMeta, build_board, load_board, read_tables

__all__ = ["Board", "BoardMeta", "build_board", "load_board", "read_tables", "render_leaderboard"]
