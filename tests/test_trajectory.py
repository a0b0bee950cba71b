"""Projector determinism and distance preservation; distance/distortion math; window recording."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

from model_zoo.projection import Projector, WindowRecorder
from model_zoo.trajectory import distortion, drift_share, pairwise_distances


def test_projector_is_deterministic_and_seeded():
    x = torch.randn(5, 3000, dtype=torch.float64)
    a = Projector(3000, 64, seed=7).project(x)
    b = Projector(3000, 64, seed=7).project(x)
    c = Projector(3000, 64, seed=8).project(x)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_sketch_is_linear_sparse_and_norm_preserving_in_expectation():
    n, d = 20000, 256
    proj = Projector(n, d, seed=0, nnz=4)
    r = proj.matrix_t.T.toarray()  # [P, D]
    assert r.shape == (n, d)
    # each parameter goes to one output per block of D/nnz, with weight +-1/sqrt(nnz)
    assert np.all((r != 0).sum(axis=1) == 4)
    assert np.allclose(np.abs(r[r != 0]), 0.5)
    assert np.all((r.reshape(n, 4, d // 4) != 0).sum(axis=2) == 1)
    x, y = np.random.default_rng(1).standard_normal((2, 3, n))
    assert np.allclose(proj.project(2 * x - y), 2 * proj.project(x) - proj.project(y), atol=1e-9)
    assert np.allclose(proj.project(x), x @ r, atol=1e-9)
    # E ||Rx||^2 = ||x||^2: columns of R have unit norm
    assert np.allclose((r**2).sum(axis=1), 1.0)


def test_coordinate_sample_is_exact_and_fixed():
    proj = Projector(5000, 64, seed=3, n_coordinates=100)
    assert proj.index.shape == (100,) and np.all(np.diff(proj.index) > 0)
    x = np.random.default_rng(0).standard_normal((4, 5000))
    assert np.array_equal(proj.sample(x), x[:, proj.index])
    assert np.array_equal(Projector(5000, 64, seed=3, n_coordinates=100).index, proj.index)


def test_projector_rejects_wrong_width_and_bad_nnz():
    with pytest.raises(ValueError, match="expects"):
        Projector(10, 4, 0).project(torch.zeros(2, 11))
    with pytest.raises(ValueError, match="must divide"):
        Projector(10, 6, 0, nnz=4)


def test_jl_bound_on_random_points():
    # Johnson-Lindenstrauss (Dasgupta & Gupta 2003): D >= 4 ln n / (eps^2/2 - eps^3/3) gives
    # all pairwise distances within (1 +- eps) with probability >= 1 - 1/n.
    rng = np.random.default_rng(0)
    n, p, d = 40, 5000, 1024
    x = rng.standard_normal((n, p))
    eps_sq = 0.3  # bound on squared distances
    assert d >= 4 * np.log(n) / (eps_sq**2 / 2 - eps_sq**3 / 3)
    projected = Projector(p, d, seed=1).project(x)
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
    rec = WindowRecorder(p, k, projection_dim=64, exact_max_params=100 if projected else 1000, projection_seed=5)
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
        exact = walk[1:].double() - walk[1].double()
        proj = Projector(p, 64, 5)
        assert np.allclose(win.iterates, proj.project(exact), atol=1e-6)
        assert np.allclose(win.coordinates, proj.sample(exact), atol=1e-7)
        assert np.array_equal(win.coordinate_index, proj.index)
        assert win.exact_coordinates is win.coordinates
    else:
        assert win.iterates.shape == (k, p)
        assert np.allclose(win.iterates, offsets.numpy(), atol=1e-7)
    assert np.all(win.iterates[0] == 0)


def test_window_recorder_requires_all_steps():
    rec = WindowRecorder(4, 3, projection_dim=4, exact_max_params=4)
    rec.start(torch.zeros(4))
    rec.record(torch.ones(4), 0.0)
    with pytest.raises(RuntimeError, match="1 of 3"):
        rec.finish()


def test_drift_share_separates_drift_walk_and_stationary_cloud():
    rng = np.random.default_rng(0)
    k, d = 1000, 50
    cloud = rng.standard_normal((k, d))
    walk = np.cumsum(rng.standard_normal((k, d)), axis=0)
    line = np.outer(np.arange(k), rng.standard_normal(d)) + 1e-3 * cloud
    assert drift_share(cloud) < 0.01  # i.i.d.: about 1/K
    assert 0.2 < drift_share(walk) < 0.9  # a random walk: about 0.5 on average
    assert drift_share(line) > 0.999
    # a linear map (e.g. the random projection) keeps the share of a straight drift
    r = rng.standard_normal((d, 20))
    assert drift_share(line @ r) > 0.999
    assert drift_share(np.zeros((10, 3))) == 0.0
