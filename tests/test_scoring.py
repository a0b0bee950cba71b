"""Scoring: joining predictions with answers, the seed oracle, overall rows, provenance."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from benchmark import scoring


def _models(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for task in ("a_task", "b_task"):
        for lr, width, n in itertools.product(["0.1", "0.01"], ["16", "64"], ["100", "400"]):
            config = f"{task}-{lr}-{width}-{n}"
            base = 0.3 * (n == "100") + 0.1 * (width == "64") + 0.05 * (lr == "0.01")
            for s in (0, 1):
                rows.append({
                    "model_id": f"{config}-s{s}", "config_id": config, "seed": s, "task": task,
                    "status": "converged", "hp.lr": lr, "hp.width": width, "hp.train_size": n,
                    "gap": base + rng.normal(0, 0.02), "test_error": base + 0.1, "train_error": 0.0,
                })  # fmt: skip
    return pd.DataFrame(rows)


def _preds(models: pd.DataFrame, name: str, score: np.ndarray, status=None) -> pd.DataFrame:
    return pd.DataFrame({
        "zoo_id": "z", "model_id": models["model_id"], "task": models["task"], "predictor": name,
        "version": "1", "code_hash": "h", "score": score,
        "status": status if status is not None else "ok", "reason": "", "seconds": 0.5,
    })  # fmt: skip


def _row(scores, predictor, task, metric, target="gap"):
    sel = scores[(scores.predictor == predictor) & (scores.task == task) & (scores.metric == metric)
                 & (scores.target == target) & (scores.axis == "")]  # fmt: skip
    assert len(sel) == 1, (predictor, task, metric)
    return sel.iloc[0]


def test_task_axes_are_the_varying_hp_columns():
    models = _models()
    models["hp.fixed"] = "1"
    assert scoring.task_axes(models) == ["lr", "train_size", "width"]


def test_perfect_and_inverted_predictors():
    models = _models()
    preds = pd.concat([_preds(models, "perfect", models["gap"].to_numpy()),
                       _preds(models, "inverted", -models["gap"].to_numpy())])  # fmt: skip
    scores = scoring.score_predictions(preds, models, {"perfect": ("1", "predictor"), "inverted": ("1", "baseline")},
                                       zoo_id="z", n_boot=20)  # fmt: skip
    assert _row(scores, "perfect", "a_task", "kendall_tau").value == pytest.approx(1.0)
    assert _row(scores, "inverted", "a_task", "kendall_tau").value == pytest.approx(-1.0)
    assert _row(scores, "perfect", "a_task", "psi").value == pytest.approx(1.0)
    overall = _row(scores, "perfect", "overall", "kendall_tau")
    assert overall.value == pytest.approx(1.0) and overall.n_models == len(models)
    assert set(scores["kind"]) == {"predictor", "baseline", "oracle"}


def test_overall_is_the_mean_of_tasks_with_an_interval():
    models = _models()
    rng = np.random.default_rng(3)
    preds = _preds(models, "noisy", models["gap"].to_numpy() + rng.normal(0, 0.1, len(models)))
    scores = scoring.score_predictions(preds, models, {"noisy": ("1", "predictor")}, zoo_id="z", n_boot=50)
    tasks = [_row(scores, "noisy", t, "psi").value for t in ("a_task", "b_task")]
    overall = _row(scores, "noisy", "overall", "psi")
    assert overall.value == pytest.approx(np.mean(tasks))
    assert overall.ci_low <= overall.value <= overall.ci_high


def test_seed_oracle_is_scored_on_one_seed_per_config():
    models = _models()
    oracle = scoring.oracle_predictions(models)
    first = oracle.set_index("model_id").loc["a_task-0.1-16-100-s0", "score"]
    assert first == pytest.approx(models.set_index("model_id").loc["a_task-0.1-16-100-s1", "gap"])
    scores = scoring.score_predictions(oracle.iloc[:0].assign(predictor=[]), models, {}, zoo_id="z", n_boot=20)
    row = _row(scores, scoring.ORACLE, "a_task", "psi")
    assert row.n_models == 8  # 8 configs, one seed each: config averaging cannot make it perfect
    assert row.value < 1.0


def test_failed_predictions_are_left_out_and_counted():
    models = _models()
    status = np.where(np.arange(len(models)) % 4 == 0, "failed", "ok")
    score = np.where(status == "ok", models["gap"], np.nan)
    preds = _preds(models, "flaky", score, status)
    scores = scoring.score_predictions(preds, models, {"flaky": ("1", "predictor")}, zoo_id="z", n_boot=10)
    assert _row(scores, "flaky", "a_task", "kendall_tau").n_models == 12
    info = scoring.RunInfo("flaky", "1", "h", "f", "predictor", "ref", ("weights",), "")
    runs = scoring.runs_table(preds, [info], models, "z", commit="abc", day="2026-01-01")
    flaky = runs.set_index("predictor").loc["flaky"]
    assert flaky.failure_rate == pytest.approx(0.25) and flaky.n_models == len(models)
    assert "seed_oracle" in set(runs["predictor"])


def test_not_converged_models_are_excluded_by_default():
    models = _models()
    models.loc[models.index[:4], "status"] = "not_converged"
    preds = _preds(models, "perfect", models["gap"].to_numpy())
    scores = scoring.score_predictions(preds, models, {"perfect": ("1", "predictor")}, zoo_id="z", n_boot=10)
    assert _row(scores, "perfect", "a_task", "kendall_tau").n_models == 12
    pts = scoring.points_table(preds, models, "z")
    assert len(pts[pts.predictor == "perfect"]) == len(models) - 4


def test_seed_noise_is_the_median_seed_to_seed_difference():
    models = pd.DataFrame({"config_id": ["a", "a", "b", "b", "c", "c", "d"],
                           "gap": [0.10, 0.14, 0.30, 0.31, 0.5, 0.6, 0.9]})  # fmt: skip
    assert scoring.seed_noise(models, "gap") == pytest.approx(0.04)  # median of 0.04, 0.01, 0.1


def test_sign_error_filter_uses_each_task_seed_noise(monkeypatch):
    models = _models()
    seen = {}
    real = scoring.score_task

    def spy(frame, axes, **kw):
        seen[(frame["task"].iloc[0], kw["target"])] = kw["min_gap_diff"]
        return real(frame, axes, **kw)

    monkeypatch.setattr(scoring, "score_task", spy)
    preds = _preds(models, "perfect", models["gap"].to_numpy())
    scoring.score_predictions(preds, models, {"perfect": ("1", "predictor")}, zoo_id="z", n_boot=5)
    expected = scoring.seed_noise(models[models.task == "a_task"], "gap")
    assert expected > 0 and seen[("a_task", "gap")] == pytest.approx(expected)
