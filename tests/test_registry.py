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


FAMILIES = {"baseline", "tail_index", "ph_dimension", "sharpness", "complexity", "noise_scale", "norm"}


def test_shipped_metadata_is_complete():
    """Every shipped predictor: a docstring summary, a known family, a paper with a year (or 'baseline')."""
    import re

    reg = registry.load_all()
    refs = [reg.ref(n) for n in reg.names()]
    shipped = [r for r in refs if r.source in ("builtin", "contrib")]
    assert len(shipped) >= 24
    for ref in shipped:
        m = ref.meta
        assert m.description, f"{m.name} has no docstring summary"
        assert m.family in FAMILIES, f"{m.name}: unknown family {m.family!r}"
        assert m.kind == "baseline" or re.search(r"(19|20)\d\d", m.reference), f"{m.name}: reference lacks a year"
        assert len(ref.code_hash) == 16


def test_a_file_is_imported_only_where_asked_and_collected(tmp_path):
    path = tmp_path / "tiny_idea.py"
    path.write_text(
        textwrap.dedent(
            '''
            from predictors.api import predictor

            @predictor(version="3", family="norm", reference="me 2026", requires=("weights",))
            def tiny_idea(subject, *, seed=0):
                """Number of parameter tensors."""
                return float(len(list(subject.model().parameters())))
            '''
        )
    )
    (pred,) = registry.file_predictors(path)
    assert pred.meta.name == "tiny_idea" and pred.meta.version == "3"
    assert registry.file_predictors(path) == [pred]  # importing twice is idempotent
    assert "tiny_idea" not in registry.load_all()  # a file never joins the registry by being read
    metas = registry.describe_file(None, path=str(path))
    (ref,) = registry.file_refs(path, metas)
    assert ref.source == "file" and ref.meta == pred.meta
    # the code hash comes from the file's bytes, not from anything the file says
    before = ref.code_hash
    path.write_text(path.read_text() + "\n# edited\n")
    assert registry.file_refs(path, metas)[0].code_hash != before


def test_a_bare_predict_function_is_not_a_predictor(tmp_path):
    path = tmp_path / "bare.py"
    path.write_text("def predict(subject):\n    return 1.0\n")
    with pytest.raises(InvalidPredictorError, match="decorate a function with @predictor"):
        registry.file_predictors(path)


def test_file_without_predictor_is_rejected(tmp_path):
    path = tmp_path / "nothing.py"
    path.write_text("x = 1\n")
    with pytest.raises(InvalidPredictorError, match="defines no predictor"):
        registry.file_predictors(path)


def test_resolve_names_globs_and_unknown():
    names = [r.name for r in registry.resolve_names(["weight_norm", "distance_*"])]
    assert names == ["weight_norm", "distance_to_init"]
    with pytest.raises(UnknownPredictorError, match="did you mean 'weight_norm'"):
        registry.resolve_names(["weigth_norm"])


def test_code_hash_changes_with_version():
    a = predictor("hash_probe_a", version="1", family="t", reference="r", requires=())(
        lambda subject, *, seed=0: 0.0
    )
    b = predictor("hash_probe_a", version="2", family="t", reference="r", requires=())(
        lambda subject, *, seed=0: 0.0
    )
    assert registry.code_hash(a) != registry.code_hash(b)
