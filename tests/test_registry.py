"""The registry: one source of names, duplicates raise, unknown names get a suggestion."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from predictors import registry
from predictors.api import FunctionPredictor, PredictorMeta, predictor
from predictors.registry import (
    DuplicatePredictorError,
    InvalidPredictorError,
    Registry,
    UnknownPredictorError,
)


def _pred(name: str) -> FunctionPredictor:
    meta = PredictorMeta(name=name, version="1", family="test", reference="test", requires=())
    return FunctionPredictor(lambda subject, *, seed=0: 1.0, meta)


def test_duplicate_name_raises_naming_both_sources():
    reg = Registry()
    reg.add(_pred("alpha"))
    with pytest.raises(DuplicatePredictorError, match="'alpha' is registered twice"):
        reg.add(_pred("alpha"))


def test_unknown_name_suggests_close_match():
    reg = Registry()
    reg.add(_pred("weight_norm"))
    with pytest.raises(UnknownPredictorError, match="did you mean 'weight_norm'"):
        reg.get("weigth_norm")


def test_not_a_predictor_rejected():
    with pytest.raises(InvalidPredictorError):
        Registry().add(lambda s: 1.0)


@pytest.mark.parametrize(
    "field,value",
    [("name", "Bad-Name"), ("version", " "), ("requires", ("weights", "test_data")), ("extra_key", 1)],
)
def test_metadata_is_validated(field, value):
    kwargs = dict(name="ok", version="1", family="f", reference="r", requires=("weights",))
    kwargs[field] = value
    with pytest.raises(ValidationError):
        PredictorMeta(**kwargs)


def test_builtins_registered_and_listed():
    reg = registry.load_all()
    for name in ["random", "weight_norm", "distance_to_init", "inverse_margin", "batch_over_lr"]:
        assert name in reg
    assert reg.names("*norm*") == sorted(n for n in reg.names() if "norm" in n)


def _shipped(pred) -> bool:
    """Built-in or contrib (other tests load throwaway predictor files into the registry)."""
    from pathlib import Path

    return Path(registry.source_file(pred)).resolve().is_relative_to(Path(registry.__file__).parent)


def test_every_builtin_metadata_validates():
    shipped = [p for p in registry.load_all().all() if _shipped(p)]
    assert len(shipped) >= 24
    for pred in shipped:
        PredictorMeta.model_validate(pred.meta.model_dump())
        assert pred.meta.description, f"{pred.meta.name} has no docstring summary"


def test_bare_predict_file_is_a_predictor(tmp_path):
    path = tmp_path / "tiny_idea.py"
    path.write_text(
        textwrap.dedent(
            '''
            VERSION = "3"
            REQUIRES = ("weights",)

            def predict(subject):
                """Number of parameter tensors."""
                return float(len(list(subject.model().parameters())))
            '''
        )
    )
    (pred,) = registry.load_file(path)
    assert pred.meta.name == "tiny_idea" and pred.meta.version == "3" and pred.meta.family == "contrib"
    assert registry.load_file(path) == [pred]  # loading twice is idempotent


def test_file_without_predictor_is_rejected(tmp_path):
    path = tmp_path / "nothing.py"
    path.write_text("x = 1\n")
    with pytest.raises(InvalidPredictorError, match="defines no predictor"):
        registry.load_file(path)


def test_resolve_names_globs_and_unknown():
    names = [p.meta.name for p in registry.resolve(["weight_norm", "distance_*"])]
    assert names == ["weight_norm", "distance_to_init"]
    with pytest.raises(UnknownPredictorError):
        registry.resolve(["no_such_predictor"])


def test_code_hash_changes_with_version():
    a = predictor("hash_probe_a", version="1", family="t", reference="r", requires=(), register=False)(
        lambda subject, *, seed=0: 0.0
    )
    b = predictor("hash_probe_a", version="2", family="t", reference="r", requires=(), register=False)(
        lambda subject, *, seed=0: 0.0
    )
    assert registry.code_hash(a) != registry.code_hash(b)
