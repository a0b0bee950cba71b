"""`gapbench zoo build|info|verify` (also `python -m model_zoo ...`): a typer sub-app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(name="zoo", help="Build, describe and verify model zoos.", no_args_is_help=True,
                  add_completion=False, rich_markup_mode=None)


def _default_root(spec_name: str) -> Path:
    from model_zoo import paths

    return paths.zoos_dir() / spec_name


@app.command()
def build(
    spec: Annotated[str, typer.Argument(help="a shipped spec name (micro, mini, public, standard) or a path to a spec TOML")],
    root: Annotated[str | None, typer.Option(
        help="zoo directory or fsspec URL, e.g. s3://bucket/zoo (default: $GAPBENCH_ZOOS/<spec name>)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="training worker processes")] = 2,
    executor: Annotated[str, typer.Option(help="local (worker processes) or ray (a Ray cluster)")] = "local",
    address: Annotated[str | None, typer.Option(
        help="with --executor ray: auto (a running cluster), ray://host:10001, or none to start one")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    heldout: Annotated[bool, typer.Option(
        help="build the held-out twin of SPEC instead (other seeds, salted grid values; needs the salt)")] = False,
    salt_file: Annotated[Path | None, typer.Option(
        help="file holding the held-out salt (default: $GAPBENCH_HELDOUT_SALT, $GAPBENCH_HELDOUT_SALT_FILE, "
             "../shared/heldout-salt.txt)")] = None,
) -> None:
    """Train every model of SPEC (skipping finished ones) and write the zoo."""
    from model_zoo.build import build_zoo
    from model_zoo.spec import load_spec

    parsed = load_spec(spec)
    if heldout:
        from model_zoo.heldout import heldout_spec, read_salt

        parsed = heldout_spec(parsed, read_salt(salt_file))
    target = root or _default_root(parsed.name)
    from model_zoo.ray_executor import make_executor
    from model_zoo.store import is_url

    if is_url(target):  # build_zoo takes local folders until model_zoo/build.py writes through model_zoo.store
        raise ValueError(f"--root {target}: build into a local folder, then copy it there with "
                         "model_zoo.store.copy_zoo (see docs/scale.md)")
    runner = make_executor(executor, address=address, workers=workers, unit_size=1)
    report = build_zoo(parsed, target, workers=workers, progress=progress, executor=runner)
    typer.echo(
        f"zoo {report.zoo_id} at {report.root}: {report.n_models} models, {report.n_trained} trained, "
        f"{report.n_skipped} already built, {len(report.failures)} failed, {report.seconds:.1f} s"
    )
    if report.failures:
        for f in report.failures:
            typer.echo(f"FAILED {f.model_id}: {f.error}", err=True)
        raise typer.Exit(1)


def _dir_size(path) -> int:
    from model_zoo.store import list_files

    return sum(list_files(path).values())


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError


@app.command()
def info(zoo: Annotated[str, typer.Argument(help="zoo directory or name under $GAPBENCH_ZOOS")] = "mini") -> None:
    """Summarise a zoo: per task, models, converged, train/test error and gap (min / median / max)."""
    from model_zoo.paths import resolve_zoo
    from model_zoo.store import is_url
    from model_zoo.zoo import Zoo, load_answers

    z = Zoo(zoo if is_url(zoo) else resolve_zoo(zoo), verify="none")
    typer.echo(f"zoo {z.zoo_id}  content {z.content_hash[:16]}  spec {z.meta.get('spec_name')}  "
               f"created {z.meta.get('created')}")
    typer.echo(f"path {z.layout.root}  disk {_human(_dir_size(z.layout.root))}  "
               f"build time {z.meta.get('build_seconds', 0.0):.0f} s  "
               f"models {len(z)}/{z.meta.get('n_models', '?')}")
    answers = None
    if z.layout.answers is not None and z.layout.answers_table.exists():
        answers = load_answers(z.layout.root).set_index("model_id")
    header = f"{'task':<14} {'models':>6} {'conv.':>6}  {'train err % min/med/max':>24}  " \
             f"{'test err % min/med/max':>24}  {'gap % min/med/max':>22}  {'train s/model':>13}  {'drift share':>11}"
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
        drift = m["window_drift_share"].median() if "window_drift_share" in m else float("nan")
        typer.echo(f"{task:<14} {len(m):>6} {conv:>6}  {cells[0]:>24}  {cells[1]:>24}  {cells[2]:>22}  "
                   f"{m['train_seconds'].median():>13.1f}  {drift:>11.2f}")
    if answers is not None:
        _echo_variance_shares(z.manifest, answers)


def _echo_variance_shares(manifest, answers) -> None:
    """Per task, the share of the gap variance each varied axis explains, over the converged models.

    Those are the models scoring ranks (a `not_converged` model's gap, e.g. of a diverged
    network, is left out of every score); with every model converged the grid is balanced and
    the shares, seeds and interactions add to 1.
    """
    import pandas as pd

    from model_zoo.variance import main_effect_shares

    typer.echo("gap variance explained by each axis (main effects over the converged models, which scoring ranks; "
               "model_zoo/variance.py):")
    frame = manifest.join(answers["gap"], on="model_id")
    for task, rows in frame.groupby("task", sort=True):
        axes = sorted({a for text in rows["axes"] for a in text.split(",") if a})
        kept = rows[rows["status"] == "converged"]
        design = pd.DataFrame({"gap": kept["gap"], "config_id": kept["config_id"],
                               **{a: kept[f"hp.{a}"] for a in axes}})
        shares = main_effect_shares(design, axes)
        left_out = f"  ({len(rows) - len(kept)} not converged left out)" if len(kept) < len(rows) else ""
        typer.echo(f"  {task:<14} " + "  ".join(f"{k} {v:.0%}" for k, v in shares.items()) + left_out)


@app.command()
def verify(
    zoo: Annotated[str, typer.Argument(help="zoo directory or name under $GAPBENCH_ZOOS")] = "mini",
    against: Annotated[Path | None, typer.Option(
        help="a published manifest (e.g. leaderboards/data/manifest.parquet): name every model whose files differ")] = None,
) -> None:
    """Check every file of a zoo against its recorded sha256 (and a published manifest); exits 1 on any problem."""
    from model_zoo.paths import resolve_zoo
    from model_zoo.store import compare_manifests, is_url, read_parquet
    from model_zoo.store import verify as verify_zoo
    from model_zoo.zoo import Zoo

    path = zoo if is_url(zoo) else resolve_zoo(zoo)
    problems = [str(p) for p in verify_zoo(path)]
    if against is not None:
        published = read_parquet(against)
        ours = Zoo(path, verify="none").manifest
        problems += compare_manifests(ours, published)
        if not problems:
            typer.echo(f"identical to {against}: {len(ours)} models, every file hash equal")
    for p in problems:
        typer.echo(p, err=True)
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {path}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {path}")
