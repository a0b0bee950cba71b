"""`gapbench predictors check`: the conformance suite, run inside isolated predictor workers.

The checks (predictors.conformance) call the predictor several times on one model per task;
they run in the same kind of worker as an evaluation (sandboxed unless ``--no-sandbox``), so a
submitted file's code never runs in the process that builds zoos or holds answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmark.sandbox import Isolation
from model_zoo.executor import Job, LocalExecutor


def check(items: list[str], *, zoo: str, budget: float, isolation: Isolation,
          echo: Callable[[str], None], warn: Callable[[str], None]) -> bool:
    """Check every predictor named in ``items`` on one converged model per task; True if all pass."""
    from benchmark.pipeline import resolve
    from benchmark.predict import _lane
    from model_zoo.paths import resolve_zoo, zoos_dir
    from model_zoo.zoo import Zoo

    if zoo == "micro" and not (zoos_dir() / "micro" / "public").is_dir():
        from model_zoo.build import build_zoo

        warn(f"building the micro zoo into {zoos_dir() / 'micro'} (once) ...")
        build_zoo("micro", zoos_dir() / "micro", workers=2)
    zoo_path = resolve_zoo(zoo)
    z = Zoo(zoo_path)
    ids = [z.model_ids(task=t, status="converged")[0] for t in z.tasks if z.model_ids(task=t, status="converged")]
    resolved = resolve(items, isolation)
    for problem in resolved.problems:
        warn(f"error: {problem}")
    lanes = {ref.key: _lane(ref, zoo_path, isolation) for ref in resolved.refs}
    jobs = [Job(f"{ref.key}|{mid}", ref.key, "benchmark.conformance_run:check_job",
                {"model_id": mid, "budget": ref.budget(budget)}, timeout=4 * ref.budget(budget) + 60)
            for ref in resolved.refs for mid in ids]
    ok = not resolved.problems
    names = {ref.key: ref.name for ref in resolved.refs}
    for result in LocalExecutor(2).run(lanes, jobs):
        name, mid = names[result.job.lane], result.job.args["model_id"]
        if not result.ok:
            ok = False
            echo(f"FAIL  {name:28s} {'(all)':14s} {mid:40s} {result.error}")
            continue
        for r in result.value:
            passed = bool(r["passed"]) or bool(r["expected_failure"])
            ok &= passed
            mark = "ok  " if r["passed"] else ("xfail" if r["expected_failure"] else "FAIL")
            echo(f"{mark}  {name:28s} {r['check']:14s} {mid:40s} {r['message']}")
    return ok


def check_job(context: dict[str, Any], *, model_id: str, budget: float) -> list[dict[str, Any]]:
    """Worker job: the conformance checks of the worker's predictor on the staged model."""
    import dataclasses

    from model_zoo.zoo import Zoo
    from predictors.api import Subject
    from predictors.conformance import check_predictor

    zoo = Zoo(context["stage"], pool_cache=context["pools"])
    results = check_predictor(context["pred"], lambda req: Subject(zoo.record(model_id), requires=req),
                              budget_seconds=budget)
    return [dataclasses.asdict(r) for r in results]
