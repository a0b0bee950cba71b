import numpy as np
import pytest
import torch

from predictors.estimators.hessian import (
    hutchinson_trace,
    lanczos_spectral_density,
    lanczos_top_eigenvalues,
    make_hvp,
)

torch.set_num_threads(1)


def _quadratic(dim=200, seed=0):
    rng = np.random.default_rng(seed)
    spectrum = np.concatenate([[50.0, 30.0, 20.0], rng.uniform(-1.0, 5.0, dim - 3)])
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    a = torch.from_numpy((q * spectrum) @ q.T)
    return a, spectrum


def test_lanczos_top_eigenvalues_on_known_spectrum():
    a, spectrum = _quadratic()
    top = lanczos_top_eigenvalues(lambda v: a @ v, 200, k=3, n_iter=40, seed=0)
    np.testing.assert_allclose(top, [50.0, 30.0, 20.0], rtol=1e-3)


def test_lanczos_beats_power_iteration_on_small_gap():
    # gap 1.0 vs 0.999: power iteration would need thousands of steps; Lanczos is exact here
    a = torch.diag(torch.tensor([1.0, 0.999] + [0.5] * 48, dtype=torch.float64))
    top = lanczos_top_eigenvalues(lambda v: a @ v, 50, k=2, n_iter=10, seed=1)
    np.testing.assert_allclose(top, [1.0, 0.999], rtol=1e-9)


def test_hutchinson_trace_on_known_spectrum():
    a, spectrum = _quadratic()
    mean, se = hutchinson_trace(lambda v: a @ v, 200, n_samples=200, seed=0)
    assert abs(mean - spectrum.sum()) / spectrum.sum() < 0.05
    assert se > 0


def test_slq_weights_and_moments():
    a, spectrum = _quadratic()
    nodes, weights = lanczos_spectral_density(lambda v: a @ v, 200, n_iter=30, n_probes=4, seed=0)
    assert weights.sum() == pytest.approx(1.0)
    assert nodes.max() == pytest.approx(50.0, rel=1e-6)
    # first moment estimates tr(A)/dim
    assert float(nodes @ weights) == pytest.approx(spectrum.mean(), rel=0.15)


def test_mlp_hvp_matches_explicit_hessian():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    x = torch.randn(20, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    batches = [(x[:10], y[:10]), (x[10:], y[10:])]
    loss_fn = torch.nn.functional.cross_entropy
    before = [p.detach().clone() for p in model.parameters()]

    hvp, n = make_hvp(model, loss_fn, batches)
    assert n == sum(p.numel() for p in model.parameters()) == 67

    names = [k for k, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss_of(flat):
        parts, i = {}, 0
        for k, s in zip(names, shapes):
            parts[k] = flat[i : i + s.numel()].view(s)
            i += s.numel()
        losses = [loss_fn(torch.func.functional_call(model, parts, (xb,)), yb) for xb, yb in batches]
        return sum(losses) / len(losses)

    h = torch.autograd.functional.hessian(loss_of, flat0)
    eig = np.linalg.eigvalsh(h.numpy())
    v = torch.randn(n, dtype=torch.float64)
    torch.testing.assert_close(hvp(v), h @ v, rtol=1e-8, atol=1e-10)
    top = lanczos_top_eigenvalues(hvp, n, k=2, n_iter=67, seed=0)
    np.testing.assert_allclose(top, eig[::-1][:2], rtol=1e-6)
    mean, se = hutchinson_trace(hvp, n, n_samples=100, seed=0)
    assert abs(mean - float(torch.trace(h))) < max(4 * se, 0.05 * abs(float(torch.trace(h))))
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
        assert p.grad is None
    assert model.training
