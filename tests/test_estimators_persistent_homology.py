import numpy as np
import pytest
from scipy.sparse.csgraph import minimum_spanning_tree
from scipy.spatial.distance import cdist

from predictors.estimators.ph_dim import (
    PHDimensionError,
    loss_distance_matrix,
    mst_length,
    ph_dimension,
    ph_dimension_from_distances,
)


def test_mst_length_matches_scipy_without_duplicates():
    x = np.random.default_rng(0).random((300, 3))
    ref = minimum_spanning_tree(cdist(x, x)).sum()
    assert mst_length(x) == pytest.approx(ref, rel=1e-12)
    assert mst_length(x, alpha=2.0) == pytest.approx((minimum_spanning_tree(cdist(x, x)).data ** 2).sum(), rel=1e-12)


def test_unit_square_and_cube():
    rng = np.random.default_rng(0)
    square = ph_dimension(rng.random((2000, 2)), n_min=200)
    cube = ph_dimension(rng.random((3000, 3)), n_min=200)
    assert abs(square.dim - 2) < 0.15, square
    assert abs(cube.dim - 3) < 0.3, cube
    assert square.r2 > 0.99


def test_duplicates_leave_length_and_dimension_unchanged():
    rng = np.random.default_rng(1)
    x = rng.random((1000, 2))
    dup = np.concatenate([x, x[:400], x[:50]])
    assert mst_length(dup) == pytest.approx(mst_length(x), rel=1e-12)
    res = ph_dimension(np.repeat(x, 2, axis=0), n_min=200)
    ref = ph_dimension(x, n_min=200)
    assert res.dim == pytest.approx(ref.dim, rel=1e-12)
    assert res.n_distinct == 1000
    assert abs(res.dim - 2) < 0.15, res
    xd = np.repeat(x, 2, axis=0)
    res_d = ph_dimension_from_distances(cdist(xd, xd), n_min=200)
    assert res_d.dim == pytest.approx(ref.dim, rel=1e-9)


def test_line_in_10d():
    rng = np.random.default_rng(2)
    pts = np.outer(rng.random(1000), rng.normal(size=10)) + 5.0
    assert abs(ph_dimension(pts).dim - 1) < 0.05


def test_nearby_points_keep_precision():
    # iterates 1e-6 apart around a large offset: centring + direct differences keep them exact
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
    d = loss_distance_matrix(losses)
    np.testing.assert_allclose(d, [[0.0, 1.0], [1.0, 0.0]])


def test_degenerate_fit_raises():
    with pytest.raises(PHDimensionError, match="distinct points"):
        ph_dimension(np.zeros((100, 3)))
    # a slope >= 1 (lengths growing linearly or faster) has no finite dimension
    from predictors.estimators.ph_dim import _fit

    with pytest.raises(PHDimensionError, match="slope"):
        _fit(np.array([10, 20, 40]), np.array([1.0, 2.5, 6.0]), 1.0, 40)


def test_row_wise_prim_matches_dense(monkeypatch):
    import predictors.estimators.ph_dim as ph

    x = np.random.default_rng(5).random((300, 4))
    x = np.concatenate([x, x[:20]])
    dense = mst_length(x)
    monkeypatch.setattr(ph, "_DENSE_MAX_POINTS", 10)
    assert mst_length(x) == pytest.approx(dense, rel=1e-12)
