"""Bootstrap percentile intervals that resample configurations (all seeds of a config together)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

__all__ = ["bootstrap_ci", "percentile_interval", "resample_configs"]


def resample_configs(n_configs: int, n_boot: int, seed: int) -> np.ndarray:
    """``(n_boot, n_configs)`` config indices drawn with replacement (``numpy`` PCG64, ``seed``).

    Configs are indexed in sorted ``config_id`` order; :func:`bootstrap_ci` and
    :func:`benchmark.metrics.score_task` share this draw, so they agree under one seed.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_configs, size=(n_boot, n_configs))


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates, ignoring NaN ones; (NaN, NaN) if all are NaN."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    alpha = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(v, [alpha, 100.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    df: pd.DataFrame,
    statistic: Callable[[pd.DataFrame], float],
    *,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over configurations.

    Each replicate draws as many configurations as the task has, with replacement, and keeps
    all seeds of each drawn configuration. A configuration drawn twice enters as two distinct
    configurations (its ``config_id`` and ``model_id`` get a ``#k`` suffix), so seed averaging
    does not merge the copies; hp values are untouched. Replicates where ``statistic`` returns
    NaN (e.g. no group left) are ignored; the interval is the (1-level)/2 and (1+level)/2
    percentiles of the rest (Efron's percentile method). Deterministic under ``seed``.
    """
    if "config_id" not in df.columns:
        raise ValueError(
            "bootstrap_ci: the frame has no 'config_id' column; it resamples configurations "
            "(all seeds of a config together). Hint: use the manifest's config_id."
        )
    cfg, cids = pd.factorize(df["config_id"], sort=True)
    n_cfg = len(cids)
    order = np.argsort(cfg, kind="stable")
    counts = np.bincount(cfg, minlength=n_cfg)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    draws = resample_configs(n_cfg, n_boot, seed)
    config_ids = df["config_id"].astype(str).to_numpy()
    model_ids = df["model_id"].astype(str).to_numpy() if "model_id" in df.columns else None
    values = np.empty(n_boot)
    for r, sel in enumerate(draws):
        sizes = counts[sel]
        copy = np.repeat(np.arange(n_cfg), sizes)
        offset = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        rows = order[starts[sel][copy] + offset]
        sample = df.iloc[rows].copy()
        suffix = np.char.add("#", copy.astype(str))
        sample["config_id"] = np.char.add(config_ids[rows].astype(str), suffix)
        if model_ids is not None:
            sample["model_id"] = np.char.add(model_ids[rows].astype(str), suffix)
        values[r] = float(statistic(sample))
    return percentile_interval(values, level)
