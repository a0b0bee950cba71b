"""The conformance suite, run for every registered predictor on the micro zoo (one model per task).

One pytest case per (predictor, check), as scikit-learn's parametrize_with_checks; a check a
predictor declares in ``meta.known_failures`` is an expected failure with its reason.
"""

from __future__ import annotations

import math

import pytest
import torch

from model_zoo.zoo import Zoo
from predictors.api import Subject, predictor
from predictors.conformance import CHECKS, check_predictor
from predictors.registry import load_all

REGISTRY = load_all()
NAMES = REGISTRY.names()
_results: dict[str, dict[str, list]] = {}


@pytest.fixture(scope="module")
def subjects(micro_zoo):
    zoo = Zoo(micro_zoo)
    ids = [zoo.model_ids(task=t, status="converged")[0] for t in zoo.tasks]
    return [lambda requires, mid=mid: Subject(zoo.record(mid), requires=requires) for mid in ids]


def _results_for(name: str, subjects) -> dict[str, list]:
    if name not in _results:
        per_check: dict[str, list] = {c: [] for c in CHECKS}
        for make in subjects:
            for r in check_predictor(REGISTRY.get(name), make, budget_seconds=120):
                per_check[r.check].append(r)
        _results[name] = per_check
    return _results[name]


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize("name", NAMES)
def test_predictor_conforms(name, check, subjects):
    results = _results_for(name, subjects)[check]
    known = REGISTRY.get(name).meta.known_failures.get(check)
    failed = [r.message for r in results if not r.passed]
    if known:
        if failed:
            pytest.xfail(f"declared known failure: {known}")
        pytest.fail(f"{name}: check {check!r} is declared a known failure ({known}) but passes; remove it")
    assert results, f"no result for {check}"
    assert not failed, f"{name} fails {check}: {failed}"


# --- the checks can fail: one broken predictor per check -----------------------------------------


def _meta(**kw):
    return dict(version="1", family="test", reference="test", requires=("weights", "train_data")) | kw


@predictor("returns_nan", **_meta())
def _nan(subject, *, seed=0):
    return math.nan


@predictor("returns_tensor", **_meta())
def _tensor(subject, *, seed=0):
    return torch.tensor(1.0)


@predictor("mutates_weights", **_meta())
def _mutates(subject, *, seed=0):
    with torch.no_grad():
        next(subject.model().parameters()).add_(1.0)
    return 1.0


_calls = {"n": 0}


@predictor("not_deterministic", **_meta())
def _nondet(subject, *, seed=0):
    _calls["n"] += 1
    return float(_calls["n"])


@predictor("loads_test_data", **_meta())
def _loads(subject, *, seed=0):
    from model_zoo import data

    return float(data.load_task(subject.task.name).y_test.mean())


@predictor("reads_trajectory_undeclared", **_meta())
def _undeclared(subject, *, seed=0):
    return float(subject.trajectory().losses.mean())


@pytest.mark.parametrize(
    "bad,check",
    [(_nan, "finite_float"), (_tensor, "finite_float"), (_mutates, "no_mutation"),
     (_nondet, "deterministic"), (_loads, "no_test_data"), (_undeclared, "finite_float")],  # fmt: skip
)
def test_broken_predictors_fail_their_check(bad, check, subjects):
    results = {r.check: r for r in check_predictor(bad, subjects[0])}
    assert not results[check].passed, results[check]


@predictor("declares_unread_parts", **_meta(requires=("weights", "hparams")))
def _overdeclared(subject, *, seed=0):
    """Reads the weights only, but declares the hyperparameters too."""
    return float(sum(p.numel() for p in subject.model().parameters()))


@predictor("undocumented", **_meta(requires=("weights",)))
def _undocumented(subject, *, seed=0):
    return float(next(subject.model().parameters()).sum())


@pytest.mark.parametrize("bad", [_overdeclared, _undocumented])
def test_metadata_check_fails_on_unread_requirements_or_no_description(bad, subjects):
    results = {r.check: r for r in check_predictor(bad, subjects[0])}
    assert results["finite_float"].passed and not results["metadata"].passed, results["metadata"]


def test_budget_check_fails_when_slow(subjects):
    import time

    @predictor("slow", **_meta(requires=()))
    def slow(subject, *, seed=0):
        time.sleep(0.3)
        return 0.0

    results = {r.check: r for r in check_predictor(slow, subjects[0], budget_seconds=0.1)}
    assert not results["budget"].passed and results["finite_float"].passed
