"""Attack (or accident): a predictor file that fails at import; only this file may fail."""

from predictors.api import predictor

raise ImportError("broken_file.py: this module cannot be imported")


@predictor(version="1", family="attack", reference="tests/adversarial", requires=())
def attack_broken(subject, *, seed=0):
    """Never reached."""
    return 0.0
