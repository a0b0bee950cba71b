"""The Ray executor: units of jobs as Ray tasks on a local Ray cluster (``ray.init(num_cpus=2)``).

The micro zoo built on Ray, with one Ray worker killed mid-build, holds the local build's bytes;
two predictors evaluated on Ray give the local executor's predictions and scores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from model_zoo.executor import Job, Lane, ProcessLauncher
from model_zoo.ray_executor import RayExecutor, make_executor, plan_units, run_unit

TESTS = str(Path(__file__).resolve().parent)
LAUNCHER = ProcessLauncher(env={**os.environ, "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", "")})


def lane(name: str, **kw) -> Lane:
    return Lane(name, init="executor_jobs:init", init_args={"tag": name, **kw.pop("init_args", {})},
                launcher=LAUNCHER, **kw)


def test_units_cut_each_lane_in_order_and_interleave_lanes():
    jobs = [Job(f"a{i}", "a", "f") for i in range(5)] + [Job(f"b{i}", "b", "f") for i in range(2)]
    units = plan_units({"a": lane("a"), "b": lane("b")}, jobs, unit_size=2)
    assert [(u.lane, [j.key for j in u.jobs]) for u in units] == [
        ("a", ["a0", "a1"]), ("b", ["b0", "b1"]), ("a", ["a2", "a3"]), ("a", ["a4"])]
    with pytest.raises(KeyError, match="lane 'c'"):
        plan_units({"a": lane("a")}, [Job("x", "c", "f")], 1)


def test_a_unit_runs_on_the_node_through_the_local_executor():
    # what a Ray task runs, called directly: results come back as JSON, by position
    import json

    out = json.loads(run_unit(lane("a", max_workers=1), [
        {"key": "one", "lane": "a", "fn": "executor_jobs:echo", "args": {"x": 1.5}, "timeout": None},
        {"key": "die", "lane": "a", "fn": "executor_jobs:die", "args": {}, "timeout": None}]))
    by_i = {r["i"]: r for r in out}
    assert by_i[0]["ok"] and by_i[0]["value"]["x"] == 1.5 and by_i[0]["value"]["tag"] == "a"
    assert not by_i[1]["ok"] and by_i[1]["error"] == "worker crashed (exit code 7)"


def test_make_executor_names():
    assert type(make_executor("ray")).__name__ == "RayExecutor"
    with pytest.raises(ValueError, match="unknown executor 'dask'"):
        make_executor("dask")
    with pytest.raises(ValueError, match="--address applies to --executor ray only"):
        make_executor("local", address="auto")


def test_model_zoo_does_not_import_ray():
    code = ("import sys, model_zoo.ray_executor, model_zoo.build, model_zoo.zoo, model_zoo.store; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([os.sys.executable, "-c", code], check=True, cwd=Path(TESTS).parent)


# ---------------------------------------------------------------------------------------------
# on a local Ray cluster


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 2**20)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_jobs_on_ray_fail_alone_and_keep_their_budgets(ray_cluster):
    jobs = [Job(f"a-{i}", "a", "executor_jobs:echo", {"x": i}) for i in range(4)]
    jobs += [Job("die", "a", "executor_jobs:die"),
             Job("slow", "a", "executor_jobs:sleep", {"seconds": 60}, timeout=1.0),
             Job("boom", "b", "executor_jobs:boom"), Job("no-init", "bad", "executor_jobs:echo", {"x": 0})]
    lanes = {"a": lane("a", max_workers=1), "b": lane("b"), "bad": lane("bad", init_args={"fail": True})}
    out = {r.job.key: r for r in RayExecutor(unit_size=3).run(lanes, jobs)}
    assert set(out) == {j.key for j in jobs}
    assert all(out[f"a-{i}"].ok and out[f"a-{i}"].value == {"tag": "a", "x": i, "pid": out[f"a-{i}"].value["pid"]}
               for i in range(4))
    assert out["die"].error == "worker crashed (exit code 7)"
    assert out["slow"].error == "timeout: exceeded the budget of 1 s"
    assert out["boom"].error.startswith("ValueError: boom at executor_jobs.py")
    assert out["no-init"].error.startswith("worker start-up failed: RuntimeError: init of bad refused")


def _busy_units() -> list[int]:
    """Pids of Ray workers running a gapbench unit that has a job in a worker process right now."""
    rows = [ln.split(None, 2) for ln in subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True,
                                                        text=True).stdout.splitlines()[1:]]
    units = {int(r[0]) for r in rows if len(r) == 3 and r[2].startswith("ray::gapbench_unit")}
    return sorted({int(r[1]) for r in rows if len(r) == 3 and "model_zoo.worker" in r[2] and int(r[1]) in units})


@pytest.fixture(scope="module")
def ray_zoo(ray_cluster, tmp_path_factory):
    """The micro zoo built on Ray, one Ray worker SIGKILLed while it trains a model."""
    from model_zoo.build import build_zoo

    root = tmp_path_factory.mktemp("ray") / "micro"
    out: dict = {}

    def build() -> None:
        try:
            # units of 3 models: 8 Ray tasks on 2 CPUs, each worker start-up shared by 3 models
            out["report"] = build_zoo("micro", root, executor=RayExecutor(unit_size=3), progress=False)
        except BaseException as exc:  # reported by the test
            out["error"] = exc

    thread = threading.Thread(target=build)
    thread.start()
    killed = None
    while thread.is_alive() and killed is None:
        busy = _busy_units()
        if busy:
            time.sleep(1.0)  # well into the job
            if busy[0] in _busy_units():
                os.kill(busy[0], signal.SIGKILL)
                killed = busy[0]
        time.sleep(0.2)
    thread.join()
    if "error" in out:
        raise out["error"]
    return root, out["report"], killed


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_ray_worker_killed_mid_build_is_retried_and_the_zoo_completes(ray_zoo):
    from model_zoo.store import verify

    root, report, killed = ray_zoo
    assert killed is not None, "no Ray worker was caught mid-job"
    assert report.ok and report.n_trained == report.n_models > 0, [f.error for f in report.failures]
    # a kill between a model's files and its rename may leave a .tmp- folder (build_zoo cleans it on resume)
    assert [p for p in verify(root) if p.kind != "leftover_tmp"] == []


@pytest.mark.slow
def test_the_ray_built_zoo_is_byte_identical_to_the_local_one(ray_zoo, micro_zoo):
    from model_zoo.store import load_answers
    from model_zoo.zoo import Zoo

    root, _, _ = ray_zoo
    ray, local = Zoo(root), Zoo(micro_zoo)
    assert ray.zoo_id == local.zoo_id
    # every model file but config.json, which records the training time (docs/reproducibility.md)
    files = ["sha256.init.safetensors", "sha256.final.safetensors", "sha256.trajectory.safetensors"]
    a = ray.manifest.set_index("model_id")[files].sort_index()
    b = local.manifest.set_index("model_id")[files].sort_index()
    assert len(a) == len(local) and a.equals(b)
    pd.testing.assert_frame_equal(load_answers(root).sort_values("model_id").reset_index(drop=True),
                                  load_answers(micro_zoo).sort_values("model_id").reset_index(drop=True))


@pytest.mark.slow
def test_two_predictors_on_ray_equal_the_local_executor(ray_cluster, micro_zoo, tmp_path):
    from benchmark import pipeline
    from benchmark.sandbox import Isolation
    from model_zoo.ray_executor import EVALUATE_UNIT_SIZE
    from model_zoo.zoo import Zoo
    from predictors.registry import resolve_names

    refs = resolve_names(["weight_norm", "random"])
    isolation = Isolation(sandbox=False, memory_mb=4096)
    runs = {}
    for name, executor in (("local", None), ("ray", RayExecutor(unit_size=EVALUATE_UNIT_SIZE))):
        runs[name] = pipeline.evaluate(micro_zoo, refs, results_dir=tmp_path / name, budget_seconds=300,
                                       isolation=isolation, progress=False, executor=executor)
    local, ray = runs["local"], runs["ray"]
    assert ray.report.computed == local.report.computed == 2 * len(Zoo(micro_zoo))
    cols = ["predictor", "model_id", "score", "status"]
    pd.testing.assert_frame_equal(ray.report.predictions[cols], local.report.predictions[cols])
    assert (ray.report.predictions["status"] == "ok").all()
    key = ["predictor", "task", "target", "metric", "axis"]
    a = ray.tables.scores.sort_values(key).reset_index(drop=True)
    b = local.tables.scores.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a[[*key, "value", "ci_low", "ci_high"]], b[[*key, "value", "ci_low", "ci_high"]])
