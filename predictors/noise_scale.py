"""Gradient noise scale (McCandlish, Kaplan, Amodei & the OpenAI Dota team 2018).

B_simple = tr(Sigma) / |G|^2 at the final weights, by the unbiased two-batch-size estimator
(their Appendix A). At a converged minimum |G| is small and B_simple large; the score is
log B_simple, so a noisier-than-signal gradient (higher B_simple) predicts a larger gap.
"""

from __future__ import annotations

import math

import torch

from predictors.api import Subject, predictor
from predictors.estimators import noise_scale
from predictors.probes import flat_gradient

MCCANDLISH = "McCandlish, Kaplan, Amodei et al. 2018, An empirical model of large-batch training (arXiv:1812.06162)"
B_SMALL = 8
B_BIG = 128
REPEATS = 20


@predictor(version="1", family="noise_scale", reference=MCCANDLISH, requires=("weights", "train_data"))
def gradient_noise_scale(subject: Subject, *, seed: int = 0) -> float:
    """log B_simple from 20 pairs of gradients at batch sizes 8 and min(128, n/2)."""
    model = subject.model("final")
    x, y = subject.train_data()
    b_big = min(B_BIG, len(y) // 2)

    def grad_fn(idx) -> torch.Tensor:
        idx = torch.as_tensor(idx)
        return flat_gradient(model, x[idx], y[idx])

    result = noise_scale.gradient_noise_scale(grad_fn, len(y), B_SMALL, b_big, n_repeats=REPEATS, seed=seed)
    return math.log(result.b_simple)
