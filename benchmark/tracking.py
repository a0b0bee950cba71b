"""MLflow tracking: one experiment per zoo, one run per predictor version.

The tracking URI is always set explicitly: ``MLFLOW_TRACKING_URI`` when given (any MLflow
server), else a sqlite file in the project (``<project>/mlflow.db``), never a stray
``mlruns/`` folder. Runs are keyed by (predictor, version, code hash): logging the same
predictor version again updates its run instead of adding a duplicate.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

DEFAULT_DB = "mlflow.db"


def tracking_uri(project_dir: Path | None = None) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    base = Path(project_dir or os.environ.get("GAPBENCH_HOME", ".")).resolve()
    return f"sqlite:///{base / DEFAULT_DB}"


def experiment_name(zoo_meta: dict) -> str:
    return f"gapbench/{zoo_meta.get('spec_name', 'zoo')}/{zoo_meta['zoo_id']}"


def log_results(
    zoo_meta: dict,
    scores: pd.DataFrame,
    runs: pd.DataFrame,
    points: pd.DataFrame,
    predictions: pd.DataFrame,
    *,
    uri: str | None = None,
    figures: dict[str, list[Path]] | None = None,
) -> list[str]:
    """Log every predictor's metrics, params and artifacts; return the MLflow run ids."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    name = experiment_name(zoo_meta)
    exp = client.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else client.create_experiment(name, tags={"zoo_id": zoo_meta["zoo_id"]})
    run_ids = []
    for run in runs.itertuples(index=False):
        key = f"{run.predictor}@{run.version}"
        found = client.search_runs(
            [exp_id],
            filter_string=f"tags.predictor = '{run.predictor}' and tags.version = '{run.version}' "
            f"and tags.code_hash = '{run.code_hash}'",
            max_results=1,
        )
        if found:
            run_id = found[0].info.run_id
        else:
            tags = {"predictor": run.predictor, "version": run.version, "code_hash": run.code_hash,
                    "kind": run.kind, "family": run.family, "git_commit": run.git_commit}  # fmt: skip
            run_id = client.create_run(exp_id, run_name=key, tags=tags).info.run_id
        params = {
            "predictor": run.predictor, "version": run.version, "family": run.family, "kind": run.kind,
            "reference": str(run.reference)[:500], "requires": run.requires, "zoo_id": zoo_meta["zoo_id"],
        }  # fmt: skip
        for k, v in params.items():
            try:
                client.log_param(run_id, k, v)
            except Exception:  # an existing param with the same value cannot be re-logged
                pass
        mine = scores[(scores["predictor"] == run.predictor) & (scores["version"] == run.version)]
        for row in mine.itertuples(index=False):
            if pd.isna(row.value):
                continue
            metric = f"{row.task}.{row.target}.{row.metric}" + (f".{row.axis}" if row.axis else "")
            client.log_metric(run_id, _clean(metric), float(row.value))
        client.log_metric(run_id, "seconds_median", float(run.seconds_median))
        client.log_metric(run_id, "failure_rate", float(run.failure_rate))
        with tempfile.TemporaryDirectory() as tmp:
            pred = predictions[predictions["predictor"] == run.predictor]
            if len(pred):
                p = Path(tmp) / "predictions.csv"
                pred.to_csv(p, index=False)
                client.log_artifact(run_id, str(p))
            pts = points[points["predictor"] == run.predictor]
            if len(pts):
                p = Path(tmp) / "score_vs_gap.csv"
                pts.to_csv(p, index=False)
                client.log_artifact(run_id, str(p))
            meta = Path(tmp) / "provenance.json"
            meta.write_text(json.dumps({k: _jsonable(v) for k, v in run._asdict().items()}, indent=2))
            client.log_artifact(run_id, str(meta))
        for fig in (figures or {}).get(run.predictor, []):
            client.log_artifact(run_id, str(fig), artifact_path="figures")
        client.set_terminated(run_id)
        run_ids.append(run_id)
    return run_ids


def _clean(metric: str) -> str:
    """MLflow metric names allow alphanumerics, '_', '-', '.', ' ', '/'."""
    return "".join(c if c.isalnum() or c in "_-. /" else "_" for c in metric)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return value
