"""Attack: flood stdout and stderr (the old runner passed 4.8 GB of it to the terminal)."""

import os
import sys

from predictors.api import predictor

HINTS: dict = {}


@predictor(version="1", family="attack", reference="tests/adversarial", requires=())
def attack_flood(subject, *, seed=0):
    """Writes HINTS['mb'] MB to stdout and to stderr on the hinted models; returns 1.0."""
    if subject.model_id in HINTS.get("flood_on", ()):
        chunk = ("x" * 1023 + "\n") * 1024
        for _ in range(int(HINTS.get("mb", 32))):
            sys.stdout.write(chunk)
            os.write(2, chunk.encode())
        sys.stdout.flush()
    return 1.0
