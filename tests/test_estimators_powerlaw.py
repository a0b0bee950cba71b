import numpy as np
import pytest

from predictors.estimators.powerlaw import alpha_hat, esd, fit_powerlaw


@pytest.mark.parametrize("alpha", [2.5, 3.5])
def test_pareto_alpha_recovered(alpha):
    # numpy's pareto(a) + 1 has pdf ~ x^-(a+1): a = alpha - 1
    x = np.random.default_rng(0).pareto(alpha - 1, 5000) + 1.0
    fit = fit_powerlaw(x)
    assert abs(fit.alpha - alpha) < 0.1, fit
    assert fit.ks_distance < 0.03


def test_fixed_xmin_is_the_closed_form_mle():
    x = np.random.default_rng(1).pareto(2.0, 2000) + 1.0
    fit = fit_powerlaw(x, xmin=1.0)
    assert fit.n_tail == 2000
    assert fit.alpha == pytest.approx(1 + 2000 / np.sum(np.log(x)))


def test_xmin_found_above_lognormal_body():
    rng = np.random.default_rng(0)
    body = rng.lognormal(0.0, 0.5, 4000)
    body = body[body < 3.0]
    tail = 3.0 * (rng.pareto(1.5, 2000) + 1.0)  # alpha = 2.5 above xmin = 3
    fit = fit_powerlaw(np.concatenate([body, tail]))
    assert 2.5 <= fit.xmin <= 4.0, fit
    assert abs(fit.alpha - 2.5) < 0.15, fit


def test_esd_linear_and_conv():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(30, 10))
    ev = esd(w)
    ref = np.linalg.eigvalsh(w.T @ w) / 30
    np.testing.assert_allclose(ev, np.sort(ref), rtol=1e-10, atol=1e-12)
    conv = rng.normal(size=(8, 4, 3, 3))
    ev = esd(conv)
    assert ev.shape == (9 * 4,)
    ref = np.concatenate([np.linalg.eigvalsh(conv[:, :, i, j].T @ conv[:, :, i, j]) / 8 for i in range(3) for j in range(3)])
    np.testing.assert_allclose(ev, np.sort(ref), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="no matrix spectrum"):
        esd(np.ones(5))


def test_alpha_hat():
    assert alpha_hat(2.0, 100.0) == pytest.approx(4.0)
