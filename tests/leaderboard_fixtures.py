"""Synthetic but realistic leaderboard inputs: 3 tasks, 5 predictors (2 baselines, the oracle).

The Psi values and intervals are chosen by hand so that the expected board is known:

- fashion_mnist: ph_dim's Psi interval [0.50, 0.70] lies above the best baseline's
  (weight_norm, [0.15, 0.45]) -> ph_dim beats it; sharpness_trace's [0.40, 0.62] overlaps -> not.
- fsdd: ph_dim 0.55 [0.30, 0.75] overlaps weight_norm's [0.20, 0.50] -> no predictor beats it.
- newsgroups: sharpness_trace failed on every model -> its Psi is missing and its row comes last.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

ZOO_ID = "mini-3f2a9c1d"
TASKS = ("fashion_mnist", "fsdd", "newsgroups")
AXES = ("lr", "width", "weight_decay")
PREDICTORS = {
    # name: (kind, family, reference, version)
    "ph_dim": ("predictor", "ph_dimension", "Birdal et al. 2021", "1.0"),
    "sharpness_trace": ("predictor", "sharpness", "Jiang et al. 2020", "2.1"),
    "weight_norm": ("baseline", "baselines", "Jiang et al. 2020", "1.0"),
    "random": ("baseline", "baselines", "", "1.0"),
    "seed_oracle": ("oracle", "baselines", "Jiang et al. 2020", "1.0"),
}
# (value, ci_low, ci_high) of Psi per task and predictor; NaN = no score.
PSI = {
    "fashion_mnist": {
        "ph_dim": (0.60, 0.50, 0.70),
        "sharpness_trace": (0.50, 0.40, 0.62),
        "weight_norm": (0.30, 0.15, 0.45),
        "random": (0.01, -0.12, 0.14),
        "seed_oracle": (0.82, 0.74, 0.90),
    },
    "fsdd": {
        "ph_dim": (0.55, 0.30, 0.75),
        "sharpness_trace": (0.20, 0.02, 0.36),
        "weight_norm": (0.35, 0.20, 0.50),
        "random": (-0.03, -0.18, 0.12),
        "seed_oracle": (0.71, 0.60, 0.80),
    },
    "newsgroups": {
        "ph_dim": (0.25, 0.10, 0.40),
        "sharpness_trace": (math.nan, math.nan, math.nan),
        "weight_norm": (0.40, 0.28, 0.52),
        "random": (0.05, -0.09, 0.19),
        "seed_oracle": (0.66, 0.55, 0.77),
    },
    "overall": {
        "ph_dim": (0.47, 0.38, 0.56),
        "sharpness_trace": (0.35, 0.24, 0.45),
        "weight_norm": (0.35, 0.27, 0.43),
        "random": (0.01, -0.07, 0.09),
        "seed_oracle": (0.73, 0.67, 0.79),
    },
}
EXPECTED_ORDER = {
    "fashion_mnist": ["seed_oracle", "ph_dim", "sharpness_trace", "weight_norm", "random"],
    "fsdd": ["seed_oracle", "ph_dim", "weight_norm", "sharpness_trace", "random"],
    "newsgroups": ["seed_oracle", "weight_norm", "ph_dim", "random", "sharpness_trace"],
    # ties (0.35) are broken by name
    "overall": ["seed_oracle", "ph_dim", "sharpness_trace", "weight_norm", "random"],
}
EXPECTED_BEATS = {
    "fashion_mnist": {"ph_dim": True, "sharpness_trace": False},
    "fsdd": {"ph_dim": False, "sharpness_trace": False},
    "newsgroups": {"ph_dim": False, "sharpness_trace": False},
    "overall": {"ph_dim": False, "sharpness_trace": False},
}
MODELS_PER_TASK = 24  # 2 lr x 2 width x 2 weight decay x 3 seeds
SECONDS = {"ph_dim": 4.2, "sharpness_trace": 38.0, "weight_norm": 0.004, "random": 0.0005,
           "seed_oracle": 0.001}
NOTES = {"sharpness_trace": "Lanczos with 20 Hessian-vector products per model; the costliest protocol."}


def _metric_rows(task: str, pred: str, psi: tuple[float, float, float], rng: np.random.Generator):
    value, low, high = psi
    failed = math.isnan(value)
    width = high - low if not failed else math.nan
    derived = {
        "kendall_tau": value * 0.8,
        "cmi": abs(value) * 12.0,
        "cmi_signed": value * 12.0,
        "sign_error_mean": 0.5 - value * 0.35,
        "sign_error_p90": 0.5 - value * 0.2,
        "sign_error_max": 0.55 - value * 0.1,
        "regret": math.nan if failed else max(0.0, 0.08 - value * 0.1),
    }
    rows = [("psi", "", value, low, high)]
    for metric, v in derived.items():
        lo = v - width / 2
        rows.append((metric, "", v, max(0.0, lo) if metric == "regret" else lo, v + width / 2))
    for i, axis in enumerate(AXES):
        v = value + (i - 1) * 0.15 + float(rng.normal(0, 0.02)) if not failed else math.nan
        rows.append(("psi_axis", axis, v, v - 0.1, v + 0.1))
    kind, _, _, version = PREDICTORS[pred]
    n = 0 if failed else (MODELS_PER_TASK * len(TASKS) if task == "overall" else MODELS_PER_TASK)
    return [
        {
            "zoo_id": ZOO_ID, "predictor": pred, "version": version, "kind": kind, "task": task,
            "target": "gap", "metric": m, "axis": a, "value": v, "ci_low": lo, "ci_high": hi,
            "n_models": n,
        }
        for m, a, v, lo, hi in rows
    ]


def make_tables(seed: int = 0) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Return (board_meta, {"scores", "runs", "predictions", "points"}) for the synthetic zoo."""
    rng = np.random.default_rng(seed)
    scores = []
    for task, by_pred in PSI.items():
        for pred, psi in by_pred.items():
            scores.extend(_metric_rows(task, pred, psi, rng))
    # A secondary target must not leak into the gap board.
    scores.append({**scores[0], "target": "test_error", "value": -0.9, "ci_low": -1.0, "ci_high": -0.8})

    predictions, points = [], []
    for task in TASKS:
        gaps = rng.uniform(0.02, 0.3, MODELS_PER_TASK)
        for pred in PREDICTORS:
            kind, _, _, version = PREDICTORS[pred]
            quality = 0.0 if math.isnan(PSI[task][pred][0]) else PSI[task][pred][0]
            for i in range(MODELS_PER_TASK):
                model_id = f"{task[:4]}-{i:03d}"
                fail = (pred == "sharpness_trace" and task == "newsgroups") or (
                    pred == "ph_dim" and task == "fsdd" and i % 8 == 0
                )
                score = math.nan if fail else quality * gaps[i] + float(rng.normal(0, 0.05))
                reason = ""
                if fail:
                    reason = "timeout after 300 s" if pred == "sharpness_trace" else "ValueError: MST of 1 point"
                predictions.append({
                    "zoo_id": ZOO_ID, "model_id": model_id, "task": task, "predictor": pred,
                    "version": version, "code_hash": "c0ffee12",
                    "score": score, "status": "failed" if fail else "ok", "reason": reason,
                    "seconds": 300.0 if fail else SECONDS[pred] * float(rng.uniform(0.8, 1.2)),
                })
                if not fail:
                    points.append({"zoo_id": ZOO_ID, "task": task, "model_id": model_id,
                                   "predictor": pred, "score": score, "gap": float(gaps[i])})
    pred_df = pd.DataFrame(predictions)
    runs = []
    for pred, (kind, family, ref, version) in PREDICTORS.items():
        mine = pred_df[pred_df["predictor"] == pred]
        runs.append({
            "zoo_id": ZOO_ID, "predictor": pred, "version": version, "code_hash": "c0ffee12",
            "family": family, "kind": kind, "reference": ref,
            "requires": json.dumps(["weights", "trajectory"] if pred == "ph_dim" else ["weights"]),
            "git_commit": "0123456789abcdef0123456789abcdef01234567",
            "package_versions": json.dumps({"torch": "2.14.1"}),
            "seconds_median": float(mine["seconds"].median()),
            "seconds_total": float(mine["seconds"].sum()),
            "failure_rate": float((mine["status"] != "ok").mean()),
            "n_models": len(mine), "date": "2025-01-15", "notes": NOTES.get(pred, ""),
        })
    meta = {
        "zoo_id": ZOO_ID, "spec_name": "mini",
        "git_commit": "0123456789abcdef0123456789abcdef01234567", "date": "2025-01-15",
        "n_models": {t: MODELS_PER_TASK for t in TASKS},
    }
    tables = {
        "scores": pd.DataFrame(scores),
        "runs": pd.DataFrame(runs),
        "predictions": pred_df,
        "points": pd.DataFrame(points),
    }
    return meta, tables


def write_fixture(directory: str | Path, seed: int = 0) -> Path:
    """Write the synthetic tables and board_meta.json into ``directory``; return it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta, tables = make_tables(seed)
    for name, frame in tables.items():
        frame.to_parquet(directory / f"{name}.parquet", index=False)
    (directory / "board_meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
    return directory
