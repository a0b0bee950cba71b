"""Arrange the checked tables into the board every renderer draws (README, HTML, figures, terminal).

Per target (gap, test error, shift error where scored) and task: one row per predictor with every
score metric and its 95% interval, the cost and failure rate (counted from ``predictions``), and,
when the held-out zoo was scored, its held-out metrics. Rows are ranked by the **official**
granulated Psi: the held-out zoo's when present, else the public zoo's (``rank_by="public"``
ranks by the public Psi everywhere, as the terminal does for a local submission).

Nothing here recomputes a number the scoring stage wrote; the board adds only bookkeeping: cost
per task, ranks, the best baseline, the rank agreement between the public and the held-out Psi
(Kendall tau over predictors) and the median stationarity diagnostic of the trajectory window.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.leaderboard.tables import HELDOUT, OVERALL, PUBLIC, order_targets, read_tables, slug
from benchmark.metrics.catalog import METRICS, SCORE_METRICS
from benchmark.metrics.rank import kendall_tau
from benchmark.tables import BoardMeta

__all__ = [
    "Agreement",
    "Board",
    "Cell",
    "FailureSummary",
    "PredictorInfo",
    "RANK_METRIC",
    "Row",
    "TaskBoard",
    "build_board",
    "load_board",
    "rank_agreement",
]

RANK_METRIC = "psi"
"""The metric rows are ranked by (Jiang et al. 2020's granulated Kendall Psi)."""


@dataclass(frozen=True)
class Cell:
    """A value with its 95% bootstrap interval (NaN where missing) and the units it averages over."""

    value: float = math.nan
    low: float = math.nan
    high: float = math.nan
    n_units: int = 0
    """Units the value averages over (scores column ``n_units``); 0 when unknown."""
    n_models: int = 0


@dataclass(frozen=True)
class Row:
    """One predictor's line in one (target, task) table."""

    predictor: str
    version: str
    kind: str
    metrics: dict[str, Cell]
    heldout: dict[str, Cell]
    seconds_per_model: float
    failure_rate: float
    n_models_scored: int
    beats_best_baseline: bool | None
    """True/False for kind "predictor" when the task has a baseline with a ranking Psi; else None."""
    rank: int | None
    """1-based rank by the ranking Psi (ties share a rank); None without a ranking Psi (e.g. no held-out
    score on an officially ranked table)."""

    def cell(self, metric: str) -> Cell:
        """The public metric's cell, or an empty one when the scores table lacks it."""
        return self.metrics.get(metric, Cell())

    def heldout_cell(self, metric: str) -> Cell:
        """The held-out metric's cell, or an empty one."""
        return self.heldout.get(metric, Cell())


@dataclass(frozen=True)
class Agreement:
    """Rank agreement of the public and the held-out Psi over a table's predictors."""

    tau: float
    """Kendall tau-b between the two Psi columns (NaN with fewer than 3 predictors)."""
    predictors: tuple[str, ...]
    """The predictors compared (both Psi finite; the seed oracle left out)."""

    @property
    def n(self) -> int:
        return len(self.predictors)


@dataclass(frozen=True)
class TaskBoard:
    """One table of the board: a target and a task (or "overall")."""

    task: str
    target: str
    zoo_size: int
    rows: tuple[Row, ...]
    best_baseline: str | None
    axes: tuple[str, ...]
    psi_axis: dict[str, dict[str, Cell]]
    """predictor -> axis -> psi_i (public zoo)."""
    ranked_by: str
    """``"heldout"`` (official ranking) or ``"public"``: whose Psi orders the rows."""
    has_heldout: bool
    agreement: Agreement | None
    """Set when the held-out zoo was scored on this table."""
    drift_median: float
    """Median ``window_drift_share`` of the task's converged models (NaN when not recorded)."""
    n_converged: int
    """Converged models of the task (or all tasks): the ones the scores rank."""

    @property
    def size_text(self) -> str:
        """``"288 models"``, or ``"288 models, 266 converged and scored"`` when some did not converge."""
        text = f"{self.zoo_size} models"
        return text if self.n_converged == self.zoo_size else f"{text}, {self.n_converged} converged and scored"

    def ranking_cell(self, row: Row) -> Cell:
        """The Psi cell that ranks ``row`` (held-out when the table is ranked by it)."""
        return row.heldout_cell(RANK_METRIC) if self.ranked_by == HELDOUT else row.cell(RANK_METRIC)

    def row(self, predictor: str) -> Row | None:
        """The row of ``predictor``, or None."""
        return next((r for r in self.rows if r.predictor == predictor), None)


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
    url: str
    requires: tuple[str, ...]
    code_hash: str
    notes: str
    slug: str
    sandboxed: bool
    """False when any of its runs on the board's zoos ran with ``--no-sandbox``."""

    @property
    def reads_hparams(self) -> bool:
        """It reads the hyperparameters: it could look answers up in a published public zoo."""
        return "hparams" in self.requires

    @property
    def uses_trajectory(self) -> bool:
        """It reads the recorded trajectory window (the stationarity diagnostic concerns it)."""
        return "trajectory" in self.requires

    @property
    def link(self) -> str:
        """The paper's URL when it is an http(s) link (anything else is never turned into a link)."""
        url = self.url.strip()
        return url if url.startswith(("https://", "http://")) and not any(c in url for c in " \"'<>\\") else ""


@dataclass(frozen=True)
class Board:
    """Everything the README, the HTML page, the figures and the terminal view are rendered from."""

    meta: BoardMeta
    targets: tuple[str, ...]
    boards: dict[str, tuple[TaskBoard, ...]]
    """target -> its tables (overall first, then tasks by name)."""
    predictors: tuple[PredictorInfo, ...]
    failures: tuple[FailureSummary, ...]
    metrics: tuple[str, ...]
    """Score metrics with one value per table row present in the scores (catalogue order)."""
    axis_metrics: tuple[str, ...]
    """Score metrics given per hyperparameter axis (the catalogue's ``per_axis``) present in the scores."""
    points: pd.DataFrame = field(repr=False)
    """Public points joined with the models' targets and ``hp`` JSON, sorted."""
    drift: dict[str, float] = field(default_factory=dict)
    """task (and "overall") -> median window drift share of the converged models."""

    @property
    def tasks(self) -> tuple[TaskBoard, ...]:
        """The tables of the first target (the generalization gap)."""
        return self.boards[self.targets[0]]

    @property
    def has_heldout(self) -> bool:
        return any(tb.has_heldout for tbs in self.boards.values() for tb in tbs)

    def task(self, name: str, target: str | None = None) -> TaskBoard:
        """The table of task ``name`` for ``target`` (default: the gap)."""
        target = target or self.targets[0]
        for t in self.boards.get(target, ()):
            if t.task == name:
                return t
        raise KeyError(f"no task {name!r} for target {target!r} on the board; "
                       f"tasks: {[t.task for t in self.boards.get(target, ())]}")

    def info(self, predictor: str) -> PredictorInfo:
        """The run metadata of ``predictor``."""
        for p in self.predictors:
            if p.predictor == predictor:
                return p
        raise KeyError(f"no predictor {predictor!r} on the board")


def rank_agreement(public: dict[str, float], heldout: dict[str, float]) -> Agreement:
    """Kendall tau-b between two Psi values per predictor, over the predictors where both are finite.

    With fewer than three such predictors (or a constant column) tau is NaN.
    """
    names = tuple(sorted(n for n in public if n in heldout and math.isfinite(public[n]) and math.isfinite(heldout[n])))
    if len(names) < 3:
        return Agreement(math.nan, names)
    tau = kendall_tau([public[n] for n in names], [heldout[n] for n in names])
    return Agreement(float(tau), names)


def _num(x: object) -> float:
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _cell(row: pd.Series) -> Cell:
    return Cell(_num(row["value"]), _num(row["ci_low"]), _num(row["ci_high"]),
                int(row["n_units"]), int(row["n_models"]))


def _costs(predictions: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float]]:
    """(predictor, task or "overall") -> (median seconds per model, failure rate)."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    if predictions.empty:
        return out
    frame = predictions.assign(failed=predictions["status"].astype(str) != "ok",
                               seconds=pd.to_numeric(predictions["seconds"], errors="coerce"))
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


def _requires(value: str) -> tuple[str, ...]:
    text = value.strip()
    if text.startswith("["):  # tolerate a JSON list
        return tuple(str(v) for v in json.loads(text))
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _infos(scores: pd.DataFrame, runs: pd.DataFrame) -> dict[str, PredictorInfo]:
    """One info per predictor with scores; its public run row first, else its held-out one."""
    ordered = runs.assign(_pub=(runs["split"] != PUBLIC).astype(int)).sort_values(["predictor", "_pub"])
    first_run = {str(r["predictor"]): r for _, r in ordered.drop_duplicates("predictor").iterrows()}
    sandboxed = runs.groupby("predictor")["sandboxed"].all().to_dict()
    infos: dict[str, PredictorInfo] = {}
    slugs: dict[str, str] = {}
    for _, s in scores.sort_values(["predictor", "split"]).drop_duplicates("predictor").iterrows():
        name = str(s["predictor"])
        r = first_run.get(name)
        s_slug = slug(name)
        if s_slug in slugs:
            raise ValueError(f"predictors {name!r} and {slugs[s_slug]!r} map to the same file name {s_slug!r}; "
                             "rename one.")
        slugs[s_slug] = name

        def get(col: str, r: pd.Series | None = r) -> str:
            return "" if r is None else str(r[col]).strip()

        infos[name] = PredictorInfo(
            predictor=name, version=str(s["version"]), kind=str(s["kind"]), family=get("family"),
            reference=get("reference"), url=get("url"), requires=_requires(get("requires")),
            code_hash=get("code_hash"), notes=get("notes"), slug=s_slug,
            sandboxed=bool(sandboxed.get(name, True)),
        )
    return infos


def _drift(models: pd.DataFrame) -> dict[str, float]:
    """Median window drift share of the converged models, per task and over all tasks."""
    ok = models[(models["status"] == "converged")]
    values = pd.to_numeric(ok["window_drift_share"], errors="coerce")
    ok = ok.assign(drift=values)[np.isfinite(values)]
    out = {str(t): float(g["drift"].median()) for t, g in ok.groupby("task", sort=True)}
    if len(ok):
        out[OVERALL] = float(ok["drift"].median())
    return out


def _task_order(tasks: set[str]) -> list[str]:
    rest = sorted(t for t in tasks if t != OVERALL)
    return ([OVERALL] if OVERALL in tasks else []) + rest


def _desc(value: float) -> tuple[int, float]:
    """Descending by value, NaN last."""
    return (1, 0.0) if math.isnan(value) else (0, -value)


def _cells(frame: pd.DataFrame) -> tuple[dict[str, dict[str, Cell]], dict[str, dict[str, Cell]]]:
    """(predictor -> metric -> cell for flat metrics, predictor -> axis -> psi_axis-like cell)."""
    flat: dict[str, dict[str, Cell]] = {}
    per_axis: dict[str, dict[str, Cell]] = {}
    for _, r in frame.sort_values(["predictor", "metric", "axis"]).iterrows():
        if r["axis"] == "":
            flat.setdefault(str(r["predictor"]), {})[str(r["metric"])] = _cell(r)
        else:
            per_axis.setdefault(str(r["predictor"]), {})[str(r["axis"])] = _cell(r)
    return flat, per_axis


def _converged(models: pd.DataFrame) -> dict[str, int]:
    """Converged models per task and over all tasks (what scoring ranks)."""
    ok = models[models["status"] == "converged"]
    out = {str(t): int(n) for t, n in ok.groupby("task", sort=True).size().items()}
    out[OVERALL] = int(len(ok))
    return out


def _task_board(task: str, target: str, scores: pd.DataFrame, infos: dict[str, PredictorInfo],
                costs: dict, meta: BoardMeta, rank_by: str, drift: dict[str, float],
                converged: dict[str, int]) -> TaskBoard:
    ts = scores[(scores["task"] == task) & (scores["target"] == target)]
    public, pub_axes = _cells(ts[ts["split"] == PUBLIC])
    heldout, _ = _cells(ts[ts["split"] == HELDOUT])
    names = sorted(set(ts["predictor"]))
    pub_psi = {n: public.get(n, {}).get(RANK_METRIC, Cell()) for n in names}
    held_psi = {n: heldout.get(n, {}).get(RANK_METRIC, Cell()) for n in names}
    has_heldout = any(math.isfinite(c.value) for c in held_psi.values())
    ranked_by = HELDOUT if rank_by == "official" and has_heldout else PUBLIC
    rank_psi = held_psi if ranked_by == HELDOUT else pub_psi

    def key(n: str) -> tuple:
        if ranked_by == HELDOUT:  # official first; predictors without held-out scores after, by public Psi
            return (*_desc(held_psi[n].value), *_desc(pub_psi[n].value))
        return _desc(pub_psi[n].value)

    baselines = [n for n in names if infos[n].kind == "baseline" and math.isfinite(rank_psi[n].value)]
    best = min(baselines, key=lambda n: (key(n), n)) if baselines else None
    best_high = rank_psi[best].high if best is not None else math.nan
    rows: list[Row] = []
    previous: tuple | None = None
    rank = 0
    for position, n in enumerate(sorted(names, key=lambda n: (key(n), n)), start=1):
        if previous != key(n):
            rank, previous = position, key(n)
        beats: bool | None = None
        if infos[n].kind == "predictor" and math.isfinite(best_high) and math.isfinite(rank_psi[n].value):
            beats = bool(rank_psi[n].low > best_high)  # a missing ci_low compares False: no claim
        seconds, failure = costs.get((n, task), (math.nan, math.nan))
        cells = public.get(n, {})
        rows.append(Row(
            predictor=n, version=infos[n].version, kind=infos[n].kind, metrics=cells, heldout=heldout.get(n, {}),
            seconds_per_model=seconds, failure_rate=failure,
            n_models_scored=max((c.n_models for c in cells.values()), default=0), beats_best_baseline=beats,
            rank=rank if math.isfinite(rank_psi[n].value) else None,
        ))
    agreement = None
    if has_heldout:
        agreement = rank_agreement({n: pub_psi[n].value for n in names if infos[n].kind != "oracle"},
                                   {n: held_psi[n].value for n in names if infos[n].kind != "oracle"})
    zoo_size = sum(meta.public.n_models.values()) if task == OVERALL else meta.public.n_models.get(task, 0)
    axes = tuple(sorted({a for per in pub_axes.values() for a in per}))
    return TaskBoard(task=task, target=target, zoo_size=zoo_size, rows=tuple(rows), best_baseline=best, axes=axes,
                     psi_axis=pub_axes, ranked_by=ranked_by, has_heldout=has_heldout, agreement=agreement,
                     drift_median=drift.get(task, math.nan), n_converged=converged.get(task, 0))


def build_board(meta: BoardMeta, tables: dict[str, pd.DataFrame], *, rank_by: str = "official") -> Board:
    """Arrange checked tables (see :func:`read_tables`) into a :class:`Board`.

    Per (target, task): one row per predictor, ranked by the held-out Psi when the held-out zoo
    was scored (``rank_by="official"``) and by the public Psi otherwise or with
    ``rank_by="public"``; descending, missing last, ties share a rank and are listed by name.
    The best baseline is the kind "baseline" row ranked first; a kind "predictor" row beats it
    when its ranking Psi ``ci_low`` is above the best baseline's ``ci_high`` (non-overlapping
    95% intervals).
    """
    if rank_by not in ("official", "public"):
        raise ValueError(f"rank_by must be 'official' or 'public', not {rank_by!r}")
    scores = tables["scores"].copy()
    scores["axis"] = scores["axis"].fillna("").astype(str)
    if scores[scores["split"] == PUBLIC].empty:
        raise ValueError(f"scores.parquet has no public rows for zoo {meta.zoo_id!r}.")
    infos = _infos(scores, tables["runs"])
    costs = _costs(tables["predictions"])
    drift = _drift(tables["models"])
    converged = _converged(tables["models"])
    public = scores[scores["split"] == PUBLIC]
    targets = order_targets(set(public["target"]))
    boards = {
        target: tuple(_task_board(task, target, scores, infos, costs, meta, rank_by, drift, converged)
                      for task in _task_order(set(public.loc[public["target"] == target, "task"])))
        for target in targets
    }
    present = set(scores["metric"])
    per_axis = {m for m in SCORE_METRICS if METRICS[m].per_axis}
    first = boards[targets[0]][0]
    ordered = [r.predictor for r in first.rows] + sorted(set(infos) - {r.predictor for r in first.rows})
    joined = ["model_id", "config_id", "seed", "status", "hp", "gap", "test_error", "shift_error"]
    points = tables["points"].merge(tables["models"][joined], on="model_id", how="left")
    points = points.sort_values(["predictor", "task", "model_id"]).reset_index(drop=True)
    return Board(
        meta=meta, targets=tuple(targets), boards=boards, predictors=tuple(infos[n] for n in ordered),
        failures=_failures(tables["predictions"]),
        metrics=tuple(m for m in SCORE_METRICS if m in present and m not in per_axis),
        axis_metrics=tuple(m for m in SCORE_METRICS if m in per_axis and m in present),
        points=points, drift=drift,
    )


def load_board(data_dir: str | Path, *, rank_by: str = "official") -> Board:
    """Read ``data_dir``'s tables and build the :class:`Board`."""
    meta, tables = read_tables(data_dir)
    return build_board(meta, tables, rank_by=rank_by)
