"""MLflow tracking: one experiment per zoo, one run per predictor version, and the board.

Where: ``MLFLOW_TRACKING_URI`` when set (a team's ``mlflow server``, see README.md), else a
sqlite file in the project (``<GAPBENCH_HOME or cwd>/mlflow.db``). New experiments get an
explicit artifact location (the server's own store for an ``http(s)://`` server; beside the
sqlite file, ``mlartifacts/``; or ``GAPBENCH_MLFLOW_ARTIFACTS``), never a stray ``mlruns/`` in
the working directory, and the experiment kind tag that makes MLflow 3's UI open the
experiment on its runs (``mlflow.experimentKind = custom_model_development``, "Machine
learning", instead of the GenAI overview).

What a predictor's run holds (runs are keyed by predictor, version and code hash: logging the
same predictor version again updates its run instead of adding one):

- params: predictor, version, family, kind, reference, requires, zoo_id, zoo_content_hash;
- metrics: ``<task>.<target>.<metric>[.<axis>]`` and beside each its 95% interval,
  ``... .ci_low`` / ``... .ci_high``; ``seconds_median``, ``failure_rate``;
- tags: predictor, version, code_hash, kind, family, ``mlflow.source.git.commit`` (the commit
  of the gapbench code that computed it, from the package's own repository);
- the zoo as a dataset input (name = zoo id, digest = the first 32 hex of its content hash,
  source = where it was read from, the full hash in its profile);
- artifacts: its predictions and score points (CSV), provenance.json, and
  ``figures/score_vs_gap.png`` (its score against the gap of every converged model, per task).

The board (README.md, index.html, figures/, and data/: the tables it is rendered from, as
parquet, CSV and JSON) is logged under ``board/`` as the artifacts of one more run per
experiment, named ``leaderboard`` (tag ``kind = board``). Everything is sent in
batches (``log_batch``: up to 1,000 metrics and 100 params/tags a call; one ``log_artifacts``
per folder), and only what differs from what the run already holds is sent: a re-run that
changes nothing makes two read calls (the experiment and its runs) and writes nothing.

A sqlite store is checked before use (a read-only, unreadable or non-SQLite file fails with
one line naming it and what to do), and every writer on the machine holds a file lock
(``<db>.lock``) while it logs, so two first runs at once cannot race to create the schema.
Any other MLflow failure is one line naming the store (:class:`TrackingError`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd

DEFAULT_DB = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
ARTIFACTS_ENV = "GAPBENCH_MLFLOW_ARTIFACTS"
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"  # MLflow 3 UI: "Machine learning", opens on the runs
BOARD_RUN = "leaderboard"
DIGEST_TAG = "gapbench.artifacts_sha256"
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100  # MLflow's log_batch limits
SQLITE_HEADER = b"SQLite format 3\x00"


class TrackingError(RuntimeError):
    """MLflow cannot be used as configured; the message names the store and what to do."""


# ---------------------------------------------------------------------------------------------
# where: the tracking URI, the artifact location, the store's health


def tracking_uri(project_dir: Path | None = None) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    base = Path(project_dir or os.environ.get("GAPBENCH_HOME", ".")).resolve()
    return f"sqlite:///{base / DEFAULT_DB}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///...`` URI (None for other stores or an in-memory db)."""
    if not uri.startswith("sqlite:"):
        return None
    rest = uri[len("sqlite:"):]
    if not rest.startswith("///"):
        return None
    path = unquote(rest[len("///"):].split("?", 1)[0])  # sqlite:///rel.db, sqlite:////abs/path.db
    if path.startswith("file:"):  # sqlite:///file:/abs/path?mode=ro&uri=true
        path = path[len("file:"):]
    return Path(path) if path not in ("", ":memory:") else None


def _is_server(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https", "databricks")


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: explicit for every store but a server (None: its own)."""
    root = os.environ.get(ARTIFACTS_ENV)
    if root:
        return f"{root.rstrip('/')}/{_slug(experiment)}"
    if _is_server(uri) or urlparse(uri).scheme == "file":
        return None  # a server serves its own artifact store; a file store keeps artifacts inside
    db = sqlite_path(uri)
    if db is None:
        raise TrackingError(f"{uri}: a database store needs an artifact location every user can reach: set "
                            f"{ARTIFACTS_ENV} (e.g. s3://bucket/mlflow), or run an mlflow server (see README.md)")
    return (db.parent.resolve() / ARTIFACTS_DIR / _slug(experiment)).as_uri()


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def check_store(uri: str) -> None:
    """Fail early with one line when the store cannot be used (read-only, unreadable, unreachable)."""
    db = sqlite_path(uri)
    if db is not None:
        _check_sqlite(db, read_only="mode=ro" in uri)
    elif _is_server(uri) and urlparse(uri).scheme != "databricks":
        _check_server(uri)


def _check_sqlite(db: Path, *, read_only: bool) -> None:
    hint = "or set MLFLOW_TRACKING_URI to another store"
    folder = db.parent
    if db.exists():
        if not db.is_file():
            raise TrackingError(f"{db}: the MLflow store is not a file; move it away {hint}")
        if not os.access(db, os.R_OK):
            raise TrackingError(f"{db}: the MLflow store is unreadable (permission denied); fix its permissions {hint}")
        with open(db, "rb") as f:
            head = f.read(len(SQLITE_HEADER))
        if head and head != SQLITE_HEADER:
            raise TrackingError(f"{db}: the MLflow store is not an SQLite database; move it away {hint}")
        if read_only or not os.access(db, os.W_OK) or not os.access(folder, os.W_OK | os.X_OK):
            what = db if read_only or not os.access(db, os.W_OK) else f"{folder} (its folder)"
            raise TrackingError(f"{db}: the MLflow store is read-only ({what} cannot be written); make it writable "
                                f"{hint}")
    else:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TrackingError(f"{db}: cannot create the MLflow store ({exc.strerror}); {hint}") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise TrackingError(f"{db}: cannot create the MLflow store ({folder} is read-only); make it writable "
                                f"{hint}")


def _check_server(uri: str, timeout: float = 10.0) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as response:
            response.read(64)
    except urllib.error.HTTPError:
        return  # it answers: a proxy may not route /health
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(f"cannot reach the MLflow server at {uri} ({reason}); start it (README.md: a team's "
                            f"MLflow server) or unset MLFLOW_TRACKING_URI") from None


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Hold ``<db>.lock`` for a sqlite store (every writer on this machine); nothing for a server."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    lock = db.with_name(db.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise TrackingError(f"{lock}: cannot create the store's lock file ({exc.strerror}); make {db.parent} "
                            "writable or set MLFLOW_TRACKING_URI to another store") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _failure(uri: str, exc: BaseException) -> TrackingError:
    """One line for an MLflow/database failure, naming the store."""
    text = " ".join(str(exc).split())
    db = sqlite_path(uri)
    where = str(db) if db is not None else uri
    low = text.lower()
    if "readonly database" in low or "read-only" in low:
        return TrackingError(f"{where}: the MLflow store is read-only; make it writable or set MLFLOW_TRACKING_URI "
                             "to another store")
    if "file is not a database" in low or "database disk image is malformed" in low:
        return TrackingError(f"{where}: the MLflow store is not a readable SQLite database; move it away or set "
                             "MLFLOW_TRACKING_URI to another store")
    first = text.split(" [SQL:")[0].split(" (Background on")[0]
    return TrackingError(f"MLflow store {where}: {type(exc).__name__}: {first[:300]}")


# ---------------------------------------------------------------------------------------------
# what: names and values


def experiment_name(zoo_meta: dict) -> str:
    return f"gapbench/{zoo_meta.get('spec_name', 'zoo')}/{zoo_meta['zoo_id']}"


def metric_key(task: str, target: str, metric: str, axis: str = "") -> str:
    return _clean(f"{task}.{target}.{metric}" + (f".{axis}" if axis else ""))


def run_metrics(scores: pd.DataFrame, run: Any) -> dict[str, float]:
    """A predictor's metrics: every finite score with its interval bounds beside it, plus cost."""
    out: dict[str, float] = {}
    mine = scores[(scores["predictor"] == run.predictor) & (scores["version"] == run.version)]
    for row in mine.itertuples(index=False):
        if not _finite(row.value):
            continue
        key = metric_key(row.task, row.target, row.metric, row.axis)
        out[key] = float(row.value)
        for bound in ("ci_low", "ci_high"):
            value = getattr(row, bound)
            if _finite(value):
                out[f"{key}.{bound}"] = float(value)
    for name in ("seconds_median", "failure_rate"):
        if _finite(getattr(run, name)):
            out[name] = float(getattr(run, name))
    return out


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _clean(metric: str) -> str:
    """MLflow metric names allow alphanumerics, '_', '-', '.', ' ', '/'."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in metric)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# logging


def log_evaluation(table_dir: Path, meta: Any, *, source: str | None = None, uri: str | None = None) -> list[str]:
    """Log the tables of one evaluated zoo (``<results>/<zoo_id>/``) to MLflow; returns the run ids.

    ``source``: where the zoo was read from (a folder or URL), recorded with the dataset input.
    The predictor runs come first, the board's run last.
    """
    from benchmark.tables import MODELS, POINTS, PREDICTIONS, RUNS, SCORES

    table_dir = Path(table_dir)
    frames = {t.name: t.read(table_dir / t.file) for t in (SCORES, RUNS, POINTS, PREDICTIONS, MODELS)}
    zoo_meta = {"zoo_id": meta.public.zoo_id, "spec_name": meta.public.spec_name,
                "content_hash": meta.public.content_hash, "n_models": sum(meta.public.n_models.values()),
                "source": str(source) if source is not None else ""}
    return log_results(zoo_meta, frames["scores"], frames["runs"], frames["points"], frames["predictions"],
                       models=frames["models"], board_dir=table_dir, uri=uri)


def log_results(
    zoo_meta: dict,
    scores: pd.DataFrame,
    runs: pd.DataFrame,
    points: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    models: pd.DataFrame | None = None,
    board_dir: Path | None = None,
    uri: str | None = None,
) -> list[str]:
    """Log every predictor's run (and the board's, from the tables in ``board_dir``); return the run ids."""
    uri = uri or tracking_uri()
    check_store(uri)
    with store_lock(uri):
        try:
            return _Logger(uri, zoo_meta).log(scores, runs, points, predictions, models, board_dir)
        except TrackingError:
            raise
        except Exception as exc:  # MLflow and SQLAlchemy raise many types; each becomes one line
            raise _failure(uri, exc) from exc


class _Logger:
    """One logging session against one store (the MLflow client and the experiment)."""

    def __init__(self, uri: str, zoo_meta: dict):
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.zoo = zoo_meta
        self.client = MlflowClient(tracking_uri=uri)
        self.experiment_id = self._experiment()

    def _experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        name = experiment_name(self.zoo)
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            tags = {"zoo_id": self.zoo["zoo_id"], EXPERIMENT_KIND_TAG: EXPERIMENT_KIND,
                    "mlflow.note.content": f"gapbench: predictors of generalization ranked on zoo {self.zoo['zoo_id']}"}
            try:
                return self.client.create_experiment(name, artifact_location=artifact_location(self.uri, name),
                                                     tags=tags)
            except MlflowException as exc:  # another process created it first
                exp = self.client.get_experiment_by_name(name)
                if exp is None:
                    raise exc from None
        if exp.lifecycle_stage == "deleted":
            raise TrackingError(f"MLflow experiment {name!r} is deleted in {self.uri}; restore it (mlflow "
                                f"experiments restore --experiment-id {exp.experiment_id}) or delete it for good")
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            self.client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id

    def _existing_runs(self) -> list[Any]:
        runs, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], max_results=1000, page_token=token)
            runs += list(page)
            token = page.token
            if not token:
                return runs

    def log(self, scores, runs, points, predictions, models, board_dir) -> list[str]:
        existing = {}
        for r in self._existing_runs():
            t = r.data.tags
            key = (t.get("predictor"), t.get("version"), t.get("code_hash")) if t.get("kind") != "board" else BOARD_RUN
            existing.setdefault(key, r)  # search_runs lists the newest first: a duplicate's newest run wins
        ids = []
        for run in runs.itertuples(index=False):
            found = existing.get((run.predictor, run.version, run.code_hash))
            ids.append(self._log_predictor(found, run, scores, points, predictions, models))
        if board_dir is not None:
            ids.append(self._log_board(existing.get(BOARD_RUN), board_dir))
        return ids

    # -- one predictor's run

    def _log_predictor(self, found, run, scores, points, predictions, models) -> str:
        params = {"predictor": run.predictor, "version": run.version, "family": run.family, "kind": run.kind,
                  "reference": str(run.reference)[:500], "requires": run.requires, "zoo_id": self.zoo["zoo_id"],
                  "zoo_content_hash": self.zoo.get("content_hash", "")}
        tags = {"predictor": run.predictor, "version": run.version, "code_hash": run.code_hash, "kind": run.kind,
                "family": run.family, "git_commit": run.git_commit, "mlflow.source.git.commit": run.git_commit,
                "mlflow.source.name": "gapbench evaluate", "zoo_id": self.zoo["zoo_id"]}
        metrics = run_metrics(scores, run)
        files = _predictor_files(run, points, predictions, models)
        return self._sync(found, f"{run.predictor}@{run.version}", params, tags, metrics, files, figures=True)

    # -- the board's run

    def _log_board(self, found, board_dir: Path) -> str:
        from benchmark.tables import BOARD_TABLES

        sources = sorted([board_dir / t.file for t in BOARD_TABLES] + [board_dir / "board_meta.json"])
        meta = json.loads((board_dir / "board_meta.json").read_text())
        meta.pop("date", None)  # the day alone is no change
        digest = _sha(*(p.read_bytes() for p in sources if p.name != "board_meta.json"),
                      json.dumps(meta, sort_keys=True).encode())
        tags = {"kind": "board", "zoo_id": self.zoo["zoo_id"], "mlflow.source.name": "gapbench evaluate",
                "mlflow.source.git.commit": str(meta.get("git_commit", ""))}
        return self._sync(found, BOARD_RUN, {"zoo_id": self.zoo["zoo_id"]}, tags, {}, None, board=(board_dir, digest))

    # -- the diff against what the run holds

    def _sync(self, found, name, params, tags, metrics, files, *, figures=False, board=None) -> str:
        from mlflow.entities import Metric, Param, RunTag

        created = found is None
        if created:
            found = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
        run_id = found.info.run_id
        data = found.data
        new_params = [Param(k, str(v)) for k, v in params.items() if k not in data.params]
        new_tags = {k: str(v) for k, v in tags.items() if data.tags.get(k) != str(v)}
        now = int(time.time() * 1000)
        new_metrics = [Metric(k, v, now, 0) for k, v in sorted(metrics.items()) if data.metrics.get(k) != v]
        digest = board[1] if board else _sha(*(files[k] for k in sorted(files)), *(k.encode() for k in sorted(files)))
        if data.tags.get(DIGEST_TAG) != digest:
            with tempfile.TemporaryDirectory(prefix="gapbench-mlflow-") as tmp:
                folder = Path(tmp)
                if board:
                    _board_files(board[0], folder)
                else:
                    for rel, blob in files.items():
                        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                        (folder / rel).write_bytes(blob)
                    if figures:
                        _score_figure(files["score_vs_gap.csv"], folder / "figures" / "score_vs_gap.png")
                self.client.log_artifacts(run_id, str(folder))
            new_tags[DIGEST_TAG] = digest
        if created:
            new_tags = {k: v for k, v in new_tags.items() if k not in tags}  # create_run set them
        run_tags = [RunTag(k, v) for k, v in sorted(new_tags.items())]
        self._batch(run_id, new_metrics, new_params, run_tags)
        self._dataset(found, run_id)
        if created:
            self.client.set_terminated(run_id)
        return run_id

    def _batch(self, run_id: str, metrics: list, params: list, tags: list) -> None:
        while metrics or params or tags:
            m, metrics = metrics[:MAX_METRICS], metrics[MAX_METRICS:]
            room = MAX_METRICS - len(m)
            p, params = params[:min(MAX_PARAMS, room)], params[min(MAX_PARAMS, room):]
            room -= len(p)
            t, tags = tags[:min(MAX_TAGS, room)], tags[min(MAX_TAGS, room):]
            self.client.log_batch(run_id, metrics=m, params=p, tags=t)

    def _dataset(self, found, run_id: str) -> None:
        from mlflow.entities import Dataset, DatasetInput, InputTag

        digest = str(self.zoo.get("content_hash", ""))[:32]
        inputs = getattr(found, "inputs", None)
        held = [d.dataset for d in (getattr(inputs, "dataset_inputs", None) or [])]
        if any(d.name == self.zoo["zoo_id"] and d.digest == digest for d in held):
            return
        source_type, source = _dataset_source(self.zoo.get("source", ""))
        profile = json.dumps({"content_hash": self.zoo.get("content_hash", ""), "models": self.zoo.get("n_models"),
                              "spec": self.zoo.get("spec_name", "")})
        dataset = Dataset(name=self.zoo["zoo_id"], digest=digest, source_type=source_type, source=source,
                          profile=profile)
        self.client.log_inputs(run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context",
                                                                                       "evaluation")])])


def _dataset_source(location: str) -> tuple[str, str]:
    """(source type, source JSON) of where a zoo was read from, as MLflow names sources."""
    if not location:
        return "code", json.dumps({"uri": ""})
    try:
        from mlflow.data.dataset_source_registry import resolve_dataset_source

        with warnings.catch_warnings():  # "can be interpreted in multiple ways": both are the local source
            warnings.simplefilter("ignore", UserWarning)
            src = resolve_dataset_source(location)
        return src._get_source_type(), src.to_json()
    except Exception:  # a scheme MLflow has no source for (memory://, ...): keep the URL
        return "url", json.dumps({"url": location})


def _predictor_files(run: Any, points: pd.DataFrame, predictions: pd.DataFrame,
                     models: pd.DataFrame | None) -> dict[str, bytes]:
    """The artifact files of a predictor's run (bytes by relative path), without the figure."""
    pred = predictions[(predictions["predictor"] == run.predictor) & (predictions["version"] == run.version)]
    pts = points[points["predictor"] == run.predictor]
    if models is not None and len(pts):
        cols = [c for c in ("model_id", "gap", "test_error", "train_error") if c in models.columns]
        pts = pts.merge(models[cols], on="model_id", how="left")
    provenance = {k: _jsonable(v) for k, v in run._asdict().items() if k != "date"}
    return {"predictions.csv": pred.to_csv(index=False).encode(), "score_vs_gap.csv": pts.to_csv(index=False).encode(),
            "provenance.json": (json.dumps(provenance, indent=2, sort_keys=True) + "\n").encode()}


def _score_figure(points_csv: bytes, path: Path) -> None:
    """Score against gap of every converged model, one panel per task (deterministic PNG).

    Fixed margins and a few ticks, no tight_layout: one figure per run, kept cheap.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    pts = pd.read_csv(io.BytesIO(points_csv)) if points_csv.strip() else pd.DataFrame()
    tasks = sorted(pts["task"].unique()) if "task" in pts and "gap" in pts else []
    n = max(1, len(tasks))
    fig = Figure(figsize=(2.8 * n, 2.6), dpi=80)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.55 / (2.8 * n) + 0.02, right=0.97, bottom=0.2, top=0.88, wspace=0.45)
    for i, task in enumerate(tasks or [""]):
        ax = fig.add_subplot(1, n, i + 1)
        if task:
            sub = pts[pts["task"] == task].sort_values("model_id")
            ax.scatter(sub["score"], sub["gap"], s=10, color="#1f5fa8")
            ax.set_title(task, fontsize=8)
        else:
            ax.text(0.5, 0.5, "no scored models", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("score", fontsize=7)
        if i == 0:
            ax.set_ylabel("generalization gap", fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_locator(MaxNLocator(4))
        ax.tick_params(labelsize=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", metadata={"Software": None})


def _board_files(table_dir: Path, folder: Path) -> None:
    """The board of ``table_dir`` laid out for upload in ``folder``: README.md, index.html, figures/ and
    data/ (the tables it is rendered from), rendered into ``table_dir/board`` unless already there,
    newer than the tables.
    """
    import shutil

    from benchmark.leaderboard import render_leaderboard
    from benchmark.tables import BOARD_TABLES

    out = table_dir / "board"
    sources = [table_dir / t.file for t in BOARD_TABLES] + [table_dir / "board_meta.json"]
    readme = out / "README.md"
    fresh = readme.is_file() and readme.stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in sources)
    if not fresh:  # the CLI renders the board into the same folder: render only if that has not happened yet
        render_leaderboard(table_dir, out)
    shutil.copytree(out, folder / "board")  # board/data/ holds the tables (parquet, CSV, JSON)
