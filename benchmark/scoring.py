"""The score stage: join predictions with the answers and score them (the only reader of answers).

``models_table`` reads a zoo's manifest and answers into the ``models`` table; ``score_zoo``
turns ``models`` + ``predictions`` into the ``scores``, ``points`` and ``runs`` tables
(benchmark.tables). It also computes the **seed oracle**, once: a "predictor" whose score for
a model is the mean gap of the *other* seeds of its configuration, the best any predictor can
do given seed noise (the noise floor). It is scored one seed per configuration at a time
(folds), every seed serving as the target once (docs/metrics.md).

Scoring is per task, over converged models, with the metrics of ``benchmark.metrics``; the
``overall`` rows average the per-task values, their intervals come from averaging the
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
from benchmark.metrics.catalog import metric_spec
from benchmark.tables import MODELS, POINTS, RUNS, SCORES, ZooRef
from predictors.registry import PredictorRef

TARGETS = ("gap", "test_error", "shift_error")
ORACLE = "seed_oracle"
N_BOOT = 200


@dataclass(frozen=True)
class ScoreTables:
    """The score stage's output for one zoo."""

    scores: pd.DataFrame
    points: pd.DataFrame
    runs: pd.DataFrame


def models_table(zoo_root: str | Path) -> tuple[pd.DataFrame, ZooRef]:
    """The ``models`` table of a zoo (manifest joined with answers) and the zoo's reference."""
    from model_zoo.store import load_answers
    from model_zoo.zoo import Zoo

    zoo = Zoo(zoo_root)
    answers = load_answers(zoo_root).set_index("model_id")
    manifest = zoo.manifest
    missing = sorted(set(manifest["model_id"]) - set(answers.index))
    if missing:
        raise ValueError(f"{zoo.layout.answers_table}: lacks {len(missing)} models of the manifest, e.g. {missing[:3]}")
    hp_cols = [c for c in manifest.columns if c.startswith("hp.")]
    rows = []
    for m in manifest.to_dict("records"):
        a = answers.loc[m["model_id"]]
        shift = a.get("shift_error")
        rows.append({
            "zoo_id": zoo.zoo_id, "model_id": m["model_id"], "task": m["task"], "architecture": m["architecture"],
            "config_id": m["config_id"], "seed": int(m["seed"]), "status": m["status"], "axes": m["axes"],
            "hp": json.dumps({c[3:]: m[c] for c in hp_cols}, sort_keys=True),
            "train_error": float(a["train_error"]), "test_error": float(a["test_error"]), "gap": float(a["gap"]),
            "shift_error": float(shift) if shift is not None and pd.notna(shift) else float("nan"),
            "window_drift_share": float(m.get("window_drift_share", float("nan"))),
        })
    counts = {str(t): int(n) for t, n in manifest.groupby("task").size().items()}
    ref = ZooRef(zoo_id=zoo.zoo_id, content_hash=zoo.content_hash, spec_name=str(zoo.meta.get("spec_name", "")),
                 n_models=counts)
    return MODELS.frame(rows, source=str(zoo.layout.root)), ref


def hp_frame(models: pd.DataFrame) -> pd.DataFrame:
    """``models`` with one ``hp.<axis>`` string column per axis (what the metrics group by)."""
    hp = pd.DataFrame([json.loads(h) for h in models["hp"]], index=models.index)
    return pd.concat([models, hp.add_prefix("hp.")], axis=1)


def task_axes(models: pd.DataFrame) -> list[str]:
    """The grid axes of one task's models: ``hp.*`` columns with more than one value."""
    axes = []
    for col in sorted(c for c in models.columns if c.startswith("hp.")):
        values = models[col].dropna()
        if len(values) == len(models) and values.nunique() > 1:
            axes.append(col[3:])
    return axes


def oracle_predictions(models: pd.DataFrame) -> pd.DataFrame:
    """Seed oracle: each converged model scored by the mean gap of the other seeds of its config.

    A config with one converged seed has no other seed: its model gets no oracle score (it is left
    out of the oracle's scores, as a failed prediction would be).
    """
    rows = []
    for _, group in models.groupby("config_id", sort=True):
        if len(group) < 2:
            continue
        total, n = group["gap"].sum(), len(group)
        for mid, gap, task in zip(group["model_id"], group["gap"], group["task"]):
            rows.append({"model_id": mid, "task": task, "score": (total - gap) / (n - 1), "status": "ok"})
    return pd.DataFrame(rows, columns=["model_id", "task", "score", "status"])


def _one_seed_per_config(frame: pd.DataFrame) -> pd.DataFrame:
    """Mark the oracle's frame for fold-by-fold scoring: column ``fold`` = the seed's rank in its config.

    Config-level metrics average score and target over seeds; for the oracle both averages
    would be the same numbers and it would look perfect. With ``fold``, ``benchmark.metrics.score_task``
    scores one seed per config at a time (fold k: the k-th seed of every config, its gap against the
    other seeds' mean gap) and averages over the folds, so every seed serves as a target once and the
    oracle stays the noise floor; its bootstrap replicates redraw every seed and recompute the scores
    from the replicate's gaps (docs/metrics.md, "The seed oracle").
    """
    fold = frame.groupby("config_id")["seed"].rank(method="first").astype("int64") - 1
    return frame.assign(fold=fold)


def score_zoo(
    models: pd.DataFrame,
    predictions: pd.DataFrame,
    refs: list[PredictorRef],
    *,
    zoo: ZooRef,
    split: str = "public",
    sandboxed: bool = True,
    n_boot: int = N_BOOT,
    seed: int = 0,
    include_not_converged: bool = False,
    commit: str | None = None,
    day: str | None = None,
) -> ScoreTables:
    """Score every predictor of ``refs`` that has predictions (and the seed oracle) on one zoo."""
    pool = hp_frame(models if include_not_converged else models[models["status"] == "converged"])
    oracle = oracle_predictions(pool).assign(predictor=ORACLE)
    by_name = {r.name: r for r in refs}
    preds = predictions[predictions["predictor"].isin(by_name) & predictions["model_id"].isin(models["model_id"])]
    everything = pd.concat([preds[["model_id", "task", "score", "status", "predictor"]], oracle], ignore_index=True)
    kinds = {r.name: (r.version, r.kind) for r in refs} | {ORACLE: ("1", "oracle")}
    rows: list[dict] = []
    for predictor, group in everything.groupby("predictor", sort=True):
        version, kind = kinds[predictor]
        ok = group[group["status"] == "ok"][["model_id", "score"]]
        joined = pool.merge(ok, on="model_id", how="left")
        if predictor == ORACLE:
            joined = _one_seed_per_config(joined)
        base = {"zoo_id": zoo.zoo_id, "split": split, "predictor": predictor, "version": version, "kind": kind}
        rows += _score_predictor(joined, pool, base, n_boot, seed)
    scores = SCORES.frame(rows)
    points_rows = everything[everything["status"] == "ok"].merge(
        pool[["model_id"]], on="model_id", how="inner")[["task", "model_id", "predictor", "score"]]
    points = POINTS.frame(points_rows.assign(zoo_id=zoo.zoo_id)[POINTS.names]
                          .sort_values(["predictor", "task", "model_id"]).reset_index(drop=True))
    runs = runs_table(preds, refs, oracle, zoo=zoo, split=split, sandboxed=sandboxed, commit=commit, day=day)
    return ScoreTables(scores=scores, points=points, runs=runs)


def _score_predictor(joined: pd.DataFrame, pool: pd.DataFrame, base: dict, n_boot: int, seed: int) -> list[dict]:
    out: list[dict] = []
    per_target: dict[str, list[tuple[list[dict], np.ndarray]]] = {}
    for task, frame in joined.groupby("task", sort=True):
        axes = task_axes(pool[pool["task"] == task])
        for target in TARGETS:
            if not np.isfinite(pd.to_numeric(frame[target], errors="coerce")).any():
                continue
            task_rows, boots = score_task(frame, axes, target=target, n_boot=n_boot, seed=seed,
                                          n_eval=_n_eval(task, target), return_replicates=True)
            out += [_row(base, task, target, r) for r in task_rows]
            per_target.setdefault(target, []).append((task_rows, boots))
    for target, parts in per_target.items():
        if len(parts) >= 2:
            out += _overall_rows(parts, base, target)
    return out


def _n_eval(task: str, target: str) -> int | None:
    """How many test examples stand behind one value of ``target`` (the sign error's Monte Carlo weight)."""
    from model_zoo.data import TASKS, task_info

    if task not in TASKS:
        return None  # a synthetic task: no Monte Carlo weight
    extras = task_info(task).extras
    value = extras.get("n_shift" if target == "shift_error" else "n_test")
    return int(value) if value else None


def _row(base: dict, task: str, target: str, r: dict) -> dict:
    return {**base, "task": task, "target": target, "metric": r["metric"], "axis": r["axis"], "value": r["value"],
            "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n_models": int(r["n_models"]),
            "n_units": int(r.get("n_units", r["n_models"]))}


def _overall_rows(parts: list[tuple[list[dict], np.ndarray]], base: dict, target: str) -> list[dict]:
    """Mean over tasks of each task-level metric; interval from the averaged replicates."""
    rows = []
    keyed = [{(r["metric"], r["axis"]): (i, r) for i, r in enumerate(rows_)} for rows_, _ in parts]
    for metric in dict.fromkeys(r["metric"] for r in parts[0][0]):
        if metric == "psi_axis":
            continue  # axes differ between tasks
        idx = [k[(metric, "")][0] for k in keyed]
        values = np.array([k[(metric, "")][1]["value"] for k in keyed], dtype=float)
        boots = np.column_stack([b[:, i] for (_, b), i in zip(parts, idx)])
        with np.errstate(invalid="ignore"):
            finite = np.isfinite(boots)
            mean_boots = np.where(finite.any(axis=1), np.nansum(boots, axis=1) / np.maximum(finite.sum(axis=1), 1), np.nan)
        # the per-task replicates are centred on their estimates: centre their mean on the mean too
        mean_boots = mean_boots + (float(np.nanmean(values)) - float(np.nanmedian(mean_boots))
                                   if np.isfinite(values).any() and np.isfinite(mean_boots).any() else 0.0)
        low, high = percentile_interval(mean_boots)
        task_rows = [k[(metric, "")][1] for k in keyed]
        value = float(np.mean(values[np.isfinite(values)])) if np.isfinite(values).any() else float("nan")
        lo_bound, hi_bound = metric_spec(metric).bounds
        if np.isfinite(value):
            # a bias-corrected estimate may lie outside the metric's range (CMI below 0): the
            # interval is clipped to the range widened to the estimate, and always contains it
            # (as the task rows do, benchmark/metrics/task.py)
            lo_bound, hi_bound = min(lo_bound, value), max(hi_bound, value)
            low, high = min(max(low, lo_bound), value), max(min(high, hi_bound), value)
        else:
            low, high = max(low, lo_bound), min(high, hi_bound)
        rows.append({**base, "task": "overall", "target": target, "metric": metric, "axis": "", "value": value,
                     "ci_low": low, "ci_high": high, "n_models": int(sum(r["n_models"] for r in task_rows)),
                     "n_units": int(sum(r.get("n_units", r["n_models"]) for r in task_rows))})
    return rows


def git_commit() -> str:
    """The commit of the gapbench code that is running (its own repository, not the cwd's)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=here, capture_output=True, text=True,
                             check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        try:
            return f"gapbench-{metadata.version('gapbench')}"
        except metadata.PackageNotFoundError:
            return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("gapbench", "torch", "numpy", "scipy", "pandas", "mlflow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def runs_table(predictions: pd.DataFrame, refs: list[PredictorRef], oracle: pd.DataFrame, *, zoo: ZooRef,
               split: str, sandboxed: bool, commit: str | None = None, day: str | None = None) -> pd.DataFrame:
    """One provenance row per predictor with predictions, and the seed oracle's."""
    commit = commit or git_commit()
    day = day or date.today().isoformat()
    versions = json.dumps(package_versions(), sort_keys=True)
    rows = []
    for ref in refs:
        mine = predictions[predictions["predictor"] == ref.name]
        if mine.empty:
            continue
        m = ref.meta
        rows.append({
            "zoo_id": zoo.zoo_id, "split": split, "predictor": ref.name, "version": ref.version,
            "code_hash": ref.code_hash, "family": m.family, "kind": m.kind, "reference": m.reference, "url": m.url,
            "requires": ",".join(m.requires), "notes": m.notes, "sandboxed": bool(sandboxed), "git_commit": commit,
            "package_versions": versions, "seconds_median": float(mine["seconds"].median()),
            "seconds_total": float(mine["seconds"].sum()), "failure_rate": float((mine["status"] != "ok").mean()),
            "n_models": int(len(mine)), "date": day,
        })
    rows.append({
        "zoo_id": zoo.zoo_id, "split": split, "predictor": ORACLE, "version": "1", "code_hash": "", "family": "oracle",
        "kind": "oracle", "reference": "another seed's gap of the same configuration (noise floor)", "url": "",
        "requires": "answers", "notes": "uses the answers: not a predictor, the best a predictor can hope for",
        "sandboxed": True, "git_commit": commit, "package_versions": versions, "seconds_median": 0.0,
        "seconds_total": 0.0, "failure_rate": 0.0, "n_models": int(len(oracle)), "date": day,
    })
    return RUNS.frame(rows)
