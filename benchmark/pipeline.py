"""The stages chained: resolve predictors, predict, score, write the tables, render, track, publish.

The CLI (benchmark.cli) parses arguments and calls these; each stage is usable on its own:
``resolve`` (names and files -> PredictorRefs, submitted files described inside a worker),
``benchmark.predict.predict``, ``benchmark.scoring.score_zoo``, ``write_results`` (the tables
of one zoo under ``<results>/<zoo_id>/``), ``benchmark.leaderboard.render_leaderboard`` and
``publish`` (copy the tables to ``leaderboards/data/`` and render the board there).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from benchmark.predict import PredictReport, predict
from benchmark.sandbox import Isolation
from benchmark.scoring import ScoreTables, git_commit, models_table, score_zoo
from benchmark.tables import (
    BOARD_TABLES,
    MODELS,
    POINTS,
    PREDICTIONS,
    RUNS,
    SCORES,
    BoardMeta,
    ZooRef,
    write_board_meta,
)
from model_zoo.executor import Executor, Job, Lane, LocalExecutor
from predictors.registry import PredictorRef, UnknownPredictorError, file_refs, is_file_item, load_all, resolve_names

RESULTS = Path("results")
BOARD_DIR = Path("leaderboards")
BOARD_DATA = BOARD_DIR / "data"


@dataclass
class Resolved:
    """Predictor refs named on a command line, and one line per item that could not be used."""

    refs: list[PredictorRef]
    problems: list[str] = field(default_factory=list)


def resolve(items: list[str] | None, isolation: Isolation, executor: Executor | None = None) -> Resolved:
    """Registry names and globs, and predictor files (described in an isolated worker: their code
    never runs in this process). A bad item is one problem line; the others go on.
    """
    registered = {str(Path(ref.location).resolve()): ref.name for ref in resolve_names() if ref.source == "contrib"}
    items = [registered.get(str(Path(i).resolve()), i) if is_file_item(i) else i for i in items or []]
    names = [i for i in items if not is_file_item(i)]
    files = [i for i in items if is_file_item(i)]
    out = Resolved([])
    if names or not files:
        for name in names or [None]:
            try:
                out.refs += resolve_names([name] if name else None)
            except UnknownPredictorError as exc:
                out.problems.append(str(exc))
    if files:
        described = describe_files(files, isolation, executor)
        for path in files:
            metas, problem = described[path]
            if problem:
                out.problems.append(problem)
            else:
                out.refs += file_refs(path, metas)
    seen: dict[str, PredictorRef] = {}
    registry = load_all()
    for ref in out.refs:
        if ref.name in seen and seen[ref.name] != ref:
            out.problems.append(f"predictor {ref.name!r} is defined twice ({seen[ref.name].location} and {ref.location}); "
                                "rename one")
            continue
        if ref.source == "file" and ref.name in registry:
            out.problems.append(f"{ref.location}: predictor name {ref.name!r} is already registered "
                                f"({registry.ref(ref.name).location}); rename it")
            continue
        seen[ref.name] = ref
    out.refs = list(seen.values())
    return out


def describe_files(paths: list[str], isolation: Isolation, executor: Executor | None = None
                   ) -> dict[str, tuple[list[dict], str | None]]:
    """``path -> (metadata dicts, problem)``: each file imported only inside an isolated worker."""
    out: dict[str, tuple[list[dict], str | None]] = {}
    lanes, jobs = {}, []
    for i, path in enumerate(paths):
        resolved = Path(path).resolve()
        if not resolved.is_file():
            out[path] = ([], f"{path}: no such predictor file")
            continue
        lane = f"describe-{i}"
        lanes[lane] = Lane(lane, launcher=isolation.launcher(files=(str(resolved),)), max_workers=1)
        jobs.append(Job(path, lane, "predictors.registry:describe_file",
                        {"path": isolation.file_path(str(resolved))}, timeout=120))
    for result in (executor or LocalExecutor(2)).run(lanes, jobs):
        path = result.job.key
        if result.ok and isinstance(result.value, list):
            out[path] = (result.value, None)
        else:
            out[path] = ([], f"{path}: {result.error or 'could not be described'}")
    return out


def cached_refs(zoo_root: str | Path, results_dir: str | Path, seed: int = 0, *,
                sandboxed: bool = True) -> list[PredictorRef]:
    """Registered predictors whose current version has cached predictions for this zoo (and isolation)."""
    from benchmark.cache import PredictionCache
    from model_zoo.zoo import Zoo

    zoo = Zoo(zoo_root)
    cache = PredictionCache(results_dir, zoo.zoo_id, zoo.content_hash, sandboxed=sandboxed)
    return [ref for ref in resolve_names() if cache.exists(ref, seed)]


@dataclass
class Evaluation:
    """What one evaluation produced: the predict report, the models, the score tables, the board header."""

    report: PredictReport
    predictions: pd.DataFrame
    models: pd.DataFrame
    tables: ScoreTables
    meta: BoardMeta
    out_dir: Path


def evaluate(zoo_root: str | Path, refs: list[PredictorRef], *, results_dir: str | Path = RESULTS,
             seed: int = 0, workers: int = 2, budget_seconds: float, isolation: Isolation,
             retry_failed: bool = False, progress: bool = True, score_also: list[PredictorRef] | None = None,
             executor: Executor | None = None, split: str = "public") -> Evaluation:
    """Predict (cached), score and write the tables of one zoo under ``<results>/<zoo_id>/``.

    ``score_also``: predictors already cached that are scored beside ``refs`` (not recomputed).
    """
    report = predict(zoo_root, refs, results_dir=results_dir, seed=seed, workers=workers, budget_seconds=budget_seconds,
                     isolation=isolation, retry_failed=retry_failed, progress=progress, executor=executor)
    everyone = list({r.name: r for r in [*refs, *(score_also or [])]}.values())
    extra = [r for r in everyone if r not in refs]
    predictions = report.predictions
    if extra:
        more = predict(zoo_root, extra, results_dir=results_dir, seed=seed, workers=workers,
                       budget_seconds=budget_seconds, isolation=isolation, progress=False, executor=executor)
        predictions = PREDICTIONS.frame(pd.concat([predictions, more.predictions], ignore_index=True))
    models, zoo = models_table(zoo_root)
    tables = score_zoo(models, predictions, everyone, zoo=zoo, sandboxed=isolation.sandbox, split=split)
    meta = BoardMeta(public=zoo, git_commit=git_commit(), date=date.today().isoformat(), sandboxed=isolation.sandbox)
    out_dir = write_results(Path(results_dir) / zoo.zoo_id, predictions=predictions, models=models, tables=tables,
                            meta=meta)
    return Evaluation(report=report, predictions=predictions, models=models, tables=tables, meta=meta, out_dir=out_dir)


def write_results(out_dir: Path, *, predictions: pd.DataFrame, models: pd.DataFrame, tables: ScoreTables,
                  meta: BoardMeta) -> Path:
    """Write the board tables of one zoo (and its header) into ``out_dir``."""
    frames = {PREDICTIONS.name: predictions, MODELS.name: models, SCORES.name: tables.scores,
              POINTS.name: tables.points, RUNS.name: tables.runs}
    for table in BOARD_TABLES:
        table.write(frames[table.name], out_dir / table.file)
    write_board_meta(meta, out_dir / "board_meta.json")
    return out_dir


def render_local(run: Evaluation) -> Path:
    """Render the board of one evaluated zoo into ``<results>/<zoo_id>/board/``; returns that folder."""
    from benchmark.leaderboard import render_leaderboard

    board = run.out_dir / "board"
    render_leaderboard(run.out_dir, board)
    return board


def publish(table_dir: Path, data_dir: Path = BOARD_DATA, board_dir: Path = BOARD_DIR) -> list[Path]:
    """Copy one zoo's tables to the published board's data folder and render the board."""
    from benchmark.leaderboard import render_leaderboard

    data_dir.mkdir(parents=True, exist_ok=True)
    for table in BOARD_TABLES:
        shutil.copy2(table_dir / table.file, data_dir / table.file)
    shutil.copy2(table_dir / "board_meta.json", data_dir / "board_meta.json")
    return render_leaderboard(data_dir, board_dir)


def publish_official(public: Evaluation, heldout: Evaluation | None, data_dir: Path = BOARD_DATA,
                     board_dir: Path = BOARD_DIR) -> list[Path]:
    """Publish the public zoo's tables and, when given, the held-out zoo's aggregate scores and runs.

    Per-model tables (predictions, models, points) are published for the public zoo only: the
    held-out zoo's answers never leave the machine that built it.
    """
    from benchmark.leaderboard import render_leaderboard

    scores, runs = public.tables.scores, public.tables.runs
    if heldout is not None:
        if set(heldout.tables.scores["split"]) != {"heldout"}:
            raise ValueError("the held-out evaluation was not scored with split='heldout'")
        scores = SCORES.frame(pd.concat([scores, heldout.tables.scores], ignore_index=True))
        runs = RUNS.frame(pd.concat([runs, heldout.tables.runs], ignore_index=True))
    meta = BoardMeta(public=public.meta.public, heldout=heldout.meta.public if heldout else None,
                     git_commit=public.meta.git_commit, date=public.meta.date,
                     sandboxed=public.meta.sandboxed and (heldout is None or heldout.meta.sandboxed))
    write_results(data_dir, predictions=public.predictions, models=public.models,
                  tables=ScoreTables(scores=scores, points=public.tables.points, runs=runs),
                  meta=meta)
    return render_leaderboard(data_dir, board_dir)


def zoo_ref_of(zoo_root: str | Path) -> ZooRef:
    """The reference (id, content hash, sizes) of a built zoo."""
    return models_table(zoo_root)[1]
