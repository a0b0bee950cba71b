"""Validation of a task's model frame and its reduction to arrays the metric kernels use.

A *task frame* has one row per model of one task, with columns ``model_id``, ``config_id``
(shared by the seeds of one configuration), ``seed``, one ``hp.<axis>`` column per grid axis
holding the value **as the spec wrote it** (a string), ``score`` (the predictor's output) and the
targets (``gap``, ``test_error``, optionally ``shift_error``).

An optional integer column ``fold`` marks a *cross-seed* predictor (the seed oracle, whose score
for a model is computed from the other seeds' answers): its config-level metrics are computed on
one model per configuration at a time (fold k = the k-th seed of every configuration) and
averaged over folds, because averaging such a score over all seeds of a configuration would
return the configuration's mean answer itself (:func:`benchmark.metrics.score_task` does this; the
single-metric functions ignore ``fold``). Models are ordered by ``seed`` within their configuration
(``fold`` orders them when present).

Hyperparameter values are compared as the stored strings: "0.001585" and "0.0015848" are two
values. Nothing here parses them to numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["KNOWN_TARGETS", "TaskArrays", "average_over_seeds", "axis_column", "prepare"]

KNOWN_TARGETS: tuple[str, ...] = ("gap", "test_error", "shift_error")
"""Numeric answer columns that are averaged over seeds when present."""

_HINT_AXIS = (
    "axes are named without the 'hp.' prefix, e.g. axes=['lr', 'width'] for columns "
    "'hp.lr', 'hp.width'"
)


def axis_column(df: pd.DataFrame, axis: str) -> str:
    """The column holding ``axis``: ``hp.<axis>`` if present, else a plain column ``axis``.

    The plain-column fallback lets a caller use e.g. ``architecture`` as an axis when a task
    mixes architectures.
    """
    for col in (f"hp.{axis}", axis):
        if col in df.columns:
            return col
    hp_cols = [c[3:] for c in df.columns if str(c).startswith("hp.")]
    raise ValueError(
        f"axis {axis!r}: no column 'hp.{axis}' (or {axis!r}) in the frame; "
        f"hyperparameter axes present: {hp_cols}. Hint: {_HINT_AXIS}."
    )


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{what}: the frame lacks column(s) {missing}; it has {list(df.columns)}. "
            "Hint: pass one task's models with model_id, config_id, seed, hp.<axis>..., score "
            "and the target columns (see docs/ARCHITECTURE.md, 'Tables')."
        )


def _check_strings(df: pd.DataFrame, col: str) -> None:
    values = df[col]
    bad = values[~values.map(lambda v: isinstance(v, str))]
    if len(bad):
        raise TypeError(
            f"column {col!r} must hold the grid values as strings, as the spec wrote them; "
            f"found {type(bad.iloc[0]).__name__} value {bad.iloc[0]!r}. Hint: build hp columns "
            "with model_zoo.spec.format_value, never from re-parsed floats (metrics group by "
            "the exact strings)."
        )


def _check_finite(df: pd.DataFrame, col: str) -> None:
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        ids = df["model_id"].to_numpy()[bad][:5].tolist() if "model_id" in df else []
        raise ValueError(
            f"column {col!r} has {int(bad.sum())} non-finite value(s) (models {ids}...). "
            "Hint: drop failed predictions and missing answers before scoring "
            "(score_task does this and reports n_models)."
        )


@dataclass(frozen=True)
class TaskArrays:
    """One task reduced to arrays; configs sorted by ``config_id``.

    Attributes:
        axes: the axis names.
        config_ids: ``(C,)`` the sorted unique config ids.
        codes: ``(C, A)`` int code of each config's value on each axis (codes index the sorted
            distinct strings of that axis).
        levels: ``(A,)`` number of distinct values per axis.
        values: per axis, the distinct strings in code order.
        score: ``(C,)`` mean score over the config's seeds.
        target: ``(C,)`` mean target over the config's seeds.
        extra: other known target columns, seed-averaged, ``name -> (C,)``.
        model_score, model_target: ``(M,)`` per-model values, rows ordered by config.
        model_extra: the other known target columns per model, ``name -> (M,)`` (may hold NaN).
        model_config: ``(M,)`` config index of each model.
        members: ``(C, S)`` model indices of each config (ordered by seed, or by ``fold`` when the
            frame has one), padded with -1.
        folded: True when the frame has a ``fold`` column (a cross-seed predictor, see above).
    """

    axes: tuple[str, ...]
    config_ids: np.ndarray
    codes: np.ndarray
    levels: np.ndarray
    values: tuple[tuple[str, ...], ...]
    score: np.ndarray
    target: np.ndarray
    extra: dict[str, np.ndarray]
    model_score: np.ndarray
    model_target: np.ndarray
    model_extra: dict[str, np.ndarray]
    model_config: np.ndarray
    members: np.ndarray
    folded: bool = False

    @property
    def n_configs(self) -> int:
        return int(self.config_ids.shape[0])

    @property
    def n_models(self) -> int:
        return int(self.model_score.shape[0])

    @property
    def n_seeds(self) -> np.ndarray:
        """``(C,)`` number of models (seeds) of each config."""
        return (self.members >= 0).sum(axis=1)


def prepare(df: pd.DataFrame, axes: Sequence[str], target: str) -> TaskArrays:
    """Validate a task frame and reduce it to :class:`TaskArrays` (seed means per config).

    Raises ``ValueError``/``TypeError`` naming the offending column when a column is missing,
    an hp column holds non-strings, score/target are not finite, or one ``config_id`` has two
    different hyperparameter settings.
    """
    axes = tuple(axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"axes {list(axes)} name an axis twice")
    _require(df, ["config_id", "score", target], "scoring")
    if len(df) == 0:
        raise ValueError("the task frame is empty: there are no models to score")
    cols = [axis_column(df, a) for a in axes]
    for col in cols:
        _check_strings(df, col)
    _check_finite(df, "score")
    _check_finite(df, target)

    cfg_codes, config_ids = pd.factorize(df["config_id"], sort=True)
    n_cfg = len(config_ids)
    codes = np.empty((n_cfg, len(axes)), dtype=np.int64)
    levels = np.empty(len(axes), dtype=np.int64)
    values: list[tuple[str, ...]] = []
    for k, col in enumerate(cols):
        vcodes, uniques = pd.factorize(df[col], sort=True)
        per_cfg = np.full(n_cfg, -1, dtype=np.int64)
        per_cfg[cfg_codes] = vcodes
        # Every model of a config must carry the config's value.
        if np.any(per_cfg[cfg_codes] != vcodes):
            bad = np.flatnonzero(per_cfg[cfg_codes] != vcodes)[0]
            cid = config_ids[cfg_codes[bad]]
            raise ValueError(
                f"config_id {cid!r} has more than one value in column {col!r}; seeds of one "
                "config must share every hyperparameter. Hint: config_id is the hash of the "
                "config without the seed (model_zoo.spec)."
            )
        codes[:, k] = per_cfg
        levels[k] = len(uniques)
        values.append(tuple(str(u) for u in uniques))

    counts = np.bincount(cfg_codes, minlength=n_cfg)

    def cfg_mean(col: str) -> np.ndarray:
        x = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        return np.bincount(cfg_codes, weights=x, minlength=n_cfg) / counts

    extra = {t: cfg_mean(t) for t in KNOWN_TARGETS if t in df.columns and t != target}

    folded = "fold" in df.columns
    within = "fold" if folded else ("seed" if "seed" in df.columns else None)
    if within is None:
        order = np.argsort(cfg_codes, kind="stable")
    else:
        _check_finite(df, within)
        rank = pd.to_numeric(df[within], errors="coerce").to_numpy(dtype=float)
        order = np.lexsort((rank, cfg_codes))
    model_config = cfg_codes[order]
    model_score = df["score"].to_numpy(dtype=float)[order]
    model_target = df[target].to_numpy(dtype=float)[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    width = int(counts.max())
    members = np.full((n_cfg, width), -1, dtype=np.int64)
    rank_in_cfg = np.arange(len(order)) - starts[model_config]
    members[model_config, rank_in_cfg] = np.arange(len(order))

    return TaskArrays(
        axes=axes,
        config_ids=np.asarray(config_ids),
        codes=codes,
        levels=levels,
        values=tuple(values),
        score=cfg_mean("score"),
        target=cfg_mean(target),
        extra=extra,
        model_score=model_score,
        model_target=model_target,
        model_extra={
            t: pd.to_numeric(df[t], errors="coerce").to_numpy(dtype=float)[order]
            for t in KNOWN_TARGETS
            if t in df.columns and t != target
        },
        model_config=model_config,
        members=members,
        folded=folded,
    )


def average_over_seeds(df: pd.DataFrame, axes: Sequence[str], target: str = "gap") -> pd.DataFrame:
    """One row per configuration: the mean score and mean target over its seeds.

    Columns: ``config_id``, the axis columns (the exact strings), ``score``, ``target`` and any
    other of ``gap``/``test_error``/``shift_error`` present (each the mean over seeds), and
    ``n_seeds``. Rows are sorted by ``config_id``. Metrics that work on configurations (Psi, CMI,
    regret) use this first, so seed noise in the target is averaged out.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"model_id": ["a", "b", "c"], "config_id": ["x", "x", "y"],
    ...                    "seed": [0, 1, 0], "hp.lr": ["0.1", "0.1", "0.01"],
    ...                    "score": [1.0, 3.0, 0.5], "gap": [0.2, 0.4, 0.1]})
    >>> average_over_seeds(df, ["lr"])[["config_id", "hp.lr", "score", "gap", "n_seeds"]]
      config_id hp.lr  score  gap  n_seeds
    0         x   0.1    2.0  0.3        2
    1         y  0.01    0.5  0.1        1
    """
    arr = prepare(df, axes, target)
    out = {"config_id": arr.config_ids}
    for k, a in enumerate(arr.axes):
        out[axis_column(df, a)] = np.asarray(arr.values[k], dtype=object)[arr.codes[:, k]]
    out["score"] = arr.score
    out[target] = arr.target
    out.update(arr.extra)
    out["n_seeds"] = (arr.members >= 0).sum(axis=1)
    return pd.DataFrame(out)
