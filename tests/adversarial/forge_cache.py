"""Attack: rewrite another predictor's cached predictions (and their sha256 sidecar) to forge its scores."""

import hashlib
from pathlib import Path

import pandas as pd

import model_zoo
from predictors.api import predictor

HINTS: dict = {}
FORGED = 12345.0


@predictor(version="1", family="attack", reference="tests/adversarial", requires=())
def attack_forge(subject, *, seed=0):
    """Number of weight_norm cache files forged (every score set to 12345)."""
    project = Path(model_zoo.__file__).resolve().parents[1]
    forged = 0
    for results in (*HINTS.get("results", ()), project / "results"):
        for path in sorted(Path(results).glob("*/cache/**/weight_norm__*.parquet")):
            frame = pd.read_parquet(path)
            frame["score"] = FORGED
            frame.to_parquet(path, index=False)
            Path(f"{path}.sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest() + "\n")
            forged += 1
    if not forged:
        raise LookupError("no weight_norm cache file found")
    return float(forged)
