"""`gapbench zoo build|info|verify` (also `python -m model_zoo ...`): a typer sub-app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(name="zoo", help="Build, describe and verify model zoos.", no_args_is_help=True,
                  add_completion=False)


def _default_root(spec_name: str) -> Path:
    from model_zoo import paths

    return paths.zoos_dir() / spec_name


def _resolve_zoo(zoo: str | None) -> Path:
    """A zoo argument: a directory, or the name of a zoo under model_zoo.paths.zoos_dir()."""
    from model_zoo import paths

    name = zoo or "mini"
    candidate = Path(name)
    if candidate.exists():
        return candidate
    under = paths.zoos_dir() / name
    if under.exists():
        return under
    raise typer.BadParameter(f"no zoo at {candidate} nor {under}; build one with `gapbench zoo build {name}`")


@app.command()
def build(
    spec: Annotated[str, typer.Argument(help="a shipped spec name (micro, mini, standard) or a path to a spec TOML")],
    root: Annotated[Path | None, typer.Option(help="zoo directory [default: $GAPBENCH_ZOOS/<spec name>]")] = None,
    workers: Annotated[int, typer.Option(min=1, help="training processes")] = 2,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Train every model of SPEC (skipping finished ones) and write the zoo."""
    from model_zoo.build import build_zoo
    from model_zoo.spec import SpecError, load_spec

    try:
        parsed = load_spec(spec)
    except SpecError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    target = root or _default_root(parsed.name)
    report = build_zoo(parsed, target, workers=workers, progress=progress)
    typer.echo(
        f"zoo {report.zoo_id} at {report.root}: {report.n_models} models, {report.n_trained} trained, "
        f"{report.n_skipped} already built, {len(report.failures)} failed, {report.seconds:.1f} s"
    )
    if report.failures:
        for f in report.failures:
            typer.echo(f"FAILED {f.model_id}\n{f.error}", err=True)
        raise typer.Exit(1)


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


@app.command()
def info(zoo: Annotated[str | None, typer.Argument(help="zoo directory or name [default: mini]")] = None) -> None:
    """Summarise a zoo: per task, models, converged, train/test error and gap (min / median / max)."""
    from model_zoo.zoo import Zoo, load_answers

    path = _resolve_zoo(zoo)
    z = Zoo(path, verify="none")
    typer.echo(f"zoo {z.zoo_id}  spec {z.meta.get('spec_name')}  created {z.meta.get('created')}")
    typer.echo(f"path {z.layout.root}  disk {_human(_dir_size(z.layout.root))}  "
               f"build time {z.meta.get('build_seconds', 0.0):.0f} s  "
               f"models {len(z)}/{z.meta.get('n_models', '?')}")
    answers = None
    if z.layout.answers is not None and z.layout.answers_table.exists():
        answers = load_answers(z.layout.root).set_index("model_id")
    header = f"{'task':<14} {'models':>6} {'conv.':>6}  {'train err % min/med/max':>24}  " \
             f"{'test err % min/med/max':>24}  {'gap % min/med/max':>22}  {'train s/model':>13}"
    typer.echo(header)
    for task in z.tasks:
        m = z.manifest[z.manifest["task"] == task]
        conv = int((m["status"] == "converged").sum())
        cells = []
        for col in ("train_error", "test_error", "gap"):
            if answers is None:
                cells.append("-")
                continue
            values = answers.loc[m["model_id"], col].astype(float) * 100
            cells.append(f"{values.min():.1f} / {values.median():.1f} / {values.max():.1f}")
        typer.echo(f"{task:<14} {len(m):>6} {conv:>6}  {cells[0]:>24}  {cells[1]:>24}  {cells[2]:>22}  "
                   f"{m['train_seconds'].median():>13.1f}")


@app.command()
def verify(zoo: Annotated[str | None, typer.Argument(help="zoo directory or name [default: mini]")] = None) -> None:
    """Check every file of a zoo against its recorded sha256; exits 1 on any problem."""
    from model_zoo.store import verify as verify_zoo

    path = _resolve_zoo(zoo)
    problems = verify_zoo(path)
    for p in problems:
        typer.echo(str(p), err=True)
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {path}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {path}")
