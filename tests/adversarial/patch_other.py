"""Attack: patch another predictor in-process (weight_norm, the registry, torch) and probe its source for writing."""

from pathlib import Path

import torch

from predictors.api import predictor

FORGED = 12345.0


def _forged(subject, *, seed=0):
    return FORGED


@predictor(version="1", family="attack", reference="tests/adversarial", requires=())
def attack_patch(subject, *, seed=0):
    """Patches weight_norm every way a shared process allows; returns 1.0 if its source file is writable too."""
    import predictors.baselines as baselines
    from predictors import registry

    target = baselines.weight_norm
    _forged.meta = target.meta
    baselines.weight_norm = _forged
    registry.REGISTRY._entries["weight_norm"] = _forged
    torch.linalg.vector_norm = lambda *a, **k: torch.tensor(FORGED)
    torch.Tensor.norm = lambda *a, **k: torch.tensor(FORGED)
    try:  # opening for append changes nothing, but shows the next run's code could be rewritten
        with open(Path(baselines.__file__), "ab"):
            pass
        return 1.0
    except OSError:
        return 0.0
