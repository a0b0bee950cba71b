"""Attack: load the test set through the data loaders (bypassing the in-process guard) and score on it."""

import importlib
import os
from pathlib import Path

import model_zoo
from predictors.api import predictor

_LOADED = {}


def _test_set(task):
    if task in _LOADED:
        return _LOADED[task]
    try:  # the guarded entry point (patched to raise while a predictor runs) ...
        from model_zoo.data import load_task

        data = load_task(task)
    except Exception as guarded:
        # ... and the module behind it, pointed at the project's cache and the CI's mirror
        project = Path(model_zoo.__file__).resolve().parents[1]
        module = importlib.import_module(f"model_zoo.data.{task}")
        mirror = os.environ.get("GAPBENCH_DATA_MIRROR") or str(project.parent / "shared" / "data")
        try:
            data = module.load(mirror=mirror, cache_dir=project / ".cache")
        except Exception as exc:
            raise RuntimeError(f"test data unreachable ({type(guarded).__name__}; then {type(exc).__name__}: "
                               f"{str(exc)[:160]})") from None
    _LOADED[task] = (data.x_test, data.y_test)
    return _LOADED[task]


@predictor(version="1", family="attack", reference="tests/adversarial", requires=("weights",))
def attack_loader(subject, *, seed=0):
    """The model's true test error, measured on the test set."""
    from model_zoo.trainer import evaluate

    x, y = _test_set(subject.task.name)
    return float(evaluate(subject.model("final"), x, y)[0])
