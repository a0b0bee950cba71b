"""`make bench` keeps working: its benchmarks run against today's APIs (tiny sizes, no timings checked).

`make bench` is not part of `make test` (it takes minutes and its figures are ratios, not pass or
fail), so nothing else would notice a benchmark calling a module that a refactoring removed
(it happened: the runner benchmark imported `benchmark.runner` after it became
`benchmark.predict`).
"""

from __future__ import annotations

from pathlib import Path

from benchmark import bench


def test_runner_benchmark_runs_on_the_micro_zoo(micro_zoo: Path):
    result = bench.bench_runner(quick=True, zoo=micro_zoo)
    assert result["persistent_worker_per_job_s"] > 0
    assert result["fresh_process_per_job_s"] > 0


def test_population_benchmark_trains_every_case_bit_identically():
    spec = {"members": 2, "repeats": 1, "steps": dict.fromkeys(bench.POPULATION_CASES, 3),
            "window": dict.fromkeys(bench.POPULATION_CASES, 2)}
    steps = bench.run_population_child(spec)
    assert set(steps) == set(bench.POPULATION_CASES)
    for label, r in steps.items():
        assert r["same_weights"], label
        assert r["plain_model_steps_per_s"] > 0 and r["population_model_steps_per_s"] > 0, label

