"""The score stage: predictions joined with answers, the seed oracle, overall rows, provenance."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from benchmark import scoring
from benchmark.tables import MODELS, PREDICTIONS, SCORES, ZooRef
from predictors.api import PredictorMeta
from predictors.registry import PredictorRef

ZOO = ZooRef(zoo_id="z", content_hash="c" * 64, spec_name="t", n_models={"a_task": 24, "b_task": 24})


def _models(seed: int = 0, seeds: int = 3, noise: float = 0.02) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for task in ("a_task", "b_task"):
        for lr, width, n in itertools.product(["0.1", "0.01"], ["16", "64"], ["100", "400"]):
            config = f"{task}-{lr}-{width}-{n}"
            base = 0.3 * (n == "100") + 0.1 * (width == "64") + 0.05 * (lr == "0.01")
            for s in range(seeds):
                gap = base + rng.normal(0, noise)
                rows.append({
                    "zoo_id": "z", "model_id": f"{config}-s{s}", "task": task, "architecture": "mlp",
                    "config_id": config, "seed": s, "status": "converged", "axes": "lr,width,train_size",
                    "hp": json.dumps({"lr": lr, "width": width, "train_size": n}), "train_error": 0.0,
                    "test_error": gap, "gap": gap, "shift_error": float("nan"), "window_drift_share": 0.1,
                })
    return MODELS.frame(rows)


def _ref(name: str, kind: str = "predictor") -> PredictorRef:
    meta = PredictorMeta(name=name, version="1", family="f", reference="ref", requires=("weights",), kind=kind)
    return PredictorRef(meta, "h" * 16, "builtin", "tests")


def _preds(models: pd.DataFrame, name: str, score: np.ndarray, status=None) -> pd.DataFrame:
    status = status if status is not None else np.full(len(models), "ok")
    return PREDICTIONS.frame(pd.DataFrame({
        "zoo_id": "z", "model_id": models["model_id"], "task": models["task"], "predictor": name,
        "version": "1", "code_hash": "h" * 16, "seed": 0, "score": score, "status": status,
        "reason": np.where(status == "ok", "", "boom"), "seconds": 0.5,
    }))


def _row(scores, predictor, task, metric, target="gap"):
    sel = scores[(scores.predictor == predictor) & (scores.task == task) & (scores.metric == metric)
                 & (scores.target == target) & (scores.axis == "")]
    assert len(sel) == 1, (predictor, task, metric)
    return sel.iloc[0]


def test_task_axes_are_the_varying_hp_columns():
    models = scoring.hp_frame(_models())
    models["hp.fixed"] = "1"
    assert scoring.task_axes(models) == ["lr", "train_size", "width"]


def test_perfect_and_inverted_predictors():
    models = _models()
    preds = pd.concat([_preds(models, "perfect", models["gap"].to_numpy()),
                       _preds(models, "inverted", -models["gap"].to_numpy())])
    tables = scoring.score_zoo(models, preds, [_ref("perfect"), _ref("inverted", "baseline")], zoo=ZOO, n_boot=20)
    scores = SCORES.validate(tables.scores)
    assert _row(scores, "perfect", "a_task", "kendall_tau").value == pytest.approx(1.0)
    assert _row(scores, "inverted", "a_task", "kendall_tau").value == pytest.approx(-1.0)
    assert _row(scores, "perfect", "a_task", "psi").value == pytest.approx(1.0)
    overall = _row(scores, "perfect", "overall", "kendall_tau")
    assert overall.value == pytest.approx(1.0) and overall.n_models == len(models)
    assert set(scores["kind"]) == {"predictor", "baseline", "oracle"}
    assert set(scores["split"]) == {"public"}


def test_overall_is_the_mean_of_tasks_with_an_interval():
    models = _models()
    rng = np.random.default_rng(3)
    preds = _preds(models, "noisy", models["gap"].to_numpy() + rng.normal(0, 0.1, len(models)))
    scores = scoring.score_zoo(models, preds, [_ref("noisy")], zoo=ZOO, n_boot=50).scores
    tasks = [_row(scores, "noisy", t, "psi").value for t in ("a_task", "b_task")]
    overall = _row(scores, "noisy", "overall", "psi")
    assert overall.value == pytest.approx(np.mean(tasks))
    assert overall.ci_low <= overall.value <= overall.ci_high


def test_seed_oracle_scores_a_model_by_the_other_seeds():
    models = _models()
    oracle = scoring.oracle_predictions(models).set_index("model_id")
    gaps = models.set_index("model_id")["gap"]
    expected = (gaps["a_task-0.1-16-100-s1"] + gaps["a_task-0.1-16-100-s2"]) / 2
    assert oracle.loc["a_task-0.1-16-100-s0", "score"] == pytest.approx(expected)
    noisy = _models(noise=0.2)
    scores = scoring.score_zoo(noisy, PREDICTIONS.empty(), [], zoo=ZOO, n_boot=20).scores
    row = _row(scores, scoring.ORACLE, "a_task", "psi")
    assert row.value < 1.0  # seed noise: the noise floor is not a perfect predictor


def test_failed_predictions_are_left_out_and_counted():
    models = _models()
    status = np.where(np.arange(len(models)) % 4 == 0, "failed", "ok")
    score = np.where(status == "ok", models["gap"], np.nan)
    preds = _preds(models, "flaky", score, status)
    tables = scoring.score_zoo(models, preds, [_ref("flaky")], zoo=ZOO, n_boot=10, commit="abc", day="2026-01-01")
    assert _row(tables.scores, "flaky", "a_task", "kendall_tau").n_models == 18
    flaky = tables.runs.set_index("predictor").loc["flaky"]
    assert flaky.failure_rate == pytest.approx(0.25) and flaky.n_models == len(models)
    assert flaky.git_commit == "abc" and flaky.date == "2026-01-01" and bool(flaky.sandboxed)
    assert "seed_oracle" in set(tables.runs["predictor"])
    assert len(tables.points[tables.points.predictor == "flaky"]) == 36


def test_not_converged_models_are_excluded_by_default():
    models = _models()
    models.loc[models.index[:6], "status"] = "not_converged"
    preds = _preds(models, "perfect", models["gap"].to_numpy())
    tables = scoring.score_zoo(models, preds, [_ref("perfect")], zoo=ZOO, n_boot=10)
    assert _row(tables.scores, "perfect", "a_task", "kendall_tau").n_models == 18
    assert len(tables.points[tables.points.predictor == "perfect"]) == len(models) - 6


def test_predictions_of_predictors_not_asked_for_are_ignored():
    models = _models()
    preds = pd.concat([_preds(models, "asked", models["gap"].to_numpy()),
                       _preds(models, "stray", models["gap"].to_numpy())])
    tables = scoring.score_zoo(models, preds, [_ref("asked")], zoo=ZOO, n_boot=5)
    assert set(tables.scores["predictor"]) == {"asked", scoring.ORACLE}


def test_every_row_contains_its_estimate_even_a_negative_bias_corrected_cmi():
    """Random scores: CMI's bias correction pushes task values (and their mean) below 0, CMI's floor.

    The overall row once clipped its interval at 0 and excluded a negative mean (the published
    board had 21 such rows); every row, task or overall, must contain its estimate.
    """
    models = _models(noise=0.05)
    rng = np.random.default_rng(7)
    refs, frames = [], []
    for k in range(6):
        frames.append(_preds(models, f"random{k}", rng.normal(size=len(models))))
        refs.append(_ref(f"random{k}"))
    scores = scoring.score_zoo(models, pd.concat(frames), refs, zoo=ZOO, n_boot=50).scores
    cmi = scores[(scores.metric == "cmi") & (scores.task == "overall")]
    assert (cmi.value < 0).any(), "the case this test is about: a negative overall CMI"
    finite = scores[np.isfinite(scores.value) & np.isfinite(scores.ci_low)]
    outside = finite[(finite.ci_low > finite.value) | (finite.ci_high < finite.value)]
    assert outside.empty, outside[["predictor", "task", "metric", "axis", "value", "ci_low", "ci_high"]]
