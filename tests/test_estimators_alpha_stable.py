"""Known answers for the Mohammadi tail-index estimator, at the defaults the board runs.

The board feeds it sgn_tail_index's [SGN_MINIBATCHES, P] gradient noise and
trajectory_tail_index's increments of a K-iterate window on its exact coordinates (the 512 sampled
coordinates of a sketched window, all parameters of a small model; up to 1024)
(K = 1000 in the zoo to come, 50-100 in the micro test zoo); every case below has that shape,
calls the estimator exactly as the predictor does (default block lengths) and must recover
the stability index of i.i.d. symmetric alpha-stable samples to 0.1.
"""

import numpy as np
import pytest
from scipy.stats import levy_stable

from model_zoo.projection import COORDINATES as D  # a sketched window's exact coordinate sample
from predictors.estimators.alpha_stable import (
    MIN_ITERATES,
    alpha_from_increments,
    block_lengths,
    mohammadi_alpha,
    symmetrized_pairs,
)
from predictors.tail_index import SGN_MINIBATCHES

ALPHAS = [1.2, 1.5, 1.8]
TOL = 0.1


def _stable(alpha, shape, seed):
    return levy_stable.rvs(alpha, 0.0, size=shape, random_state=np.random.default_rng(seed))


def _walk(increments, start=3.0):
    return start + np.concatenate([np.zeros((1, increments.shape[1])), np.cumsum(increments, axis=0)])


@pytest.mark.parametrize("alpha", ALPHAS)
def test_scalar_samples_default_block_lengths(alpha):
    # the user-reported case: 10^4 scalar samples; one block length sqrt(N) missed 1.8 by 0.21
    errors = [mohammadi_alpha(_stable(alpha, 10_000, seed)) - alpha for seed in range(10)]
    assert max(abs(e) for e in errors) < TOL, errors


@pytest.mark.parametrize("alpha", ALPHAS)
def test_sgn_shaped_noise(alpha):
    # [SGN_MINIBATCHES, P] noise pooled over coordinates, coordinates of very different scales
    errors = []
    for seed in range(3):
        noise = _stable(alpha, (SGN_MINIBATCHES, 2000), seed) * np.logspace(-3, 3, 2000)
        errors.append(mohammadi_alpha(noise) - alpha)
    assert max(abs(e) for e in errors) < TOL, errors


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("window", [1000, 100])  # the public/mini zoos' window, the micro zoo's
def test_trajectory_shaped_increments_with_drift(alpha, window):
    # K iterates in D = 512 exact coordinates, increments alpha-stable around a drift (a
    # non-stationary window): the symmetrised pairs remove the drift without estimating it
    errors = []
    for seed in range(2):
        inc = _stable(alpha, (window - 1, D), 10 + seed) * 1e-3 + np.linspace(0.0, 0.05, D)
        errors.append(alpha_from_increments(_walk(inc)) - alpha)
    assert max(abs(e) for e in errors) < TOL, errors


def test_too_short_window_raises():
    inc = _stable(1.5, (MIN_ITERATES - 2, 64), 0)
    with pytest.raises(ValueError, match=f"at least {MIN_ITERATES}"):
        alpha_from_increments(_walk(inc))
    assert np.isfinite(alpha_from_increments(_walk(_stable(1.5, (MIN_ITERATES - 1, 64), 0))))


def test_gaussian_gives_two():
    x = np.random.default_rng(0).normal(size=(SGN_MINIBATCHES, 5000))
    assert abs(mohammadi_alpha(x) - 2.0) < TOL


def test_block_lengths_span_quarter_to_half_power():
    assert block_lengths(10_000).tolist() == [10, 18, 32, 56, 100]
    assert block_lengths(SGN_MINIBATCHES).tolist() == [3, 4, 6, 7]  # rounding merges two
    assert block_lengths(4).tolist() == [2]


def test_single_block_length_is_the_corollary():
    # with k1 given, exactly (1/log K1)(mean log|Y| - mean log|X|) on blocks within columns
    x = _stable(1.5, (100, 3), 4)
    y = x.reshape(10, 10, 3).sum(axis=1)
    eps = np.spacing(1.0)
    inv = (np.log(np.abs(y) + eps).mean() - np.log(np.abs(x) + eps).mean()) / np.log(10)
    assert mohammadi_alpha(x, k1=10) == pytest.approx(1 / inv, rel=1e-12)


def test_symmetrized_pairs_remove_location():
    x = np.arange(10.0)[:, None] * np.ones((1, 2)) + 7.0
    np.testing.assert_array_equal(symmetrized_pairs(x), np.ones((5, 2)))


def test_nonsense_inputs_raise():
    with pytest.raises(ValueError, match="1-D"):
        mohammadi_alpha(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="at least 4 rows"):
        mohammadi_alpha(np.ones((3, 5)))
    with pytest.raises(ValueError, match="never moves"):
        alpha_from_increments(np.ones((40, 3)))
    # two-valued +-1 noise: block sums are often exactly 0, so no tail index exists; a
    # negative "alpha" must not come back
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(SGN_MINIBATCHES, 500))
    with pytest.raises(ValueError, match="no tail index"):
        mohammadi_alpha(signs)
