"""`check_predictor`: the conformance suite every predictor, built-in or submitted, passes.

Checks (one pytest case per predictor and check in tests/test_conformance.py):
- ``metadata``: it has a description (its docstring's first line) and reads every part of the
  Subject it declares in ``requires`` (the board marks e.g. hyperparameter readers from them);
- ``finite_float``: returns a finite Python/numpy float (not bool, not a tensor, not NaN);
- ``deterministic``: two calls with the same seed on fresh Subjects give the same number;
- ``no_mutation``: the model's weights (final and init) are unchanged by the call;
- ``no_test_data``: it runs with the data loaders and the answers table out of reach;
- ``budget``: it finishes within its budget (``meta.budget_seconds`` or the runner's default).

Known failures can be declared on the predictor (``meta.known_failures = {check: reason}``),
as scikit-learn's estimator checks allow; they are reported, not hidden.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from unittest import mock

import numpy as np
import torch

from predictors.api import DEFAULT_BUDGET_SECONDS, Predictor, PredictorMeta, Subject

CHECKS = ("metadata", "finite_float", "deterministic", "no_mutation", "no_test_data", "budget")


class TestDataAccessError(PermissionError):
    """Raised when code running as a predictor tries to load a data set or the answers."""


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    message: str = ""
    expected_failure: str = ""


def as_score(value: object, name: str) -> float:
    """Validate a predictor's return value; raise TypeError/ValueError naming the predictor."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        if isinstance(value, np.ndarray) and value.shape == () and np.issubdtype(value.dtype, np.floating):
            value = float(value)
        else:
            raise TypeError(f"predictor {name!r} returned {type(value).__name__} ({value!r}); it must return a float")
    score = float(value)
    if not math.isfinite(score):
        raise ValueError(f"predictor {name!r} returned a non-finite score ({score})")
    return score


@contextlib.contextmanager
def forbid_test_data() -> Iterator[None]:
    """Make the raw data loaders and the answers reader raise while the block runs."""

    def refuse(*args, **kwargs):
        raise TestDataAccessError("predictors may not load data sets or answers; use subject.train_data()")

    patches = [mock.patch("model_zoo.data.load_task", refuse)]
    try:
        import model_zoo.store  # noqa: F401

        patches.append(mock.patch("model_zoo.store.load_answers", refuse))
    except ImportError:
        pass
    with contextlib.ExitStack() as stack:
        for p in patches:
            stack.enter_context(p)
        yield


def _state_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def check_predictor(
    pred: Predictor,
    make_subject: Callable[[tuple[str, ...] | None], Subject],
    *,
    seed: int = 0,
    budget_seconds: float | None = None,
    checks: tuple[str, ...] = CHECKS,
) -> list[CheckResult]:
    """Run the conformance checks for one predictor on one model.

    ``make_subject(requires)`` returns a fresh Subject of the same zoo model restricted to
    ``requires``. Returns one CheckResult per check; never raises for a predictor's fault.
    """
    meta = getattr(pred, "meta", None)
    name = getattr(meta, "name", repr(pred))
    known = dict(getattr(meta, "known_failures", {}) or {})
    results: list[CheckResult] = []

    def record(check: str, passed: bool, message: str = "") -> None:
        results.append(CheckResult(check, passed, message, known.get(check, "")))

    if not isinstance(meta, PredictorMeta):
        return [CheckResult(c, False, f"{name!r} has no PredictorMeta: decorate it with @predictor(...)") for c in checks]

    subject = make_subject(tuple(meta.requires))
    digests = {}
    for which, need in (("final", "weights"), ("init", "init")):
        if need in meta.requires:
            digests[which] = _state_digest(subject.model(which))
    subject.used.clear()  # the digests above are the suite's reads, not the predictor's
    budget = min(budget_seconds or DEFAULT_BUDGET_SECONDS, meta.budget_seconds or math.inf)
    first: float | None = None
    try:
        with forbid_test_data():
            start = time.perf_counter()
            raw = pred(subject, seed=seed)
            elapsed = time.perf_counter() - start
        first = as_score(raw, name)
    except TestDataAccessError as exc:
        for check in checks:
            record(check, False, f"it tried to reach test data: {exc}")
        return results
    except Exception as exc:
        for check in checks:
            record(check, False, f"the call raised {type(exc).__name__}: {exc}")
        return results

    if "metadata" in checks:
        unused = sorted(set(meta.requires) - subject.used)
        problems = ([] if meta.description.strip() else ["no description (give the function a docstring)"]) + (
            [f"declares {unused} in requires but never reads them"] if unused else [])
        record("metadata", not problems, "; ".join(problems))
    if "finite_float" in checks:
        record("finite_float", True)
    if "no_test_data" in checks:
        record("no_test_data", True)
    if "no_mutation" in checks:
        changed = [w for w, d in digests.items() if _state_digest(subject.model(w)) != d]
        record("no_mutation", not changed, f"the {', '.join(changed)} weights changed" if changed else "")
    if "budget" in checks:
        ok = elapsed <= budget
        record("budget", ok, f"{elapsed:.1f} s > budget {budget:.0f} s" if not ok else f"{elapsed:.2f} s")
    if "deterministic" in checks:
        try:
            with forbid_test_data():
                second = as_score(pred(make_subject(tuple(meta.requires)), seed=seed), name)
            same = second == first or math.isclose(second, first, rel_tol=1e-9, abs_tol=1e-12)
            record("deterministic", same, "" if same else f"seed {seed} gave {first!r} then {second!r}")
        except Exception as exc:
            record("deterministic", False, f"the second call raised {type(exc).__name__}: {exc}")
    return results
