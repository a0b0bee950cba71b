"""Gradient noise scale (McCandlish, Kaplan, Amodei & the OpenAI Dota team 2018).

B_simple = tr(Sigma) / |G|^2 at the final weights (their Appendix A). Their two-batch-size
estimator of |G|^2 comes out negative at a converged minimum, where |G| is tiny and the
difference of two noisy norms is all noise; the training set is finite and small here, so
|G|^2 is computed exactly from the full-batch gradient and tr(Sigma) from small batches with
the finite-population correction (``noise_scale_full_batch``). The score is log B_simple: a
gradient dominated by noise (higher B_simple) predicts a larger gap.

The population is the whole training set (not the subsample of ``predictors.objective``):
over a subsample of n examples |G|^2 itself carries sampling noise tr(Sigma) / n, which would
cap B_simple near n.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from predictors.api import Subject, predictor
from predictors.estimators import gradient_noise
from predictors.objective import flat_gradient, full_gradient

MCCANDLISH = "McCandlish, Kaplan, Amodei et al. 2018, An empirical model of large-batch training (arXiv:1812.06162)"
B_SMALL = 8
REPEATS = 20


@predictor(version="2", family="noise_scale", reference=MCCANDLISH, requires=("weights", "train_data"))
def gradient_noise_scale(subject: Subject, *, seed: int = 0) -> float:
    """log B_simple = log tr(Sigma)/|G|^2: exact full-batch |G|^2, tr(Sigma) from 20 batches of 8."""
    model = subject.model("final")
    x, y = subject.train_data()
    gen = torch.Generator().manual_seed(seed)
    n = len(y)
    full = full_gradient(model, x, y)
    small = np.array([
        float(flat_gradient(model, x[idx], y[idx]).pow(2).sum())
        for idx in (torch.randperm(n, generator=gen)[:B_SMALL] for _ in range(REPEATS))
    ])  # fmt: skip
    result = gradient_noise.noise_scale_full_batch(small, float(full.pow(2).sum()), B_SMALL, n)
    return math.log(result.b_simple)
