"""The bootstrap of the board: new training seeds for a fixed grid of configurations.

A zoo is a fixed grid of configurations (the spec chose them) trained with a few seeds each; what
is random is the training seed. So every replicate keeps every configuration (the grid stays
complete: Psi's groups, CMI's bins and the sign error's environments never change) and redraws
the seeds of each configuration: replicate model j of configuration c is

    x*_cj = m~_c + r*_cj,

the configuration's *bootstrap-world mean* m~_c plus a seed residual r* drawn with replacement
from the task's pooled within-configuration residuals (each rescaled by sqrt(n/(n-1)) to the
noise of one seed). A model's residuals of score, gap and test error are drawn together, so
their within-model correlation is kept. One draw (:func:`simulate`) serves every metric of a
task, so replicate r of every row is the same resampled zoo.

**Why not the observed means.** With 2-3 seeds the observed config means are the true means
plus noise, so they are more spread out than the truth: pairs that are really tied (every pair
of a random predictor) look decided, and a bootstrap around them flips their order too rarely;
Psi's and CMI's intervals came out 20-35% too narrow and CMI's bias correction removed half of
the bias (measured in docs/metrics.md). The bootstrap world therefore uses variance-matching
empirical-Bayes means (Louis 1984's constrained Bayes): the observed config means are split into
a grand mean, one main effect per axis (least squares on the grid) and the remaining interaction,
and each block k is scaled by sqrt(lambda_k), lambda_k = max(0, 1 - v / MS_k), MS_k the block's
mean square and v the seed-noise variance of a config mean. A block carrying no more spread than
seed noise vanishes (lambda = 0); a noise-free variable (a hyperparameter-only score) is kept
as observed (v = 0, lambda = 1).

Intervals are **re-centred**: the board estimates each metric's expected value over training seeds
at the zoo's design, and the replicates' deviations from their median stand for the estimate's
error; the interval is the percentile interval of the replicates reflected about their median
onto the estimate (:func:`recentre`), so it always contains the estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "SeedWorld",
    "bootstrap_ci",
    "layout",
    "percentile_interval",
    "recentre",
    "shrunk_means",
    "seed_world",
    "simulate",
]


def _axis_blocks(codes: np.ndarray, levels: np.ndarray) -> list[np.ndarray]:
    """Per axis, the ``(C, L - 1)`` reference-coded one-hot of the config's value."""
    n_cfg = codes.shape[0]
    blocks = []
    for i, n_levels in enumerate(levels):
        oh = np.zeros((n_cfg, int(n_levels)))
        oh[np.arange(n_cfg), codes[:, i]] = 1.0
        blocks.append(oh[:, 1:])
    return blocks


def shrunk_means(codes: np.ndarray, levels: np.ndarray, means: np.ndarray, noise_var: np.ndarray) -> np.ndarray:
    """Variance-matching empirical-Bayes configuration means (see the module docstring).

    ``means`` ``(C,)`` are the observed config means and ``noise_var`` ``(C,)`` the seed-noise
    variance of each (sigma^2 / n_c). Least squares on the grid splits ``means`` into a grand mean,
    one centred contribution e_i per axis and the residual u; axis i is scaled by
    sqrt(max(0, 1 - v / MS_i)), MS_i = sum_c e_i(c)^2 / (L_i - 1), v the mean noise variance, and
    u_c by sqrt(tau^2 / (tau^2 + noise_var_c)), tau^2 = max(0, MS_u - v), MS_u = sum u^2 / (C - p).
    """
    means = np.asarray(means, dtype=float)
    noise_var = np.asarray(noise_var, dtype=float)
    n_cfg = means.shape[0]
    v = float(noise_var.mean()) if n_cfg else 0.0
    if n_cfg == 0 or v <= 0.0:
        return means.copy()
    blocks = _axis_blocks(codes, levels)
    design = np.concatenate([np.ones((n_cfg, 1)), *blocks], axis=1)
    beta, *_ = np.linalg.lstsq(design, means, rcond=None)
    fit = design @ beta
    resid = means - fit
    out = np.full(n_cfg, float(fit.mean()))
    col = 1
    for i, block in enumerate(blocks):
        width = block.shape[1]
        effect = block @ beta[col : col + width]
        col += width
        effect = effect - effect.mean()
        df = int(levels[i]) - 1
        if df < 1:
            continue
        ms = float(np.sum(effect**2)) / df
        lam = max(0.0, 1.0 - v / ms) if ms > 0 else 0.0
        out += np.sqrt(lam) * effect
    dof = n_cfg - int(np.linalg.matrix_rank(design))
    if dof >= 1:
        tau2 = max(0.0, float(np.sum(resid**2)) / dof - v)
        out += np.sqrt(tau2 / (tau2 + noise_var)) * resid
    return out


@dataclass(frozen=True)
class SeedWorld:
    """A task's bootstrap world: shrunk config means and the pooled seed residuals, per variable.

    Attributes:
        n_seeds: ``(C,)`` seeds (models) of each configuration; replicates keep these counts.
        means: variable -> ``(C,)`` bootstrap-world means m~.
        residuals: variable -> ``(P,)`` pooled residuals rescaled to one seed's noise (row p of
            every variable comes from the same model); empty when no configuration has 2 seeds.
    """

    n_seeds: np.ndarray
    means: dict[str, np.ndarray]
    residuals: dict[str, np.ndarray]


def seed_world(
    codes: np.ndarray, levels: np.ndarray, members: np.ndarray, values: Mapping[str, np.ndarray]
) -> SeedWorld:
    """Build the bootstrap world of a task from per-model ``values`` (variable -> ``(M,)``).

    ``members`` is ``(C, S)``: the model indices of each configuration padded with -1 (as
    :class:`benchmark.metrics._frame.TaskArrays`). A variable's seed-noise variance is the pooled
    within-configuration variance sum (x - mean_c)^2 / sum (n_c - 1).
    """
    ok = members >= 0
    n_seeds = ok.sum(axis=1)
    idx = np.where(ok, members, 0)
    multi = n_seeds >= 2
    rows = members[multi][ok[multi]]  # models of configurations with >= 2 seeds
    cfg_of_row = np.repeat(np.flatnonzero(multi), n_seeds[multi])
    scale = np.sqrt(n_seeds[cfg_of_row] / np.maximum(n_seeds[cfg_of_row] - 1, 1))
    dof = int(np.sum(n_seeds[multi] - 1))
    means, residuals = {}, {}
    for name, x in values.items():
        x = np.asarray(x, dtype=float)
        per = np.where(ok, x[idx], 0.0)
        m = per.sum(axis=1) / np.maximum(n_seeds, 1)
        dev = x[rows] - m[cfg_of_row]
        sigma2 = float(np.sum(dev**2)) / dof if dof > 0 else 0.0
        means[name] = shrunk_means(codes, levels, m, sigma2 / np.maximum(n_seeds, 1))
        residuals[name] = dev * scale
    return SeedWorld(n_seeds=n_seeds, means=means, residuals=residuals)


def simulate(world: SeedWorld, n_boot: int, seed: int) -> dict[str, np.ndarray]:
    """``n_boot`` replicate zoos: variable -> ``(R, C, S)`` model values, NaN beyond a config's seeds.

    Residual rows are drawn with replacement (``numpy`` PCG64 seeded with ``seed``), one index per
    replicate model shared by all variables. Deterministic under ``seed``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n_seeds = world.n_seeds
    width = max(int(n_seeds.max()), 1) if n_seeds.size else 1
    valid = np.arange(width)[None, :] < n_seeds[:, None]
    n_pool = next(iter(world.residuals.values())).size if world.residuals else 0
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, max(n_pool, 1), size=(n_boot, n_seeds.size, width))
    out = {}
    for name, m in world.means.items():
        noise = world.residuals[name][pick] if n_pool else np.zeros(pick.shape)
        out[name] = np.where(valid[None], m[None, :, None] + noise, np.nan)
    return out


def layout(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """``(1, C, S)``: per-model ``values`` placed in the (configuration, seed) grid, NaN padded."""
    ok = members >= 0
    return np.where(ok, np.asarray(values, dtype=float)[np.where(ok, members, 0)], np.nan)[None]


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


def recentre(point: np.ndarray, replicates: np.ndarray) -> np.ndarray:
    """Replicates reflected about their median onto the estimate: ``point + median(rep) - rep``.

    The bootstrap pivot: ``rep - median(rep)`` stands for the estimate's error, so the truth lies
    near ``point - (rep - median(rep))`` (Efron and Tibshirani's basic interval, taken about the
    median). ``point`` is ``(k,)`` and ``replicates`` ``(R, k)``; NaN replicates stay NaN, and a
    column whose estimate is NaN becomes all NaN (no interval around an undefined value). The
    percentile interval of the result is the board's interval; it always contains the estimate.
    """
    point = np.asarray(point, dtype=float)
    reps = np.asarray(replicates, dtype=float)
    out = np.full_like(reps, np.nan)
    finite = np.isfinite(reps)
    for k in range(reps.shape[1]):
        col = finite[:, k]
        if np.isfinite(point[k]) and col.any():
            out[col, k] = point[k] + np.median(reps[col, k]) - reps[col, k]
    return out


def bootstrap_ci(
    df: pd.DataFrame,
    statistic: Callable[[pd.DataFrame], float],
    axes: list[str],
    *,
    variables: tuple[str, ...] = ("score", "gap", "test_error"),
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """The board's interval for any ``statistic`` of a task frame (slow; for references and tests).

    Builds the task's bootstrap world from the frame's ``variables`` columns (configurations sorted
    by ``config_id``, their models by ``seed``, as :func:`benchmark.metrics._frame.prepare` does),
    simulates ``n_boot`` replicate frames with the same ``seed`` as
    :func:`benchmark.metrics.score_task`, and returns the percentile interval of
    ``statistic(replicate)`` re-centred on ``statistic(df)``. Replicates where ``statistic`` is NaN
    are ignored.
    """
    from benchmark.metrics._frame import prepare

    arr = prepare(df, axes, "gap" if "gap" in df.columns else variables[1])
    cols = [c for c in variables if c in df.columns]
    order_frame = df.iloc[_model_order(df)].reset_index(drop=True)
    values = {c: pd.to_numeric(order_frame[c], errors="coerce").to_numpy(dtype=float) for c in cols}
    world = seed_world(arr.codes, arr.levels, arr.members, values)
    sims = simulate(world, n_boot, seed)
    ok = arr.members >= 0
    rows = order_frame.iloc[arr.members[ok]].reset_index(drop=True)
    reps = np.empty(n_boot)
    for r in range(n_boot):
        sample = rows.copy()
        for c in cols:
            sample[c] = sims[c][r][ok]
        reps[r] = float(statistic(sample))
    point = float(statistic(df))
    return percentile_interval(recentre(np.array([point]), reps[:, None])[:, 0], level)


def _model_order(df: pd.DataFrame) -> np.ndarray:
    """Row order of :func:`benchmark.metrics._frame.prepare`: by config_id, then seed."""
    cfg, _ = pd.factorize(df["config_id"], sort=True)
    rank = pd.to_numeric(df["seed"], errors="coerce").to_numpy(dtype=float) if "seed" in df else np.zeros(len(df))
    return np.lexsort((rank, cfg))
