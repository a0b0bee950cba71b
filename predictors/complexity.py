"""Effective model complexity (Nakkiran, Kaplun, Bansal, Yang, Barak & Sutskever 2019, "Deep
double descent: where bigger models and more data hurt", ICLR 2020).

EMC_{D,eps}(T) = max { n : E_{S ~ D^n} [ Error_S(T(S)) ] <= eps }: the largest training-set
size on which the training procedure T (this model's recipe: architecture, width, optimizer,
learning rate, batch size, step cap, label noise) still reaches training error <= eps
(eps = 0.1 as in the paper). The score is log(EMC / n_train): a procedure with capacity to
spare relative to its data predicts a larger gap.

Cheaper default protocol (shown on the board): one seed per size, bisection on
n in [n_train / 2, min(4 n_train, pool)] to a relative tolerance of 1/8 of n_train, and each
retraining capped at the zoo's step cap. The paper averages several seeds.
"""

from __future__ import annotations

import math

from predictors.api import Subject, predictor
from predictors.estimators import emc

EPS = 0.1
GROWTH = 4


@predictor(
    version="1",
    family="complexity",
    reference="Nakkiran et al. 2019, Deep double descent: where bigger models and more data hurt (ICLR 2020)",
    requires=("retrain", "hparams"),
    notes="cheaper protocol: 1 seed per size, bisection on [n/2, 4n] to tolerance n/8",
)
def effective_model_complexity(subject: Subject, *, seed: int = 0) -> float:
    """log(EMC / n_train), EMC found by bisection on n with retraining through subject.retrain."""
    n_train = int(subject.config["train_size"])
    n_max = min(GROWTH * n_train, subject.pool_size)
    n_min = max(2, n_train // 2)

    def train_error_at(n: int, s: int) -> float:
        return subject.retrain(n, seed=seed * 1000 + s).train_error

    result = emc.effective_model_complexity(
        train_error_at, n_min, n_max, eps=EPS, n_seeds=1, tol=max(1, n_train // 8)
    )
    return math.log(max(result.emc, 1) / n_train)
