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
  power-law exponent alpha of each layer's ESD, averaged over layers, and the weighted
  alpha-hat = alpha * log10(lambda_max), both as WeightWatcher 0.7.7 computes them (see
  ``predictors.estimators.powerlaw``). Smaller = better, so both are used as they are.

The defaults below are the ones the known-answer tests run (tests/test_estimators_*.py import
them); docs/estimators.md lists what each recovers.
"""

from __future__ import annotations

import numpy as np
import torch

from predictors.api import Subject, predictor
from predictors.estimators import alpha_stable, powerlaw
from predictors.objective import flat_gradient, full_gradient

SIMSEKLI = (
    "Simsekli, Sagun & Gurbuzbalaban 2019, A tail-index analysis of stochastic gradient noise "
    "in deep neural networks (ICML)"
)
MARTIN = (
    "Martin & Mahoney 2021, Predicting trends in the quality of state-of-the-art neural networks "
    "(Nature Communications)"
)

SGN_MINIBATCHES = 50
"""Minibatch gradients drawn at the final weights: the noise array is [SGN_MINIBATCHES, P]."""

WW_NOTES = (
    "WeightWatcher 0.7.7 conventions (unnormalised eigenvalues, Conv2d slices scaled by 1/2, layers "
    "with >= 8 eigenvalues, its KS-xmin fit and small-sample fit below 20 eigenvalues); deliberate "
    "difference: Conv1d layers are skipped (WeightWatcher drops those with a dimension < 8, i.e. all "
    "of the zoo's, and runs an SVD of the 3-D kernel otherwise)"
)


@predictor(
    version="2",
    family="tail_index",
    reference=SIMSEKLI,
    requires=("weights", "train_data", "hparams"),
    notes=(
        "minibatches drawn from the whole training set; 1/alpha is the median of the Mohammadi estimate over "
        "5 block lengths in [N^(1/4), N^(1/2)] (their code: one block length, about sqrt(N))"
    ),
)
def sgn_tail_index(subject: Subject, *, seed: int = 0) -> float:
    """alpha of minibatch gradient noise g_B(w) - g(w) at the final weights (Mohammadi estimator).

    g(w): the exact gradient over the whole training set; g_B: SGN_MINIBATCHES (50) minibatches
    of the model's own batch size drawn from it (seeded). The [50, P] noise is pooled over
    coordinates with blocks along minibatches (``alpha_stable.mohammadi_alpha``).
    """
    model = subject.model("final")
    x, y = subject.train_data()
    gen = torch.Generator().manual_seed(seed)
    full = full_gradient(model, x, y)
    batch = min(int(subject.config["batch_size"]), len(y))
    noise = np.empty((SGN_MINIBATCHES, full.numel()))
    for k in range(SGN_MINIBATCHES):
        idx = torch.randperm(len(y), generator=gen)[:batch]
        noise[k] = (flat_gradient(model, x[idx], y[idx]) - full).numpy()
    moving = np.any(noise != 0.0, axis=0)
    return alpha_stable.mohammadi_alpha(noise[:, moving])


@predictor(
    version="2",
    family="tail_index",
    reference=SIMSEKLI + "; Simsekli et al. 2020 (NeurIPS)",
    requires=("trajectory",),
    notes=(
        "increments symmetrised by differencing disjoint pairs (removes drift); median over 5 block lengths; "
        "needs >= 33 iterates"
    ),
)
def trajectory_tail_index(subject: Subject, *, seed: int = 0) -> float:
    """alpha of the trajectory increments w_{t+1} - w_t over the post-convergence window.

    On exact parameter coordinates: all of them for a small model, the window's exact coordinate
    sample for a sketched one (a projection sums parameters of different scales and pushes the
    estimate towards 2; docs/trajectory.md).
    """
    return alpha_stable.alpha_from_increments(subject.trajectory().exact_coordinates)


def _layer_fits(model: torch.nn.Module) -> list[tuple[powerlaw.PowerLawFit, float]]:
    spectra = powerlaw.layer_spectra(model)
    if not spectra:
        raise ValueError(
            f"no Linear/Conv2d/Embedding layer has >= {powerlaw.MIN_EVALS} eigenvalues to fit a power law to"
        )
    return [(powerlaw.fit_powerlaw(s.eigenvalues), s.lambda_max) for s in spectra]


@predictor(version="2", family="tail_index", reference=MARTIN, requires=("weights",), notes=WW_NOTES)
def ww_alpha(subject: Subject, *, seed: int = 0) -> float:
    """Mean over layers of the power-law exponent alpha of the layer's ESD (WeightWatcher's alpha)."""
    return float(np.mean([fit.alpha for fit, _ in _layer_fits(subject.model("final"))]))


@predictor(version="2", family="tail_index", reference=MARTIN, requires=("weights",), notes=WW_NOTES)
def ww_alpha_hat(subject: Subject, *, seed: int = 0) -> float:
    """Mean over layers of alpha * log10(lambda_max) (WeightWatcher's alpha_weighted)."""
    fits = _layer_fits(subject.model("final"))
    return float(np.mean([powerlaw.alpha_hat(fit.alpha, lmax) for fit, lmax in fits]))
