"""Read the tidy result tables and arrange them into the board both outputs render.

Inputs (one directory, e.g. ``leaderboards/data/``; schemas in docs/ARCHITECTURE.md, "Tables"):

- ``scores.parquet``: one row per (predictor, task, target, metric, axis) with a 95% interval.
- ``runs.parquet``: one row per predictor run: version, kind, family, reference, optional ``notes``.
- ``predictions.parquet``: one row per (predictor, model): status, reason, seconds.
- ``points.parquet``: ``zoo_id, task, model_id, predictor, score, gap`` (converged models only),
  the data of the score-vs-gap scatter plots.
- ``board_meta.json``: ``{"zoo_id", "spec_name", "git_commit", "date", "n_models": {task: n}}``.

Everything here is pure bookkeeping: no number is computed that the scoring stage already wrote,
except the per-task cost (median seconds, failure rate), counted from ``predictions.parquet``.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from benchmark.schema import SCORE_METRICS

__all__ = [
    "Board",
    "BoardMeta",
    "Cell",
    "FailureSummary",
    "OVERALL",
    "PredictorInfo",
    "REQUIRED_COLUMNS",
    "Row",
    "TaskBoard",
    "KIND_LABELS",
    "build_board",
    "kind_label",
    "load_board",
    "read_tables",
    "slug",
]

OVERALL = "overall"
TARGET = "gap"
KINDS = ("predictor", "baseline", "oracle")

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "scores.parquet": (
        "zoo_id", "predictor", "version", "kind", "task", "target", "metric", "axis",
        "value", "ci_low", "ci_high", "n_models",
    ),
    "runs.parquet": ("zoo_id", "predictor", "version", "family", "kind", "reference"),
    "predictions.parquet": (
        "zoo_id", "model_id", "task", "predictor", "version", "score", "status", "reason", "seconds",
    ),
    "points.parquet": ("zoo_id", "task", "model_id", "predictor", "score", "gap"),
}


class BoardMeta(BaseModel):
    """Provenance printed in the board's header (``board_meta.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zoo_id: str
    spec_name: str
    git_commit: str
    date: str
    n_models: dict[str, int]
    """Zoo size per task (models in the zoo, converged or not)."""


@dataclass(frozen=True)
class Cell:
    """A value with its 95% bootstrap interval (NaN where missing)."""

    value: float = math.nan
    low: float = math.nan
    high: float = math.nan


@dataclass(frozen=True)
class Row:
    """One predictor's line in one task's table."""

    predictor: str
    version: str
    kind: str
    metrics: dict[str, Cell]
    seconds_per_model: float
    failure_rate: float
    n_models_scored: int
    beats_best_baseline: bool | None
    """True/False for kind "predictor" when the task has a baseline with a Psi interval; else None."""

    def cell(self, metric: str) -> Cell:
        """The metric's cell, or an empty one when the scores table lacks it."""
        return self.metrics.get(metric, Cell())


@dataclass(frozen=True)
class TaskBoard:
    """One table of the board: a task, or "overall"."""

    task: str
    zoo_size: int
    rows: tuple[Row, ...]
    best_baseline: str | None
    axes: tuple[str, ...]
    psi_axis: dict[str, dict[str, Cell]]
    """predictor -> axis -> psi_i."""


@dataclass(frozen=True)
class FailureSummary:
    """Failures of one predictor on one task, from ``predictions.parquet``."""

    predictor: str
    task: str
    n_failed: int
    n_total: int
    reasons: tuple[tuple[str, int], ...]
    """The most common reasons with their counts, most common first."""


@dataclass(frozen=True)
class PredictorInfo:
    """What ``runs.parquet`` says about a predictor."""

    predictor: str
    version: str
    kind: str
    family: str
    reference: str
    requires: str
    code_hash: str
    notes: str
    slug: str


@dataclass(frozen=True)
class Board:
    """Everything the README, the HTML page and the figures are rendered from."""

    meta: BoardMeta
    tasks: tuple[TaskBoard, ...]
    predictors: tuple[PredictorInfo, ...]
    failures: tuple[FailureSummary, ...]
    points: pd.DataFrame = field(repr=False)

    def task(self, name: str) -> TaskBoard:
        """The table of task ``name``."""
        for t in self.tasks:
            if t.task == name:
                return t
        raise KeyError(f"no task {name!r} on the board; tasks: {[t.task for t in self.tasks]}")

    def info(self, predictor: str) -> PredictorInfo:
        """The run metadata of ``predictor``."""
        for p in self.predictors:
            if p.predictor == predictor:
                return p
        raise KeyError(f"no predictor {predictor!r} on the board")


KIND_LABELS = {"predictor": "", "baseline": "baseline", "oracle": "noise floor"}
"""How a row's kind is marked on the board ("" for ordinary predictors)."""


def kind_label(kind: str) -> str:
    """The marker shown beside a predictor of ``kind``: "baseline", "noise floor" or ""."""
    return KIND_LABELS.get(kind, kind)


def slug(name: str) -> str:
    """A file- and HTML-id-safe form of ``name``: ``[A-Za-z0-9._-]`` only, never empty."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return cleaned or "unnamed"


def _read_parquet(data_dir: Path, name: str) -> pd.DataFrame:
    path = data_dir / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; the leaderboard is rendered from {', '.join(REQUIRED_COLUMNS)} and "
            "board_meta.json in one directory (run `gapbench score` and copy the results there)."
        )
    frame = pd.read_parquet(path)
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; expected at least {list(REQUIRED_COLUMNS[name])} "
            "(docs/ARCHITECTURE.md, 'Tables')."
        )
    return frame


def read_meta(data_dir: Path) -> BoardMeta:
    """Read and validate ``board_meta.json``."""
    path = Path(data_dir) / "board_meta.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; it holds zoo_id, spec_name, git_commit, date and n_models per task."
        )
    try:
        return BoardMeta.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValidationError, json.JSONDecodeError) as err:
        raise ValueError(
            f"{path}: invalid board metadata: {err}\nExpected keys: zoo_id, spec_name, git_commit, "
            'date (str) and n_models ({"<task>": int}).'
        ) from err


def read_tables(data_dir: str | Path) -> tuple[BoardMeta, dict[str, pd.DataFrame]]:
    """Read and check every input table of ``data_dir``; tables are filtered to the meta's zoo."""
    data_dir = Path(data_dir)
    meta = read_meta(data_dir)
    tables = {}
    for name in REQUIRED_COLUMNS:
        frame = _read_parquet(data_dir, name)
        zoo_ids = sorted(set(frame["zoo_id"].astype(str)))
        if zoo_ids and meta.zoo_id not in zoo_ids:
            raise ValueError(
                f"{data_dir / name}: no rows for zoo_id {meta.zoo_id!r} of board_meta.json "
                f"(the table has {zoo_ids}); copy the tables of the same zoo."
            )
        frame = frame[frame["zoo_id"].astype(str) == meta.zoo_id]
        tables[name.removesuffix(".parquet")] = frame.reset_index(drop=True)
    _check_scores(data_dir / "scores.parquet", tables["scores"])
    return meta, tables


def _check_scores(path: Path, scores: pd.DataFrame) -> None:
    bad_kind = sorted(set(scores["kind"]) - set(KINDS))
    if bad_kind:
        raise ValueError(f"{path}: column 'kind' has {bad_kind}; allowed: {list(KINDS)}.")
    unknown = sorted(set(scores["metric"]) - set(SCORE_METRICS))
    if unknown:
        raise ValueError(
            f"{path}: unknown metric(s) {unknown}; known: {list(SCORE_METRICS)} "
            "(add new metrics to benchmark/schema.py first)."
        )
    versions = scores.groupby("predictor")["version"].nunique()
    several = sorted(versions[versions > 1].index)
    if several:
        raise ValueError(
            f"{path}: predictor(s) {several} appear with several versions; a board shows one "
            "version per predictor: keep only the rows of the version to publish."
        )
    keys = ["predictor", "task", "target", "metric", "axis"]
    dup = scores[scores.duplicated(keys, keep=False)]
    if not dup.empty:
        first = dup.sort_values(keys).iloc[0]
        raise ValueError(
            f"{path}: duplicate rows for {dict(first[keys])}; each (predictor, task, target, "
            "metric, axis) must appear once."
        )


def _num(x: object) -> float:
    try:
        value = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return value


def _cell(row: pd.Series) -> Cell:
    return Cell(_num(row["value"]), _num(row["ci_low"]), _num(row["ci_high"]))


def _sort_key_desc(value: float, name: str) -> tuple[int, float, str]:
    """Descending by value, NaN last, ties by name."""
    return (1, 0.0, name) if math.isnan(value) else (0, -value, name)


def _costs(predictions: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float]]:
    """(predictor, task or "overall") -> (median seconds per model, failure rate)."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    if predictions.empty:
        return out
    frame = predictions.assign(
        failed=predictions["status"].astype(str) != "ok",
        seconds=pd.to_numeric(predictions["seconds"], errors="coerce"),
    )
    for (pred, task), group in frame.groupby(["predictor", "task"], sort=True):
        out[(str(pred), str(task))] = (float(group["seconds"].median()), float(group["failed"].mean()))
    for pred, group in frame.groupby("predictor", sort=True):
        out[(str(pred), OVERALL)] = (float(group["seconds"].median()), float(group["failed"].mean()))
    return out


def _failures(predictions: pd.DataFrame, top: int = 3) -> tuple[FailureSummary, ...]:
    out = []
    for (pred, task), group in predictions.groupby(["predictor", "task"], sort=True):
        failed = group[group["status"].astype(str) != "ok"]
        if failed.empty:
            continue
        counts = Counter(str(r) or "(no reason recorded)" for r in failed["reason"])
        reasons = tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top])
        out.append(FailureSummary(str(pred), str(task), len(failed), len(group), reasons))
    return tuple(out)


def _infos(scores: pd.DataFrame, runs: pd.DataFrame) -> dict[str, PredictorInfo]:
    runs = runs.sort_values(["predictor", "version"]).drop_duplicates("predictor", keep="last")
    by_name = {str(r["predictor"]): r for _, r in runs.iterrows()}
    infos = {}
    first = scores.sort_values(["predictor"]).drop_duplicates("predictor")
    slugs: dict[str, str] = {}
    for _, s in first.iterrows():
        name = str(s["predictor"])
        r = by_name.get(name)

        def get(col: str, default: str = "", r: pd.Series | None = r) -> str:
            if r is None or col not in r.index or r[col] is None:
                return default
            value = r[col]
            if isinstance(value, float) and math.isnan(value):
                return default
            if isinstance(value, str) and value.startswith("["):
                try:  # requires is stored as a JSON list
                    value = json.loads(value)
                except json.JSONDecodeError:
                    return value
            if isinstance(value, (list, tuple)) or hasattr(value, "tolist"):
                return ", ".join(str(v) for v in list(value))
            return str(value)

        s_slug = slug(name)
        if s_slug in slugs.values():
            raise ValueError(
                f"predictors {name!r} and {[k for k, v in slugs.items() if v == s_slug][0]!r} map "
                f"to the same file name {s_slug!r}; rename one."
            )
        slugs[name] = s_slug
        infos[name] = PredictorInfo(
            predictor=name,
            version=str(s["version"]),
            kind=str(s["kind"]),
            family=get("family"),
            reference=get("reference"),
            requires=get("requires"),
            code_hash=get("code_hash"),
            notes=get("notes").strip(),
            slug=s_slug,
        )
    return infos


def _task_order(tasks: set[str]) -> list[str]:
    rest = sorted(t for t in tasks if t != OVERALL)
    return ([OVERALL] if OVERALL in tasks else []) + rest


def build_board(meta: BoardMeta, tables: dict[str, pd.DataFrame]) -> Board:
    """Arrange checked tables (see :func:`read_tables`) into a :class:`Board`.

    Per task: one row per predictor, sorted by Psi (descending, missing last, ties by name).
    The best baseline is the kind "baseline" row with the highest Psi; a kind "predictor" row
    beats it when its Psi ``ci_low`` is above the best baseline's Psi ``ci_high``
    (non-overlapping 95% intervals).
    """
    scores = tables["scores"]
    scores = scores[scores["target"].astype(str) == TARGET].copy()
    scores["axis"] = scores["axis"].fillna("").astype(str)
    if scores.empty:
        raise ValueError(f"scores.parquet has no rows with target {TARGET!r} for zoo {meta.zoo_id!r}.")
    infos = _infos(scores, tables["runs"])
    costs = _costs(tables["predictions"])

    task_boards = []
    for task in _task_order(set(scores["task"].astype(str))):
        ts = scores[scores["task"].astype(str) == task]
        flat = ts[ts["axis"] == ""]
        per_axis = ts[(ts["metric"] == "psi_axis") & (ts["axis"] != "")]
        cells: dict[str, dict[str, Cell]] = {}
        n_scored: dict[str, int] = {}
        for _, r in flat.sort_values(["predictor", "metric"]).iterrows():
            cells.setdefault(str(r["predictor"]), {})[str(r["metric"])] = _cell(r)
            n = _num(r["n_models"])
            if not math.isnan(n):
                n_scored[str(r["predictor"])] = max(n_scored.get(str(r["predictor"]), 0), int(n))
        psi_axis: dict[str, dict[str, Cell]] = {}
        for _, r in per_axis.sort_values(["predictor", "axis"]).iterrows():
            psi_axis.setdefault(str(r["predictor"]), {})[str(r["axis"])] = _cell(r)
        names = sorted(set(ts["predictor"].astype(str)))
        psi_of = {n: cells.get(n, {}).get("psi", Cell()) for n in names}

        baselines = [n for n in names if infos[n].kind == "baseline" and not math.isnan(psi_of[n].value)]
        best = min(baselines, key=lambda n: _sort_key_desc(psi_of[n].value, n)) if baselines else None
        best_high = psi_of[best].high if best is not None else math.nan

        rows = []
        for n in sorted(names, key=lambda n: _sort_key_desc(psi_of[n].value, n)):
            beats: bool | None = None
            comparable = best is not None and not math.isnan(best_high) and not math.isnan(psi_of[n].value)
            if infos[n].kind == "predictor" and comparable:
                beats = bool(psi_of[n].low > best_high)  # a missing ci_low compares False: no claim
            seconds, failure = costs.get((n, task), (math.nan, math.nan))
            rows.append(
                Row(
                    predictor=n,
                    version=infos[n].version,
                    kind=infos[n].kind,
                    metrics=cells.get(n, {}),
                    seconds_per_model=seconds,
                    failure_rate=failure,
                    n_models_scored=n_scored.get(n, 0),
                    beats_best_baseline=beats,
                )
            )
        if task == OVERALL:
            zoo_size = sum(meta.n_models.values())
        else:
            zoo_size = meta.n_models.get(task, 0)
        axes = tuple(sorted(set(per_axis["axis"])))
        task_boards.append(TaskBoard(task, zoo_size, tuple(rows), best, axes, psi_axis))

    overall_psi = {r.predictor: r.cell("psi").value for r in task_boards[0].rows}
    ordered = sorted(infos, key=lambda n: _sort_key_desc(overall_psi.get(n, math.nan), n))
    points = tables["points"].copy()
    points = points.sort_values(["predictor", "task", "model_id"]).reset_index(drop=True)
    return Board(
        meta=meta,
        tasks=tuple(task_boards),
        predictors=tuple(infos[n] for n in ordered),
        failures=_failures(tables["predictions"]),
        points=points,
    )


def load_board(data_dir: str | Path) -> Board:
    """Read ``data_dir``'s tables and build the :class:`Board`."""
    meta, tables = read_tables(data_dir)
    return build_board(meta, tables)
