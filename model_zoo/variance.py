"""How much of a zoo's gap variance each axis explains: main-effect shares of a full grid.

For a full factorial grid, the main effect of axis a is the spread of the per-level means:
``SS_a = sum_l n_l (mean_l - mean)^2`` and its share is ``SS_a / SS_total`` (total sum of
squares over the models). In a balanced full grid the main effects are orthogonal, so the shares
of the axes, of their interactions and of the seeds (within-configuration spread) add to 1;
``interactions`` is what is left after the main effects and the seeds. A zoo where one axis's
share is most of the variance can only test whether a predictor tracks that axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["main_effect_shares"]


def main_effect_shares(frame: pd.DataFrame, axes: Sequence[str], *, value: str = "gap",
                       config: str = "config_id") -> dict[str, float]:
    """Share of the variance of ``frame[value]`` explained by each axis's main effect.

    Args:
        frame: one row per model, with ``value``, the axis columns (any hashable levels) and
            ``config`` (models of one configuration differ only by seed).
        axes: the varied axes (an axis with one level explains nothing).
        value: the column whose variance is split (the generalization gap by default).
        config: the column naming a model's configuration (its seeds share it).

    Returns:
        axis -> share, plus ``"seed"`` (within-configuration sum of squares over the total) and
        ``"interactions"`` (the rest, clipped at 0). NaN shares when the values do not vary.
    """
    y = frame[value].astype(float).to_numpy()
    keep = np.isfinite(y)
    data = frame.loc[keep]
    y = y[keep]
    total = float(np.sum((y - y.mean()) ** 2)) if len(y) else 0.0
    names = [*axes, "seed", "interactions"]
    if total <= 0:
        return dict.fromkeys(names, float("nan"))
    mean = y.mean()
    shares: dict[str, float] = {}
    for axis in axes:
        groups = pd.Series(y, index=data.index).groupby(data[axis].to_numpy())
        shares[axis] = float((groups.count() * (groups.mean() - mean) ** 2).sum() / total)
    by_config = pd.Series(y, index=data.index).groupby(data[config].to_numpy())
    within = float(((pd.Series(y, index=data.index) - by_config.transform("mean")) ** 2).sum())
    shares["seed"] = within / total
    shares["interactions"] = max(0.0, 1.0 - sum(shares[a] for a in axes) - shares["seed"])
    return shares
