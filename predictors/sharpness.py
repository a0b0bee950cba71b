"""Sharpness and flatness of the final minimum, measured on a fixed seeded probe set.

All measures use the mean training cross-entropy on ``PROBE_EXAMPLES`` (256) training
examples drawn with the predictor's seed (the PAC-Bayes measures use the training error, as Jiang et
al. do), and restore the weights they perturb. Higher = sharper = larger predicted gap; the
PAC-Bayes measures are reported as 1 / sigma'^2 (flatter = smaller).
"""

from __future__ import annotations

from predictors.api import Subject, predictor
from predictors.estimators import hessian
from predictors.estimators import sharpness as sharp
from predictors.probes import error_closure, mean_loss_closure, probe_batches

# Sized so that the whole board fits the 2-core CPU budget (see the board's protocol notes).
PROBE_EXAMPLES = 256
LANCZOS_ITERATIONS = 20
HUTCHINSON_SAMPLES = 10
PAC_BAYES_DRAWS = 3  # antithetic pairs per sigma
PAC_BAYES_BISECTIONS = 8
YAO = "Yao, Gholami, Keutzer & Mahoney 2020, PyHessian (Lanczos on Hessian-vector products); Keskar et al. 2017"
JIANG = "Jiang et al. 2020, Fantastic generalization measures and where to find them (ICLR), Sec. C.3"


def _hvp(subject: Subject, seed: int):
    model = subject.model("final")
    batches = probe_batches(subject, n_examples=PROBE_EXAMPLES, seed=seed)
    return hessian.make_hvp(model, subject.loss_fn(), batches)


@predictor(version="2", family="sharpness", reference=YAO, requires=("weights", "train_data"))
def hessian_top_eigenvalue(subject: Subject, *, seed: int = 0) -> float:
    """lambda_max of the training-loss Hessian: Lanczos (20 steps, full reorthogonalisation) on HVPs."""
    hvp, dim = _hvp(subject, seed)
    return float(hessian.lanczos_top_eigenvalues(hvp, dim, k=1, n_iter=LANCZOS_ITERATIONS, seed=seed)[0])


@predictor(version="2", family="sharpness", reference="Hutchinson 1990; Yao et al. 2020, PyHessian", requires=("weights", "train_data"))
def hessian_trace(subject: Subject, *, seed: int = 0) -> float:
    """tr(H) of the training-loss Hessian by Hutchinson's estimator (10 Rademacher probes)."""
    hvp, dim = _hvp(subject, seed)
    return hessian.hutchinson_trace(hvp, dim, n_samples=HUTCHINSON_SAMPLES, seed=seed)[0]


@predictor(
    version="2",
    family="sharpness",
    reference="Keskar, Mudigere, Nocedal, Smelyanskiy & Tang 2017, On large-batch training for deep learning (ICLR)",
    requires=("weights", "train_data"),
)
def epsilon_sharpness(subject: Subject, *, seed: int = 0) -> float:
    """(max_{|d_i| <= eps(|w_i|+1)} L(w+d) - L(w)) / (1 + L(w)), eps = 1e-3, 20 sign-ascent steps."""
    model = subject.model("final")
    closure = mean_loss_closure(probe_batches(subject, n_examples=PROBE_EXAMPLES, seed=seed))
    return sharp.epsilon_sharpness(model, closure, eps=1e-3, n_steps=20, seed=seed)


@predictor(
    version="2",
    family="sharpness",
    reference="Andriushchenko, Croce, Mueller, Hein & Flammarion 2023, A modern look at the relationship between sharpness and generalization (ICML)",
    requires=("weights", "train_data"),
)
def adaptive_sharpness(subject: Subject, *, seed: int = 0) -> float:
    """max_{||d/|w| ||_2 <= rho} L(w+d) - L(w): adaptive worst-case l2 sharpness, rho = 0.1, 20 steps."""
    model = subject.model("final")
    closure = mean_loss_closure(probe_batches(subject, n_examples=PROBE_EXAMPLES, seed=seed))
    return sharp.adaptive_sharpness(model, closure, rho=0.1, p=2, n_steps=20, seed=seed)


@predictor(version="2", family="sharpness", reference=JIANG + " (pacbayes.flatness)", requires=("weights", "train_data"),
           notes="cheaper protocol: 3 antithetic Monte Carlo pairs per sigma, 8 bisection steps, 256 probe examples")
def pac_bayes_flatness(subject: Subject, *, seed: int = 0) -> float:
    """1 / sigma'^2, sigma' the largest sigma with E_u[err(w+u)] - err(w) <= 0.1, u ~ N(0, sigma^2 I)."""
    model = subject.model("final")
    closure = error_closure(probe_batches(subject, n_examples=PROBE_EXAMPLES, seed=seed))
    return sharp.pac_bayes_flatness(model, closure, seed=seed, n_mc=PAC_BAYES_DRAWS, n_bisect=PAC_BAYES_BISECTIONS)


@predictor(version="2", family="sharpness", reference=JIANG + " (pacbayes.mag.flatness)", requires=("weights", "train_data"),
           notes="cheaper protocol: 3 antithetic Monte Carlo pairs per sigma, 8 bisection steps, 256 probe examples")
def pac_bayes_mag_flatness(subject: Subject, *, seed: int = 0) -> float:
    """1 / sigma'^2 with magnitude-aware noise u_i ~ N(0, sigma^2 w_i^2 + 1e-6)."""
    model = subject.model("final")
    closure = error_closure(probe_batches(subject, n_examples=PROBE_EXAMPLES, seed=seed))
    return sharp.pac_bayes_mag_flatness(model, closure, seed=seed, n_mc=PAC_BAYES_DRAWS, n_bisect=PAC_BAYES_BISECTIONS)
