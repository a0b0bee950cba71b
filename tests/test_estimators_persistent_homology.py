"""Known answers for the PH0 dimension, at the defaults ph_dim and ph_dim_loss run.

Points: as many as a board window holds (1,000 iterates); tolerance 0.15 over 10 seeds. The
estimator meets it on the unit square, the unit segment and a linear image of the square
under Dupuis et al.'s l1 loss metric. On the unit cube and 5-cube it does not at this sample
size: the MST-length fit of Birdal et al. is biased low in higher dimensions by the boundary
of a bounded set (cube: 2.87 on average, 4 of 10 seeds off by more than 0.15; 5-cube: 4.48,
all 10 off), with 3 or 10 subsamples per size as well. Those two cases are strict expected
failures: they document the measured figure and start failing if the estimator improves.
"""

import numpy as np
import pytest
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist

from predictors.estimators.persistent_homology import (
    MIN_POINTS,
    PHDimensionError,
    loss_distance_matrix,
    mst_length,
    pairwise_distances,
    ph_dimension,
    ph_dimension_from_distances,
    size_grid,
)
from predictors.ph_dimension import N_REPEATS, SIZE_FRACTIONS

WINDOW = 1000
TOL = 0.15
SEEDS = range(10)


def _board_dim(points, seed):
    return ph_dimension(points, fractions=SIZE_FRACTIONS, n_repeats=N_REPEATS, seed=seed).dim


def _cube_errors(d):
    return [_board_dim(np.random.default_rng(s).random((WINDOW, d)), s) - d for s in SEEDS]


def test_board_grid_is_birdals_at_1000_points():
    assert size_grid(WINDOW, SIZE_FRACTIONS).tolist() == list(range(200, 1000, 50))
    assert size_grid(50, SIZE_FRACTIONS).tolist()[0] == 10


def test_unit_square():
    errors = _cube_errors(2)
    assert max(abs(e) for e in errors) < TOL, errors


@pytest.mark.xfail(strict=True, reason="PH0 fit biased low at 1,000 points: mean 2.87, 4 of 10 seeds off by > 0.15")
def test_unit_cube():
    errors = _cube_errors(3)
    assert max(abs(e) for e in errors) < TOL, errors


@pytest.mark.xfail(strict=True, reason="PH0 fit biased low at 1,000 points: mean 4.48, all 10 seeds off by > 0.15")
def test_unit_5_cube():
    errors = _cube_errors(5)
    assert max(abs(e) for e in errors) < TOL, errors


def test_segment_in_10d():
    for s in range(3):
        rng = np.random.default_rng(s)
        pts = np.outer(rng.random(WINDOW), rng.normal(size=10)) + 5.0
        assert abs(_board_dim(pts, s) - 1) < TOL


def test_loss_metric_on_a_linear_image_of_the_square():
    # Dupuis et al.'s rho_S = ||l(w) - l(w')||_1 / n: a bi-Lipschitz image keeps the dimension
    errors = []
    for s in SEEDS:
        rng = np.random.default_rng(s)
        losses = rng.random((WINDOW, 2)) @ rng.normal(size=(2, 64)) + 2.0
        d = loss_distance_matrix(losses)
        errors.append(ph_dimension_from_distances(d, fractions=SIZE_FRACTIONS, n_repeats=N_REPEATS, seed=s).dim - 2)
    assert max(abs(e) for e in errors) < TOL, errors


def test_short_windows():
    # the micro zoo's 50-iterate windows give an estimate; fewer than MIN_POINTS distinct points raise
    x = np.random.default_rng(0).random((50, 2))
    assert 1.0 < _board_dim(x, 0) < 3.0
    with pytest.raises(PHDimensionError, match=f"at least {MIN_POINTS} distinct points"):
        _board_dim(x[: MIN_POINTS - 1], 0)
    with pytest.raises(ValueError, match="distinct points"):  # a stalled window: all iterates equal
        _board_dim(np.zeros((100, 3)), 0)


def test_mst_length_matches_scipy_without_duplicates():
    x = np.random.default_rng(0).random((300, 3))
    ref = minimum_spanning_tree(cdist(x, x))
    assert mst_length(x) == pytest.approx(ref.sum(), rel=1e-12)
    assert mst_length(x, alpha=2.0) == pytest.approx((ref.data**2).sum(), rel=1e-12)


def test_pairwise_distances_exact_for_close_points():
    # two tight clusters far apart: within a cluster the points are 1e-7 apart but ~1 from the
    # centroid, where the Gram identity alone is off by 7% (the 25-70x trap in TF32)
    rng = np.random.default_rng(3)
    u = rng.normal(size=1024)
    pts = np.concatenate([u + 1e-7 * rng.normal(size=(150, 1024)), -u + 1e-7 * rng.normal(size=(150, 1024))])
    centred = pts - pts.mean(axis=0)
    ref = cdist(centred, centred)
    off = ~np.eye(300, dtype=bool)
    assert np.max(np.abs(pairwise_distances(pts)[off] / ref[off] - 1)) < 1e-9


def test_duplicates_leave_length_and_dimension_unchanged():
    rng = np.random.default_rng(1)
    x = rng.random((1000, 2))
    dup = np.concatenate([x, x[:400], x[:50]])
    assert mst_length(dup) == pytest.approx(mst_length(x), rel=1e-12)
    res = ph_dimension(np.repeat(x, 2, axis=0))
    ref = ph_dimension(x)
    assert res.dim == pytest.approx(ref.dim, rel=1e-12)
    assert res.n_distinct == 1000
    xd = np.repeat(x, 2, axis=0)
    assert ph_dimension_from_distances(cdist(xd, xd)).dim == pytest.approx(ref.dim, rel=1e-9)


def test_nearby_points_keep_precision():
    rng = np.random.default_rng(3)
    x = rng.random((200, 50))
    assert mst_length(1e4 + 1e-6 * x) == pytest.approx(1e-6 * mst_length(x), rel=1e-5)


def test_distance_path_matches_point_path():
    x = np.random.default_rng(4).random((800, 2))
    a = ph_dimension(x, seed=3)
    b = ph_dimension_from_distances(cdist(x, x), seed=3)
    assert a.dim == pytest.approx(b.dim, rel=1e-9)
    assert a.ns == b.ns


def test_loss_distance_matrix():
    losses = np.array([[0.0, 1.0, 2.0], [1.0, 1.0, 0.0]])
    np.testing.assert_allclose(loss_distance_matrix(losses), [[0.0, 1.0], [1.0, 0.0]])


def test_degenerate_fit_raises():
    from predictors.estimators.persistent_homology import _fit

    with pytest.raises(PHDimensionError, match="slope"):
        _fit(np.array([10, 20, 40]), np.array([1.0, 2.5, 6.0]), 1.0, 40)


def test_row_wise_prim_matches_dense(monkeypatch):
    import predictors.estimators.persistent_homology as ph

    x = np.random.default_rng(5).random((300, 4))
    x = np.concatenate([x, x[:20]])
    dense = mst_length(x)
    dense_dim = ph_dimension(x[:300], seed=1).dim
    monkeypatch.setattr(ph, "_DENSE_MAX_POINTS", 10)
    assert mst_length(x) == pytest.approx(dense, rel=1e-12)
    assert ph_dimension(x[:300], seed=1).dim == pytest.approx(dense_dim, rel=1e-9)
