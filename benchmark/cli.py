"""The `gapbench` command line: zoo -> predictions -> scores -> MLflow + leaderboard."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from model_zoo.cli import app as zoo_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_show_locals=False)
app.add_typer(zoo_app, name="zoo", help="Build, inspect and verify model zoos.")
data_app = typer.Typer(no_args_is_help=True, help="Data sets: fetch and prepare.")
predictors_app = typer.Typer(no_args_is_help=True, help="The predictor registry.")
app.add_typer(data_app, name="data")
app.add_typer(predictors_app, name="predictors")

RESULTS = Path("results")
BOARD_DATA = Path("leaderboards/data")
BOARD_DIR = Path("leaderboards")
TABLES = ("predictions", "scores", "runs", "points")


@data_app.command("prepare")
def data_prepare(tasks: Annotated[list[str] | None, typer.Argument(help="tasks (default: all)")] = None) -> None:
    """Fetch (or read from $GAPBENCH_DATA_MIRROR) and cache the prepared arrays of each task."""
    from model_zoo.data import TASKS, load_task

    for name in tasks or TASKS:
        t0 = time.perf_counter()
        data = load_task(name)
        typer.echo(
            f"{name:14s} train {len(data.y_train):6d}  test {len(data.y_test):6d}"
            + (f"  shift {len(data.y_shift):5d}" if data.y_shift is not None else "")
            + f"  ({time.perf_counter() - t0:.1f} s)"
        )


@predictors_app.command("list")
def predictors_list(pattern: Annotated[str, typer.Argument()] = "*") -> None:
    """Name, family, version, requires and reference of every registered predictor."""
    from predictors.registry import load_all

    reg = load_all()
    rows = [(p.meta.name, p.meta.kind if p.meta.kind == "baseline" else p.meta.family, p.meta.version,
             ",".join(p.meta.requires) or "-", p.meta.reference) for p in reg.all() if p.meta.name in reg.names(pattern)]  # fmt: skip
    widths = [max(len(r[i]) for r in rows + [("name", "family", "version", "requires", "")]) for i in range(4)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(("name", "family", "version", "requires"), widths)) + "  reference")
    for r in rows:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4])


@predictors_app.command("check")
def predictors_check(
    predictor: Annotated[list[str], typer.Argument(help="names, globs or .py files")],
    zoo: Annotated[str, typer.Option(help="zoo to check on (built first if it is the micro zoo)")] = "micro",
    budget: Annotated[float, typer.Option(help="seconds per model")] = 300.0,
) -> None:
    """Run the conformance suite (finite float, deterministic, no mutation, no test data, budget)."""
    from model_zoo.paths import zoos_dir
    from model_zoo.zoo import Zoo
    from predictors.api import Subject
    from predictors.conformance import check_predictor
    from predictors.registry import resolve

    if zoo == "micro" and not (zoos_dir() / "micro" / "public").is_dir():
        from model_zoo.build import build_zoo

        build_zoo("micro", zoos_dir() / "micro", workers=2)
    z = Zoo(_resolve_zoo(zoo))
    ids = [z.model_ids(task=t, status="converged")[0] for t in z.tasks]
    failed = False
    for pred in resolve(predictor):
        for mid in ids:
            results = check_predictor(pred, lambda req, mid=mid: Subject(z.record(mid), requires=req), budget_seconds=budget)
            for r in results:
                ok = r.passed or bool(r.expected_failure)
                failed |= not ok
                mark = "ok  " if r.passed else ("xfail" if r.expected_failure else "FAIL")
                typer.echo(f"{mark} {pred.meta.name:28s} {r.check:14s} {mid:40s} {r.message}")
    raise typer.Exit(1 if failed else 0)


def _resolve_zoo(zoo: str) -> Path:
    from model_zoo.paths import zoos_dir

    path = Path(zoo)
    if not path.exists() and (zoos_dir() / zoo).exists():
        path = zoos_dir() / zoo
    if not (path / "public").is_dir():
        raise typer.BadParameter(f"{path} is not a built zoo (no public/ folder); build it with `gapbench zoo build`")
    return path


@app.command()
def evaluate(
    zoo: Annotated[str, typer.Option(help="zoo directory (or name under zoos/)")] = "mini",
    predictor: Annotated[list[str] | None, typer.Option(help="name, glob or .py file; repeatable (default: all)")] = None,
    workers: Annotated[int, typer.Option(min=1)] = 2,
    budget: Annotated[float, typer.Option(help="seconds per (predictor, model)")] = 300.0,
    memory_mb: Annotated[float, typer.Option(help="memory cap per worker, MB")] = 6144.0,
    results: Annotated[Path, typer.Option()] = RESULTS,
    retry_failed: Annotated[bool, typer.Option(help="recompute cached failures")] = False,
    publish: Annotated[bool, typer.Option(help="copy the tables to leaderboards/data and render the board")] = False,
    track: Annotated[bool, typer.Option(help="log to MLflow")] = True,
) -> None:
    """Run predictors on a zoo in isolated workers, score them, log to MLflow, print a summary."""
    from benchmark import runner
    from predictors.registry import resolve

    t0 = time.perf_counter()
    zoo_path = _resolve_zoo(zoo)
    chosen = resolve(predictor)
    report = runner.evaluate(zoo_path, chosen, results_dir=results, workers=workers, budget_seconds=budget,
                             memory_mb=memory_mb, retry_failed=retry_failed)  # fmt: skip
    typer.echo(f"predictions: {report.computed} computed, {report.cached} from the cache ({report.seconds:.0f} s)")
    names = [p.meta.name for p in chosen]
    if predictor:  # show the new rows beside every predictor already in the cache
        names = sorted(set(names) | set(_cached_names(zoo_path, results)))
    tables = _score(zoo_path, results, names, track=track)
    _print_summary(tables["scores"], tables["runs"], highlight=[p.meta.name for p in chosen] if predictor else [])
    if publish:
        _publish(results / tables["meta"]["zoo_id"])
        typer.echo(f"leaderboard written to {BOARD_DIR}/")
    typer.echo(f"done in {time.perf_counter() - t0:.0f} s")


@app.command()
def score(
    zoo: Annotated[str, typer.Option()] = "mini",
    results: Annotated[Path, typer.Option()] = RESULTS,
    track: Annotated[bool, typer.Option()] = False,
) -> None:
    """Score every cached prediction of the zoo (current predictor versions) and write the tables."""
    zoo_path = _resolve_zoo(zoo)
    tables = _score(zoo_path, results, _cached_names(zoo_path, results), track=track)
    _print_summary(tables["scores"], tables["runs"])


@app.command()
def leaderboard(
    data: Annotated[Path, typer.Option(help="folder with the score tables")] = BOARD_DATA,
    out: Annotated[Path, typer.Option()] = BOARD_DIR,
) -> None:
    """Render leaderboards/ (README.md, index.html, figures/) from the score tables alone."""
    from benchmark.leaderboard import render_leaderboard

    written = render_leaderboard(data, out)
    typer.echo(f"wrote {len(written)} files under {out}/")


# ----------------------------------------------------------------------------------------------


def _cached_names(zoo_path: Path, results: Path) -> list[str]:
    """Registered predictors whose current version has a prediction cache for this zoo."""
    from benchmark.runner import PredictionCache, PredictorRef
    from model_zoo.zoo import Zoo
    from predictors.registry import load_all

    cache = PredictionCache(results, Zoo(zoo_path).zoo_id)
    return [p.meta.name for p in load_all().all() if cache.path(PredictorRef.of(p, 300.0)).exists()]


def _score(zoo_path: Path, results: Path, names: list[str], *, track: bool) -> dict:
    import pandas as pd

    from benchmark import scoring
    from benchmark.runner import PredictionCache, PredictorRef
    from predictors.registry import resolve

    models, meta = scoring.model_table(zoo_path)
    zoo_id = meta["zoo_id"]
    cache = PredictionCache(results, zoo_id)
    preds, infos, kinds = [], [], {}
    for pred in resolve(names):
        ref = PredictorRef.of(pred, 300.0)
        frame = cache.load(ref)
        if frame.empty:
            continue
        preds.append(frame[frame["model_id"].isin(models["model_id"])])
        m = pred.meta
        infos.append(scoring.RunInfo(m.name, m.version, ref.code_hash, m.family, m.kind, m.reference, m.requires, m.notes))
        kinds[m.name] = (m.version, m.kind)
    predictions = pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(columns=scoring_columns())
    scores = scoring.score_predictions(predictions, models, kinds, zoo_id=zoo_id)
    runs = scoring.runs_table(predictions, infos, models, zoo_id)
    points = scoring.points_table(predictions, models, zoo_id)
    out = results / zoo_id
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("predictions", predictions), ("scores", scores), ("runs", runs), ("points", points)):
        table.to_parquet(out / f"{name}.parquet", index=False)
    board_meta = _board_meta(models, meta, runs)
    (out / "board_meta.json").write_text(json.dumps(board_meta, indent=2, sort_keys=True) + "\n")
    if track:
        from benchmark import tracking

        ids = tracking.log_results(meta, scores, runs, points, predictions)
        typer.echo(f"MLflow: {len(ids)} runs in experiment {tracking.experiment_name(meta)!r} at {tracking.tracking_uri()}")
    return {"scores": scores, "runs": runs, "meta": meta}


def scoring_columns() -> list[str]:
    from benchmark.runner import PREDICTION_COLUMNS

    return PREDICTION_COLUMNS


def _board_meta(models, meta: dict, runs) -> dict:
    """What the leaderboard header shows: the zoo, its size per task, the commit and the date."""
    return {
        "zoo_id": meta["zoo_id"],
        "spec_name": meta.get("spec_name", ""),
        "n_models": {str(t): int(n) for t, n in models.groupby("task").size().items()},
        "git_commit": str(runs["git_commit"].iloc[0]) if len(runs) else "unknown",
        "date": str(runs["date"].iloc[0]) if len(runs) else "",
    }


def _publish(table_dir: Path) -> None:
    from benchmark.leaderboard import render_leaderboard

    BOARD_DATA.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        shutil.copy2(table_dir / f"{name}.parquet", BOARD_DATA / f"{name}.parquet")
    shutil.copy2(table_dir / "board_meta.json", BOARD_DATA / "board_meta.json")
    render_leaderboard(BOARD_DATA, BOARD_DIR)


def _print_summary(scores, runs, highlight: list[str] | None = None) -> None:
    """Per task: tau, Psi, CMI (with intervals) on the gap, cost and failures."""
    import pandas as pd

    if scores.empty:
        typer.echo("no scores (no predictions?)")
        return
    gap = scores[(scores["target"] == "gap") & (scores["axis"] == "")]
    wide = gap.pivot_table(index=["task", "predictor"], columns="metric", values=["value", "ci_low", "ci_high"],
                           aggfunc="first", dropna=False)
    cost = runs.set_index("predictor")
    highlight = set(highlight or [])
    for task in sorted(gap["task"].unique(), key=lambda t: (t == "overall", t)):
        typer.echo(f"\n== {task} (target: gap) ==")
        typer.echo(f"{'predictor':28s} {'kind':9s} {'tau':>20s} {'Psi':>20s} {'CMI':>20s} {'s/model':>8s} {'fail':>5s}")
        block = wide.loc[task]
        order = (block[("value", "psi")].sort_values(ascending=False, na_position="last").index
                 if ("value", "psi") in block.columns else block.index)
        for name in order:
            def cell(metric: str, fmt: str = "{:+.2f}") -> str:
                if ("value", metric) not in block.columns:
                    return "n/a"
                v, lo, hi = (block.loc[name, (k, metric)] for k in ("value", "ci_low", "ci_high"))
                return "nan" if pd.isna(v) else f"{fmt.format(v)} [{fmt.format(lo)},{fmt.format(hi)}]"

            kind = cost.loc[name, "kind"] if name in cost.index else ""
            mark = "*" if name in highlight else " "
            typer.echo(
                f"{mark}{name:27s} {kind:9s} {cell('kendall_tau'):>20s} {cell('psi'):>20s} "
                f"{cell('cmi', '{:.1f}'):>20s} {cost.loc[name, 'seconds_median'] if name in cost.index else float('nan'):8.2f} "
                f"{cost.loc[name, 'failure_rate'] if name in cost.index else float('nan'):5.0%}"
            )


def main() -> None:  # pragma: no cover
    os.environ.setdefault("MPLBACKEND", "Agg")
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
