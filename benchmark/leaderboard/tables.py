"""Read and check the board's input tables (benchmark.tables ``BOARD_TABLES`` + ``board_meta.json``).

``read_tables(data_dir)`` returns the board's header and its tables, restricted to the zoos the
header names:

- the **public** zoo (``split == "public"``): every table (scores, runs, points, models,
  predictions);
- the **held-out** zoo (``split == "heldout"``), when ``board_meta.json`` names one: ``scores``
  and ``runs`` only. Per-model rows of the held-out zoo (points, models, predictions) are refused:
  publishing them would let a predictor be fitted to the official ranking.

Every problem is one ``ValueError`` line naming the file and the column or rows at fault.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from benchmark.metrics.catalog import SCORE_METRICS
from benchmark.tables import BOARD_TABLES, MODELS, BoardMeta, read_board_meta

__all__ = [
    "HELDOUT",
    "KINDS",
    "KIND_LABELS",
    "OVERALL",
    "PUBLIC",
    "TARGET_LABELS",
    "kind_label",
    "order_targets",
    "read_tables",
    "slug",
    "target_label",
]

OVERALL = "overall"
PUBLIC = "public"
HELDOUT = "heldout"
KINDS = ("predictor", "baseline", "oracle")
PER_MODEL = ("points", "models", "predictions")
"""Tables with one row per model: never published for the held-out zoo."""

KIND_LABELS = {"predictor": "", "baseline": "baseline", "oracle": "noise floor"}
"""How a row's kind is marked on the board ("" for ordinary predictors)."""

TARGET_LABELS = {"gap": "generalization gap", "test_error": "test error", "shift_error": "shift error"}
"""Short names of the ranked targets, in board order (their meaning: the ``models`` table's column docs)."""


def kind_label(kind: str) -> str:
    """The marker shown beside a predictor of ``kind``: "baseline", "noise floor" or ""."""
    return KIND_LABELS.get(kind, kind)


def target_label(target: str) -> str:
    """The short name of a target, e.g. "test error"."""
    return TARGET_LABELS.get(target, target.replace("_", " "))


def target_doc(target: str) -> str:
    """What a target is, from the ``models`` table's declaration (benchmark/tables.py)."""
    for col in MODELS.columns:
        if col.name == target:
            return col.doc
    return target_label(target)


def order_targets(targets: set[str] | list[str]) -> list[str]:
    """Targets in board order: the known ones (gap first), then any other by name."""
    known = [t for t in TARGET_LABELS if t in targets]
    return known + sorted(set(targets) - set(known))


def slug(name: str) -> str:
    """A file- and HTML-id-safe form of ``name``: ``[A-Za-z0-9._-]`` only, never empty."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned or "unnamed"


def read_tables(data_dir: str | Path) -> tuple[BoardMeta, dict[str, pd.DataFrame]]:
    """Read and check every board table of ``data_dir``; keep the rows of the header's zoos.

    ``scores`` and ``runs`` keep their ``split`` column (public and held-out rows); the per-model
    tables hold the public zoo only.
    """
    data_dir = Path(data_dir)
    meta = read_board_meta(data_dir / "board_meta.json")
    tables: dict[str, pd.DataFrame] = {}
    for table in BOARD_TABLES:
        path = data_dir / table.file
        tables[table.name] = _board_rows(path, table.name, table.read(path), meta)
    _check_scores(data_dir / "scores.parquet", tables["scores"])
    return meta, tables


def _board_rows(path: Path, name: str, frame: pd.DataFrame, meta: BoardMeta) -> pd.DataFrame:
    """The rows of ``frame`` that belong on the board; raises on held-out per-model rows."""
    zoo = frame["zoo_id"].astype(str)
    heldout_id = meta.heldout.zoo_id if meta.heldout is not None else None
    if name in PER_MODEL:
        if heldout_id is not None and (zoo == heldout_id).any():
            raise ValueError(
                f"{path}: {int((zoo == heldout_id).sum())} rows of the held-out zoo {heldout_id!r}; the held-out "
                "zoo publishes aggregate scores only (per-model rows would let predictors fit the official ranking)"
            )
        public = frame[zoo == meta.public.zoo_id]
        if len(frame) and public.empty:
            raise ValueError(
                f"{path}: no rows for zoo_id {meta.public.zoo_id!r} of board_meta.json (the table has "
                f"{sorted(set(zoo))}); copy the tables of the same zoo."
            )
        return public.reset_index(drop=True)
    split = frame["split"].astype(str)
    bad = sorted(set(split) - {PUBLIC, HELDOUT})
    if bad:
        raise ValueError(f"{path}: column 'split' has {bad}; allowed: {[PUBLIC, HELDOUT]}")
    if heldout_id is None and (split == HELDOUT).any():
        raise ValueError(f"{path}: has held-out rows but board_meta.json names no held-out zoo ('heldout' is null)")
    mixed = ((split == PUBLIC) & (zoo == heldout_id)) | ((split == HELDOUT) & (zoo == meta.public.zoo_id))
    if mixed.any():
        row = frame[mixed].iloc[0]
        raise ValueError(f"{path}: row of predictor {row['predictor']!r} has split {row['split']!r} but zoo_id "
                         f"{row['zoo_id']!r}; public rows belong to the public zoo, held-out rows to the held-out zoo")
    keep = ((split == PUBLIC) & (zoo == meta.public.zoo_id)) | ((split == HELDOUT) & (zoo == heldout_id))
    if len(frame) and not (keep & (split == PUBLIC)).any():
        raise ValueError(
            f"{path}: no public rows for zoo_id {meta.public.zoo_id!r} of board_meta.json (the table has "
            f"{sorted(set(zoo))}); copy the tables of the same zoo."
        )
    return frame[keep].reset_index(drop=True)


def _check_scores(path: Path, scores: pd.DataFrame) -> None:
    bad_kind = sorted(set(scores["kind"]) - set(KINDS))
    if bad_kind:
        raise ValueError(f"{path}: column 'kind' has {bad_kind}; allowed: {list(KINDS)}.")
    unknown = sorted(set(scores["metric"]) - set(SCORE_METRICS))
    if unknown:
        raise ValueError(
            f"{path}: unknown metric(s) {unknown}; known: {list(SCORE_METRICS)} "
            "(add new metrics to benchmark/metrics/catalog.py first)."
        )
    versions = scores.groupby(["split", "predictor"])["version"].nunique()
    several = sorted({p for (_, p), n in versions.items() if n > 1})
    if several:
        raise ValueError(
            f"{path}: predictor(s) {several} appear with several versions; a board shows one "
            "version per predictor: keep only the rows of the version to publish."
        )
    public = scores[scores["split"] == PUBLIC].groupby("predictor")["version"].first()
    heldout = scores[scores["split"] == HELDOUT].groupby("predictor")["version"].first()
    differ = sorted(p for p in set(public.index) & set(heldout.index) if public[p] != heldout[p])
    if differ:
        raise ValueError(
            f"{path}: predictor(s) {differ} have another version on the held-out zoo than on the public one; "
            "score the same version on both"
        )
