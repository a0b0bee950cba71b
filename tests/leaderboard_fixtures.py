"""Synthetic board tables of the current schema (benchmark/tables.py): 3 tasks, 6 predictors.

The Psi values and intervals are chosen by hand so that the expected board is known:

- public zoo, target gap:
  - fashion_mnist: ph_dim's Psi interval [0.50, 0.70] lies above the best baseline's
    (weight_norm, [0.15, 0.45]) -> ph_dim beats it; sharpness_trace's [0.40, 0.62] overlaps -> not.
  - fsdd: ph_dim 0.55 [0.30, 0.75] overlaps weight_norm's [0.20, 0.50] -> no predictor beats it.
  - newsgroups: sharpness_trace failed on every model -> its Psi is missing and its row comes last.
  - overall: sharpness_trace and weight_norm tie at 0.35 -> they share rank 3.
- held-out zoo (gap only; sharpness_trace was not run there): the official ranking. Overall,
  weight_norm overtakes ph_dim: one discordant pair of six -> rank agreement tau = 4/6.
- test error: public only, another order; shift error: fsdd only.
- sharpness_trace ran unsandboxed; lr_batch_ratio reads hparams (and declares an unsafe url,
  which must never become a link); ph_dim reads the trajectory.
- model 23 of every task did not converge; window drift shares are 0.01 i (fashion_mnist),
  0.02 i (fsdd) and not recorded (newsgroups).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.metrics.catalog import METRICS, SCORE_METRICS
from benchmark.tables import MODELS, POINTS, PREDICTIONS, RUNS, SCORES, BoardMeta, ZooRef, write_board_meta

ZOO_ID = "mini-3f2a9c1d"
HELDOUT_ID = "mini-heldout-7b1e0c44"
CONTENT_HASH = "5e1f" * 16
COMMIT = "0123456789abcdef0123456789abcdef01234567"
DATE = "2025-01-15"
TASKS = ("fashion_mnist", "fsdd", "newsgroups")
GRID = {"lr": ("0.01", "0.1"), "weight_decay": ("0", "0.0005"), "width": ("32", "64")}
SEEDS = (0, 1, 2)
MODELS_PER_TASK = 24  # 2 lr x 2 width x 2 weight decay x 3 seeds
NOT_CONVERGED = 23  # index of the model of each task that did not converge
PER_AXIS = tuple(m for m in SCORE_METRICS if METRICS[m].per_axis)
"""Score metrics given per axis (the rest of the catalogue's score metrics get one row each)."""

# name: (kind, family, reference, url, version, requires, sandboxed)
PREDICTORS = {
    "ph_dim": ("predictor", "ph_dimension", "Birdal et al. 2021", "https://arxiv.org/abs/2111.13171", "1.0",
               ("weights", "trajectory"), True),
    "sharpness_trace": ("predictor", "sharpness", "Jiang et al. 2020", "https://arxiv.org/abs/1912.02178", "2.1",
                        ("weights", "train_data"), False),
    "lr_batch_ratio": ("baseline", "hyperparameters", "Jiang et al. 2020", "javascript:alert(1)", "1.0",
                       ("hparams",), True),
    "weight_norm": ("baseline", "norms", "Jiang et al. 2020", "", "1.0", ("weights",), True),
    "random": ("baseline", "baselines", "", "", "1.0", (), True),
    "seed_oracle": ("oracle", "oracle", "another seed's gap of the same configuration (noise floor)", "", "1",
                    ("answers",), True),
}
NAN3 = (math.nan, math.nan, math.nan)
# (value, ci_low, ci_high) of Psi, public zoo, target gap; NaN = no score.
PSI = {
    "fashion_mnist": {"ph_dim": (0.60, 0.50, 0.70), "sharpness_trace": (0.50, 0.40, 0.62),
                      "lr_batch_ratio": (0.20, 0.05, 0.35), "weight_norm": (0.30, 0.15, 0.45),
                      "random": (0.01, -0.12, 0.14), "seed_oracle": (0.82, 0.74, 0.90)},
    "fsdd": {"ph_dim": (0.55, 0.30, 0.75), "sharpness_trace": (0.20, 0.02, 0.36),
             "lr_batch_ratio": (0.10, -0.05, 0.25), "weight_norm": (0.35, 0.20, 0.50),
             "random": (-0.03, -0.18, 0.12), "seed_oracle": (0.71, 0.60, 0.80)},
    "newsgroups": {"ph_dim": (0.25, 0.10, 0.40), "sharpness_trace": NAN3,
                   "lr_batch_ratio": (0.15, 0.00, 0.30), "weight_norm": (0.40, 0.28, 0.52),
                   "random": (0.05, -0.09, 0.19), "seed_oracle": (0.66, 0.55, 0.77)},
    "overall": {"ph_dim": (0.47, 0.38, 0.56), "sharpness_trace": (0.35, 0.24, 0.45),
                "lr_batch_ratio": (0.15, 0.06, 0.24), "weight_norm": (0.35, 0.27, 0.43),
                "random": (0.01, -0.07, 0.09), "seed_oracle": (0.73, 0.67, 0.79)},
}
# Held-out zoo, target gap (sharpness_trace was not run there).
HELDOUT_PSI = {
    "fashion_mnist": {"ph_dim": (0.58, 0.48, 0.68), "lr_batch_ratio": (0.22, 0.08, 0.36),
                      "weight_norm": (0.28, 0.15, 0.41), "random": (0.00, -0.12, 0.12),
                      "seed_oracle": (0.80, 0.72, 0.88)},
    "fsdd": {"ph_dim": (0.50, 0.30, 0.70), "lr_batch_ratio": (0.12, -0.03, 0.27),
             "weight_norm": (0.30, 0.20, 0.45), "random": (-0.05, -0.20, 0.10),
             "seed_oracle": (0.70, 0.60, 0.80)},
    "newsgroups": {"ph_dim": (0.20, 0.05, 0.35), "lr_batch_ratio": (0.18, 0.03, 0.33),
                   "weight_norm": (0.45, 0.33, 0.57), "random": (0.19, 0.05, 0.33),
                   "seed_oracle": (0.60, 0.50, 0.70)},
    "overall": {"ph_dim": (0.30, 0.22, 0.38), "lr_batch_ratio": (0.12, 0.04, 0.20),
                "weight_norm": (0.38, 0.30, 0.46), "random": (0.02, -0.06, 0.10),
                "seed_oracle": (0.70, 0.62, 0.78)},
}
# Psi against the test error (public only): another order than the gap's.
TEST_PSI = {
    task: {"ph_dim": (0.10, -0.05, 0.25), "sharpness_trace": (0.30, 0.15, 0.45) if task != "newsgroups" else NAN3,
           "lr_batch_ratio": (0.45, 0.30, 0.60), "weight_norm": (0.55, 0.40, 0.70), "random": (0.02, -0.1, 0.14),
           "seed_oracle": (0.85, 0.78, 0.92)}
    for task in ("overall", *TASKS)
}
SHIFT_PSI = {"fsdd": {"ph_dim": (0.40, 0.20, 0.60), "sharpness_trace": (-0.10, -0.30, 0.10),
                      "lr_batch_ratio": (0.05, -0.10, 0.20), "weight_norm": (0.20, 0.05, 0.35),
                      "random": (0.00, -0.15, 0.15), "seed_oracle": (0.60, 0.50, 0.70)}}
EXPECTED_ORDER = {  # public zoo, target gap
    "fashion_mnist": ["seed_oracle", "ph_dim", "sharpness_trace", "weight_norm", "lr_batch_ratio", "random"],
    "fsdd": ["seed_oracle", "ph_dim", "weight_norm", "sharpness_trace", "lr_batch_ratio", "random"],
    "newsgroups": ["seed_oracle", "weight_norm", "ph_dim", "lr_batch_ratio", "random", "sharpness_trace"],
    # ties (0.35) are broken by name
    "overall": ["seed_oracle", "ph_dim", "sharpness_trace", "weight_norm", "lr_batch_ratio", "random"],
}
EXPECTED_OFFICIAL_ORDER = {  # held-out Psi; sharpness_trace (no held-out score) last
    "fashion_mnist": ["seed_oracle", "ph_dim", "weight_norm", "lr_batch_ratio", "random", "sharpness_trace"],
    "fsdd": ["seed_oracle", "ph_dim", "weight_norm", "lr_batch_ratio", "random", "sharpness_trace"],
    "newsgroups": ["seed_oracle", "weight_norm", "ph_dim", "random", "lr_batch_ratio", "sharpness_trace"],
    "overall": ["seed_oracle", "weight_norm", "ph_dim", "lr_batch_ratio", "random", "sharpness_trace"],
}
EXPECTED_BEATS = {  # public ranking
    "fashion_mnist": {"ph_dim": True, "sharpness_trace": False},
    "fsdd": {"ph_dim": False, "sharpness_trace": False},
    "newsgroups": {"ph_dim": False, "sharpness_trace": None},
    "overall": {"ph_dim": False, "sharpness_trace": False},
}
SECONDS = {"ph_dim": 4.2, "sharpness_trace": 38.0, "lr_batch_ratio": 0.0008, "weight_norm": 0.004,
           "random": 0.0005, "seed_oracle": 0.001}
NOTES = {"sharpness_trace": "Lanczos with 20 Hessian-vector products per model; the costliest protocol."}


def _derived(metric: str, value: float) -> float:
    """A plausible value of another score metric for a predictor of this Psi (monotone in Psi)."""
    if math.isnan(value):
        return math.nan
    return value * 0.8 if METRICS[metric].higher_is_better else max(0.0, 0.5 - value * 0.3)


def _metric_rows(split: str, target: str, task: str, pred: str, psi: tuple[float, float, float]) -> list[dict]:
    value, low, high = psi
    failed = math.isnan(value)
    half = (high - low) / 2 if not failed else math.nan
    n = 0 if failed else (MODELS_PER_TASK - 1) * (len(TASKS) if task == "overall" else 1)
    rows = [("psi", "", value, low, high, 8)]
    for k, metric in enumerate(m for m in SCORE_METRICS if m != "psi" and m not in PER_AXIS):
        v = _derived(metric, value)
        units = n if metric == "kendall_tau" else 10 + 3 * k
        rows.append((metric, "", v, v - half, v + half, units))
    for i, axis in enumerate(GRID):
        v = value + (i - 1) * 0.15 if not failed else math.nan
        rows += [(m, axis, v, v - 0.1, v + 0.1, 4) for m in PER_AXIS if m in SCORE_METRICS]
    kind, *_, version, _, _ = PREDICTORS[pred]
    zoo = ZOO_ID if split == "public" else HELDOUT_ID
    return [{"zoo_id": zoo, "split": split, "predictor": pred, "version": version, "kind": kind, "task": task,
             "target": target, "metric": m, "axis": a, "value": v, "ci_low": lo, "ci_high": hi, "n_models": n,
             "n_units": 0 if failed else u}
            for m, a, v, lo, hi, u in rows]


def _models(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for t, task in enumerate(TASKS):
        i = 0
        for lr in GRID["lr"]:
            for wd in GRID["weight_decay"]:
                for width in GRID["width"]:
                    for seed in SEEDS:
                        train = float(rng.uniform(0.0, 0.02))
                        gap = float(rng.uniform(0.02, 0.3)) + (0.1 if lr == "0.1" else 0.0)
                        drift = {0: 0.01 * i, 1: 0.02 * i}.get(t, math.nan)
                        rows.append({
                            "zoo_id": ZOO_ID, "model_id": f"{task[:4]}-{i:03d}", "task": task, "architecture": "mlp",
                            "config_id": f"{task[:4]}-c{i // len(SEEDS):02d}", "seed": seed,
                            "status": "not_converged" if i == NOT_CONVERGED else "converged",
                            "axes": ",".join(GRID),
                            "hp": json.dumps({"lr": lr, "weight_decay": wd, "width": width}, sort_keys=True),
                            "train_error": train, "test_error": train + gap, "gap": gap,
                            "shift_error": train + gap + 0.1 if task == "fsdd" else math.nan,
                            "window_drift_share": drift,
                        })
                        i += 1
    return MODELS.frame(rows)


def make_tables(seed: int = 0, *, heldout: bool = True) -> tuple[BoardMeta, dict[str, pd.DataFrame]]:
    """The board header and the five board tables (validated by benchmark.tables) of the synthetic zoo."""
    rng = np.random.default_rng(seed)
    scores = []
    for target, psis in (("gap", PSI), ("test_error", TEST_PSI), ("shift_error", SHIFT_PSI)):
        for task, by_pred in psis.items():
            for pred, psi in by_pred.items():
                scores += _metric_rows("public", target, task, pred, psi)
    if heldout:
        for task, by_pred in HELDOUT_PSI.items():
            for pred, psi in by_pred.items():
                scores += _metric_rows("heldout", "gap", task, pred, psi)
    models = _models(rng)
    predictions, points = [], []
    for task in TASKS:
        of_task = models[models["task"] == task].reset_index(drop=True)
        for pred, (*_, version, _, _) in PREDICTORS.items():
            quality = 0.0 if math.isnan(PSI[task][pred][0]) else PSI[task][pred][0]
            for i, m in of_task.iterrows():
                fail = (pred == "sharpness_trace" and task == "newsgroups") or (
                    pred == "ph_dim" and task == "fsdd" and i % 8 == 0)
                score = math.nan if fail else quality * m["gap"] + float(rng.normal(0, 0.05))
                reason = ""
                if fail:
                    reason = "timeout after 300 s" if pred == "sharpness_trace" else "ValueError: MST of 1 point"
                predictions.append({
                    "zoo_id": ZOO_ID, "model_id": m["model_id"], "task": task, "predictor": pred, "version": version,
                    "code_hash": "c0ffee12", "seed": 0, "score": score, "status": "failed" if fail else "ok",
                    "reason": reason, "seconds": 300.0 if fail else SECONDS[pred] * float(rng.uniform(0.8, 1.2)),
                })
                if not fail and m["status"] == "converged":
                    points.append({"zoo_id": ZOO_ID, "task": task, "model_id": m["model_id"], "predictor": pred,
                                   "score": score})
    pred_df = PREDICTIONS.frame(predictions)
    runs = []
    for pred, (kind, family, ref, url, version, requires, sandboxed) in PREDICTORS.items():
        mine = pred_df[pred_df["predictor"] == pred]
        splits = ["public"] + (["heldout"] if heldout and pred in HELDOUT_PSI["overall"] else [])
        for split in splits:
            runs.append({
                "zoo_id": ZOO_ID if split == "public" else HELDOUT_ID, "split": split, "predictor": pred,
                "version": version, "code_hash": "c0ffee12", "family": family, "kind": kind, "reference": ref,
                "url": url, "requires": ",".join(requires), "notes": NOTES.get(pred, ""), "sandboxed": sandboxed,
                "git_commit": COMMIT, "package_versions": json.dumps({"torch": "2.14.1"}),
                "seconds_median": float(mine["seconds"].median()), "seconds_total": float(mine["seconds"].sum()),
                "failure_rate": float((mine["status"] != "ok").mean()), "n_models": len(mine), "date": DATE,
            })
    sizes = {t: MODELS_PER_TASK for t in TASKS}
    meta = BoardMeta(
        public=ZooRef(zoo_id=ZOO_ID, content_hash=CONTENT_HASH, spec_name="mini", n_models=sizes),
        heldout=ZooRef(zoo_id=HELDOUT_ID, content_hash="9d0c" * 16, spec_name="mini-heldout", n_models=sizes)
        if heldout else None,
        git_commit=COMMIT, date=DATE, sandboxed=True,
    )
    tables = {"scores": SCORES.frame(scores), "runs": RUNS.frame(runs), "points": POINTS.frame(points),
              "models": models, "predictions": pred_df}
    return meta, tables


def write_tables(directory: str | Path, meta: BoardMeta, tables: dict[str, pd.DataFrame]) -> Path:
    """Write ``tables`` and the header into ``directory`` as the publish stage does; return it."""
    directory = Path(directory)
    for table in (SCORES, RUNS, POINTS, MODELS, PREDICTIONS):
        table.write(tables[table.name], directory / table.file)
    write_board_meta(meta, directory / "board_meta.json")
    return directory


def write_fixture(directory: str | Path, seed: int = 0, *, heldout: bool = True) -> Path:
    """Write the synthetic tables and board_meta.json into ``directory``; return it."""
    meta, tables = make_tables(seed, heldout=heldout)
    return write_tables(directory, meta, tables)
