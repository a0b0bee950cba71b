"""Fractal (persistent-homology) dimension of the post-convergence trajectory.

- ``ph_dim``: Birdal, Lou, Simsekli & Zhu 2021 ("Intrinsic dimension, persistent homology and
  generalization in neural networks", NeurIPS): dim_PH0 = alpha / (1 - b), b the slope of
  log E^0_alpha(W_n) against log n, E^0_alpha the alpha-weighted length of the Euclidean
  minimum spanning tree of n iterates (alpha = 1). Distances in float64 on centred offsets.
  A higher dimension predicts a larger gap.
- ``ph_dim_loss``: Dupuis, Deligiannidis & Simsekli 2023 ("Generalization bounds using
  data-dependent fractal dimensions", ICML): the same fit under the data-dependent
  pseudo-metric rho_S(w, w') = ||l_S(w) - l_S(w')||_1 / n on the zoo's loss probe S (the fixed
  training examples whose per-example losses the trainer records at every window step).

Both use the subsample sizes of Birdal et al.'s code relative to the window
(``persistent_homology.SIZE_FRACTIONS``: 200, 250, ..., 950 of 1,000 iterates, one subsample
each) and need at least ``persistent_homology.MIN_POINTS`` distinct iterates.
"""

from __future__ import annotations

from predictors.api import Subject, predictor
from predictors.estimators import persistent_homology

BIRDAL = (
    "Birdal, Lou, Simsekli & Zhu 2021, Intrinsic dimension, persistent homology and generalization "
    "in neural networks (NeurIPS)"
)
DUPUIS = "Dupuis, Deligiannidis & Simsekli 2023, Generalization bounds using data-dependent fractal dimensions (ICML)"

SIZE_FRACTIONS = persistent_homology.SIZE_FRACTIONS
N_REPEATS = 1  # subsamples per size, as Birdal et al.


@predictor(
    version="2",
    family="ph_dimension",
    reference=BIRDAL,
    requires=("trajectory",),
    notes=(
        "subsample sizes 20%, 25%, ..., 95% of the window (Birdal's range(200, 1000, 50) at 1,000 iterates); "
        ">= 40 distinct iterates"
    ),
)
def ph_dim(subject: Subject, *, seed: int = 0) -> float:
    """PH0 dimension of the window's iterates (Euclidean, MST-length slope fit, alpha = 1)."""
    result = persistent_homology.ph_dimension(
        subject.trajectory().iterates, fractions=SIZE_FRACTIONS, n_repeats=N_REPEATS, seed=seed
    )
    return result.dim


@predictor(
    version="2",
    family="ph_dimension",
    reference=DUPUIS,
    requires=("trajectory",),
    notes=(
        "Birdal's relative size grid (Dupuis et al. use range(200, 1000, 40)); "
        "the zoo's loss probe (64 training examples) as S"
    ),
)
def ph_dim_loss(subject: Subject, *, seed: int = 0) -> float:
    """PH0 dimension of the window under the loss-vector pseudo-metric on the zoo's loss probe."""
    losses = subject.trajectory().probe_losses
    if losses is None:
        raise ValueError("this zoo's trajectories have no per-example loss-probe losses (rebuild the zoo)")
    distances = persistent_homology.loss_distance_matrix(losses)
    result = persistent_homology.ph_dimension_from_distances(
        distances, fractions=SIZE_FRACTIONS, n_repeats=N_REPEATS, seed=seed
    )
    return result.dim
