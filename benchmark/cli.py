"""The `gapbench` command line: zoo -> predictions -> scores -> MLflow + leaderboard.

It parses arguments and calls the stages (benchmark.pipeline); an error is one line naming
the file, field or predictor at fault (``--debug`` shows the traceback).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from benchmark.pipeline import BOARD_DATA, BOARD_DIR, RESULTS
from benchmark.predict import DEFAULT_BUDGET_SECONDS, DEFAULT_MEMORY_MB
from model_zoo.cli import app as zoo_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__, pretty_exceptions_enable=False,
                  rich_markup_mode=None)
app.add_typer(zoo_app, name="zoo", help="Build, inspect and verify model zoos.")
data_app = typer.Typer(no_args_is_help=True, help="Data sets: fetch and prepare.", rich_markup_mode=None)
predictors_app = typer.Typer(no_args_is_help=True, help="The predictor registry.", rich_markup_mode=None)
app.add_typer(data_app, name="data")
app.add_typer(predictors_app, name="predictors")

ZooOpt = Annotated[str, typer.Option(help="zoo directory, or a zoo name under $GAPBENCH_ZOOS")]
ResultsOpt = Annotated[Path, typer.Option(help="folder of caches and result tables")]
SandboxOpt = Annotated[bool, typer.Option(
    "--sandbox/--no-sandbox", help="run predictors in the bubblewrap sandbox (--no-sandbox: development only; "
                                   "the board marks such runs)")]


def _say(message: str) -> None:
    typer.echo(message, err=True)


@app.callback()
def _main(debug: Annotated[bool, typer.Option(help="show tracebacks of errors")] = False) -> None:
    """gapbench: a benchmark of predictors of generalization."""


@data_app.command("prepare")
def data_prepare(
    tasks: Annotated[list[str] | None, typer.Argument(help="tasks (default: all)")] = None,
    source: Annotated[str | None, typer.Option(
        help="where raw data come from without a mirror: url (the official sites) or hub (the Hugging Face Hub, "
             "Fashion-MNIST only); default $GAPBENCH_DATA_SOURCE or url. $GAPBENCH_DATA_MIRROR always comes first")] = None,
) -> None:
    """Fetch (or read from $GAPBENCH_DATA_MIRROR) and cache the prepared arrays of each task."""
    from model_zoo.data import TASKS, load_task

    for name in tasks or TASKS:
        t0 = time.perf_counter()
        data = load_task(name, source=source) if source else load_task(name)
        typer.echo(
            f"{name:14s} train {len(data.y_train):6d}  test {len(data.y_test):6d}"
            + (f"  shift {len(data.y_shift):5d}" if data.y_shift is not None else "")
            + f"  ({time.perf_counter() - t0:.1f} s)"
        )


@predictors_app.command("list")
def predictors_list(pattern: Annotated[str, typer.Argument(help="glob over names")] = "*") -> None:
    """Name, family, version, requires and reference of every registered predictor."""
    from predictors.registry import load_all

    reg = load_all()
    rows = [(p.meta.name, p.meta.kind if p.meta.kind == "baseline" else p.meta.family, p.meta.version,
             ",".join(p.meta.requires) or "-", p.meta.reference) for p in reg.all() if p.meta.name in reg.names(pattern)]
    widths = [max(len(r[i]) for r in rows + [("name", "family", "version", "requires", "")]) for i in range(4)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(("name", "family", "version", "requires"), widths)) + "  reference")
    for r in rows:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r[:4], widths)) + "  " + r[4])


@predictors_app.command("check")
def predictors_check(
    predictor: Annotated[list[str], typer.Argument(help="registry names, globs or .py files")],
    zoo: ZooOpt = "micro",
    budget: Annotated[float, typer.Option(help="seconds per model (the runner's ceiling)")] = DEFAULT_BUDGET_SECONDS,
    sandbox: SandboxOpt = True,
) -> None:
    """Run the conformance suite (finite float, deterministic, no mutation, no test data, budget) in a worker."""
    from benchmark import conformance_run
    from benchmark.sandbox import Isolation

    isolation = Isolation(sandbox=sandbox, memory_mb=DEFAULT_MEMORY_MB)
    ok = conformance_run.check(predictor, zoo=zoo, budget=budget, isolation=isolation, echo=typer.echo, warn=_say)
    raise typer.Exit(0 if ok else 1)


@app.command()
def evaluate(
    zoo: ZooOpt = "mini",
    predictor: Annotated[list[str] | None, typer.Option(
        help="registry name, glob or .py file; repeatable (default: every registered predictor)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="predictor worker processes at once")] = 2,
    executor: Annotated[str, typer.Option(help="local (worker processes) or ray (a Ray cluster)")] = "local",
    address: Annotated[str | None, typer.Option(
        help="with --executor ray: auto (a running cluster), ray://host:10001, or none to start one")] = None,
    budget: Annotated[float, typer.Option(
        help="seconds per (predictor, model): the ceiling a predictor can only lower")] = DEFAULT_BUDGET_SECONDS,
    memory_mb: Annotated[float, typer.Option(help="memory cap per worker, MB")] = DEFAULT_MEMORY_MB,
    seed: Annotated[int, typer.Option(help="the predictors' seed")] = 0,
    results: ResultsOpt = RESULTS,
    retry_failed: Annotated[bool, typer.Option(help="recompute cached failures")] = False,
    publish: Annotated[bool, typer.Option(help="copy the tables to leaderboards/data and render the board")] = False,
    track: Annotated[bool, typer.Option(help="log to MLflow")] = True,
    sandbox: SandboxOpt = True,
) -> None:
    """Run predictors on a zoo in isolated workers, score them, log to MLflow, print the board."""
    from benchmark import pipeline
    from benchmark.leaderboard import render_terminal
    from benchmark.predict import cost_summary
    from benchmark.sandbox import Isolation
    from model_zoo.paths import resolve_zoo
    from model_zoo.ray_executor import EVALUATE_UNIT_SIZE, make_executor
    from model_zoo.store import is_url

    t0 = time.perf_counter()
    zoo_path = zoo if is_url(zoo) else resolve_zoo(zoo)
    runner = make_executor(executor, address=address, workers=workers, unit_size=EVALUATE_UNIT_SIZE)
    isolation = Isolation(sandbox=sandbox, memory_mb=memory_mb)
    resolved = pipeline.resolve(predictor, isolation)
    for problem in resolved.problems:
        _say(f"error: {problem}")
    if not resolved.refs:
        raise typer.Exit(1)
    also = pipeline.cached_refs(zoo_path, results, seed, sandboxed=sandbox) if predictor else []
    run = pipeline.evaluate(zoo_path, resolved.refs, results_dir=results, seed=seed, workers=workers,
                            budget_seconds=budget, isolation=isolation, retry_failed=retry_failed, score_also=also,
                            executor=runner)
    for problem in run.report.problems:
        _say(f"warning: {problem}")
    typer.echo(f"predictions: {run.report.computed} computed, {run.report.cached} from the cache "
               f"({run.report.seconds:.0f} s); tables in {run.out_dir}/")
    for line in cost_summary(run.report.predictions, resolved.refs):
        typer.echo(f"cost: {line}")
    board = pipeline.render_local(run)
    if track:
        _track(run, zoo_path)  # after the render: the board logged to MLflow is that one
    highlight = [r.name for r in resolved.refs] if predictor else []
    typer.echo(render_terminal(run.out_dir, highlight=highlight, published=BOARD_DATA))
    typer.echo(f"board of this zoo: {board / 'index.html'}")
    if publish:
        pipeline.publish(run.out_dir)
        typer.echo(f"leaderboard written to {BOARD_DIR}/")
    typer.echo(f"done in {time.perf_counter() - t0:.0f} s")
    if resolved.problems:
        raise typer.Exit(1)


@app.command("publish")
def publish_board(
    zoo: ZooOpt = "public",
    heldout: Annotated[str | None, typer.Option(
        help="the held-out twin's zoo (built by `gapbench zoo build SPEC --heldout`): its aggregate scores are the "
             "official ranking")] = None,
    workers: Annotated[int, typer.Option(min=1, help="predictor worker processes at once")] = 2,
    budget: Annotated[float, typer.Option(help="seconds per (predictor, model)")] = DEFAULT_BUDGET_SECONDS,
    memory_mb: Annotated[float, typer.Option(help="memory cap per worker, MB")] = DEFAULT_MEMORY_MB,
    results: ResultsOpt = RESULTS,
    track: Annotated[bool, typer.Option(help="log to MLflow")] = True,
    sandbox: SandboxOpt = True,
) -> None:
    """Evaluate every predictor on the public zoo and its held-out twin, and publish leaderboards/."""
    from benchmark import pipeline
    from benchmark.predict import cost_summary
    from benchmark.sandbox import Isolation
    from model_zoo.paths import resolve_zoo

    isolation = Isolation(sandbox=sandbox, memory_mb=memory_mb)
    refs = pipeline.resolve(None, isolation).refs
    runs = []
    for path, split in ((zoo, "public"), (heldout, "heldout")):
        if path is None:
            continue
        _say(f"evaluating {len(refs)} predictors on {path} ({split}) ...")
        run = pipeline.evaluate(resolve_zoo(path), refs, results_dir=results, workers=workers, budget_seconds=budget,
                                isolation=isolation, split=split)
        for problem in run.report.problems:
            _say(f"warning: {problem}")
        for line in cost_summary(run.report.predictions, refs):
            _say(f"cost ({split}): {line}")
        if track and split == "public":  # the held-out zoo's per-model rows never leave results/
            _track(run)
        runs.append(run)
    written = pipeline.publish_official(runs[0], runs[1] if len(runs) > 1 else None)
    typer.echo(f"published {len(written)} files under {BOARD_DIR}/")


def _track(run, source=None) -> None:
    from benchmark import tracking

    started = time.perf_counter()
    _say("logging to MLflow ...")
    ids = tracking.log_evaluation(run.out_dir, run.meta, source=None if source is None else str(source))
    typer.echo(f"MLflow: {len(ids)} runs at {tracking.tracking_uri()} ({time.perf_counter() - started:.0f} s)")


@app.command()
def score(
    zoo: ZooOpt = "mini",
    results: ResultsOpt = RESULTS,
    seed: Annotated[int, typer.Option(help="the predictors' seed whose cached predictions are scored")] = 0,
    track: Annotated[bool, typer.Option(help="log to MLflow")] = False,
    sandbox: Annotated[bool, typer.Option(help="score the predictions made in the sandbox (--no-sandbox: those made "
                                                "without it)")] = True,
) -> None:
    """Score every cached prediction of the zoo (current predictor versions) and write the tables."""
    from benchmark import pipeline
    from benchmark.leaderboard import render_terminal
    from benchmark.sandbox import Isolation
    from model_zoo.paths import resolve_zoo

    zoo_path = resolve_zoo(zoo)
    refs = pipeline.cached_refs(zoo_path, results, seed, sandboxed=sandbox)
    if not refs:
        _say(f"error: no cached predictions for {zoo_path} under {results}/; run `gapbench evaluate` first")
        raise typer.Exit(1)
    run = pipeline.evaluate(zoo_path, refs, results_dir=results, seed=seed, budget_seconds=DEFAULT_BUDGET_SECONDS,
                            isolation=Isolation(sandbox=sandbox), progress=False)
    if track:
        _track(run)
    typer.echo(render_terminal(run.out_dir))


@app.command()
def leaderboard(
    data: Annotated[Path, typer.Option(help="folder with the board's tables")] = BOARD_DATA,
    out: Annotated[Path, typer.Option(help="where README.md, index.html and figures/ are written")] = BOARD_DIR,
) -> None:
    """Render leaderboards/ (README.md, index.html, figures/) from the board's tables alone."""
    from benchmark.leaderboard import render_leaderboard

    written = render_leaderboard(data, out)
    typer.echo(f"wrote {len(written)} files under {out}/")


def _known_errors() -> tuple[type[BaseException], ...]:
    from benchmark.sandbox import SandboxUnavailable
    from benchmark.tables import TableError
    from model_zoo.build import ZooMismatchError
    from model_zoo.heldout import HeldoutSaltMissing
    from model_zoo.paths import ZooNotFound
    from model_zoo.spec import SpecError
    from model_zoo.store import ZooIntegrityError
    from predictors.registry import UnknownPredictorError

    return (SpecError, HeldoutSaltMissing, TableError, ZooIntegrityError, ZooNotFound, ZooMismatchError, SandboxUnavailable,
            UnknownPredictorError, FileNotFoundError, PermissionError, ValueError, RuntimeError, OSError)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app; known errors print one line (exit 2) unless --debug."""
    import click

    os.environ.setdefault("MPLBACKEND", "Agg")
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="gapbench", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        _say("aborted")
        sys.exit(130)
    except _known_errors() as exc:
        if debug:
            raise
        _say(f"error: {exc}" if str(exc) else f"error: {type(exc).__name__}")
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
