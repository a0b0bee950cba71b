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
- population training: model-steps/s of ``train_model`` one model after another vs
  ``train_population`` on the same 16 configs, per default architecture, under the pinned
  numerics; zoo build seconds per model with and without populations (docs/population.md);
  and every predictor's median seconds per model on that zoo (2 models per task).

Results are also written to build/bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np


def _best_of(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_projection(quick: bool) -> dict:
    """Recording a 1,000-step window of a large model: the sparse sketch vs a dense Gaussian map."""
    import torch

    from model_zoo import projection

    torch.set_num_threads(1)
    p, d, k = (10_000 if quick else 26_000), 1024, (200 if quick else 1000)
    deltas = np.random.default_rng(0).standard_normal((k, p))
    sketch = projection.Projector(p, d, seed=0)
    sketch.project(deltas[:1])  # draw the map once
    sketch_t = _best_of(lambda: sketch.project(deltas), 2)
    dense = torch.randn(p, d) / d**0.5
    x = torch.from_numpy(deltas).float()
    dense_t = _best_of(lambda: x @ dense, 2)
    return {
        "name": f"window of {k} iterates, P={p} -> D={d}",
        "sketch_s (nnz=4, float64)": round(sketch_t, 3),
        "dense_gaussian_s (float32 GEMM)": round(dense_t, 3),
        "ratio_dense_over_sketch": round(dense_t / sketch_t, 1),
    }


def bench_mst(quick: bool) -> dict:
    from scipy.sparse.csgraph import minimum_spanning_tree
    from scipy.spatial.distance import cdist

    from predictors.estimators.persistent_homology import mst_length

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


def _sandbox_works() -> bool:
    """Whether predictor workers can run in bubblewrap here (benchmarks then time them sandboxed)."""
    from benchmark.sandbox import SandboxUnavailable, check_sandbox

    try:
        check_sandbox()
    except SandboxUnavailable:
        return False
    return True


def bench_runner(quick: bool, zoo=None) -> dict:
    """Per-job overhead: persistent workers (ours) vs a fresh process per job.

    Runs the cheapest predictor (parameter_count) over ``zoo`` (default: the micro zoo at
    ``zoos/micro``, built first when missing) through the predict stage's worker pool, sandboxed when bubblewrap
    works, and compares with the start-up cost of a fresh interpreter that imports what a
    worker imports.
    """
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from benchmark.predict import predict
    from benchmark.sandbox import Isolation
    from model_zoo.build import build_zoo
    from model_zoo.paths import zoos_dir
    from predictors.registry import resolve_names

    if zoo is None:
        zoo = zoos_dir() / "micro"
        build_zoo("micro", zoo, workers=2, progress=False)  # idempotent: a no-op when built
    isolation = Isolation(sandbox=_sandbox_works())
    n = 2 if quick else 4
    t = time.perf_counter()
    for _ in range(n):
        subprocess.run([sys.executable, "-c", "import torch, pandas, model_zoo.zoo, predictors.registry"], check=True)
    fresh = (time.perf_counter() - t) / n
    with tempfile.TemporaryDirectory() as tmp:
        report = predict(zoo, resolve_names(["parameter_count"]), results_dir=Path(tmp), workers=1, isolation=isolation,
                         progress=False)
    per_job = report.seconds / max(report.computed, 1)
    return {
        "name": f"predict per-job cost (parameter_count on the micro zoo, 1 worker, start-up included, "
                f"sandboxed: {isolation.sandbox})",
        "persistent_worker_per_job_s": round(per_job, 3),
        "fresh_process_per_job_s": round(fresh, 3),
        "ratio_fresh_over_persistent": round(fresh / per_job, 1),
    }


POPULATION_CASES: dict[str, tuple[str, str, dict]] = {
    # label: (task, architecture, shape) at the scale of the CPU zoos (mini / public); the MLP at
    # the two widths of the probes (64 and 256)
    "mlp": ("fashion_mnist", "mlp", {"width": 64, "depth": 2, "batch_size": 64, "train_size": 1000}),
    "mlp w256": ("fashion_mnist", "mlp", {"width": 256, "depth": 2, "batch_size": 64, "train_size": 1000}),
    "cnn": ("fashion_mnist", "cnn", {"width": 16, "depth": 2, "batch_size": 32, "train_size": 500}),
    "bow_mlp": ("newsgroups", "bow_mlp", {"width": 32, "depth": 1, "batch_size": 32, "train_size": 400}),
    "spec_mlp": ("fsdd", "spec_mlp", {"width": 32, "depth": 1, "batch_size": 64, "train_size": 200}),
    "spec_cnn": ("fsdd", "spec_cnn", {"width": 16, "depth": 2, "batch_size": 32, "train_size": 200}),
    "m5": ("fsdd", "m5", {"width": 16, "depth": 1, "batch_size": 32, "train_size": 200}),
    "text_cnn": ("newsgroups", "text_cnn", {"width": 16, "depth": 1, "batch_size": 32, "train_size": 400}),
}
MLP_LIKE = frozenset({"mlp", "bow_mlp", "spec_mlp"})
"""Architectures timed over 10x the steps of the convolutional ones (their steps are ~10x cheaper)."""


def population_child(spec: dict) -> dict:
    """Time ``train_model`` per member vs ``train_population`` (run in a pinned process)."""
    import torch

    from model_zoo.axes import TrainConfig
    from model_zoo.data import load_task
    from model_zoo.population import train_population
    from model_zoo.trainer import make_train_subset, train_model

    out = {}
    for label, (task, arch, shape) in POPULATION_CASES.items():
        data = load_task(task)
        steps, window = spec["steps"][label], spec["window"][label]
        cfgs = [TrainConfig(task=task, architecture=arch, seed=i, lr=(0.01, 0.02)[i % 2],
                            optimizer=("sgd", "adam")[(i // 2) % 2], target_ce=1e-9, max_steps=steps,
                            window_steps=window, **shape) for i in range(spec["members"])]
        subsets = [make_train_subset(data.y_train, data.info.n_classes, c.train_size, c.label_noise, c.seed)
                   for c in cfgs]
        plain_s = population_s = float("inf")
        for _ in range(spec["repeats"]):  # alternate the two, keep each one's best (the CPU is shared)
            t = time.perf_counter()
            alone = [train_model(c, data.info, data.x_train[s.indices], s.labels) for c, s in zip(cfgs, subsets)]
            plain_s = min(plain_s, time.perf_counter() - t)
            t = time.perf_counter()
            together = train_population(cfgs, data.info, data.x_train, [s.indices for s in subsets],
                                        [s.labels for s in subsets])
            population_s = min(population_s, time.perf_counter() - t)
        same = all(torch.equal(a.final_state[k], o.result.final_state[k]) for a, o in zip(alone, together)
                   for k in a.final_state)
        model_steps = len(cfgs) * (steps + window)
        out[label] = {"members": len(cfgs), "steps": steps, "window": window, "plain_s": round(plain_s, 2),
                     "population_s": round(population_s, 2),
                     "plain_model_steps_per_s": round(model_steps / plain_s, 1),
                     "population_model_steps_per_s": round(model_steps / population_s, 1),
                     "ratio": round(plain_s / population_s, 2), "same_weights": same}
    return out


def _zoo_files(root) -> str:
    import pandas as pd

    manifest = pd.read_parquet(root / "public" / "manifest.parquet").set_index("model_id").sort_index()
    files = manifest[[c for c in manifest.columns if c.startswith("sha256.") and c != "sha256.config.json"]]
    answers = pd.read_parquet(root / "answers" / "answers.parquet").set_index("model_id").sort_index()
    return files.to_json() + answers.to_json()


def run_population_child(spec: dict) -> dict:
    """`population_child` in a fresh process under the pinned numerics (as the zoo builder trains)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from model_zoo.determinism import training_env

    repo = Path(__file__).resolve().parents[1]
    env = training_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    code = ("import json, sys\nfrom model_zoo.determinism import pin\npin()\n"
            "from benchmark.bench import population_child\n"
            "print('RESULT ' + json.dumps(population_child(json.loads(sys.argv[1]))))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], env=env, cwd=repo, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(" ".join(proc.stderr.strip().splitlines()[-1:]))
    return json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1][len("RESULT "):])


def bench_population(quick: bool) -> dict:
    """Population training vs the plain loop per architecture, and a zoo built both ways."""
    import tempfile
    from pathlib import Path

    from model_zoo.build import build_zoo
    from model_zoo.plan import DEFAULT_POPULATION_SIZE

    members = 8 if quick else DEFAULT_POPULATION_SIZE
    scale = 1 if quick else 2  # steps before the window and window steps, 3 : 1 as in a zoo (e.g. 3k + 1k)
    spec = {"members": members, "repeats": 1 if quick else 2,
            "steps": {k: (120 if arch in MLP_LIKE else 12) * scale for k, (_, arch, _) in POPULATION_CASES.items()},
            "window": {k: (40 if arch in MLP_LIKE else 4) * scale for k, (_, arch, _) in POPULATION_CASES.items()}}
    try:
        steps = run_population_child(spec)
    except RuntimeError as err:
        return {"name": "population training", "failed": str(err)}
    result = {"name": f"population training ({members} members, pinned numerics, model-steps/s)", **{
        arch: f"plain {r['plain_model_steps_per_s']} / population {r['population_model_steps_per_s']}: "
              f"x{r['ratio']} (same weights: {r['same_weights']})" for arch, r in steps.items()},
              "detail": steps}
    if quick:
        result["zoo"] = "skipped (--quick)"
        return result
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, size in (("population", DEFAULT_POPULATION_SIZE), ("alone", 1)):
            report = build_zoo("micro", Path(tmp) / label, workers=2, progress=False, population_size=size)
            seconds[label] = report.seconds / report.n_models
        same = _zoo_files(Path(tmp) / "population") == _zoo_files(Path(tmp) / "alone")
        result["predictor_seconds_per_model"] = _predictor_seconds(Path(tmp) / "population", Path(tmp) / "results")
    result["zoo"] = (f"micro zoo, 2 workers: {seconds['alone']:.2f} s/model alone, {seconds['population']:.2f} "
                     f"s/model in populations: x{seconds['alone'] / seconds['population']:.2f} (same bytes: {same})")
    result["zoo_seconds_per_model"] = {k: round(v, 3) for k, v in seconds.items()}
    return result


def _predictor_seconds(zoo_root, results_dir, per_task: int = 2) -> dict[str, float]:
    """Median seconds per model of every registered predictor on ``per_task`` models per task of a zoo."""
    frame = _predictor_timings(zoo_root, results_dir, per_task)
    seconds = frame.groupby("predictor")["seconds"].median().sort_values(ascending=False)
    return {"models": int(frame["model_id"].nunique()), "sandboxed": bool(frame.attrs["sandboxed"]),
            "total_median": round(float(seconds.sum()), 3), **{name: round(float(v), 4) for name, v in seconds.items()}}


def _predictor_timings(zoo_root, results_dir, per_task: int):
    """Every registered predictor on ``per_task`` converged models per task, spread over the grid (sandboxed if possible)."""
    from benchmark.predict import predict
    from benchmark.sandbox import Isolation
    from model_zoo.zoo import Zoo
    from predictors.api import DEFAULT_BUDGET_SECONDS
    from predictors.registry import resolve_names

    zoo = Zoo(zoo_root)
    ids = []
    for task in zoo.tasks:  # spread over the build order, which follows the grid
        converged = zoo.model_ids(task=task, status="converged")
        picks = np.unique(np.linspace(0, len(converged) - 1, per_task).round().astype(int)) if converged else []
        ids += [converged[i] for i in picks]
    sandbox = _sandbox_works()
    report = predict(zoo_root, resolve_names(), results_dir=results_dir, workers=2,
                     budget_seconds=DEFAULT_BUDGET_SECONDS, isolation=Isolation(sandbox=sandbox, memory_mb=4096),
                     model_ids=ids, progress=False)
    frame = report.predictions.copy()
    frame["task"] = frame["model_id"].map({mid: task for task in zoo.tasks for mid in zoo.model_ids(task=task)})
    frame.attrs["sandboxed"] = sandbox
    return frame


def bench_predictors_on(zoo_root, per_task: int) -> dict:
    """Predictor seconds per model on a sample of a built zoo, extrapolated to the whole zoo.

    Each task's cost is the sum over predictors of the median seconds per model on its sample,
    times the task's number of converged models; the predictors that retrain a model (they
    declare ``retrain``) are reported apart, as ``gapbench evaluate`` does.
    """
    import tempfile
    from pathlib import Path

    from benchmark.predict import retraining_predictors
    from model_zoo.zoo import Zoo
    from predictors.registry import resolve_names

    zoo = Zoo(zoo_root)
    retraining = retraining_predictors(resolve_names())
    with tempfile.TemporaryDirectory() as tmp:
        frame = _predictor_timings(Path(zoo_root), Path(tmp) / "results", per_task)
    result = {"name": f"predictor seconds per model on {zoo_root} ({per_task} models per task, "
                      f"sandboxed: {frame.attrs['sandboxed']})"}
    totals = {"reading": 0.0, "retraining": 0.0}
    for task, rows in frame.groupby("task"):
        medians = rows.groupby("predictor")["seconds"].median()
        n = len(zoo.model_ids(task=task, status="converged"))
        split = {"reading": float(medians[~medians.index.isin(retraining)].sum()),
                 "retraining": float(medians[medians.index.isin(retraining)].sum())}
        for kind, value in split.items():
            totals[kind] += value * n
        slowest = medians.sort_values(ascending=False).head(4)
        result[task] = (f"{n} models: {split['reading']:.2f} s/model reading the trained model, "
                        f"{split['retraining']:.2f} s/model retraining; slowest "
                        + ", ".join(f"{k} {v:.2f}" for k, v in slowest.items()))
    result["whole zoo"] = (f"{totals['reading']:.0f} predictor-s reading + {totals['retraining']:.0f} retraining = "
                           f"{(totals['reading'] + totals['retraining']) / 2 / 60:.0f} min on 2 workers "
                           f"({totals['reading'] / 2 / 60:.0f} min without the retraining predictors)")
    return result


def _write(results: list[dict]) -> None:
    from pathlib import Path

    out = Path(__file__).resolve().parents[1] / "build" / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (seconds)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--predictors-on", metavar="ZOO_DIR",
                        help="only: every predictor's seconds per model on a sample of this built zoo, extrapolated")
    parser.add_argument("--per-task", type=int, default=3, help="with --predictors-on: models sampled per task")
    args = parser.parse_args(argv)
    repo = Path(__file__).resolve().parents[1]
    if not os.environ.get("GAPBENCH_DATA_MIRROR") and (repo.parent / "shared" / "data").is_dir():
        os.environ["GAPBENCH_DATA_MIRROR"] = str(repo.parent / "shared" / "data")  # as the Makefile does
    if args.predictors_on:
        results = [bench_predictors_on(args.predictors_on, args.per_task)]
    else:
        benches = (bench_projection, bench_mst, bench_scoring, bench_runner, bench_population)
        results = [bench(args.quick) for bench in benches]
    _write(results)
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
