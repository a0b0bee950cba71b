"""MLflow tracking: batches, intervals, figures, the zoo as a dataset, idempotent re-runs, a team's
server, a read-only or broken store, and two first runs at once on a fresh store."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from benchmark import tracking

REPO = Path(__file__).resolve().parents[1]
WRITES = ("create_run", "log_batch", "log_metric", "log_param", "set_tag", "log_artifact", "log_artifacts",
          "log_inputs", "set_terminated", "create_experiment", "set_experiment_tag")


@pytest.fixture
def tables():
    scores = pd.DataFrame([
        {"zoo_id": "z1", "predictor": "p", "version": "1", "kind": "predictor", "task": "t", "target": "gap",
         "metric": "kendall_tau", "axis": "", "value": 0.5, "ci_low": 0.2, "ci_high": 0.7, "n_models": 8},
        {"zoo_id": "z1", "predictor": "p", "version": "1", "kind": "predictor", "task": "t", "target": "gap",
         "metric": "psi_axis", "axis": "lr", "value": 0.25, "ci_low": 0.0, "ci_high": float("nan"), "n_models": 8},
        {"zoo_id": "z1", "predictor": "p", "version": "1", "kind": "predictor", "task": "t", "target": "gap",
         "metric": "cmi", "axis": "", "value": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"),
         "n_models": 8},
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


class Calls:
    """Counts MlflowClient calls by method name (the client is what every request goes through)."""

    def __init__(self, monkeypatch):
        from mlflow.tracking import MlflowClient

        self.counts: dict[str, int] = {}
        for name in WRITES + ("search_runs", "get_experiment_by_name", "get_run"):
            real = getattr(MlflowClient, name)

            def wrapper(client, *a, _real=real, _name=name, **kw):
                self.counts[_name] = self.counts.get(_name, 0) + 1
                return _real(client, *a, **kw)

            monkeypatch.setattr(MlflowClient, name, wrapper)

    def writes(self) -> dict[str, int]:
        return {k: v for k, v in self.counts.items() if k in WRITES}


# ---------------------------------------------------------------------------------------------
# pure parts


def test_metrics_carry_their_interval_bounds(tables):
    scores, runs, _, _ = tables
    metrics = tracking.run_metrics(scores, next(runs.itertuples(index=False)))
    assert metrics == {"t.gap.kendall_tau": 0.5, "t.gap.kendall_tau.ci_low": 0.2, "t.gap.kendall_tau.ci_high": 0.7,
                       "t.gap.psi_axis.lr": 0.25, "t.gap.psi_axis.lr.ci_low": 0.0,
                       "seconds_median": 0.1, "failure_rate": 0.0}  # NaN values and bounds are not logged


def test_uri_and_artifact_location(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv(tracking.ARTIFACTS_ENV, raising=False)
    uri = tracking.tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking.sqlite_path(uri) == tmp_path.resolve() / "mlflow.db"
    assert tracking.sqlite_path(f"sqlite:///file:{tmp_path}/x.db?mode=ro&uri=true") == tmp_path / "x.db"
    assert tracking.artifact_location(uri, "gapbench/micro/z1") == (tmp_path.resolve() / "mlartifacts"
                                                                     / "gapbench_micro_z1").as_uri()
    assert tracking.artifact_location("http://127.0.0.1:5000", "e") is None  # the server's own store
    with pytest.raises(tracking.TrackingError, match="GAPBENCH_MLFLOW_ARTIFACTS"):
        tracking.artifact_location("postgresql://db/mlflow", "e")
    monkeypatch.setenv(tracking.ARTIFACTS_ENV, "s3://bucket/mlflow/")
    assert tracking.artifact_location("postgresql://db/mlflow", "a/b") == "s3://bucket/mlflow/a_b"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://example.invalid:5000")
    assert tracking.tracking_uri() == "http://example.invalid:5000"


# ---------------------------------------------------------------------------------------------
# a sqlite store


def test_logs_in_batches_and_a_rerun_adds_nothing(tmp_path, tables, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tracking.ARTIFACTS_ENV, raising=False)
    uri = tracking.tracking_uri(tmp_path / "store")
    meta = {"zoo_id": "z1", "spec_name": "micro", "content_hash": "c" * 64, "source": str(tmp_path / "zoo")}
    scores, runs, points, preds = tables
    calls = Calls(monkeypatch)
    (run_id,) = tracking.log_results(meta, scores, runs, points, preds, uri=uri)
    first = calls.writes()
    assert "log_metric" not in first and "log_param" not in first and "set_tag" not in first
    assert first["log_batch"] == 1 and first["log_artifacts"] == 1 and first["create_run"] == 1
    calls.counts.clear()
    assert tracking.log_results(meta, scores, runs, points, preds, uri=uri) == [run_id]
    assert calls.writes() == {}  # nothing changed: nothing written
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("gapbench/micro/z1")
    assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert exp.artifact_location == (tmp_path / "store" / "mlartifacts" / "gapbench_micro_z1").resolve().as_uri()
    assert len(client.search_runs([exp.experiment_id])) == 1
    run = client.get_run(run_id)
    assert run.data.metrics["t.gap.kendall_tau"] == 0.5 and run.data.metrics["t.gap.kendall_tau.ci_high"] == 0.7
    assert len(client.get_metric_history(run_id, "t.gap.kendall_tau")) == 1
    assert run.data.params["version"] == "1" and run.data.tags["mlflow.source.git.commit"] == "deadbeef"
    names = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "figures")}
    assert {"predictions.csv", "score_vs_gap.csv", "provenance.json", "figures/score_vs_gap.png"} <= names
    assert not (tmp_path / "mlruns").exists()
    # a changed score is one more point of that metric only
    calls.counts.clear()
    changed = scores.copy()
    changed.loc[0, "value"] = 0.6
    tracking.log_results(meta, changed, runs, points, preds, uri=uri)
    assert calls.writes() == {"log_batch": 1}
    assert [m.value for m in client.get_metric_history(run_id, "t.gap.kendall_tau")] == [0.5, 0.6]
    assert len(client.get_metric_history(run_id, "t.gap.psi_axis.lr")) == 1


def test_a_broken_store_fails_with_one_line_naming_it(tmp_path, tables):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not a database" * 10)
    meta = {"zoo_id": "z1", "spec_name": "micro"}
    with pytest.raises(tracking.TrackingError) as err:
        tracking.log_results(meta, *tables, uri=f"sqlite:///{db}")
    assert str(err.value).startswith(f"{db}: the MLflow store is not an SQLite database") and "\n" not in str(err.value)


_LOG_SCRIPT = textwrap.dedent("""
    import sys
    import pandas as pd
    from benchmark import tracking
    scores = pd.DataFrame([{"zoo_id": "z1", "predictor": "p", "version": "1", "kind": "predictor", "task": "t",
                            "target": "gap", "metric": "kendall_tau", "axis": "", "value": 0.5, "ci_low": 0.2,
                            "ci_high": 0.7, "n_models": 8}])
    runs = pd.DataFrame([{"zoo_id": "z1", "predictor": "p", "version": "1", "code_hash": "abc", "family": "norm",
                          "kind": "predictor", "reference": "ref", "requires": "weights", "git_commit": "x",
                          "seconds_median": 0.1, "failure_rate": 0.0}])
    empty = pd.DataFrame({"predictor": [], "version": []})
    try:
        tracking.log_results({"zoo_id": "z1", "spec_name": "micro"}, scores, runs, empty, empty, uri=sys.argv[1])
    except tracking.TrackingError as exc:
        print("ERROR " + str(exc))
    else:
        print("LOGGED")
""")


def _run_logging(uri: str, cwd: Path, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(cwd)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, "-c", _LOG_SCRIPT, uri], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _read_only_mount_works(folder: Path) -> bool:
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && '
                            f'! touch "{folder}/probe" 2>/dev/null'], capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
def test_a_read_only_store_fails_with_one_line_naming_it(tmp_path, tables):
    # the store's folder is bound read-only in a private mount namespace (root writes any file whatever its mode)
    folder = tmp_path / "store"
    folder.mkdir()
    if not _read_only_mount_works(folder):
        pytest.skip("cannot bind a folder read-only here (needs root and util-linux unshare)")
    db = folder / "mlflow.db"
    tracking.log_results({"zoo_id": "z1", "spec_name": "micro"}, *tables, uri=f"sqlite:///{db}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("MLFLOW_TRACKING_URI", None)
    script = (f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && '
              f'exec "{sys.executable}" -c "$0" "$1"')
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, _LOG_SCRIPT,
                           f"sqlite:///{db}"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert lines == [f"ERROR {db}: the MLflow store is read-only ({db} cannot be written); make it writable or set "
                     "MLFLOW_TRACKING_URI to another store"], (done.stdout, done.stderr[-2000:])


@pytest.mark.slow
def test_two_first_runs_at_once_on_a_fresh_store(tmp_path):
    from mlflow.tracking import MlflowClient

    for trial in range(2):
        uri = f"sqlite:///{tmp_path / f'fresh{trial}' / 'mlflow.db'}"
        procs = [_run_logging(uri, tmp_path) for _ in range(2)]
        outs = [p.communicate(timeout=600) for p in procs]
        assert [o.strip().splitlines()[-1] for o, _ in outs] == ["LOGGED", "LOGGED"], [e[-2000:] for _, e in outs]
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name("gapbench/micro/z1")
        assert len(client.search_runs([exp.experiment_id])) == 1  # the second process updated the first's run


# ---------------------------------------------------------------------------------------------
# a team's server: `gapbench evaluate` logs to it


def _cli(main, argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` (sqlite backend, served artifacts) on 127.0.0.1."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(root / "server.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--serve-artifacts",
         "--artifacts-destination", str(root / "artifacts"), "--workers", "1"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no GenAI job runners
    deadline = time.monotonic() + 300
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(1)
    yield url
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
    log.close()


@pytest.mark.slow
def test_evaluate_logs_to_a_team_server(micro_zoo, mlflow_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from benchmark.cli import main
    from model_zoo.zoo import Zoo

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    argv = ["evaluate", "--zoo", str(micro_zoo), "--predictor", "weight_norm", "--predictor", "parameter_count",
            "--no-sandbox", "--results", str(tmp_path / "results"), "--workers", "2"]
    assert _cli(main, argv) == 0
    zoo = Zoo(micro_zoo)
    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name(f"gapbench/micro/{zoo.zoo_id}")
    assert exp.tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert exp.artifact_location.startswith("mlflow-artifacts:")
    found = {r.data.tags.get("predictor") or r.data.tags["kind"]: r for r in client.search_runs([exp.experiment_id])}
    table = pd.read_parquet(tmp_path / "results" / zoo.zoo_id / "runs.parquet")
    assert set(found) == set(table["predictor"]) | {"board"}
    scores = pd.read_parquet(tmp_path / "results" / zoo.zoo_id / "scores.parquet")
    for name in table["predictor"]:
        run = found[name]
        mine = scores[(scores["predictor"] == name) & scores["value"].notna()]
        assert len(mine) > 0
        for row in mine.itertuples(index=False):
            key = tracking.metric_key(row.task, row.target, row.metric, row.axis)
            assert run.data.metrics[key] == row.value
            if pd.notna(row.ci_low):
                assert run.data.metrics[f"{key}.ci_low"] == row.ci_low
                assert run.data.metrics[f"{key}.ci_high"] == row.ci_high
        (dataset,) = [d.dataset for d in client.get_run(run.info.run_id).inputs.dataset_inputs]
        assert dataset.name == zoo.zoo_id and dataset.digest == zoo.content_hash[:32]
        assert json.loads(dataset.profile)["content_hash"] == zoo.content_hash
        assert str(micro_zoo) in dataset.source
        figures = [a.path for a in client.list_artifacts(run.info.run_id, "figures")]
        assert figures == ["figures/score_vs_gap.png"]
        assert run.data.tags["mlflow.source.git.commit"] == table.set_index("predictor").at[name, "git_commit"]
    board = found["board"].info.run_id
    assert {a.path for a in client.list_artifacts(board, "board")} >= {"board/README.md", "board/index.html",
                                                                       "board/figures"}
    assert any(a.path.endswith(".png") for a in client.list_artifacts(board, "board/figures"))
    assert {a.path for a in client.list_artifacts(board, "board/data")} >= {"board/data/scores.parquet",
                                                                            "board/data/board_meta.json"}
    local = tmp_path / "check.png"
    local.write_bytes(Path(client.download_artifacts(found["weight_norm"].info.run_id, "figures/score_vs_gap.png",
                                                     str(tmp_path))).read_bytes())
    assert local.read_bytes().startswith(b"\x89PNG")
    assert not (tmp_path / "mlruns").exists()
    # a re-run with everything cached writes nothing to the server
    calls = Calls(monkeypatch)
    assert _cli(main, argv) == 0
    assert calls.writes() == {}
    assert calls.counts["search_runs"] == 1
    assert len(client.search_runs([exp.experiment_id])) == len(found)
