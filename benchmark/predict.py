"""The predict stage: run predictors over a zoo in isolated workers, within budgets, cached.

`predict` turns (zoo, predictor refs, seed) into a ``predictions`` table (benchmark.tables).
Each predictor gets its own lane of workers (one worker process at a time, see
model_zoo.executor), launched by :class:`benchmark.sandbox.Isolation`; before each job the
parent stages the one model the job is about into the worker's private folder. A job's budget
is the runner's ceiling, lowered (never raised) by the predictor's own ``budget_seconds``. An
exception, a non-finite or non-float score, a timeout, a memory overrun or a dead worker is a
failure of that (predictor, model) only. Workers return numbers; only this process writes
the cache (`benchmark.cache`) and the tables.

The worker side is :func:`worker_init` and :func:`predict_job`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.cache import PredictionCache
from benchmark.sandbox import Isolation, ModelStager
from benchmark.tables import PREDICTIONS
from model_zoo.executor import Executor, Job, Lane, LocalExecutor
from predictors.api import DEFAULT_BUDGET_SECONDS, staged_files
from predictors.registry import PredictorRef

DEFAULT_MEMORY_MB = 6144.0
FLUSH_SECONDS = 10.0
LOG_FILE_BYTES = 1 << 20  # per predictor and run, on top of the executor's cap per job
_NO_CACHE_PREFIXES = ("worker start-up failed", "could not start a worker", "the worker did not start")


@dataclass
class PredictReport:
    """What `predict` did: all predictions (cached and new), counts, and one-line problems."""

    predictions: pd.DataFrame
    computed: int
    cached: int
    seconds: float
    problems: list[str] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)


def retraining_predictors(refs: list[PredictorRef]) -> set[str]:
    """Names of the predictors that retrain a model (``requires`` holds ``retrain``), costed apart."""
    return {r.name for r in refs if "retrain" in r.meta.requires}


def cost_summary(predictions: pd.DataFrame, refs: list[PredictorRef]) -> list[str]:
    """Compute seconds of a predictions table, the predictors that retrain a model apart.

    One line for the predictors that read the model as trained and one for those that
    retrain it (``requires`` holds ``retrain``: effective model complexity and any like it),
    each with the total predictor-seconds (cached rows count what they cost when computed)
    and the seconds per model, so the cost of the retraining protocols is never hidden in the
    total. Empty when there are no predictions.
    """
    if predictions.empty:
        return []
    retraining = retraining_predictors(refs)
    n_models = predictions["model_id"].nunique()
    lines = []
    for label, chosen in (("reading the trained model", False), ("retraining (" + ", ".join(sorted(retraining)) + ")",
                                                                 True)):
        part = predictions[predictions["predictor"].isin(retraining) == chosen]
        if part.empty:
            continue
        total = float(part["seconds"].sum())
        lines.append(f"{part['predictor'].nunique()} predictors {label}: {total:.0f} predictor-s on {n_models} models "
                     f"({total / n_models:.2f} s/model)")
    return lines


def predict(
    zoo_root: str | Path,
    refs: list[PredictorRef],
    *,
    results_dir: str | Path,
    seed: int = 0,
    workers: int = 2,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    isolation: Isolation | None = None,
    executor: Executor | None = None,
    model_ids: list[str] | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> PredictReport:
    """Predict every (predictor, model) pair not already cached; return all predictions."""
    from model_zoo.zoo import Zoo

    started = time.perf_counter()
    isolation = isolation or Isolation(memory_mb=DEFAULT_MEMORY_MB)
    zoo = Zoo(zoo_root)
    manifest = zoo.manifest if model_ids is None else zoo.manifest[zoo.manifest["model_id"].isin(model_ids)]
    tasks = dict(zip(manifest["model_id"], manifest["task"]))
    cache = PredictionCache(results_dir, zoo.zoo_id, zoo.content_hash, sandboxed=isolation.sandbox)
    problems: list[str] = []
    frames: dict[str, pd.DataFrame] = {}
    jobs: list[Job] = []
    for ref in refs:
        frame, problem = cache.load(ref, seed)
        if problem:
            problems.append(problem)
        if retry_failed:
            frame = frame[frame["status"] == "ok"]
        frames[ref.key] = frame
        done = set(frame["model_id"])
        budget = ref.budget(budget_seconds)
        jobs += [Job(f"{ref.key}|{mid}", ref.key, "benchmark.predict:predict_job", {"model_id": mid, "seed": seed},
                     timeout=budget) for mid in tasks if mid not in done]
    cached = sum(int(f["model_id"].isin(tasks).sum()) for f in frames.values())
    new_rows: dict[str, list[dict[str, Any]]] = {r.key: [] for r in refs}
    no_cache: set[str] = set()
    logs: dict[str, str] = {}
    if jobs:
        from tqdm import tqdm

        by_key = {r.key: r for r in refs}
        lanes = {key: _lane(ref, zoo_root, isolation) for key, ref in by_key.items() if any(j.lane == key for j in jobs)}
        bar = tqdm(total=len(jobs), desc="predict", unit="job", disable=not progress, dynamic_ncols=True)
        last_flush = time.perf_counter()
        for result in (executor or LocalExecutor(workers)).run(lanes, jobs):
            ref = by_key[result.job.lane]
            mid = result.job.args["model_id"]
            score, status, reason = _outcome(result.ok, result.value, result.error)
            if not result.ok and result.error.startswith(_NO_CACHE_PREFIXES):
                no_cache.add(ref.key)
            new_rows[ref.key].append({
                "zoo_id": zoo.zoo_id, "model_id": mid, "task": tasks[mid], "predictor": ref.name,
                "version": ref.version, "code_hash": ref.code_hash, "seed": seed, "score": score,
                "status": status, "reason": reason, "seconds": float(result.seconds),
            })
            if result.log or result.traceback:
                logs[f"{ref.name}/{mid}"] = result.log + (f"\n{result.traceback}" if result.traceback else "")
            bar.update(1)
            bar.set_postfix_str(f"{ref.name} {status}", refresh=False)
            if time.perf_counter() - last_flush > FLUSH_SECONDS:
                _flush(cache, by_key, seed, frames, new_rows, no_cache)
                last_flush = time.perf_counter()
        bar.close()
        _flush(cache, by_key, seed, frames, new_rows, no_cache)
        write_logs(Path(results_dir) / zoo.zoo_id / "logs", logs)
    parts = [f[f["model_id"].isin(tasks)] for f in frames.values() if len(f)]
    preds = PREDICTIONS.frame(pd.concat(parts, ignore_index=True)) if parts else PREDICTIONS.empty()
    preds = preds.sort_values(["predictor", "model_id"], kind="stable").reset_index(drop=True)
    return PredictReport(preds, computed=len(jobs), cached=cached, seconds=time.perf_counter() - started,
                         problems=problems, logs=logs)


def write_logs(folder: Path, logs: dict[str, str], *, cap: int = LOG_FILE_BYTES) -> list[Path]:
    """Write each predictor's captured worker output to ``folder/<predictor>.log``, capped.

    ``logs`` maps ``"<predictor>/<model_id>"`` to the text; one section per model, at most
    ``cap`` bytes per file (the executor already caps each job's output).
    """
    from model_zoo.store import atomic_write_bytes

    by_name: dict[str, list[str]] = {}
    for key in sorted(logs):
        name, _, model_id = key.partition("/")
        by_name.setdefault(name, []).append(f"== {model_id} ==\n{logs[key].rstrip()}\n")
    written = []
    for name, sections in by_name.items():
        data = "".join(sections).encode("utf-8", "replace")
        if len(data) > cap:
            data = data[:cap] + f"\n[... {len(data) - cap} more bytes dropped]\n".encode()
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / f"{name}.log", data)
        written.append(folder / f"{name}.log")
    return written


def _outcome(ok: bool, value: Any, error: str) -> tuple[float, str, str]:
    """(score, status, reason) of a job; a worker's "ok" is believed only for a finite float."""
    if not ok:
        return math.nan, "failed", error or "failed"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return math.nan, "failed", f"the worker returned {str(value)[:80]!r}, not a finite float"
    return float(value), "ok", ""


def _lane(ref: PredictorRef, zoo_root: str | Path, isolation: Isolation) -> Lane:
    from model_zoo.store import ZooLayout

    layout = ZooLayout.at(zoo_root)
    files = (ref.location,) if ref.source == "file" else ()
    launcher = isolation.launcher(files=files, data_dir=layout.public / "data")
    init_args = {"ref": ref.to_dict(), "memory_mb": isolation.memory_mb,
                 "file": isolation.file_path(ref.location) if ref.source == "file" else None}
    # no cap on a lane's workers: once the cheap predictors are done, a slow one (effective model
    # complexity retrains every model) takes every free slot instead of leaving them idle
    return Lane(ref.key, init="benchmark.predict:worker_init", init_args=init_args, launcher=launcher,
                max_workers=None, memory_mb=isolation.memory_mb, stage=True,
                on_dispatch=ModelStager(zoo_root, link_data=not isolation.sandbox,
                                        files=staged_files(ref.meta.requires)))


def _flush(cache, by_key, seed, frames, new_rows, no_cache) -> None:
    for key, rows in new_rows.items():
        if not rows:
            continue
        add = PREDICTIONS.frame(rows)
        base = frames[key]
        frames[key] = add if base.empty else pd.concat([base[~base["model_id"].isin(add["model_id"])], add],
                                                         ignore_index=True)
        rows.clear()
        if key not in no_cache:
            cache.save(by_key[key], seed, frames[key])


# ---------------------------------------------------------------------------------------------
# the worker side (runs inside the isolated worker process)


def worker_init(*, ref: dict[str, Any], memory_mb: float | None, file: str | None, stage: str) -> dict[str, Any]:
    """Pin the numerics, load the predictor (from the registry, or its submitted file), cap the memory.

    The numerics are the training workers' (`model_zoo.determinism.pin`: one thread, ATen AVX2
    kernels, oneDNN and NNPACK off, deterministic algorithms; the launcher set `PINNED_ENV`), so a
    score is the same number on every x86-64 machine, not only on the one that computed it.
    """
    from model_zoo.determinism import pin

    pin()
    from predictors import registry

    pref = PredictorRef.from_dict(ref)
    if file is not None:
        pref = PredictorRef(pref.meta, pref.code_hash, "file", file)
    pred = registry.find(pref)
    if pred.meta != pref.meta:
        raise RuntimeError(f"predictor {pref.name!r} changed since it was described; rerun")
    if memory_mb:
        _cap_address_space(memory_mb)
    return {"pred": pred, "stage": stage, "pools": {}}


def predict_job(context: dict[str, Any], *, model_id: str, seed: int) -> float:
    """Score the staged model with the worker's predictor."""
    from model_zoo.zoo import Zoo
    from predictors.api import Subject
    from predictors.conformance import as_score, forbid_test_data

    pred = context["pred"]
    zoo = Zoo(context["stage"], pool_cache=context["pools"])
    subject = Subject(zoo.record(model_id), requires=tuple(pred.meta.requires))
    with forbid_test_data():
        return as_score(pred(subject, seed=seed), pred.meta.name)


def _cap_address_space(memory_mb: float) -> None:
    """Let this process map at most ``memory_mb`` beyond what it has mapped now (after imports)."""
    import os
    import resource

    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = mapped + int(memory_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
