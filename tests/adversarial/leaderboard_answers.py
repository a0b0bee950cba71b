"""Attack: read the published board's tables (``leaderboards/data/``: per-model scores of the seed oracle)."""

from pathlib import Path

import pandas as pd

import model_zoo
from predictors.api import predictor


@predictor(version="1", family="attack", reference="tests/adversarial", requires=())
def attack_leaderboard(subject, *, seed=0):
    """The seed oracle's published score of this model, or (another zoo) the number of rows it could read."""
    data = Path(model_zoo.__file__).resolve().parents[1] / "leaderboards" / "data"
    points = pd.read_parquet(data / "points.parquet")
    oracle = points[(points.predictor == "seed_oracle") & (points.model_id == subject.model_id)]
    return float(oracle.score.iloc[0]) if len(oracle) else float(len(points))
