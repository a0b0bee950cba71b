"""Run executor jobs on a Ray cluster: :class:`RayExecutor`, the engine behind ``--executor ray``.

The jobs of each lane are cut into *units* of ``unit_size`` jobs (zoo building: one model per
unit; evaluation: one predictor x a chunk of models). Each unit is one Ray task that runs its
jobs on its node through a :class:`model_zoo.executor.LocalExecutor` with the unit's lane, so
a job on Ray runs exactly as it does locally: the same worker process (``python -m
model_zoo.worker``), the same launcher (a training lane's pinned numerics, a predictor lane's
sandbox), the same budgets and memory caps, and the lane's ``on_dispatch`` staging the job's
input on that node. A unit returns its results to the driver as one JSON document (values
are what the workers sent, JSON already); the driver yields JobResults in
completion order and writes whatever the stage writes, as the local executor's caller does.

A Ray worker that dies mid-unit (killed, out of memory, its node lost) loses only that unit,
which Ray runs again (``max_retries``); a unit lost beyond its retries fails its jobs with
one line each, never the run. Each unit asks Ray for ``cpus_per_unit`` CPUs and, when the
cluster has GPUs, ``gpus_per_unit`` GPUs (default 1; fractions share a GPU), and its worker
processes see the GPUs Ray gave the unit (``CUDA_VISIBLE_DEVICES``).

Ray is optional (``pip install 'gapbench[ray]'``) and imported only when a RayExecutor runs:
``model_zoo`` never imports it at module level. Every node needs this package installed at
the same paths as the driver (one container image for the cluster), and a zoo every node can
reach: a shared folder or an fsspec URL (model_zoo.store).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from model_zoo.executor import Executor, Job, JobResult, Lane, LocalExecutor, WorkerCommand
from model_zoo.worker import one_line

__all__ = ["EXECUTORS", "EVALUATE_UNIT_SIZE", "RayExecutor", "Unit", "make_executor", "plan_units", "run_unit"]

EXECUTORS = ("local", "ray")
EVALUATE_UNIT_SIZE = 8  # models per (predictor, chunk) unit: one worker start-up amortised over 8 models
DEFAULT_MAX_RETRIES = 3
RAY_MISSING = "--executor ray needs Ray: pip install 'gapbench[ray]' (or pip install 'ray>=2.30')"
_NODE_ENV = ("CUDA_VISIBLE_DEVICES",)  # what Ray sets per task and a unit's worker processes must see


@dataclass(frozen=True)
class Unit:
    """Jobs of one lane that run together as one Ray task."""

    lane: str
    jobs: tuple[Job, ...]


def plan_units(lanes: Mapping[str, Lane], jobs: Iterable[Job], unit_size: int) -> list[Unit]:
    """Cut each lane's jobs, in submission order, into units of at most ``unit_size`` jobs.

    Units are interleaved over lanes (the first unit of every lane, then the second, ...) so a
    cluster smaller than the work still advances every lane.
    """
    if unit_size < 1:
        raise ValueError(f"unit_size must be >= 1, got {unit_size}")
    by_lane: dict[str, list[Job]] = {}
    for job in jobs:
        if job.lane not in lanes:
            raise KeyError(f"job {job.key!r} names lane {job.lane!r}, which is not given")
        by_lane.setdefault(job.lane, []).append(job)
    chunks = {name: [tuple(js[i:i + unit_size]) for i in range(0, len(js), unit_size)] for name, js in by_lane.items()}
    units: list[Unit] = []
    for depth in range(max((len(c) for c in chunks.values()), default=0)):
        units += [Unit(name, c[depth]) for name, c in chunks.items() if depth < len(c)]
    return units


# ---------------------------------------------------------------------------------------------
# the node side (runs inside a Ray task)


@dataclass(frozen=True)
class NodeLauncher:
    """A lane's launcher on a Ray node: the same command, plus the GPUs Ray gave the task."""

    inner: Any
    node_env: Mapping[str, str] = field(default_factory=dict)

    def command(self, fd: int, *, cwd: Path, stage: Path) -> WorkerCommand:
        cmd = self.inner.command(fd, cwd=cwd, stage=stage)
        return WorkerCommand(cmd.argv, {**cmd.env, **self.node_env}, cmd.cwd, cmd.pass_fds)

    @property
    def stage_path(self):
        return self.inner.stage_path


def run_unit(lane: Lane, jobs: list[dict[str, Any]], workers: int = 1) -> str:
    """Run one unit's jobs on this node through a LocalExecutor; their results as a JSON list.

    Each result is ``{"i": position in jobs, "ok", "value", "error", "seconds", "log",
    "traceback"}``. Called by Ray on a node (and directly by tests).
    """
    node_env = {k: os.environ[k] for k in _NODE_ENV if k in os.environ}
    if node_env:
        lane = replace(lane, launcher=NodeLauncher(lane.launcher, node_env))
    prepare = getattr(lane.on_dispatch, "prepare", None)
    if callable(prepare):
        prepare()  # e.g. fetch a zoo's task pools onto this node before a sandbox binds them
    job_objs = [Job(**j) for j in jobs]
    index = {id(job): i for i, job in enumerate(job_objs)}
    out = []
    for r in LocalExecutor(max(1, workers)).run({lane.name: lane}, job_objs):
        out.append({"i": index[id(r.job)], "ok": r.ok, "value": r.value, "error": r.error, "seconds": r.seconds,
                    "log": r.log, "traceback": r.traceback})
    return json.dumps(out)


def _job_dict(job: Job) -> dict[str, Any]:
    return {"key": job.key, "lane": job.lane, "fn": job.fn, "args": job.args, "timeout": job.timeout}


def _decode(unit: Unit, payload: str) -> list[JobResult]:
    """The JobResults of a unit from its JSON; a job the payload does not answer fails with one line."""
    try:
        rows = json.loads(payload)
    except (TypeError, json.JSONDecodeError) as exc:
        return [JobResult(job, ok=False, error=f"ray: unreadable result of the unit ({exc})") for job in unit.jobs]
    results: dict[int, JobResult] = {}
    for row in rows:
        i = row.get("i") if isinstance(row, dict) else None
        if not isinstance(i, int) or not 0 <= i < len(unit.jobs) or i in results:
            continue
        job = unit.jobs[i]
        results[i] = JobResult(job, ok=row.get("ok") is True, value=row.get("value"),
                               error=str(row.get("error", ""))[:500], seconds=float(row.get("seconds") or 0.0),
                               log=str(row.get("log", "")), traceback=str(row.get("traceback", ""))[:4000])
    return [results.get(i) or JobResult(job, ok=False, error="ray: the unit returned no result for this job")
            for i, job in enumerate(unit.jobs)]


# ---------------------------------------------------------------------------------------------
# the driver side


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RuntimeError(RAY_MISSING) from None
    return ray


@dataclass
class RayExecutor:
    """Runs jobs as units of Ray tasks (see the module docstring).

    ``address``: None (connect to ``RAY_ADDRESS`` or start a local Ray instance), ``"auto"`` (a
    cluster running on this machine) or ``"ray://host:10001"`` (Ray Client). A Ray already
    initialised in this process is used as it is. ``gpus_per_unit``: None = 1 when the cluster
    has GPUs, else 0.
    """

    address: str | None = None
    unit_size: int = 1
    cpus_per_unit: float = 1.0
    gpus_per_unit: float | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    init_kwargs: dict[str, Any] = field(default_factory=dict)

    def connect(self) -> Any:
        """The ray module, initialised (connects or starts Ray once per process)."""
        ray = _import_ray()
        if not ray.is_initialized():
            kwargs = {"address": self.address, "log_to_driver": False, "include_dashboard": False,
                      **self.init_kwargs}
            ray.init(**kwargs)
        return ray

    def resources(self, ray: Any) -> dict[str, float]:
        """What each unit asks Ray for: CPUs, and GPUs when the cluster has any (or when asked)."""
        gpus = self.gpus_per_unit
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        return {"num_cpus": self.cpus_per_unit, "num_gpus": gpus}

    def run(self, lanes: Mapping[str, Lane], jobs: Iterable[Job]) -> Iterator[JobResult]:
        units = plan_units(lanes, jobs, self.unit_size)
        if not units:
            return
        ray = self.connect()
        task = ray.remote(run_unit).options(name="gapbench_unit", max_retries=self.max_retries,
                                            retry_exceptions=False, **self.resources(ray))
        lane_refs = {name: ray.put(lanes[name]) for name in {u.lane for u in units}}
        workers = max(1, int(self.cpus_per_unit))
        pending = {task.remote(lane_refs[u.lane], [_job_dict(j) for j in u.jobs], workers): u for u in units}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    unit = pending.pop(ref)
                    try:
                        payload = ray.get(ref)
                    except Exception as exc:  # lost beyond its retries: its jobs fail, the run goes on
                        reason = f"ray: the unit failed after {self.max_retries} retries: {one_line(exc)}"
                        yield from (JobResult(job, ok=False, error=reason[:500]) for job in unit.jobs)
                        continue
                    yield from _decode(unit, payload)
        finally:
            for ref in pending:  # the caller stopped early: do not leave work running on the cluster
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished or its node is gone  # noqa: S110
                    pass


def make_executor(kind: str, *, address: str | None = None, workers: int = 2, unit_size: int = 1) -> Executor:
    """The executor a ``--executor local|ray [--address ...]`` option names; one-line ValueError otherwise."""
    if kind == "local":
        if address:
            raise ValueError("--address applies to --executor ray only")
        return LocalExecutor(workers)
    if kind == "ray":
        _import_ray()
        return RayExecutor(address=address or None, unit_size=unit_size)
    raise ValueError(f"unknown executor {kind!r}: use one of {', '.join(EXECUTORS)}")
