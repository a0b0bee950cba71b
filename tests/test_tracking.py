"""MLflow tracking: one experiment per zoo, one run per predictor version, metrics and artifacts."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark import tracking


@pytest.fixture
def tables():
    scores = pd.DataFrame([
        {"zoo_id": "z1", "predictor": "p", "version": "1", "kind": "predictor", "task": "t", "target": "gap",
         "metric": "kendall_tau", "axis": "", "value": 0.5, "ci_low": 0.2, "ci_high": 0.7, "n_models": 8},
        {"zoo_id": "z1", "predictor": "p", "version": "1", "kind": "predictor", "task": "t", "target": "gap",
         "metric": "psi_axis", "axis": "lr", "value": 0.25, "ci_low": 0.0, "ci_high": 0.5, "n_models": 8},
        {"zoo_id": "z1", "predictor": "p", "version": "1", "kind": "predictor", "task": "t", "target": "gap",
         "metric": "cmi", "axis": "", "value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n_models": 8},
    ])  # fmt: skip
    runs = pd.DataFrame([{
        "zoo_id": "z1", "predictor": "p", "version": "1", "code_hash": "abc", "family": "norm", "kind": "predictor",
        "reference": "ref", "requires": "weights", "notes": "", "git_commit": "deadbeef", "package_versions": "{}",
        "seconds_median": 0.1, "seconds_total": 0.8, "failure_rate": 0.0, "n_models": 8, "date": "2026-01-01",
    }])  # fmt: skip
    points = pd.DataFrame({"zoo_id": "z1", "task": "t", "model_id": ["a", "b"], "predictor": "p",
                           "score": [1.0, 2.0], "gap": [0.1, 0.2]})  # fmt: skip
    preds = points.assign(status="ok", reason="", seconds=0.1, version="1", code_hash="abc")
    return scores, runs, points, preds


def test_logs_one_run_per_predictor_version_with_metrics_and_artifacts(tmp_path, tables, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    meta = {"zoo_id": "z1", "spec_name": "micro"}
    scores, runs, points, preds = tables
    (run_id,) = tracking.log_results(meta, scores, runs, points, preds, uri=uri)
    again = tracking.log_results(meta, scores, runs, points, preds, uri=uri)
    assert again == [run_id]  # same predictor version: the run is reused, not duplicated
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("gapbench/micro/z1")
    assert exp is not None
    assert len(client.search_runs([exp.experiment_id])) == 1
    run = client.get_run(run_id)
    assert run.data.metrics["t.gap.kendall_tau"] == 0.5
    assert run.data.metrics["t.gap.psi_axis.lr"] == 0.25
    assert "t.gap.cmi" not in run.data.metrics  # NaN is not logged
    assert run.data.params["version"] == "1" and run.data.tags["code_hash"] == "abc"
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"predictions.csv", "score_vs_gap.csv", "provenance.json"} <= names
    assert not (tmp_path / "mlruns").exists()
    mlflow.set_tracking_uri("")  # leave no global state for other tests


def test_env_uri_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    assert tracking.tracking_uri() == "http://example.invalid:5000"
