import numpy as np
import pytest
from scipy.stats import levy_stable

from predictors.estimators.tail_index import alpha_from_increments, mohammadi_alpha


@pytest.mark.parametrize("alpha", [1.2, 1.5, 1.8])
def test_mohammadi_recovers_stable_index_1d(alpha):
    x = levy_stable.rvs(alpha, 0.0, size=10_000, random_state=np.random.default_rng(0))
    est = mohammadi_alpha(x)
    assert abs(est - alpha) < 0.1, (alpha, est)


@pytest.mark.parametrize("alpha", [1.2, 1.5, 1.8])
def test_mohammadi_pooled_2d_is_tighter(alpha):
    # 10^4 rows x 10 coordinates with very different scales: per-column blocks keep it unbiased
    x = levy_stable.rvs(alpha, 0.0, size=(10_000, 10), random_state=np.random.default_rng(1))
    x = x * np.logspace(-3, 3, 10)
    est = mohammadi_alpha(x)
    assert abs(est - alpha) < 0.05, (alpha, est)


def test_gaussian_gives_two():
    x = np.random.default_rng(0).normal(size=(10_000, 5))
    assert abs(mohammadi_alpha(x) - 2.0) < 0.1


def test_increments_of_levy_walk_with_drift():
    rng = np.random.default_rng(2)
    inc = levy_stable.rvs(1.5, 0.0, size=(4_000, 20), random_state=rng) * 1e-3 + 0.05
    walk = 3.0 + np.cumsum(inc, axis=0)
    est = alpha_from_increments(walk)
    assert abs(est - 1.5) < 0.1, est


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="1-D"):
        mohammadi_alpha(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="never moves"):
        alpha_from_increments(np.ones((20, 3)))
