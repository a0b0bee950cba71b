"""Model-selection regret: what trusting the predictor to pick a configuration costs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.metrics._frame import prepare

__all__ = ["regret_kernel", "selection_regret"]


def regret_kernel(score: np.ndarray, error: np.ndarray) -> np.ndarray:
    """``(R,)`` error of the lowest-scored config (mean over ties at the minimum) minus the lowest error.

    ``score`` and ``error`` are ``(R, C)`` config-level values of a batch of replicates.
    """
    score = np.atleast_2d(score)
    error = np.atleast_2d(error)
    if score.shape[1] == 0:
        return np.full(score.shape[0], np.nan)
    picked = score == score.min(axis=1, keepdims=True)
    chosen = (error * picked).sum(axis=1) / picked.sum(axis=1)
    return chosen - error.min(axis=1)


def selection_regret(df: pd.DataFrame, target: str = "test_error") -> float:
    """Regret of selecting the configuration the predictor scores lowest, on one task.

    Per configuration (seeds averaged: a user picks a recipe, not a seed), with s_c the mean
    score (predicted gap) and e_c the mean ``target`` (test error by default):

        regret = mean{ e_c : s_c = min_c' s_c' } - min_c e_c

    Ties at the lowest score are averaged (the expected regret of picking one of them at
    random), so the value does not depend on row order. 0 means the predictor picks a best
    configuration. The predictor ranks by predicted *gap*, so this also tells whether a small
    predicted gap goes with a low test error on the task.
    """
    arr = prepare(df, (), target)
    return float(regret_kernel(arr.score[None, :], arr.target[None, :])[0])
