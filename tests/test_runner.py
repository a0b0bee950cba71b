"""The predict stage (benchmark.predict) in sandboxed workers: each failure is its model's only; cache; staging.

A raise, a NaN, a timeout, a SIGKILL and a memory overrun on one model fail that model only:
the same predictor scores the models before and after it (its worker replaced when it died),
and an honest predictor in the same run is untouched. The hostile cases (answers, writes,
forgeries, floods, leftovers) are in tests/test_sandbox.py.
"""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from benchmark.predict import _lane, cost_summary, predict
from benchmark.sandbox import Isolation, ModelStager
from model_zoo.executor import Job
from model_zoo.store import MODEL_FILES
from model_zoo.zoo import Zoo, ZooIntegrityError
from predictors import registry
from predictors.api import Subject, staged_files

pytestmark = pytest.mark.slow

FAULTY = textwrap.dedent(
    '''
    import math, os, signal, time

    import torch

    from predictors.api import predictor

    TARGET = "__TARGET__"
    META = dict(version="1", family="test", reference="test", requires=())


    @predictor(**META)
    def iso_raises(subject, *, seed=0):
        """Raises on the target model."""
        if subject.model_id == TARGET:
            raise RuntimeError("boom")
        return 1.0


    @predictor(**META)
    def iso_nan(subject, *, seed=0):
        """NaN on the target model."""
        return math.nan if subject.model_id == TARGET else 1.0


    @predictor(budget_seconds=3, **META)
    def iso_sleeps(subject, *, seed=0):
        """Sleeps past its own budget on the target model."""
        if subject.model_id == TARGET:
            time.sleep(60)
        return 1.0


    @predictor(**META)
    def iso_kills_itself(subject, *, seed=0):
        """SIGKILLs its own worker on the target model."""
        if subject.model_id == TARGET:
            os.kill(os.getpid(), signal.SIGKILL)
        return 1.0


    @predictor(**META)
    def iso_hogs_memory(subject, *, seed=0):
        """Allocates 2 GiB (over the 512 MB cap) on the target model."""
        if subject.model_id == TARGET:
            return float(torch.ones(2 * 2**30 // 4).sum())
        return 1.0
    '''
)
EXPECTED = {  # predictor -> what its target model's reason starts with / contains
    "iso_raises": "RuntimeError: boom",
    "iso_nan": "non-finite score",
    "iso_sleeps": "timeout: exceeded the budget of 3 s",
    "iso_kills_itself": "worker crashed",
    "iso_hogs_memory": "alloc",
}


def refs_of(path):
    metas = [p.meta.model_dump(mode="json") for p in registry.file_predictors(path)]
    return registry.file_refs(path, metas)


def test_each_failure_is_its_models_only(micro_zoo, tmp_path):
    ids = Zoo(micro_zoo).model_ids()[:3]
    target = ids[1]
    path = tmp_path / "faulty.py"
    path.write_text(FAULTY.replace("__TARGET__", target))
    refs = [*refs_of(path), *registry.resolve_names(["weight_norm"])]
    report = predict(micro_zoo, refs, results_dir=tmp_path / "results", budget_seconds=30, model_ids=ids,
                     isolation=Isolation(memory_mb=512), progress=False)
    p = report.predictions
    assert len(p) == len(refs) * len(ids) and report.computed == len(p)
    good = p[p.predictor == "weight_norm"]
    assert (good.status == "ok").all() and good.score.notna().all()
    for name, reason in EXPECTED.items():
        rows = p[p.predictor == name].set_index("model_id")
        assert rows.loc[target, "status"] == "failed", (name, rows.loc[target, "reason"])
        assert reason in rows.loc[target, "reason"], (name, rows.loc[target, "reason"])
        others = rows.drop(index=target)
        assert (others.status == "ok").all() and (others.score == 1.0).all(), (name, others.reason.tolist())
    assert p.loc[(p.predictor == "iso_sleeps") & (p.model_id == target), "seconds"].iloc[0] < 8


def test_cache_recomputes_nothing_and_adds_only_new(micro_zoo, tmp_path):
    ids = Zoo(micro_zoo).model_ids()[:4]
    kw = dict(results_dir=tmp_path, budget_seconds=60, model_ids=ids, progress=False)
    first = predict(micro_zoo, registry.resolve_names(["weight_norm"]), **kw)
    assert first.computed == 4 and first.cached == 0
    again = predict(micro_zoo, registry.resolve_names(["weight_norm"]), **kw)
    assert again.computed == 0 and again.cached == 4
    pd.testing.assert_frame_equal(first.predictions, again.predictions)
    more = predict(micro_zoo, registry.resolve_names(["weight_norm", "parameter_count"]), **kw)
    assert more.computed == 4 and more.cached == 4
    assert set(more.predictions.predictor) == {"weight_norm", "parameter_count"}


def test_stage_holds_one_models_public_files(micro_zoo, tmp_path):
    zoo = Zoo(micro_zoo)
    first, second = zoo.model_ids()[:2]
    stage = tmp_path / "stage"
    stage.mkdir()
    stager = ModelStager(micro_zoo, link_data=False)
    stager(Job("a", "lane", "fn", {"model_id": first}), stage)
    stager(Job("b", "lane", "fn", {"model_id": second}), stage)
    assert [p.name for p in (stage / "models").iterdir()] == [second]
    assert pd.read_parquet(stage / "manifest.parquet").model_id.tolist() == [second]
    names = {p.name for p in stage.rglob("*")}
    assert not any("answers" in n for n in names) and (stage / "data").is_dir()
    assert not any((stage / "data").iterdir())  # the pools arrive as a read-only bind in the sandbox
    assert Zoo(stage).record(second).state_dict("final")
    with pytest.raises(KeyError, match="not in"):
        stager(Job("c", "lane", "fn", {"model_id": "no-such-model"}), stage)


def test_stage_holds_only_the_files_a_predictor_declares(micro_zoo, tmp_path):
    mid = Zoo(micro_zoo).model_ids()[0]
    stage = tmp_path / "stage"
    stage.mkdir()
    ModelStager(micro_zoo, link_data=True, files=staged_files(("weights",)))(
        Job("a", "lane", "fn", {"model_id": mid}), stage)
    assert sorted(p.name for p in (stage / "models" / mid).iterdir()) == ["config.json", "final.safetensors"]
    assert not any(c.startswith("sha256.") and not c.endswith(("config.json", "final.safetensors"))
                   for c in pd.read_parquet(stage / "manifest.parquet").columns)
    record = Zoo(stage).record(mid)  # the lazy check finds every file the stage's manifest names
    assert Subject(record, requires=("weights",)).model("final") is not None
    with pytest.raises((FileNotFoundError, ZooIntegrityError)):
        record.trajectory()
    # what each registered predictor's lane stages is exactly what it declares
    assert staged_files(()) == ("config.json",)
    assert set(staged_files(("weights", "init", "trajectory"))) == set(MODEL_FILES) - {"curve.json"}
    for ref in registry.resolve_names():
        lane = _lane(ref, micro_zoo, Isolation(sandbox=False))
        assert lane.on_dispatch.files == staged_files(ref.meta.requires), ref.name
        assert lane.max_workers is None  # a slow predictor may take every slot the others free
    with pytest.raises(ValueError, match="unknown requirement"):
        staged_files(("answers",))
    with pytest.raises(ValueError, match="config.json"):
        ModelStager(micro_zoo, link_data=False, files=("final.safetensors",))


def test_cost_summary_reports_the_retraining_predictors_apart():
    refs = registry.resolve_names(["effective_model_complexity", "weight_norm", "train_loss"])
    rows = [("effective_model_complexity", "a", 4.0), ("effective_model_complexity", "b", 6.0),
            ("weight_norm", "a", 0.5), ("weight_norm", "b", 0.5), ("train_loss", "a", 1.0), ("train_loss", "b", 2.0)]
    predictions = pd.DataFrame(rows, columns=["predictor", "model_id", "seconds"])
    lines = cost_summary(predictions, refs)
    assert lines == [
        "2 predictors reading the trained model: 4 predictor-s on 2 models (2.00 s/model)",
        "1 predictors retraining (effective_model_complexity): 10 predictor-s on 2 models (5.00 s/model)",
    ]
    assert cost_summary(predictions.iloc[:0], refs) == []
