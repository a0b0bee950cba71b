"""Which models of a zoo train together as one population: a deterministic function of the spec.

Torch-free (the build imports it at once; ``model_zoo.population`` trains what it plans).
"""

from __future__ import annotations

from typing import Any

from model_zoo.spec import ModelConfig

VECTORISED_ARCHITECTURES: tuple[str, ...] = ("mlp", "cnn", "bow_mlp", "m5", "spec_cnn", "spec_mlp", "text_cnn")
"""Architectures model_zoo.population trains as populations (others train alone)."""

DEFAULT_POPULATION_SIZE = 16
"""Most members per population (docs/population.md has the measurements behind it)."""

_POPULATION_FIELDS = ("task", "architecture", "width", "depth", "batch_size", "train_size", "max_steps", "eval_every")


def population_key(cfg: Any) -> tuple | None:
    """What the members of one population share, or None when ``cfg`` trains alone.

    Shapes (task, architecture, width, depth, batch size, train-set size: the same steps per
    epoch and the same batch shape at every step) and the check schedule (step cap, check
    interval). Everything else (lr, optimizer, weight decay, dropout, label noise,
    augmentation, seed, target, window) may differ between members.
    """
    if cfg.architecture not in VECTORISED_ARCHITECTURES:
        return None
    return tuple(getattr(cfg, f) for f in _POPULATION_FIELDS)


def plan_populations(configs: list[ModelConfig], size: int = DEFAULT_POPULATION_SIZE) -> list[list[int]]:
    """Indices into ``configs`` grouped into populations of at most ``size`` members.

    Configs with equal `population_key` are grouped in ``configs`` order (a spec's experiment
    and grid order, so neighbours share their leading axes and thus optimizer groups) and cut
    into the fewest chunks of at most ``size``, as equal as possible. A function of the configs
    and ``size`` only (never of the worker count); ``size=1`` trains every model alone. A
    member's numbers do not depend on its population (model_zoo.population), so the plan
    changes speed, never bits.
    """
    if size < 1:
        raise ValueError(f"population size must be >= 1, got {size}")
    groups: dict[tuple, list[int]] = {}
    order: list[list[int]] = []
    for i, mc in enumerate(configs):
        key = population_key(mc.train) if size > 1 else None
        if key is None:
            order.append([i])
        elif key in groups:
            groups[key].append(i)
        else:
            groups[key] = [i]
            order.append(groups[key])
    plan: list[list[int]] = []
    for members in order:
        chunks = -(-len(members) // size)
        base, extra = divmod(len(members), chunks)
        start = 0
        for c in range(chunks):
            stop = start + base + (1 if c < extra else 0)
            plan.append(members[start:stop])
            start = stop
    return plan
