"""Power-law fits of weight spectra: known answers, and agreement with the weightwatcher package.

ww_alpha / ww_alpha_hat follow WeightWatcher 0.7.7's conventions (see
predictors.estimators.powerlaw); the comparison below runs the predictor's own per-layer code
path (predictors.tail_index._layer_fits) and weightwatcher's analyze() on the same models and
asks for the same layers, alpha, lambda_max and alpha_weighted. It skips only when
weightwatcher is not installed.
"""

import contextlib
import io
import logging
import warnings

import numpy as np
import pytest
import torch

from predictors.estimators.powerlaw import (
    MIN_EVALS,
    SMALL_N,
    alpha_hat,
    alpha_mle,
    esd,
    fit_powerlaw,
    layer_spectra,
)
from predictors.tail_index import _layer_fits


@pytest.mark.parametrize("alpha", [2.5, 3.5])
def test_pareto_alpha_recovered(alpha):
    # numpy's pareto(a) + 1 has pdf ~ x^-(a+1): a = alpha - 1
    errors = []
    for seed in range(2):
        x = np.random.default_rng(seed).pareto(alpha - 1, 3000) + 1.0
        fit = fit_powerlaw(x)
        assert not fit.small_n and fit.ks_distance < 0.03
        errors.append(fit.alpha - alpha)
    assert max(abs(e) for e in errors) < 0.1, errors


def test_xmin_found_above_lognormal_body():
    rng = np.random.default_rng(0)
    body = rng.lognormal(0.0, 0.5, 4000)
    body = body[body < 3.0]
    tail = 3.0 * (rng.pareto(1.5, 2000) + 1.0)  # alpha = 2.5 above xmin = 3
    fit = fit_powerlaw(np.concatenate([body, tail]))
    assert 2.5 <= fit.xmin <= 4.0, fit
    assert abs(fit.alpha - 2.5) < 0.15, fit


def test_fit_is_the_mle_at_the_chosen_xmin():
    x = np.random.default_rng(1).pareto(2.0, 2000) + 1.0
    fit = fit_powerlaw(x)
    tail = np.sort(x)[np.sort(x) >= fit.xmin]
    assert fit.n_tail == tail.size
    assert fit.alpha == pytest.approx(alpha_mle(tail, fit.xmin), rel=1e-10)


def test_small_spectra_use_the_bias_corrected_fit():
    x = np.random.default_rng(2).pareto(1.5, SMALL_N - 1) + 1.0
    fit = fit_powerlaw(x)
    assert fit.small_n and fit.n_tail >= 8
    tail = np.sort(x)[-fit.n_tail :]
    assert fit.alpha == pytest.approx(1 + (fit.n_tail - 1) / np.sum(np.log(tail / fit.xmin)), rel=1e-10)
    with pytest.raises(ValueError, match="at least 2 distinct"):
        fit_powerlaw(np.full(30, 2.0))


def test_esd_conventions():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(30, 10))
    np.testing.assert_allclose(esd(w), np.sort(np.linalg.eigvalsh(w.T @ w)), rtol=1e-10, atol=1e-12)  # not / N
    conv = rng.normal(size=(8, 4, 3, 3))
    ref = np.concatenate(
        [np.linalg.eigvalsh(conv[:, :, i, j].T @ conv[:, :, i, j]) for i in range(3) for j in range(3)]
    )
    np.testing.assert_allclose(esd(conv), np.sort(ref) / 2, rtol=1e-10, atol=1e-12)  # Conv2d slices, halved
    with pytest.raises(ValueError, match="no matrix spectrum"):
        esd(np.ones(5))


def test_layer_selection():
    model = torch.nn.Sequential(
        torch.nn.Conv1d(8, 16, 5),  # skipped: WeightWatcher drops it (kernel 5 < 8)
        torch.nn.Conv2d(1, 16, 3),  # 1 x 9 = 9 eigenvalues: kept
        torch.nn.Linear(50, 7),  # 7 < MIN_EVALS: skipped
        torch.nn.Linear(50, 30),
        torch.nn.Embedding(100, 12),
    )
    spectra = layer_spectra(model)
    assert [(s.name, s.kind, s.eigenvalues.size) for s in spectra] == [
        ("1", "conv2d", 9), ("3", "dense", 30), ("4", "embedding", 12)
    ]  # fmt: skip
    assert all(s.eigenvalues.size >= MIN_EVALS for s in spectra)


def test_alpha_hat():
    assert alpha_hat(2.0, 100.0) == pytest.approx(4.0)


def _zoo_like_models():
    torch.manual_seed(0)
    models = {
        "cnn": torch.nn.Sequential(
            torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 10),
        ),
        "bow_mlp": torch.nn.Sequential(torch.nn.Linear(5002, 32), torch.nn.ReLU(), torch.nn.Linear(32, 20)),
        "m5_like": torch.nn.Sequential(
            torch.nn.Conv1d(1, 8, 80, stride=4), torch.nn.Conv1d(8, 8, 3), torch.nn.Linear(8, 10)
        ),
        "text": torch.nn.Sequential(torch.nn.Embedding(300, 24), torch.nn.Conv1d(24, 24, 5), torch.nn.Linear(24, 20)),
    }  # fmt: skip
    with torch.no_grad():  # heavy-tailed weights, as trained layers have (seeded by manual_seed above)
        for m in models.values():
            for p in m.parameters():
                if p.dim() >= 2:
                    p.add_(0.05 * torch.distributions.StudentT(torch.tensor(2.5)).sample(p.shape))
    return models


@pytest.mark.parametrize("name", ["cnn", "bow_mlp", "m5_like", "text"])
def test_matches_weightwatcher(name):
    ww = pytest.importorskip("weightwatcher")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    model = _zoo_like_models()[name]
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        details = ww.WeightWatcher(model=model).analyze(randomize=False, vectors=False, detX=False, plot=False)
    ours = layer_spectra(model)
    fits = _layer_fits(model)
    assert list(details["name"]) == [s.name for s in ours]
    for (_, row), spectrum, (fit, lmax) in zip(details.iterrows(), ours, fits):
        assert int(row["num_evals"]) == spectrum.eigenvalues.size
        assert lmax == pytest.approx(float(row["lambda_max"]), rel=1e-9)
        assert fit.alpha == pytest.approx(float(row["alpha"]), rel=1e-9)
        assert fit.xmin == pytest.approx(float(row["xmin"]), rel=1e-9)
        assert alpha_hat(fit.alpha, lmax) == pytest.approx(float(row["alpha_weighted"]), rel=1e-9, abs=1e-12)
