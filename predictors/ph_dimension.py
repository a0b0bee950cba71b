"""Fractal (persistent-homology) dimension of the post-convergence trajectory.

- ``ph_dim``: Birdal, Lou, Simsekli & Zhu 2021 ("Intrinsic dimension, persistent homology and
  generalization in neural networks", NeurIPS): dim_PH0 = alpha / (1 - b), b the slope of
  log E^0_alpha(W_n) against log n, E^0_alpha the alpha-weighted length of the Euclidean
  minimum spanning tree of n iterates (alpha = 1). Distances in float64 on centred offsets.
  A higher dimension predicts a larger gap.
- ``ph_dim_loss``: Dupuis, Deligiannidis & Simsekli 2023 ("Generalization bounds using
  data-dependent fractal dimensions", ICML): the same fit under the data-dependent
  pseudo-metric rho_S(w, w') = ||l_S(w) - l_S(w')||_1 / n on a fixed probe batch S of
  training examples, whose per-example losses the trainer records at every window step.
"""

from __future__ import annotations

from predictors.api import Subject, predictor
from predictors.estimators import ph_dim as ph_estimators

BIRDAL = "Birdal, Lou, Simsekli & Zhu 2021, Intrinsic dimension, persistent homology and generalization in neural networks (NeurIPS)"
DUPUIS = "Dupuis, Deligiannidis & Simsekli 2023, Generalization bounds using data-dependent fractal dimensions (ICML)"


@predictor(version="1", family="ph_dimension", reference=BIRDAL, requires=("trajectory",))
def ph_dim(subject: Subject, *, seed: int = 0) -> float:
    """PH0 dimension of the window's iterates (Euclidean, MST-length slope fit, alpha = 1)."""
    return ph_estimators.ph_dimension(subject.trajectory().iterates, seed=seed).dim


@predictor(version="1", family="ph_dimension", reference=DUPUIS, requires=("trajectory",))
def ph_dim_loss(subject: Subject, *, seed: int = 0) -> float:
    """PH0 dimension of the window under the loss-vector pseudo-metric on a fixed probe batch."""
    losses = subject.trajectory().probe_losses
    if losses is None:
        raise ValueError("this zoo's trajectories have no per-example probe losses (rebuild the zoo)")
    return ph_estimators.ph_dimension_from_distances(ph_estimators.loss_distance_matrix(losses), seed=seed).dim
