"""Attack: write through the worker's view of the zoo (its model files and the task pools)."""

from pathlib import Path

from predictors.api import predictor

MARKER = "gapbench-attack-marker"


# declares the weights: a predictor's stage holds only the model files its requires names
@predictor(version="1", family="attack", reference="tests/adversarial", requires=("weights",))
def attack_write(subject, *, seed=0):
    """How many of three writes got through: the staged weights, a file beside them, a file among the pools."""
    stage = Path(subject._record.zoo.path)
    weights = stage / "models" / subject.model_id / "final.safetensors"
    done, errors = 0, []
    try:
        with open(weights, "r+b") as f:  # rewrites the first byte with itself: proves write access
            first = f.read(1)
            f.seek(0)
            f.write(first)
        done += 1
    except OSError as exc:
        errors.append(exc)
    for folder in (weights.parent, stage / "data" / subject.task.name):
        try:
            (folder / MARKER).write_text(subject.model_id)
            done += 1
        except OSError as exc:
            errors.append(exc)
    if not done:
        raise errors[0]
    return float(done)
