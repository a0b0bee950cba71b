"""Known answers for the sharpness and PAC-Bayes estimators, at the defaults the board runs.

Every case is a quadratic loss with a closed-form answer over 10,000 parameters (the size of
the zoo's small CNN; the Monte Carlo noise of the PAC-Bayes estimate shrinks with the
dimension, so a board-sized problem is the honest one), and calls the estimator with the
constants of predictors.sharpness.
"""

import math

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from predictors.estimators.perturbation import (
    adaptive_sharpness,
    epsilon_sharpness,
    pac_bayes_flatness,
    pac_bayes_mag_flatness,
    pac_bayes_sigma,
)
from predictors.sharpness import (
    ADAPTIVE_P,
    ADAPTIVE_RHO,
    ADAPTIVE_STEPS,
    EPSILON,
    EPSILON_STEPS,
    PAC_BAYES_BISECTIONS,
    PAC_BAYES_DRAWS,
    PAC_BAYES_MAG_EPS,
    PAC_BAYES_TARGET,
)

torch.set_num_threads(1)
BOARD_DIM = 10_000
BOARD_PAC = dict(target=PAC_BAYES_TARGET, n_mc=PAC_BAYES_DRAWS, n_bisect=PAC_BAYES_BISECTIONS)


class Quadratic(torch.nn.Module):
    """L(w) = 0.5 * sum_i a_i w_i^2, split over two parameter tensors."""

    def __init__(self, dim=200, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        a = rng.uniform(0.5, 2.0, dim)
        w = rng.uniform(0.5, 1.5, dim) * rng.choice([-1.0, 1.0], dim)
        self.register_buffer("a", torch.from_numpy(a))
        self.w1 = torch.nn.Parameter(torch.from_numpy(w[: dim // 2]).clone())
        self.w2 = torch.nn.Parameter(torch.from_numpy(w[dim // 2 :]).clone())

    def w(self):
        return torch.cat([self.w1, self.w2])

    def forward(self):
        return 0.5 * (self.a * self.w() ** 2).sum()


def loss(m):
    return m()


def _np(m):
    return m.a.numpy().copy(), m.w().detach().numpy().copy()


def _assert_restored(m, w_before):
    np.testing.assert_array_equal(m.w().detach().numpy(), w_before)


@pytest.mark.parametrize("seed", range(3))
def test_epsilon_sharpness_box_closed_form(seed):
    m = Quadratic(dim=BOARD_DIM, seed=seed)
    a, w = _np(m)
    base = 0.5 * np.sum(a * w**2)
    r = EPSILON * (np.abs(w) + 1)
    expected = (0.5 * np.sum(a * (np.abs(w) + r) ** 2) - base) / (1 + base)
    got = epsilon_sharpness(m, loss, eps=EPSILON, n_steps=EPSILON_STEPS, seed=seed)
    assert got == pytest.approx(expected, rel=0.02)
    _assert_restored(m, w)


def test_adaptive_sharpness_linf_closed_form():
    m = Quadratic(dim=BOARD_DIM, seed=1)
    a, w = _np(m)
    eta = 0.01
    c = np.abs(w) + eta
    expected = 0.5 * np.sum(a * (np.abs(w) + c * ADAPTIVE_RHO) ** 2) - 0.5 * np.sum(a * w**2)
    got = adaptive_sharpness(m, loss, rho=ADAPTIVE_RHO, p=math.inf, eta=eta, n_steps=ADAPTIVE_STEPS, seed=0)
    assert got == pytest.approx(expected, rel=0.02)
    _assert_restored(m, w)


@pytest.mark.parametrize("seed", range(3))
def test_adaptive_sharpness_l2_trust_region_solution(seed):
    m = Quadratic(dim=BOARD_DIM, seed=seed)
    a, w = _np(m)
    rho = ADAPTIVE_RHO
    c = np.abs(w)
    b, g = a * c**2, a * c * w
    # max_{||z|| <= rho} g.z + 0.5 z^T diag(b) z: z = g / (lam - b) with ||z|| = rho, lam > max b
    lam = brentq(
        lambda lm: np.sum((g / (lm - b)) ** 2) - rho**2, b.max() + 1e-12, b.max() + np.linalg.norm(g) / rho + 1
    )
    z = g / (lam - b)
    expected = 0.5 * np.sum(a * (w + c * z) ** 2) - 0.5 * np.sum(a * w**2)
    assert ADAPTIVE_P == 2
    got = adaptive_sharpness(m, loss, rho=rho, p=ADAPTIVE_P, n_steps=ADAPTIVE_STEPS, seed=seed)
    assert got == pytest.approx(expected, rel=0.02)
    _assert_restored(m, w)


@pytest.mark.parametrize("seed", range(3))
def test_pac_bayes_sigma_closed_form(seed):
    m = Quadratic(dim=BOARD_DIM, seed=seed)
    a, w = _np(m)
    # E[L(w+u)] - L(w) = 0.5 sigma^2 sum a_i = target
    expected = math.sqrt(2 * PAC_BAYES_TARGET / a.sum())
    sigma = pac_bayes_sigma(m, loss, seed=seed, **BOARD_PAC)
    assert sigma == pytest.approx(expected, rel=0.03)
    assert pac_bayes_flatness(m, loss, seed=seed, **BOARD_PAC) == pytest.approx(1 / sigma**2)
    _assert_restored(m, w)


@pytest.mark.parametrize("seed", range(3))
def test_pac_bayes_magnitude_aware_closed_form(seed):
    m = Quadratic(dim=BOARD_DIM, seed=seed)
    a, w = _np(m)
    eps = PAC_BAYES_MAG_EPS
    # 0.5 * sum a_i (sigma^2 w_i^2 + eps^2) = target
    expected = math.sqrt((2 * PAC_BAYES_TARGET - eps**2 * a.sum()) / np.sum(a * w**2))
    sigma = pac_bayes_sigma(m, loss, magnitude_aware=True, mag_eps=eps, seed=seed, **BOARD_PAC)
    assert sigma == pytest.approx(expected, rel=0.03)
    assert pac_bayes_mag_flatness(m, loss, mag_eps=eps, seed=seed, **BOARD_PAC) == pytest.approx(1 / sigma**2)
    _assert_restored(m, w)


def test_weights_restored_on_error():
    m = Quadratic(seed=5)
    _, w = _np(m)
    calls = {"n": 0}

    def flaky(model):
        calls["n"] += 1
        return model() if calls["n"] < 3 else model() * float("nan")

    with pytest.raises(FloatingPointError):
        adaptive_sharpness(m, flaky, rho=0.1)
    _assert_restored(m, w)


def test_deterministic_under_seed():
    m = Quadratic(seed=6)
    v1 = pac_bayes_sigma(m, loss, n_mc=3, seed=7)
    v2 = pac_bayes_sigma(m, loss, n_mc=3, seed=7)
    assert v1 == v2
