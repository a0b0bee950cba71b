"""Join predictions with the answers and score them: the only code that reads the answers.

Produces the tidy tables of docs/ARCHITECTURE.md: ``scores`` (every metric per predictor,
task and target, with 95% bootstrap intervals), ``runs`` (provenance and cost per predictor)
and ``points`` (score vs gap per model, for plots). Also computes the **seed oracle**: a
"predictor" whose score for a model is the mean gap of the *other* seeds of its config, i.e.
the best any predictor can do given seed noise (the noise floor).

Scoring is per task, over converged models, with metrics from ``benchmark.metrics``; the
``overall`` rows average the per-task values, and their intervals come from averaging the
per-task bootstrap replicates (tasks are resampled independently).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.metrics import score_task
from benchmark.metrics.bootstrap import percentile_interval

TARGETS = ("gap", "test_error", "shift_error")
ORACLE = "seed_oracle"
N_BOOT = 200
SCORE_COLUMNS = ["zoo_id", "predictor", "version", "kind", "task", "target", "metric", "axis",
                 "value", "ci_low", "ci_high", "n_models"]  # fmt: skip
RUN_COLUMNS = ["zoo_id", "predictor", "version", "code_hash", "family", "kind", "reference", "requires",
               "notes", "git_commit", "package_versions", "seconds_median", "seconds_total",
               "failure_rate", "n_models", "date"]  # fmt: skip
POINT_COLUMNS = ["zoo_id", "task", "model_id", "predictor", "score", "gap"]


def model_table(zoo_root: Path) -> tuple[pd.DataFrame, dict]:
    """Manifest joined with answers: one row per model, plus the zoo's metadata."""
    from model_zoo.store import load_answers
    from model_zoo.zoo import Zoo

    zoo = Zoo(zoo_root)
    answers = load_answers(zoo_root)
    manifest = zoo.manifest
    missing = set(manifest["model_id"]) - set(answers["model_id"])
    if missing:
        raise ValueError(f"{zoo_root}/answers lacks {len(missing)} models of the manifest, e.g. {sorted(missing)[:3]}")
    keep = [c for c in answers.columns if c == "model_id" or c not in manifest.columns]
    models = manifest.merge(answers[keep], on="model_id", how="left", validate="one_to_one")
    return models, dict(zoo.meta)


def task_axes(models: pd.DataFrame) -> list[str]:
    """The grid axes of one task's models: ``hp.*`` columns with more than one value."""
    axes = []
    for col in sorted(c for c in models.columns if c.startswith("hp.")):
        values = models[col].dropna()
        if len(values) == len(models) and values.nunique() > 1:
            axes.append(col[3:])
    return axes


def oracle_predictions(models: pd.DataFrame) -> pd.DataFrame:
    """Seed oracle: each model scored by the mean gap of the other seeds of its config."""
    rows = []
    for _, group in models.groupby("config_id", sort=True):
        if len(group) < 2:
            continue
        total, n = group["gap"].sum(), len(group)
        for mid, gap, task in zip(group["model_id"], group["gap"], group["task"]):
            rows.append({"model_id": mid, "task": task, "score": (total - gap) / (n - 1), "status": "ok"})
    return pd.DataFrame(rows, columns=["model_id", "task", "score", "status"])


def _one_seed_per_config(frame: pd.DataFrame) -> pd.DataFrame:
    """The oracle is scored on the first seed of each config only, predicted by the others.

    Config-level metrics average score and target over seeds; for the oracle both averages
    would be the same numbers and it would look perfect. Keeping one seed per config makes
    every metric compare one seed's gap with the other seeds' gaps: the noise floor.
    """
    first = frame.groupby("config_id")["seed"].transform("min")
    return frame[frame["seed"] == first]


def seed_noise(models: pd.DataFrame, target: str) -> float:
    """Median over configs of the mean |difference| of ``target`` between two seeds of a config.

    The level below which a difference in gap between two models is indistinguishable from
    seed noise. The robust sign error ignores model pairs whose gaps differ by less (as
    Dziugaite et al. 2020 drop pairs whose gap difference is not significant); without such a
    filter its worst environment is a coin flip between seeds and always reads 1.
    """
    diffs = []
    for _, group in models.groupby("config_id"):
        values = pd.to_numeric(group[target], errors="coerce").dropna().to_numpy()
        if len(values) >= 2:
            diffs.append(float(np.mean(np.abs(values[:, None] - values[None, :])[np.triu_indices(len(values), 1)])))
    return float(np.median(diffs)) if diffs else 0.0


def _score_one(
    frame: pd.DataFrame, axes: list[str], target: str, n_boot: int, seed: int, noise: float
) -> tuple[list[dict], np.ndarray]:
    rows, boots = score_task(frame, axes, target=target, n_boot=n_boot, seed=seed, return_replicates=True,
                             min_gap_diff=noise)  # fmt: skip
    return rows, boots


def score_predictions(
    predictions: pd.DataFrame,
    models: pd.DataFrame,
    kinds: dict[str, tuple[str, str]],
    *,
    zoo_id: str,
    n_boot: int = N_BOOT,
    seed: int = 0,
    include_not_converged: bool = False,
) -> pd.DataFrame:
    """Tidy score rows for every predictor in ``predictions`` (plus the seed oracle).

    ``kinds`` maps predictor -> (version, kind). Failed predictions are left out of that
    predictor's metrics (its failure rate is reported in the runs table).
    """
    pool = models if include_not_converged else models[models["status"] == "converged"]
    oracle = oracle_predictions(pool).assign(predictor=ORACLE)
    preds = pd.concat([predictions, oracle], ignore_index=True)
    kinds = {**kinds, ORACLE: ("1", "oracle")}
    out: list[dict] = []
    for predictor, group in preds.groupby("predictor", sort=True):
        version, kind = kinds[predictor]
        ok = group[group["status"] == "ok"][["model_id", "score"]]
        joined = pool.merge(ok, on="model_id", how="left")
        if predictor == ORACLE:
            joined = _one_seed_per_config(joined)
        per_target: dict[str, list[tuple[list[dict], np.ndarray]]] = {}
        for task, frame in joined.groupby("task", sort=True):
            axes = task_axes(pool[pool["task"] == task])
            for target in TARGETS:
                if target not in frame or not np.isfinite(pd.to_numeric(frame[target], errors="coerce")).any():
                    continue
                noise = seed_noise(pool[pool["task"] == task], target)
                rows, boots = _score_one(frame, axes, target, n_boot, seed, noise)
                base = {"zoo_id": zoo_id, "predictor": predictor, "version": version, "kind": kind,
                        "task": task, "target": target}  # fmt: skip
                out += [{**base, **r} for r in rows]
                per_target.setdefault(target, []).append((rows, boots))
        for target, parts in per_target.items():
            if len(parts) < 2:
                continue
            out += _overall_rows(parts, zoo_id, predictor, version, kind, target)
    return pd.DataFrame(out, columns=SCORE_COLUMNS)


def _overall_rows(parts, zoo_id, predictor, version, kind, target) -> list[dict]:
    """Mean over tasks of each task-level metric; interval from averaged replicates."""
    rows = []
    keyed = [{(r["metric"], r["axis"]): (i, r) for i, r in enumerate(rows_)} for rows_, _ in parts]
    for metric in dict.fromkeys(r["metric"] for r in parts[0][0]):
        if metric == "psi_axis":
            continue  # axes differ between tasks
        idx = [k[(metric, "")][0] for k in keyed]
        values = np.array([k[(metric, "")][1]["value"] for k in keyed], dtype=float)
        boots = np.column_stack([b[:, i] for (_, b), i in zip(parts, idx)])
        mean_boots = np.nanmean(boots, axis=1) if np.isfinite(boots).any() else np.full(len(boots), np.nan)
        low, high = percentile_interval(mean_boots)
        n = int(sum(k[(metric, "")][1]["n_models"] for k in keyed))
        rows.append({"zoo_id": zoo_id, "predictor": predictor, "version": version, "kind": kind,
                     "task": "overall", "target": target, "metric": metric, "axis": "",
                     "value": float(np.nanmean(values)) if np.isfinite(values).any() else float("nan"),
                     "ci_low": low, "ci_high": high, "n_models": n})  # fmt: skip
    return rows


def points_table(predictions: pd.DataFrame, models: pd.DataFrame, zoo_id: str) -> pd.DataFrame:
    """Score vs gap for every converged model and successful prediction (the seed oracle too)."""
    pool = models[models["status"] == "converged"]
    oracle = oracle_predictions(pool).assign(predictor=ORACLE)
    preds = pd.concat([predictions, oracle], ignore_index=True)
    ok = preds[preds["status"] == "ok"][["model_id", "predictor", "score"]]
    pts = ok.merge(pool[["model_id", "task", "gap"]], on="model_id", how="inner")
    pts["zoo_id"] = zoo_id
    return pts[POINT_COLUMNS].sort_values(["predictor", "task", "model_id"]).reset_index(drop=True)


def git_commit(path: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=path or Path.cwd(),
                             capture_output=True, text=True, check=True)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path or Path.cwd(),
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("gapbench", "torch", "numpy", "scipy", "pandas", "mlflow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


@dataclass(frozen=True)
class RunInfo:
    name: str
    version: str
    code_hash: str
    family: str
    kind: str
    reference: str
    requires: tuple[str, ...]
    notes: str


def runs_table(predictions: pd.DataFrame, infos: list[RunInfo], models: pd.DataFrame, zoo_id: str, *,
               commit: str | None = None, day: str | None = None) -> pd.DataFrame:  # fmt: skip
    """One provenance row per predictor (and the seed oracle): cost and failure rate included."""
    commit = commit or git_commit()
    day = day or date.today().isoformat()
    versions = json.dumps(package_versions(), sort_keys=True)
    rows = []
    ids = set(models["model_id"])
    for info in infos:
        mine = predictions[(predictions["predictor"] == info.name) & predictions["model_id"].isin(ids)]
        n = len(mine)
        rows.append({
            "zoo_id": zoo_id, "predictor": info.name, "version": info.version, "code_hash": info.code_hash,
            "family": info.family, "kind": info.kind, "reference": info.reference,
            "requires": ",".join(info.requires), "notes": info.notes, "git_commit": commit,
            "package_versions": versions,
            "seconds_median": float(mine["seconds"].median()) if n else float("nan"),
            "seconds_total": float(mine["seconds"].sum()) if n else 0.0,
            "failure_rate": float((mine["status"] != "ok").mean()) if n else float("nan"),
            "n_models": n, "date": day,
        })  # fmt: skip
    pool = models[models["status"] == "converged"]
    n_oracle = len(oracle_predictions(pool))
    rows.append({
        "zoo_id": zoo_id, "predictor": ORACLE, "version": "1", "code_hash": "", "family": "oracle",
        "kind": "oracle", "reference": "another seed's gap of the same configuration (noise floor)",
        "requires": "answers", "notes": "uses the answers: not a predictor, the best a predictor can hope for",
        "git_commit": commit, "package_versions": versions, "seconds_median": 0.0, "seconds_total": 0.0,
        "failure_rate": 0.0, "n_models": n_oracle, "date": day,
    })  # fmt: skip
    return pd.DataFrame(rows, columns=RUN_COLUMNS)
