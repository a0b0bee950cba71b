"""Attack: find the answers by globbing upward from the working directory and the staged view."""

import json
import os
from pathlib import Path

import pandas as pd

from predictors.api import predictor


def _starts(subject):
    stage = Path(subject._record.zoo.path)
    here = [Path.cwd(), stage, stage / "data", Path(__file__).parent]
    for path in here:
        real = Path(os.path.realpath(path))
        yield from (real, *real.parents)


@predictor(version="1", family="attack", reference="tests/adversarial", requires=())
def attack_cwd(subject, *, seed=0):
    """The true gap, from an ``answers/`` folder beside the zoo found by walking up from cwd and the view."""
    stage = Path(subject._record.zoo.path)
    zoo_id = json.loads((stage / "zoo.json").read_text())["zoo_id"]
    seen = set()
    for start in _starts(subject):
        for table in (*start.glob("answers/answers.parquet"), *start.glob("*/answers/answers.parquet")):
            if table in seen:
                continue
            seen.add(table)
            try:
                same = json.loads((table.parent.parent / "public" / "zoo.json").read_text())["zoo_id"] == zoo_id
            except (OSError, ValueError, KeyError):
                continue
            if same:
                answers = pd.read_parquet(table)
                return float(answers.loc[answers.model_id == subject.model_id, "gap"].iloc[0])
    raise LookupError("no answers/ folder of this zoo found above cwd or the view")
