"""Effective model complexity (Nakkiran, Kaplun, Bansal, Yang, Barak & Sutskever 2019, "Deep
double descent: where bigger models and more data hurt", ICLR 2020).

EMC_{D,eps}(T) = max { n : E_{S ~ D^n} [ Error_S(T(S)) ] <= eps }: the largest training-set
size on which the training procedure T (this model's recipe: architecture, width, optimizer,
learning rate, batch size, step cap, label noise) still reaches training error <= eps
(eps = 0.1 as in the paper). The score is log(EMC / n_train): a procedure with capacity to
spare relative to its data predicts a larger gap.

Cheaper default protocol (shown on the board), so that the whole board fits the CPU budget:
one seed per size (the paper averages several), bisection on n in
[n_train / 4, min(2 n_train, pool)] to a tolerance of n_train / 2 (4 retrainings), and each
retraining capped at 200 steps. With that cap T is "this recipe for 200 steps": the EMC of a
fixed training budget, as in the paper's epoch-wise analysis.
"""

from __future__ import annotations

import math

from predictors.api import Subject, predictor
from predictors.estimators import emc

EPS = 0.1
GROWTH = 2
N_MIN_FRACTION = 4  # bisection starts at n_train // 4
TOL_FRACTION = 2  # ... and stops at a bracket of n_train // 2
N_SEEDS = 1
RETRAIN_STEPS = 200


@predictor(
    version="2",
    family="complexity",
    reference="Nakkiran et al. 2019, Deep double descent: where bigger models and more data hurt (ICLR 2020)",
    requires=("retrain", "hparams"),
    notes="cheaper protocol: 1 seed per size, bisection on [n/4, 2n] to tolerance n/2, retraining capped at 200 steps",
)
def effective_model_complexity(subject: Subject, *, seed: int = 0) -> float:
    """log(EMC / n_train), EMC found by bisection on n with retraining through subject.retrain."""
    n_train = int(subject.config["train_size"])
    n_max = min(GROWTH * n_train, subject.pool_size)
    n_min = max(2, n_train // N_MIN_FRACTION)

    def train_error_at(n: int, s: int) -> float:
        return subject.retrain(n, seed=seed * 1000 + s, max_steps=RETRAIN_STEPS).train_error

    result = emc.effective_model_complexity(
        train_error_at, n_min, n_max, eps=EPS, n_seeds=N_SEEDS, tol=max(1, n_train // TOL_FRACTION)
    )
    return math.log(max(result.emc, 1) / n_train)
