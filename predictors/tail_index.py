"""Tail-index predictors: heavy tails of gradient noise, of trajectory increments, of weight spectra.

- ``sgn_tail_index``: Simsekli, Sagun & Gurbuzbalaban 2019 measure the stability index alpha
  of stochastic-gradient noise U_k = g_{B_k}(w) - g(w) with the Mohammadi et al. 2015
  estimator; they report heavier tails (smaller alpha) for better-generalizing settings, so
  the score is alpha itself (higher alpha = larger predicted gap).
- ``trajectory_tail_index``: the same estimator on the increments w_{t+1} - w_t of the
  recorded post-convergence window (Simsekli et al. 2020 relate the tail index of the
  iterates' process to generalization). Gaussian random projections keep alpha-stable
  indices, so projected windows are used as they are.
- ``ww_alpha`` / ``ww_alpha_hat``: Martin & Mahoney 2021 ("Predicting trends in the quality of
  state-of-the-art neural networks without access to training or testing data"): the
  power-law exponent alpha of each layer's ESD (eigenvalues of W^T W / N, xmin by minimal KS
  distance as WeightWatcher), averaged over layers, and the weighted alpha-hat = alpha *
  log10(lambda_max). Smaller = better, so both are used as they are.
"""

from __future__ import annotations

import numpy as np
import torch

from predictors.api import Subject, predictor
from predictors.estimators import powerlaw, tail_index
from predictors.probes import flat_gradient, full_gradient, subsample

SIMSEKLI = "Simsekli, Sagun & Gurbuzbalaban 2019, A tail-index analysis of stochastic gradient noise in deep neural networks (ICML)"
MARTIN = "Martin & Mahoney 2021, Predicting trends in the quality of state-of-the-art neural networks (Nature Communications)"
SGN_MINIBATCHES = 50
SGN_MAX_EXAMPLES = 2048
WW_MIN_EIGENVALUES = 20


@predictor(version="1", family="tail_index", reference=SIMSEKLI, requires=("weights", "train_data", "hparams"))
def sgn_tail_index(subject: Subject, *, seed: int = 0) -> float:
    """alpha of minibatch gradient noise g_B(w) - g(w) at the final weights (Mohammadi estimator).

    g(w): mean gradient over (up to 2048 of) the training set; g_B: 50 minibatches of the
    model's own batch size, drawn with replacement of batches (seeded). The [50, P] noise is
    pooled over coordinates with blocks along minibatches.
    """
    model = subject.model("final")
    x, y = subject.train_data()
    gen = torch.Generator().manual_seed(seed)
    x, y = subsample(x, y, SGN_MAX_EXAMPLES, gen)
    full = full_gradient(model, x, y)
    batch = min(int(subject.config["batch_size"]), len(y))
    noise = np.empty((SGN_MINIBATCHES, full.numel()))
    for k in range(SGN_MINIBATCHES):
        idx = torch.randperm(len(y), generator=gen)[:batch]
        noise[k] = (flat_gradient(model, x[idx], y[idx]) - full).numpy()
    moving = np.any(noise != 0.0, axis=0)
    return tail_index.mohammadi_alpha(noise[:, moving])


@predictor(version="1", family="tail_index", reference=SIMSEKLI + "; Simsekli et al. 2020 (NeurIPS)", requires=("trajectory",))
def trajectory_tail_index(subject: Subject, *, seed: int = 0) -> float:
    """alpha of the trajectory increments w_{t+1} - w_t over the post-convergence window."""
    return tail_index.alpha_from_increments(subject.trajectory().iterates)


def _layer_fits(model: torch.nn.Module) -> list[tuple[powerlaw.PowerLawFit, float]]:
    fits = []
    for name, p in model.named_parameters():
        if p.dim() < 2:
            continue
        evals = powerlaw.esd(p.detach().numpy())
        if np.count_nonzero(evals > 0) < WW_MIN_EIGENVALUES:
            continue  # WeightWatcher also skips layers too small for a spectrum fit
        fits.append((powerlaw.fit_powerlaw(evals), float(evals.max())))
    if not fits:
        raise ValueError(f"no layer has >= {WW_MIN_EIGENVALUES} eigenvalues to fit a power law to")
    return fits


@predictor(version="1", family="tail_index", reference=MARTIN, requires=("weights",))
def ww_alpha(subject: Subject, *, seed: int = 0) -> float:
    """Mean over layers of the power-law exponent alpha of the ESD of W^T W / N."""
    return float(np.mean([fit.alpha for fit, _ in _layer_fits(subject.model("final"))]))


@predictor(version="1", family="tail_index", reference=MARTIN, requires=("weights",))
def ww_alpha_hat(subject: Subject, *, seed: int = 0) -> float:
    """Mean over layers of alpha * log10(lambda_max) (WeightWatcher's weighted alpha)."""
    fits = _layer_fits(subject.model("final"))
    return float(np.mean([powerlaw.alpha_hat(fit.alpha, lmax) for fit, lmax in fits]))
