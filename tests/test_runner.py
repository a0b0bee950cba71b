"""The runner: isolation (each failure recorded for its model only), budgets, memory cap, cache."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from benchmark import runner
from predictors import registry

BAD_PREDICTORS = textwrap.dedent(
    '''
    import math, os, signal, time
    from pathlib import Path

    import pandas as pd
    import torch

    from predictors.api import predictor

    META = dict(version="1", family="test", reference="test", requires=("weights",))

    @predictor(**META)
    def iso_raises(subject, *, seed=0):
        raise RuntimeError("boom")

    @predictor(**META)
    def iso_nan(subject, *, seed=0):
        return math.nan

    @predictor(budget_seconds=3, **META)
    def iso_sleeps(subject, *, seed=0):
        time.sleep(60)
        return 1.0

    @predictor(**META)
    def iso_kills_itself(subject, *, seed=0):
        os.kill(os.getpid(), signal.SIGKILL)

    @predictor(**META)
    def iso_reads_answers(subject, *, seed=0):
        public = Path(subject._record.zoo.path)
        answers = pd.read_parquet(public.parent / "answers" / "answers.parquet")
        return float(answers.loc[answers.model_id == subject.model_id, "gap"].iloc[0])

    @predictor(**META)
    def iso_hogs_memory(subject, *, seed=0):
        x = torch.ones(2 * 2**30 // 4)  # 2 GiB, over the test's 512 MB cap
        return float(x.sum())
    '''
)


@pytest.fixture(scope="module")
def bad_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("preds") / "isolation_probe.py"
    path.write_text(BAD_PREDICTORS)
    return path


@pytest.mark.slow
def test_failures_are_per_model_and_the_run_goes_on(micro_zoo, bad_file, tmp_path):
    preds = registry.resolve([str(bad_file), "weight_norm"])
    report = runner.evaluate(micro_zoo, preds, results_dir=tmp_path, workers=2, memory_mb=512, progress=False,
                             model_ids=None)  # fmt: skip
    p = report.predictions
    n_models = p["model_id"].nunique()
    assert n_models == 24 and len(p) == 7 * n_models
    good = p[p.predictor == "weight_norm"]
    assert (good.status == "ok").all() and good.score.notna().all()
    expect = {
        "iso_raises": "RuntimeError: boom",
        "iso_nan": "non-finite",
        "iso_sleeps": "timeout",
        "iso_kills_itself": "worker crashed",
        "iso_reads_answers": "FileNotFoundError",
        "iso_hogs_memory": "",  # an allocation error inside the worker or the parent's cap
    }
    for name, reason in expect.items():
        rows = p[p.predictor == name]
        assert len(rows) == n_models, name
        assert (rows.status == "failed").all(), (name, rows.reason.tolist()[:2])
        assert rows.reason.str.contains(reason).all(), (name, rows.reason.iloc[0])
    hog = p[p.predictor == "iso_hogs_memory"].reason.iloc[0]
    assert "memory" in hog.lower() or "alloc" in hog.lower(), hog


def test_reading_answers_works_without_isolation(micro_zoo, bad_file):
    """The answers probe is a real attack: in-process on the full zoo it succeeds."""
    from model_zoo.zoo import Zoo
    from predictors.api import Subject

    zoo = Zoo(micro_zoo)
    pred = registry.resolve([str(bad_file)])
    reads = next(q for q in pred if q.meta.name == "iso_reads_answers")
    mid = zoo.model_ids()[0]
    assert 0.0 <= reads(Subject(zoo.record(mid)), seed=0) <= 1.0


def test_cache_recomputes_nothing_and_adds_only_new(micro_zoo, tmp_path):
    first = runner.evaluate(micro_zoo, registry.resolve(["weight_norm"]), results_dir=tmp_path, progress=False)
    assert first.computed == 24 and first.cached == 0
    again = runner.evaluate(micro_zoo, registry.resolve(["weight_norm"]), results_dir=tmp_path, progress=False)
    assert again.computed == 0 and again.cached == 24
    pd.testing.assert_frame_equal(first.predictions, again.predictions)
    more = runner.evaluate(micro_zoo, registry.resolve(["weight_norm", "parameter_count"]), results_dir=tmp_path,
                           progress=False)  # fmt: skip
    assert more.computed == 24 and more.cached == 24
    assert set(more.predictions.predictor) == {"weight_norm", "parameter_count"}


def test_public_view_has_no_answers(micro_zoo):
    with runner.public_view(micro_zoo) as view:
        assert (view / "manifest.parquet").exists()
        assert not (view.parent / "answers").exists()
        assert not any("answers" in p.name for p in view.rglob("*"))
