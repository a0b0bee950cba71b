"""Run predictors over a zoo in isolated worker processes, with budgets and a prediction cache.

Isolation: workers are started with ``spawn`` and given only a hard-linked copy of the zoo's
``public/`` directory in a private temporary folder (no answers, no test data, no data mirror
in their environment). Each (predictor, model) job has a time budget and each worker a
memory cap; an exception, a NaN/inf or non-float result, a timeout, a memory overrun or a
dying worker becomes a failure *for that model* with its reason, and the run goes on with a
fresh worker.

Cache: one parquet file per (predictor, version, code hash) under
``<results>/<zoo_id>/cache/``; a second run recomputes nothing, adding a predictor computes
only that predictor. Files are rewritten atomically every few seconds, so a killed run keeps
what it finished.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path

import pandas as pd

from predictors.api import Predictor
from predictors.registry import code_hash, source_file

DEFAULT_BUDGET_SECONDS = 300.0
DEFAULT_MEMORY_MB = 6144
PREDICTION_COLUMNS = [
    "zoo_id", "model_id", "task", "predictor", "version", "code_hash",
    "score", "status", "reason", "seconds",
]  # fmt: skip
FLUSH_SECONDS = 10.0
RSS_BASELINE_MB = 1024  # a worker's resident size after importing torch & co., on top of the cap


_SPAWN_HINT = ("Workers are spawned: a script that calls the runner must guard its top level with "
               "`if __name__ == '__main__':`.")


class WorkerStartupError(RuntimeError):
    """Predictor workers die before taking any job: an environment problem, not a predictor's."""


@dataclass(frozen=True)
class PredictorRef:
    """How a worker finds a predictor again: a registry name, plus a file for submitted ones."""

    name: str
    version: str
    code_hash: str
    path: str | None  # a file outside the built-in/contrib/entry-point sources
    budget_seconds: float

    @classmethod
    def of(cls, pred: Predictor, default_budget: float) -> PredictorRef:
        from predictors import registry

        src = source_file(pred)
        builtin_module = getattr(getattr(pred, "__wrapped__", pred), "__module__", "")
        is_file = builtin_module.startswith("gapbench_user_predictors.") and not Path(src).is_relative_to(
            registry.CONTRIB_DIR
        )
        return cls(
            name=pred.meta.name,
            version=pred.meta.version,
            code_hash=code_hash(pred),
            path=src if is_file else None,
            budget_seconds=float(pred.meta.budget_seconds or default_budget),
        )


# --------------------------------------------------------------------------------------------
# the public view


@contextmanager
def public_view(zoo_root: Path) -> Iterator[Path]:
    """A private temporary copy (hard links where possible) of ``<zoo>/public`` only."""
    src = Path(zoo_root) / "public"
    if not src.is_dir():
        raise FileNotFoundError(f"{src} does not exist: is {zoo_root} a built zoo?")
    tmp = Path(tempfile.mkdtemp(prefix="gapbench-view-"))
    dst = tmp / "public"

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    try:
        shutil.copytree(src, dst, copy_function=link, ignore=shutil.ignore_patterns(".tmp-*"))
        yield dst
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# the worker side


def _cap_address_space(memory_mb: float) -> None:
    """Let this process map at most ``memory_mb`` beyond what it has mapped now (after imports).

    Allocations past the cap fail inside the predictor (and are recorded as its failure)
    instead of taking the machine down; the parent also polls the resident size.
    """
    import resource

    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = mapped + int(memory_mb * 2**20)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _worker_main(conn: Connection, public_dir: str, refs: list[PredictorRef], memory_mb: float) -> None:
    """Start up (report "ready" or the start-up error), then loop: receive a job, send a result."""
    try:
        import torch

        torch.set_num_threads(1)
        from model_zoo.zoo import Zoo
        from predictors import registry
        from predictors.api import Subject
        from predictors.conformance import as_score, forbid_test_data

        preds: dict[str, Predictor] = {}
        load_errors: dict[str, str] = {}
        reg = registry.load_all()
        for ref in refs:
            try:
                if ref.path:
                    for p in registry.load_file(ref.path):
                        preds[p.meta.name] = p
                else:
                    preds[ref.name] = reg.get(ref.name)
            except Exception as exc:  # a broken submitted file fails its own jobs, not the run
                load_errors[ref.name] = f"could not load predictor: {type(exc).__name__}: {exc}"
        zoo = Zoo(public_dir)
        if memory_mb:
            _cap_address_space(memory_mb)
    except BaseException:
        conn.send(("startup_error", float("nan"), traceback.format_exc(), 0.0))
        return
    conn.send(("ready", float("nan"), "", 0.0))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        name, model_id, seed = job
        start = time.perf_counter()
        try:
            if name in load_errors:
                raise RuntimeError(load_errors[name])
            pred = preds[name]
            subject = Subject(zoo.record(model_id), requires=tuple(pred.meta.requires))
            with forbid_test_data():
                score = as_score(pred(subject, seed=seed), name)
            conn.send(("ok", score, "", time.perf_counter() - start))
        except BaseException as exc:  # report anything the predictor raised, as its failure
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
            reason = f"{type(exc).__name__}: {exc}{where}"
            conn.send(("failed", float("nan"), reason[:500], time.perf_counter() - start))


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class _Worker:
    process: mp.process.BaseProcess
    conn: Connection
    job: tuple[str, str, int] | None = None
    started: float = 0.0
    budget: float = 0.0


@dataclass
class WorkerPool:
    """N worker processes; a worker that times out, overruns memory or dies is replaced."""

    public_dir: Path
    refs: list[PredictorRef]
    n_workers: int = 2
    memory_mb: float = DEFAULT_MEMORY_MB
    _ctx: mp.context.BaseContext = field(default_factory=lambda: mp.get_context("spawn"))
    _workers: list[_Worker] = field(default_factory=list)

    def _start(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        env_backup = {k: os.environ.pop(k) for k in ("GAPBENCH_DATA_MIRROR",) if k in os.environ}
        try:
            proc = self._ctx.Process(
                target=_worker_main, args=(child, str(self.public_dir), self.refs, self.memory_mb), daemon=True
            )
            proc.start()
        finally:
            os.environ.update(env_backup)
        child.close()
        return _Worker(proc, parent)

    def _await_ready(self, workers: list[_Worker], timeout: float = 300.0) -> None:
        """Block until each new worker reports "ready"; a worker that cannot start stops the run."""
        deadline = time.perf_counter() + timeout
        for w in workers:
            message = None
            while message is None:
                left = deadline - time.perf_counter()
                if w.conn.poll(min(max(left, 0.0), 0.5)):
                    try:
                        message = w.conn.recv()
                    except (EOFError, OSError):
                        message = ("startup_error", float("nan"), "the worker exited during start-up. " + _SPAWN_HINT, 0.0)
                elif not w.process.is_alive():
                    message = ("startup_error", float("nan"), f"the worker exited during start-up (exit code "
                               f"{w.process.exitcode}). " + _SPAWN_HINT, 0.0)  # fmt: skip
                elif left <= 0:
                    message = ("startup_error", float("nan"), f"no worker start-up within {timeout:.0f} s", 0.0)
            if message[0] != "ready":
                for other in self._workers:
                    self._kill(other)
                raise WorkerStartupError(f"a predictor worker could not start:\n{message[2]}")

    def _kill(self, w: _Worker) -> None:
        if w.process.is_alive():
            w.process.kill()
        w.process.join(5)
        w.conn.close()

    def run(self, jobs: Iterable[tuple[str, str, int]], budgets: dict[str, float]) -> Iterator[tuple[tuple, tuple]]:
        """Yield ``(job, (status, score, reason, seconds))`` as jobs finish."""
        queue = deque(jobs)
        self._workers = [self._start() for _ in range(min(self.n_workers, max(1, len(queue))))]
        self._await_ready(self._workers)
        try:
            while queue or any(w.job for w in self._workers):
                for w in self._workers:
                    if w.job is None and queue:
                        w.job = queue.popleft()
                        w.started = time.perf_counter()
                        w.budget = budgets[w.job[0]]
                        try:
                            w.conn.send(w.job)
                        except (BrokenPipeError, OSError):
                            pass  # noticed below as a dead worker
                busy = [w for w in self._workers if w.job]
                if not busy:
                    continue
                ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=0.25)
                now = time.perf_counter()
                for i, w in enumerate(self._workers):
                    if w.job is None:
                        continue
                    result = None
                    if w.conn in ready:
                        try:
                            result = w.conn.recv()
                        except (EOFError, OSError):
                            result = None
                    if result is not None:
                        yield w.job, result
                        w.job = None
                        continue
                    elapsed = now - w.started
                    reason = None
                    if not w.process.is_alive() or w.process.sentinel in ready:
                        code = w.process.exitcode
                        reason = f"worker crashed (exit code {code})"
                    elif elapsed > w.budget:
                        reason = f"timeout: exceeded the budget of {w.budget:.0f} s"
                    elif self.memory_mb and _rss_mb(w.process.pid) > self.memory_mb + RSS_BASELINE_MB:
                        reason = f"memory cap exceeded: over {self.memory_mb:.0f} MB"
                    if reason is not None:
                        job = w.job
                        self._kill(w)
                        self._workers[i] = self._start()
                        self._await_ready([self._workers[i]])
                        yield job, ("failed", float("nan"), reason, elapsed)
        finally:
            for w in self._workers:
                try:
                    w.conn.send(None)
                except (BrokenPipeError, OSError):
                    pass
            for w in self._workers:
                w.process.join(2)
                self._kill(w)


# --------------------------------------------------------------------------------------------
# the cache


class PredictionCache:
    """Per-(predictor, version, code hash) parquet files of predictions for one zoo."""

    def __init__(self, results_dir: Path, zoo_id: str):
        self.dir = Path(results_dir) / zoo_id / "cache"
        self.zoo_id = zoo_id

    def path(self, ref: PredictorRef) -> Path:
        return self.dir / f"{ref.name}__{ref.version}__{ref.code_hash}.parquet"

    def load(self, ref: PredictorRef) -> pd.DataFrame:
        p = self.path(ref)
        if not p.exists():
            return pd.DataFrame(columns=PREDICTION_COLUMNS)
        try:
            return pd.read_parquet(p)
        except Exception as exc:
            raise RuntimeError(f"prediction cache file {p} is unreadable ({exc}); delete it to recompute") from exc

    def save(self, ref: PredictorRef, frame: pd.DataFrame) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        p = self.path(ref)
        tmp = p.with_suffix(f".tmp-{os.getpid()}")
        frame = frame.sort_values("model_id").reset_index(drop=True)[PREDICTION_COLUMNS]
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, p)


# --------------------------------------------------------------------------------------------
# the entry point


@dataclass
class EvaluationReport:
    predictions: pd.DataFrame
    computed: int
    cached: int
    seconds: float


def evaluate(
    zoo_root: Path,
    predictors: list[Predictor],
    *,
    results_dir: Path,
    workers: int = 2,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    memory_mb: float = DEFAULT_MEMORY_MB,
    seed: int = 0,
    model_ids: list[str] | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> EvaluationReport:
    """Predict every (predictor, model) pair not already cached; return all predictions."""
    from model_zoo.zoo import Zoo

    t0 = time.perf_counter()
    zoo = Zoo(zoo_root)
    manifest = zoo.manifest
    if model_ids is not None:
        manifest = manifest[manifest["model_id"].isin(model_ids)]
    tasks = dict(zip(manifest["model_id"], manifest["task"]))
    refs = [PredictorRef.of(p, budget_seconds) for p in predictors]
    cache = PredictionCache(results_dir, zoo.zoo_id)
    frames: dict[str, pd.DataFrame] = {}
    jobs: list[tuple[str, str, int]] = []
    for ref in refs:
        frame = cache.load(ref)
        if retry_failed and len(frame):
            frame = frame[frame["status"] == "ok"]
        frames[ref.name] = frame
        done = set(frame["model_id"])
        jobs += [(ref.name, mid, seed) for mid in tasks if mid not in done]
    cached = sum(len(f[f["model_id"].isin(tasks)]) for f in frames.values())
    # Interleave predictors so that every predictor's results grow together.
    order = {mid: i for i, mid in enumerate(tasks)}
    jobs.sort(key=lambda j: (order[j[1]], j[0]))
    by_name = {r.name: r for r in refs}
    new_rows: dict[str, list[dict]] = {r.name: [] for r in refs}
    if jobs:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="predict", unit="job", disable=not progress, dynamic_ncols=True)
        last_flush = time.perf_counter()
        with public_view(Path(zoo_root)) as view:
            pool = WorkerPool(view, refs, n_workers=workers, memory_mb=memory_mb)
            budgets = {r.name: r.budget_seconds for r in refs}
            for (name, model_id, _), (status, score, reason, seconds) in pool.run(jobs, budgets):
                ref = by_name[name]
                new_rows[name].append(
                    {
                        "zoo_id": zoo.zoo_id, "model_id": model_id, "task": tasks[model_id],
                        "predictor": name, "version": ref.version, "code_hash": ref.code_hash,
                        "score": float(score), "status": status, "reason": reason, "seconds": float(seconds),
                    }  # fmt: skip
                )
                bar.update(1)
                bar.set_postfix_str(f"{name} {status}", refresh=False)
                if time.perf_counter() - last_flush > FLUSH_SECONDS:
                    _flush(cache, by_name, frames, new_rows)
                    last_flush = time.perf_counter()
        bar.close()
        _flush(cache, by_name, frames, new_rows)
    parts = [f[f["model_id"].isin(tasks)] for f in frames.values() if len(f)]
    preds = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=PREDICTION_COLUMNS)
    preds = preds.sort_values(["predictor", "model_id"]).reset_index(drop=True)
    return EvaluationReport(preds, computed=len(jobs), cached=cached, seconds=time.perf_counter() - t0)


def _flush(cache, by_name, frames, new_rows) -> None:
    for name, rows in new_rows.items():
        if rows:
            add = pd.DataFrame(rows, columns=PREDICTION_COLUMNS)
            base = frames[name]
            frames[name] = add if base.empty else pd.concat([base[~base["model_id"].isin(add["model_id"])], add])
            cache.save(by_name[name], frames[name])
            rows.clear()
