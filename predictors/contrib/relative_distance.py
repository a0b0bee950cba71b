"""A worked example of a submitted predictor: one file, one function, one float.

Copy this file, change the function, and run ``make evaluate PREDICTOR=path/to/your_file.py``.
"""

from __future__ import annotations

import torch

from predictors.api import Subject, predictor


@predictor(
    version="1",
    family="norm",
    reference="example: Nagarajan & Kolter 2019 (distance from initialisation), normalised",
    requires=("weights", "init"),
)
def relative_distance(subject: Subject, *, seed: int = 0) -> float:
    """||w_final - w_init|| / ||w_init||: how far training moved the weights, relative to their scale."""
    final = torch.cat([p.detach().reshape(-1) for p in subject.model("final").parameters()]).double()
    init = torch.cat([p.detach().reshape(-1) for p in subject.model("init").parameters()]).double()
    return float((final - init).norm() / init.norm())
