"""Sharpness and flatness of the final minimum, measured on the subsample.

Every measure evaluates the mean training cross-entropy (the PAC-Bayes measures: the training
error, as Jiang et al. do) on the subsample of ``predictors.objective`` (SUBSAMPLE_EXAMPLES
training examples drawn with the predictor's seed), and restores the weights it perturbs.
Higher = sharper = larger predicted gap; the PAC-Bayes measures are reported as
1 / sigma'^2 (flatter = smaller).

The defaults below are the ones the known-answer tests run (tests/test_estimators_hessian.py
and tests/test_estimators_perturbation.py import them) and are sized so that the whole board
fits its CPU budget; docs/estimators.md lists what each recovers.
"""

from __future__ import annotations

from predictors.api import Subject, predictor
from predictors.estimators import hessian, perturbation
from predictors.objective import SUBSAMPLE_EXAMPLES, error_closure, mean_loss_closure, subsample_batches

LANCZOS_ITERATIONS = 15
TRACE_LANCZOS_ITERATIONS = 15
TRACE_MIN_PROBES = 10
TRACE_MAX_PROBES = 100
TRACE_REL_TOL = 0.01  # stop probing once the standard error is 1% of the estimate
EPSILON = 1e-3
EPSILON_STEPS = 10
ADAPTIVE_RHO = 0.1
ADAPTIVE_P = 2
ADAPTIVE_STEPS = 10
PAC_BAYES_TARGET = 0.1
PAC_BAYES_MAG_EPS = 1e-3
PAC_BAYES_DRAWS = 3  # antithetic pairs per sigma
PAC_BAYES_BISECTIONS = 5

YAO = "Yao, Gholami, Keutzer & Mahoney 2020, PyHessian (Lanczos on Hessian-vector products); Keskar et al. 2017"
JIANG = "Jiang et al. 2020, Fantastic generalization measures and where to find them (ICLR), Sec. C.3"
_SUBSAMPLE_NOTE = f"loss on a seeded subsample of {SUBSAMPLE_EXAMPLES} training examples"


def _hvp(subject: Subject, seed: int):
    model = subject.model("final")
    return hessian.make_hvp(model, subject.loss_fn(), subsample_batches(subject, seed=seed))


@predictor(version="3", family="sharpness", reference=YAO, requires=("weights", "train_data"), notes=_SUBSAMPLE_NOTE)
def hessian_top_eigenvalue(subject: Subject, *, seed: int = 0) -> float:
    """lambda_max of the training-loss Hessian: Lanczos (15 steps, full reorthogonalisation) on HVPs."""
    hvp, dim = _hvp(subject, seed)
    return float(hessian.lanczos_top_eigenvalues(hvp, dim, k=1, n_iter=LANCZOS_ITERATIONS, seed=seed)[0])


@predictor(
    version="3",
    family="sharpness",
    reference="Hutchinson 1990; Yao et al. 2020, PyHessian; deflation as Meyer et al. 2021 (Hutch++)",
    requires=("weights", "train_data"),
    notes=_SUBSAMPLE_NOTE
    + "; Hutchinson on the complement of a 15-step Krylov space, 10-100 probes (standard error <= 1%)",
)
def hessian_trace(subject: Subject, *, seed: int = 0) -> float:
    """tr(H) of the training-loss Hessian: exact on a 15-step Krylov space + Hutchinson on its complement."""
    hvp, dim = _hvp(subject, seed)
    return hessian.deflated_hutchinson_trace(
        hvp,
        dim,
        n_lanczos=TRACE_LANCZOS_ITERATIONS,
        min_probes=TRACE_MIN_PROBES,
        max_probes=TRACE_MAX_PROBES,
        rel_tol=TRACE_REL_TOL,
        seed=seed,
    ).trace


@predictor(
    version="3",
    family="sharpness",
    reference="Keskar, Mudigere, Nocedal, Smelyanskiy & Tang 2017, On large-batch training for deep learning (ICLR)",
    requires=("weights", "train_data"),
    notes=_SUBSAMPLE_NOTE + "; 10 projected sign-ascent steps (Keskar et al.: L-BFGS-B)",
)
def epsilon_sharpness(subject: Subject, *, seed: int = 0) -> float:
    """(max_{|d_i| <= eps(|w_i|+1)} L(w+d) - L(w)) / (1 + L(w)), eps = 1e-3, 10 sign-ascent steps."""
    model = subject.model("final")
    closure = mean_loss_closure(subsample_batches(subject, seed=seed))
    return perturbation.epsilon_sharpness(model, closure, eps=EPSILON, n_steps=EPSILON_STEPS, seed=seed)


@predictor(
    version="3",
    family="sharpness",
    reference=(
        "Andriushchenko, Croce, Mueller, Hein & Flammarion 2023, A modern look at the relationship between "
        "sharpness and generalization (ICML)"
    ),
    requires=("weights", "train_data"),
    notes=_SUBSAMPLE_NOTE + "; 10 projected gradient-ascent steps",
)
def adaptive_sharpness(subject: Subject, *, seed: int = 0) -> float:
    """max_{||d/|w| ||_2 <= rho} L(w+d) - L(w): adaptive worst-case l2 sharpness, rho = 0.1, 10 steps."""
    model = subject.model("final")
    closure = mean_loss_closure(subsample_batches(subject, seed=seed))
    return perturbation.adaptive_sharpness(
        model, closure, rho=ADAPTIVE_RHO, p=ADAPTIVE_P, n_steps=ADAPTIVE_STEPS, seed=seed
    )


_PAC_NOTES = (
    f"cheaper protocol: error on a seeded subsample of {SUBSAMPLE_EXAMPLES} training examples, "
    "3 antithetic Monte Carlo pairs per sigma, 5 bisection steps"
)


@predictor(
    version="3",
    family="sharpness",
    reference=JIANG + " (pacbayes.flatness)",
    requires=("weights", "train_data"),
    notes=_PAC_NOTES,
)
def pac_bayes_flatness(subject: Subject, *, seed: int = 0) -> float:
    """1 / sigma'^2, sigma' the largest sigma with E_u[err(w+u)] - err(w) <= 0.1, u ~ N(0, sigma^2 I)."""
    model = subject.model("final")
    closure = error_closure(subsample_batches(subject, seed=seed))
    return perturbation.pac_bayes_flatness(
        model, closure, seed=seed, target=PAC_BAYES_TARGET, n_mc=PAC_BAYES_DRAWS, n_bisect=PAC_BAYES_BISECTIONS
    )


@predictor(
    version="3",
    family="sharpness",
    reference=JIANG + " (pacbayes.mag.flatness)",
    requires=("weights", "train_data"),
    notes=_PAC_NOTES,
)
def pac_bayes_mag_flatness(subject: Subject, *, seed: int = 0) -> float:
    """1 / sigma'^2 with magnitude-aware noise u_i ~ N(0, sigma^2 w_i^2 + 1e-6)."""
    model = subject.model("final")
    closure = error_closure(subsample_batches(subject, seed=seed))
    return perturbation.pac_bayes_mag_flatness(
        model,
        closure,
        seed=seed,
        target=PAC_BAYES_TARGET,
        mag_eps=PAC_BAYES_MAG_EPS,
        n_mc=PAC_BAYES_DRAWS,
        n_bisect=PAC_BAYES_BISECTIONS,
    )
