"""Projector determinism and distance preservation; distance/distortion math; window recording."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

from model_zoo.trajectory import (
    PROJECTION_CHUNK,
    Projector,
    WindowRecorder,
    distortion,
    pairwise_distances,
)


def test_projector_is_deterministic_and_seeded():
    x = torch.randn(5, 3000, dtype=torch.float64)
    a = Projector(3000, 64, seed=7).project(x)
    b = Projector(3000, 64, seed=7).project(x)
    c = Projector(3000, 64, seed=8).project(x)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_projector_is_linear_and_chunked_consistently():
    n = PROJECTION_CHUNK + 123  # two chunks
    proj = Projector(n, 32, seed=0)
    assert proj.n_chunks == 2
    x = torch.randn(3, n, dtype=torch.float64)
    y = torch.randn(3, n, dtype=torch.float64)
    px, py = proj.project(x, dtype=torch.float64), proj.project(y, dtype=torch.float64)
    assert torch.allclose(proj.project(2 * x - y, dtype=torch.float64), 2 * px - py, atol=1e-9)
    dense = torch.cat([proj.chunk(0), proj.chunk(1)]).double()
    assert dense.shape == (n, 32)
    assert torch.allclose(px, x @ dense, atol=1e-9)


def test_projector_entries_have_variance_one_over_d():
    rows = Projector(4000, 256, seed=3).chunk(0).double()
    assert abs(rows.mean().item()) < 2e-3
    assert rows.var().item() == pytest.approx(1 / 256, rel=0.02)


def test_projector_rejects_wrong_width():
    with pytest.raises(ValueError, match="expects"):
        Projector(10, 4, 0).project(torch.zeros(2, 11))


def test_jl_bound_on_random_points():
    # Johnson-Lindenstrauss (Dasgupta & Gupta 2003): D >= 4 ln n / (eps^2/2 - eps^3/3) gives
    # all pairwise distances within (1 +- eps) with probability >= 1 - 1/n.
    rng = np.random.default_rng(0)
    n, p, d = 40, 5000, 1024
    x = rng.standard_normal((n, p))
    eps_sq = 0.3  # bound on squared distances
    assert d >= 4 * np.log(n) / (eps_sq**2 / 2 - eps_sq**3 / 3)
    projected = Projector(p, d, seed=1).project(torch.from_numpy(x), dtype=torch.float64).numpy()
    result = distortion(x, projected)
    assert result["n_pairs"] == n * (n - 1) // 2
    assert result["max_rel_error"] <= 1 - np.sqrt(1 - eps_sq)
    assert result["median_rel_error"] < 0.05


def test_pairwise_distances_match_scipy_and_survive_a_large_offset():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((30, 200)) * 1e-3
    ref = squareform(pdist(x))
    assert np.allclose(pairwise_distances(x), ref, rtol=1e-9, atol=0)
    # Nearby iterates far from the origin: the uncentred Gram trick would lose them.
    shifted = x.astype(np.float32) + np.float32(100.0)
    ref32 = squareform(pdist(shifted.astype(np.float64)))
    assert np.allclose(pairwise_distances(shifted), ref32, rtol=1e-6)


def test_distortion_of_exact_copy_and_of_scaling():
    x = np.random.default_rng(2).standard_normal((10, 5))
    assert distortion(x, x)["max_rel_error"] == pytest.approx(0.0, abs=1e-12)
    scaled = distortion(x, 1.1 * x)
    assert scaled["max_rel_error"] == pytest.approx(0.1)
    assert scaled["median_rel_error"] == pytest.approx(0.1)


def test_distortion_rejects_mismatched_rows():
    with pytest.raises(ValueError, match="same number of rows"):
        distortion(np.zeros((3, 2)), np.zeros((4, 2)))


def _walk(k: int, p: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    return 10.0 + torch.cumsum(torch.randn(k, p, generator=gen) * 1e-3, dim=0)


@pytest.mark.parametrize("projected", [False, True])
def test_window_recorder_offsets_norms_and_projection(projected):
    k, p = 12, 300
    walk = _walk(k + 1, p)  # row 0 is the converged point before the window
    rec = WindowRecorder(p, k, projection_dim=64, exact_max_params=100 if projected else 1000, projection_seed=5,
                         max_buffer_bytes=4 * p * 5)  # forces several blocks
    rec.start(walk[0])
    for t in range(1, k + 1):
        rec.record(walk[t], loss=float(t))
    win = rec.finish()
    offsets = (walk[1:].double() - walk[1].double()).float()
    assert win.projected is projected and win.n_params == p
    assert win.iterates.dtype == np.float32
    assert np.array_equal(win.losses, np.arange(1, k + 1, dtype=np.float32))
    assert np.allclose(win.norms, torch.linalg.vector_norm(walk[1:].double(), dim=1).numpy(), rtol=1e-6)
    steps = torch.linalg.vector_norm(torch.diff(walk.double(), dim=0), dim=1).numpy()
    assert np.allclose(win.step_norms, steps, rtol=1e-5)
    if projected:
        assert win.iterates.shape == (k, 64) and win.projection_dim == 64 and win.projection_seed == 5
        expected = Projector(p, 64, 5).project(offsets).numpy()
        assert np.allclose(win.iterates, expected, atol=1e-6)
    else:
        assert win.iterates.shape == (k, p)
        assert np.allclose(win.iterates, offsets.numpy(), atol=1e-7)
    assert np.all(win.iterates[0] == 0)


def test_window_recorder_requires_all_steps():
    rec = WindowRecorder(4, 3)
    rec.start(torch.zeros(4))
    rec.record(torch.ones(4), 0.0)
    with pytest.raises(RuntimeError, match="1 of 3"):
        rec.finish()


def test_cached_and_streamed_projection_are_bitwise_equal(monkeypatch):
    import model_zoo.trajectory as trajectory

    n = PROJECTION_CHUNK + 10
    x = torch.randn(4, n)
    monkeypatch.setattr(trajectory, "DENSE_CACHE_BYTES", 0)
    streamed = Projector(n, 16, seed=2).project(x)
    monkeypatch.setattr(trajectory, "DENSE_CACHE_BYTES", 2**30)
    cached = Projector(n, 16, seed=2).project(x)
    again = Projector(n, 16, seed=2).project(x)  # served from the cache
    assert torch.equal(streamed, cached) and torch.equal(cached, again)
