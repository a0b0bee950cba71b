"""Power-law fits of weight-matrix eigenvalue spectra (heavy-tailed self-regularisation).

Martin & Mahoney 2021 ("Predicting trends in the quality of state-of-the-art neural networks
without access to training or testing data", Nature Communications), with the conventions of
their WeightWatcher package (version 0.7.7, ``weightwatcher.analyze()`` defaults), so that our
alpha and alpha-hat agree with it layer by layer (tests/test_estimators_powerlaw.py):

* layers: ``nn.Linear`` and ``nn.Embedding`` weights as they are; ``nn.Conv2d`` weights
  ``[out, in, kh, kw]`` cut into the kh * kw matrices ``W[:, :, i, j]`` whose spectra are
  pooled, each matrix multiplied by sqrt(1/2) (WeightWatcher's ``conv2d_norm``: eigenvalues
  halved); a layer is kept when M * rf >= 8 (M = min(out, in), rf = kh * kw;
  ``min_evals=8``), M * rf <= 15,000 and N = max(out, in) <= 50,000;
* eigenvalues: squared singular values, **not** divided by N (``normalize=False``);
* fit: eigenvalues <= 1e-5 dropped; the continuous power-law MLE of Clauset, Shalizi & Newman
  2009 with xmin chosen among all eigenvalues but the largest by the smallest KS distance
  (WeightWatcher's own ``WWFit``, which replaced the ``powerlaw`` package), or, below 20
  eigenvalues, its small-sample fit (bias-corrected MLE 1 + (n - 1) / sum log(x / xmin),
  xmin minimising the KS distance over tails of >= 8 values);
* alpha_weighted (alpha-hat) = alpha * log10(lambda_max).

Deliberate difference: ``nn.Conv1d`` layers are skipped. WeightWatcher 0.7.7 passes the 3-D
kernel ``[out, in, k]`` as one "matrix" with M = min(out, in, k) and so drops it whenever a
dimension is below 8 (every Conv1d of the zoo: kernel 3 or 5, or one input channel); for
larger kernels it takes singular values of the 3-D array, which is not a spectrum we
reproduce.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "EVALS_THRESHOLD",
    "MIN_EVALS",
    "SMALL_N",
    "PowerLawFit",
    "LayerSpectrum",
    "alpha_mle",
    "fit_powerlaw",
    "esd",
    "layer_spectra",
    "alpha_hat",
]

EVALS_THRESHOLD = 1e-5
"""Eigenvalues at or below this are left out of the fit (WeightWatcher's EVALS_THRESH)."""

MIN_EVALS = 8
"""Layers with fewer than this many eigenvalues (M * rf) are skipped (WeightWatcher's min_evals)."""

MAX_EVALS = 15_000
MAX_N = 50_000

SMALL_N = 20
"""Below this many fitted eigenvalues the small-sample fit is used (WeightWatcher's SMALL_N_CUTOFF)."""

_SMALL_N_MIN_TAIL = 8
_CONV2D_EVAL_SCALE = 0.5  # (sqrt(1/2))^2: WeightWatcher's conv2d_norm with pooled slices


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_powerlaw`: pdf p(x) ~ x^(-alpha) for x >= xmin."""

    alpha: float
    xmin: float
    ks_distance: float
    n_tail: int
    small_n: bool = False


@dataclass(frozen=True)
class LayerSpectrum:
    """One analysed layer: its module name, kind and eigenvalues (ascending)."""

    name: str
    kind: str
    eigenvalues: np.ndarray

    @property
    def lambda_max(self) -> float:
        return float(self.eigenvalues.max())


def alpha_mle(tail: np.ndarray, xmin: float) -> float:
    """Continuous power-law MLE above a fixed xmin: 1 + n / sum log(x_i / xmin) (Clauset et al. eq. 3.1)."""
    tail = np.asarray(tail, dtype=np.float64)
    return float(1.0 + tail.size / float(np.sum(np.log(tail / xmin))))


def _fit_standard(x: np.ndarray) -> PowerLawFit:
    n_all = x.size
    log_x = np.log(x)
    best_d, best_i, best_alpha = math.inf, 0, math.nan
    suffix = np.cumsum(log_x[::-1])[::-1]  # sum_{j >= i} log x_j
    for i in range(n_all - 1):
        n = n_all - i
        alpha = 1.0 + n / (suffix[i] - n * log_x[i])
        d = 1.0
        if alpha > 1.0:
            d = float(np.max(np.abs(1.0 - (x[i:] / x[i]) ** (1.0 - alpha) - np.arange(n) / n)))
        if d < best_d:  # the first minimum, as np.argmin
            best_d, best_i, best_alpha = d, i, alpha
    return PowerLawFit(float(best_alpha), float(x[best_i]), float(best_d), int(n_all - best_i), False)


def _fit_small_n(x: np.ndarray) -> PowerLawFit:
    # WeightWatcher 0.7.7's WWFit.fit_powerlaw_smallN also scores each tail by
    # D - 0.868 / sqrt(n), but WWFit.__init__ then picks the xmin by the smallest D among the
    # tails it fitted; the returned alpha is the bias-corrected one. That is what it reports.
    n_all = x.size
    log_x = np.log(x)
    best_d, best = math.inf, None
    for i in range(n_all - 1):
        n = n_all - i
        if n < _SMALL_N_MIN_TAIL:
            continue
        s = float(np.sum(log_x[i:]) - n * log_x[i])
        if s <= 1e-12:
            continue
        alpha = 1.0 + (n - 1.0) / s  # bias-corrected MLE
        if alpha <= 1.0:
            continue
        d = float(np.max(np.abs(np.arange(n) / n - (1.0 - (x[i:] / x[i]) ** (1.0 - alpha)))))
        if d < best_d:
            best_d, best = d, PowerLawFit(float(alpha), float(x[i]), d, int(n), True)
    if best is None:  # no tail of >= 8 values with a slope: the whole spectrum as the tail
        n = n_all
        s = float(np.sum(log_x) - n * log_x[0])
        if s <= 1e-12:
            raise ValueError("fit_powerlaw: all eigenvalues are equal; the spectrum has no tail")
        alpha = 1.0 + (n - 1.0) / s
        d = float(np.max(np.abs(np.arange(n) / n - (1.0 - (x / x[0]) ** (1.0 - alpha)))))
        best = PowerLawFit(float(alpha), float(x[0]), d, int(n), True)
    return best


def fit_powerlaw(eigenvalues: np.ndarray, *, threshold: float = EVALS_THRESHOLD) -> PowerLawFit:
    """Fit a continuous power law to the upper tail of ``eigenvalues`` as WeightWatcher does.

    Values <= ``threshold`` are dropped and the rest sorted. For each candidate xmin = x_i
    (every value but the largest) the MLE over the n = N - i values x_j >= x_i is
        alpha_i = 1 + n / sum_j log(x_j / x_i)                 (Clauset et al. 2009, eq. 3.1)
    and its KS distance D_i = max_k |(1 - (x_k / x_i)^(1 - alpha_i)) - k / n|, k = 0..n-1
    (D_i = 1 when alpha_i <= 1); xmin minimises D. With fewer than SMALL_N values the
    small-sample rule is used instead: alpha_i = 1 + (n - 1) / sum log(x_j / x_i) over tails of
    at least 8 values, xmin minimising D_i.
    """
    x = np.asarray(eigenvalues, dtype=np.float64).ravel()
    x = np.sort(x[np.isfinite(x) & (x > threshold)])
    if x.size < 2 or x[0] == x[-1]:
        raise ValueError(
            f"fit_powerlaw: need at least 2 distinct eigenvalues above {threshold:g}, got {x.size}; "
            "the matrix is too small or (nearly) zero"
        )
    return _fit_small_n(x) if x.size < SMALL_N else _fit_standard(x)


def esd(weight: np.ndarray, *, conv2d_scale: float = _CONV2D_EVAL_SCALE) -> np.ndarray:
    """Eigenvalues of W^T W (squared singular values, not normalised), ascending, float64.

    2-D weights (Linear [out, in], Embedding [num, dim]) are used as they are. 4-D Conv2d
    weights [out, in, kh, kw] are cut into the kh * kw matrices W[:, :, i, j] whose
    eigenvalues are pooled and multiplied by ``conv2d_scale`` (WeightWatcher's 1/2).
    Other shapes are rejected: they have no spectrum here (see the module docstring on Conv1d).
    """
    w = np.asarray(weight, dtype=np.float64)
    if w.ndim == 2:
        return np.sort(np.linalg.svd(w, compute_uv=False) ** 2)
    if w.ndim == 4:
        out_ch, in_ch = w.shape[:2]
        mats = np.moveaxis(w.reshape(out_ch, in_ch, -1), 2, 0)  # [kh*kw, out, in]
        sv = np.linalg.svd(mats, compute_uv=False)
        return np.sort(sv.ravel() ** 2 * conv2d_scale)
    raise ValueError(
        f"esd: weight of shape {w.shape} has no matrix spectrum here; pass a Linear/Embedding/Conv2d weight"
    )


def layer_spectra(model: torch.nn.Module) -> list[LayerSpectrum]:
    """The eigenvalue spectra of the layers WeightWatcher analyses, in ``named_modules`` order."""
    out = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            kind = "conv2d"
        elif isinstance(module, torch.nn.Linear):
            kind = "dense"
        elif isinstance(module, torch.nn.Embedding):
            kind = "embedding"
        else:
            continue  # Conv1d (see the module docstring), norms, activations, containers
        w = module.weight.detach().to(device="cpu", dtype=torch.float64).numpy()
        n, m = max(w.shape[:2]), min(w.shape[:2])
        rf = int(np.prod(w.shape[2:])) if w.ndim > 2 else 1
        if m * rf < MIN_EVALS or m * rf > MAX_EVALS or n > MAX_N:
            continue
        out.append(LayerSpectrum(name, kind, esd(w)))
    return out


def alpha_hat(alpha: float, lambda_max: float) -> float:
    """Weighted alpha of Martin & Mahoney 2021: alpha_hat = alpha * log10(lambda_max)."""
    if lambda_max <= 0 or not math.isfinite(lambda_max):
        raise ValueError(f"alpha_hat: lambda_max must be positive and finite, got {lambda_max}")
    return float(alpha * math.log10(lambda_max))
