import numpy as np
import pytest
import torch

from predictors.estimators.gradient_noise import gradient_noise_scale, noise_scale_from_norms, noise_scale_full_batch
from predictors.noise_scale import B_SMALL, REPEATS


def _problem(n=20_000, d=50, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.normal(size=d) * 0.2
    sd = rng.uniform(0.5, 2.0, d)
    per_example = g + rng.normal(size=(n, d)) * sd  # Sigma = diag(sd^2)
    return per_example, g, sd


def test_b_simple_matches_trace_sigma_over_g2():
    per_example, g, sd = _problem()
    true_b = np.sum(sd**2) / np.sum(g**2)
    res = gradient_noise_scale(lambda idx: per_example[idx].mean(axis=0), len(per_example), 16, 512, 300, seed=0)
    assert abs(res.b_simple - true_b) / true_b < 0.10, (res, true_b)
    assert res.trace_sigma == pytest.approx(np.sum(sd**2), rel=0.05)


def test_accepts_torch_gradients_and_is_seeded():
    per_example, _, _ = _problem(n=2000, d=10, seed=1)
    t = torch.from_numpy(per_example)

    def grad_fn(idx):
        return t[torch.as_tensor(idx)].mean(0)

    a = gradient_noise_scale(grad_fn, 2000, 8, 128, 20, seed=3)
    b = gradient_noise_scale(grad_fn, 2000, 8, 128, 20, seed=3)
    assert a == b


def test_exact_expectations_give_exact_answer():
    # with E|G_B|^2 = |G|^2 + S/B plugged in, the estimator is exact
    g2, s = 2.0, 50.0
    res = noise_scale_from_norms(np.array([g2 + s / 4]), np.array([g2 + s / 64]), 4, 64)
    assert res.b_simple == pytest.approx(s / g2)
    with pytest.raises(ValueError, match="b_small < b_big"):
        noise_scale_from_norms(np.ones(2), np.ones(2), 8, 8)


@pytest.mark.parametrize("seed", range(3))
def test_full_batch_form_at_board_defaults(seed):
    # gradient_noise_scale's protocol: the exact gradient of a finite training set (1,000
    # examples, as the mini zoo's largest) and REPEATS batches of B_SMALL distinct examples,
    # at a converged-like point where the noise dominates (B_simple ~ 10^3)
    rng = np.random.default_rng(seed)
    n, d = 1000, 2000
    per_example = rng.normal(size=d) * 0.01 + rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, d)
    g = per_example.mean(0)
    truth = per_example.var(axis=0).sum() / np.sum(g**2)
    norms = [np.sum(per_example[rng.choice(n, B_SMALL, replace=False)].mean(0) ** 2) for _ in range(REPEATS)]
    res = noise_scale_full_batch(np.array(norms), float(np.sum(g**2)), B_SMALL, n)
    assert res.b_simple == pytest.approx(truth, rel=0.05)


def test_full_batch_form_matches_trace_sigma_over_g2():
    per_example, _, _ = _problem(n=4000, d=50, seed=2)
    g = per_example.mean(0)  # the finite set's exact gradient and covariance
    trace = per_example.var(axis=0).sum()
    rng = np.random.default_rng(0)
    b = 16
    norms = [np.sum(per_example[rng.choice(4000, b, replace=False)].mean(0) ** 2) for _ in range(2000)]
    res = noise_scale_full_batch(np.array(norms), float(np.sum(g**2)), b, 4000)
    assert res.b_simple == pytest.approx(trace / np.sum(g**2), rel=0.05)
    assert res.grad_norm_sq > 0
