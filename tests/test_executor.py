"""The executor: lanes, init context, failures confined to one job or one lane, budgets, logs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from model_zoo.executor import Job, Lane, LocalExecutor, ProcessLauncher

TESTS = str(Path(__file__).resolve().parent)
LAUNCHER = ProcessLauncher(env={**os.environ, "PYTHONPATH": TESTS + os.pathsep + os.environ.get("PYTHONPATH", "")})


def lane(name: str, **kw) -> Lane:
    return Lane(name, init="executor_jobs:init", init_args={"tag": name, **kw.pop("init_args", {})},
                launcher=LAUNCHER, **kw)


def run(lanes: list[Lane], jobs: list[Job], **kw) -> dict[str, object]:
    return {r.job.key: r for r in LocalExecutor(**kw).run({ln.name: ln for ln in lanes}, jobs)}


def test_jobs_run_in_their_lane_with_its_context():
    jobs = [Job(f"{ln}-{i}", ln, "executor_jobs:echo", {"x": i}) for ln in ("a", "b") for i in range(3)]
    out = run([lane("a", max_workers=1), lane("b", max_workers=1)], jobs)
    assert all(r.ok for r in out.values())
    assert {out[f"a-{i}"].value["tag"] for i in range(3)} == {"a"}
    assert len({out[f"a-{i}"].value["pid"] for i in range(3)}) == 1  # one worker per lane
    assert out["a-0"].value["pid"] != out["b-0"].value["pid"]


def test_an_uncapped_lane_takes_the_slot_a_finished_lane_frees():
    # how predict runs a slow predictor (EMC) beside quick ones: once "quick" is done, "slow" gets both workers
    jobs = [Job("q", "quick", "executor_jobs:echo", {"x": 0})]
    jobs += [Job(f"s{i}", "slow", "executor_jobs:nap", {"seconds": 0.4}) for i in range(8)]
    out = run([lane("quick"), lane("slow")], jobs, workers=2)
    assert all(r.ok for r in out.values())
    assert len({out[f"s{i}"].value for i in range(8)}) == 2
    capped = run([lane("quick"), lane("slow", max_workers=1)], jobs, workers=2)
    assert len({capped[f"s{i}"].value for i in range(8)}) == 1


def test_failures_stay_with_their_job():
    jobs = [Job("boom", "a", "executor_jobs:boom"), Job("die", "a", "executor_jobs:die"),
            Job("slow", "a", "executor_jobs:sleep", {"seconds": 30}, timeout=1.0),
            Job("bad", "a", "executor_jobs:not_json"), Job("fine", "a", "executor_jobs:echo", {"x": 1.5})]
    started = time.perf_counter()
    out = run([lane("a", max_workers=1)], jobs)
    assert out["boom"].error.startswith("ValueError: boom at executor_jobs.py")
    assert out["die"].error == "worker crashed (exit code 7)"
    assert out["slow"].error == "timeout: exceeded the budget of 1 s"
    assert "not JSON serializable" in out["bad"].error
    assert out["fine"].ok and out["fine"].value["x"] == 1.5
    assert time.perf_counter() - started < 25


def test_timeouts_hold_while_a_worker_is_replaced():
    # lane a's worker dies and is replaced while lane b's job must time out on schedule
    jobs = [Job("die", "a", "executor_jobs:die"), Job("after", "a", "executor_jobs:echo", {"x": 2}),
            Job("slow", "b", "executor_jobs:sleep", {"seconds": 30}, timeout=2.0)]
    out = run([lane("a", max_workers=1), lane("b", max_workers=1)], jobs)
    assert out["slow"].error.startswith("timeout") and out["slow"].seconds < 6
    assert out["after"].ok


def test_a_lane_that_cannot_start_fails_only_its_jobs():
    jobs = [Job("x", "bad", "executor_jobs:echo", {"x": 1}), Job("y", "bad", "executor_jobs:echo", {"x": 2}),
            Job("z", "good", "executor_jobs:echo", {"x": 3})]
    out = run([lane("bad", init_args={"fail": True}), lane("good")], jobs)
    assert out["x"].error == "worker start-up failed: RuntimeError: init of bad refused at executor_jobs.py:12"
    assert not out["y"].ok and out["z"].ok


def test_output_is_captured_and_capped_per_job():
    out = run([lane("a")], [Job("flood", "a", "executor_jobs:flood", {"mb": 50}),
                            Job("quiet", "a", "executor_jobs:echo", {"x": 0})], log_bytes=1000)
    assert out["flood"].ok and len(out["flood"].log) < 1200
    assert "more bytes of output dropped" in out["flood"].log
    assert out["quiet"].log == ""


def test_stage_folder_is_filled_before_each_job():
    def stage(job: Job, folder: Path) -> None:
        (folder / "input.txt").write_text(job.key)

    a = lane("a", stage=True, on_dispatch=stage)
    out = run([a], [Job(k, "a", "executor_jobs:read_stage", {"name": "input.txt"}) for k in ("one", "two")])
    assert out["one"].value == "one" and out["two"].value == "two"


def test_memory_cap_kills_the_worker():
    a = lane("a", memory_mb=200)
    out = run([a], [Job("big", "a", "executor_jobs:allocate", {"mb": 600}, timeout=30)], rss_grace_mb=100)
    assert out["big"].error == "memory cap exceeded: over 200 MB"


def test_unknown_lane_is_an_error():
    with pytest.raises(KeyError, match="lane 'nope'"):
        list(LocalExecutor().run({}, [Job("x", "nope", "executor_jobs:echo")]))
