import numpy as np

from predictors.estimators.emc import effective_model_complexity

D = 20


def lstsq_train_error(n: int, seed: int) -> float:
    """Fraction of n random-label points a d-parameter least-squares fit fails to interpolate."""
    rng = np.random.default_rng(1000 * n + seed)
    x = rng.normal(size=(n, D))
    y = rng.normal(size=n)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(np.mean(np.abs(x @ coef - y) > 1e-6))


def test_emc_of_least_squares_is_its_parameter_count():
    res = effective_model_complexity(lstsq_train_error, 1, 200, eps=0.1, n_seeds=2)
    assert res.emc == D
    assert len(res.evaluations) <= 12  # bisection, not a scan
    by_n = {e.n: e.mean_error for e in res.evaluations}
    assert all(err <= 0.1 for n, err in by_n.items() if n <= D)
    assert all(err > 0.1 for n, err in by_n.items() if n > D)


def test_monotone_in_eps_and_edges():
    err = lambda n, seed: min(1.0, n / 100)  # noqa: E731
    emcs = [effective_model_complexity(err, 1, 100, eps=e).emc for e in (0.05, 0.1, 0.3, 0.6)]
    assert emcs == sorted(emcs) == [5, 10, 30, 60]
    assert effective_model_complexity(err, 1, 100, eps=1.0).emc == 100  # fits everything
    assert effective_model_complexity(err, 20, 100, eps=0.1).emc == 19  # fits nothing in range


def test_tolerance_brackets_the_answer():
    res = effective_model_complexity(lambda n, s: float(n > 37), 1, 1000, eps=0.5, tol=8)
    # the result is a verified passing n within tol below the exact answer
    assert 37 - 8 < res.emc <= 37


def test_board_protocol_brackets_the_answer():
    # effective_model_complexity's protocol around a model trained on n_train = D examples:
    # bisection on [n_train / N_MIN_FRACTION, GROWTH * n_train] to a bracket of
    # n_train / TOL_FRACTION, N_SEEDS seed(s) per size
    from predictors.complexity import EPS, GROWTH, N_MIN_FRACTION, N_SEEDS, TOL_FRACTION

    n_train = D
    tol = n_train // TOL_FRACTION
    res = effective_model_complexity(
        lstsq_train_error, max(2, n_train // N_MIN_FRACTION), GROWTH * n_train, eps=EPS, n_seeds=N_SEEDS, tol=tol
    )
    assert D - tol < res.emc <= D
    assert len(res.evaluations) <= 5
