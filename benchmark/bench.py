"""`make bench`: speed and memory figures of the hot paths, as ratios measured in one run.

Each benchmark times our implementation against the obvious alternative on the same machine
in the same process, so the ratio, not the absolute time, is what to compare across
machines. Run: ``python -m benchmark.bench [--quick]``.

- trajectory projection: drawing the seeded Gaussian map (first model of a size) vs reusing
  it (the cache that makes same-size models cheap).
- PH0: our Prim MST on float64 centred distances vs scipy's minimum_spanning_tree (which
  drops zero-length edges: we also report whether it agrees).
- scoring: `score_task` (all metrics + 200 bootstrap replicates) per (predictor, task).
- runner: persistent workers vs a fresh process per (predictor, model) job.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np


def _best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_projection(quick: bool) -> dict:
    """Cold projection (map drawn chunk by chunk, as for a model of a new size) vs warm (cached)."""
    import torch

    from model_zoo import trajectory

    torch.set_num_threads(1)
    p, d, k = (20_000 if quick else 60_000), 1024, 200
    deltas = torch.randn(k, p)

    def cold():
        trajectory._dense_cache.clear()
        trajectory.Projector(p, d, seed=0).project(deltas)

    cold_t = _best_of(cold, 2)
    trajectory.Projector(p, d, seed=0).project(deltas)  # fill the cache
    warm_t = _best_of(lambda: trajectory.Projector(p, d, seed=0).project(deltas), 2)
    return {
        "name": "trajectory projection of a 200-step window to D=1024",
        "params": p,
        "cold_s (map drawn)": round(cold_t, 3),
        "warm_s (map cached for same-size models)": round(warm_t, 3),
        "ratio_cold_over_warm": round(cold_t / warm_t, 1),
        "map_bytes": 4 * p * d,
        "chunk_bytes": 4 * trajectory.PROJECTION_CHUNK * d,
    }


def bench_mst(quick: bool) -> dict:
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial.distance import cdist

    from predictors.estimators.ph_dim import mst_length

    rng = np.random.default_rng(0)
    n = 500 if quick else 1500
    x = rng.random((n, 3))
    x[: n // 10] = x[n // 10 : 2 * (n // 10)]  # 10% exact duplicates (a stalled trajectory)
    ours = _best_of(lambda: mst_length(x), 3)
    scipy_t = _best_of(lambda: minimum_spanning_tree(cdist(x, x)).sum(), 3)
    return {
        "name": f"MST length, {n} points in 3-D with 10% duplicates",
        "ours_s": round(ours, 4),
        "scipy_s": round(scipy_t, 4),
        "time_ratio_ours_over_scipy": round(ours / scipy_t, 2),
        "agree": bool(np.isclose(mst_length(x), minimum_spanning_tree(cdist(x, x)).sum())),
    }


def bench_scoring(quick: bool) -> dict:
    import itertools

    import pandas as pd

    from benchmark.metrics import score_task

    rng = np.random.default_rng(0)
    rows = []
    levels = [["a", "b"]] * 5
    for values in itertools.product(*levels):
        cfg = "-".join(values)
        for seed in (0, 1):
            gap = rng.random()
            rows.append({"model_id": f"{cfg}-{seed}", "config_id": cfg, "seed": seed, "gap": gap,
                         "test_error": gap, "score": gap + rng.normal(0, 0.3),
                         **{f"hp.x{i}": v for i, v in enumerate(values)}})  # fmt: skip
    df = pd.DataFrame(rows)
    axes = [f"x{i}" for i in range(5)]
    t = _best_of(lambda: score_task(df, axes, n_boot=200), 1 if quick else 3)
    return {"name": "score_task, 64 models, 5 axes, 200 bootstrap replicates", "seconds": round(t, 3)}


def bench_runner(quick: bool) -> dict:
    """Per-job overhead: persistent workers (ours) vs a fresh process per job.

    Needs a built micro zoo (``gapbench zoo build micro``); runs the cheapest predictor
    (parameter_count) through the worker pool and compares with the start-up cost of a
    fresh interpreter that imports what a worker imports.
    """
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from benchmark import runner
    from model_zoo.paths import zoos_dir
    from predictors.registry import resolve

    zoo = zoos_dir() / "micro"
    if not (zoo / "public").is_dir():
        return {"name": "runner per-job overhead", "skipped": f"no micro zoo at {zoo} (gapbench zoo build micro)"}
    n = 2 if quick else 4
    t = time.perf_counter()
    for _ in range(n):
        subprocess.run([sys.executable, "-c", "import torch, pandas, model_zoo.zoo, predictors.registry"], check=True)
    fresh = (time.perf_counter() - t) / n
    with tempfile.TemporaryDirectory() as tmp:
        report = runner.evaluate(zoo, resolve(["parameter_count"]), results_dir=Path(tmp), workers=1, progress=False)
    per_job = report.seconds / max(report.computed, 1)
    return {
        "name": "runner per-job cost (parameter_count on the micro zoo, 1 worker, start-up included)",
        "persistent_worker_per_job_s": round(per_job, 3),
        "fresh_process_per_job_s": round(fresh, 3),
        "ratio_fresh_over_persistent": round(fresh / per_job, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    results = [bench(args.quick) for bench in (bench_projection, bench_mst, bench_scoring, bench_runner)]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(f"- {r['name']}")
        for k, v in r.items():
            if k != "name":
                print(f"    {k}: {v}")


if __name__ == "__main__":
    main()
