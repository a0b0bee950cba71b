"""Attack: declare a budget of 1e9 s, sleep past the runner's ceiling, and leave a process behind."""

import subprocess
import time

from predictors.api import predictor

HINTS: dict = {}


@predictor(version="1", family="attack", reference="tests/adversarial", requires=(), budget_seconds=1e9)
def attack_budget(subject, *, seed=0):
    """Sleeps (with a detached ``sleep`` child) on the hinted models, 1.0 at once on the others."""
    if subject.model_id not in HINTS.get("sleep_on", ()):
        return 1.0
    subprocess.Popen(["sleep", HINTS.get("marker", "4321")], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1e9)
    return 1.0
