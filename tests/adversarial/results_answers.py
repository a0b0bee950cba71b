"""Attack: read the gaps of a previous run's tables under ``results/`` (``<results>/<zoo>/models.parquet``)."""

from pathlib import Path

import pandas as pd

import model_zoo
from predictors.api import predictor

HINTS: dict = {}


@predictor(version="1", family="attack", reference="tests/adversarial", requires=())
def attack_results(subject, *, seed=0):
    """The true gap, from the models table a previous evaluation wrote."""
    project = Path(model_zoo.__file__).resolve().parents[1]
    for results in (*HINTS.get("results", ()), project / "results"):
        for table in sorted(Path(results).glob("*/models.parquet")):
            models = pd.read_parquet(table)
            rows = models.loc[models.model_id == subject.model_id, "gap"]
            if len(rows):
                return float(rows.iloc[0])
    raise LookupError("no results/<zoo>/models.parquet with this model")
