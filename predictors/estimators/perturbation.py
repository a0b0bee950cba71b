"""Sharpness and flatness of a trained model's loss around its weights.

* epsilon-sharpness, Keskar et al. 2017 ("On large-batch training for deep learning:
  generalization gap and sharp minima", ICLR);
* adaptive worst-case sharpness, Andriushchenko et al. 2023 ("A modern look at the
  relationship between sharpness and generalization", ICML);
* PAC-Bayes flatness and its magnitude-aware form, Jiang et al. 2020 ("Fantastic
  generalization measures and where to find them", ICLR), Sec. C.3 / measures (53)-(60).

Every function takes the model, a loss closure ``loss_fn(model) -> scalar tensor`` that
evaluates the (mean) loss of the model at its current weights on fixed batches, and a seed.
Perturbations are applied in place to the parameters with ``requires_grad`` and the original
values are always restored (also on error); the model runs in eval mode meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

__all__ = [
    "LossClosure",
    "epsilon_sharpness",
    "adaptive_sharpness",
    "pac_bayes_sigma",
    "pac_bayes_flatness",
    "pac_bayes_mag_flatness",
]

LossClosure = Callable[[torch.nn.Module], torch.Tensor]


def _params(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("sharpness: the model has no parameters with requires_grad=True")
    return params


@contextmanager
def _restoring(model: torch.nn.Module) -> Iterator[list[torch.Tensor]]:
    """Yield copies of the trainable parameters; put them back (and the train flag) on exit."""
    params = _params(model)
    saved = [p.detach().clone() for p in params]
    was_training = model.training
    model.eval()
    try:
        yield saved
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved):
                p.copy_(s)
        model.train(was_training)


def _scalar(loss: torch.Tensor, where: str) -> float:
    value = float(loss.detach())
    if not math.isfinite(value):
        raise FloatingPointError(f"{where}: the loss closure returned {value}")
    return value


def _worst_case(
    model: torch.nn.Module,
    loss_fn: LossClosure,
    scale: Callable[[torch.Tensor], torch.Tensor],
    radius: float,
    p: float,
    n_steps: int,
    seed: int,
) -> tuple[float, float]:
    """max_{||z||_p <= radius} L(w + c * z) by projected (sign-)gradient ascent.

    c = scale(w) elementwise. Steps: z <- Proj(z + s_t * d_t) with d_t = sign(grad_z) for
    p = inf and grad_z / ||grad_z||_2 for p = 2, step s_t = radius * (1 - t / n_steps), from a
    seeded random start at half the radius. Returns (L(w), best loss seen).
    """
    if p not in (2, math.inf):
        raise ValueError(f"sharpness: p must be 2 or math.inf, got {p}")
    if radius <= 0 or n_steps < 1:
        raise ValueError(f"sharpness: need radius > 0 and n_steps >= 1, got {radius}, {n_steps}")
    params = _params(model)
    with _restoring(model) as w0:
        base = _scalar(loss_fn(model), "sharpness")
        cs = [scale(w) for w in w0]
        gen = torch.Generator().manual_seed(int(seed))
        if p == math.inf:
            zs = [(torch.rand(w.shape, generator=gen, dtype=torch.float64) * 2 - 1) * radius / 2 for w in w0]
        else:
            zs = [torch.randn(w.shape, generator=gen, dtype=torch.float64) for w in w0]
            norm = math.sqrt(sum(float((z**2).sum()) for z in zs))
            zs = [z * (radius / 2 / norm) for z in zs]
        zs = [z.to(device=w.device, dtype=w.dtype) for z, w in zip(zs, w0)]
        best = base
        for t in range(n_steps + 1):
            with torch.no_grad():
                for prm, w, c, z in zip(params, w0, cs, zs):
                    prm.copy_(w + c * z)
            loss = loss_fn(model)
            best = max(best, _scalar(loss, "sharpness"))
            if t == n_steps:
                break
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            gz = [(g if g is not None else torch.zeros_like(c)) * c for g, c in zip(grads, cs)]
            step = radius * (1.0 - t / n_steps)
            with torch.no_grad():
                if p == math.inf:
                    zs = [torch.clamp(z + step * torch.sign(g), -radius, radius) for z, g in zip(zs, gz)]
                else:
                    gnorm = math.sqrt(sum(float((g**2).sum()) for g in gz))
                    if gnorm == 0.0:
                        break  # stationary in every direction the constraint allows
                    zs = [z + (step / gnorm) * g for z, g in zip(zs, gz)]
                    znorm = math.sqrt(sum(float((z**2).sum()) for z in zs))
                    if znorm > radius:
                        zs = [z * (radius / znorm) for z in zs]
    return base, best


def epsilon_sharpness(
    model: torch.nn.Module,
    loss_fn: LossClosure,
    *,
    eps: float = 1e-3,
    n_steps: int = 20,
    seed: int = 0,
) -> float:
    """Keskar et al. 2017 epsilon-sharpness (relative, without their factor 100).

        phi = ( max_{delta in C_eps} L(w + delta) - L(w) ) / (1 + L(w)),
        C_eps = { delta : |delta_i| <= eps * (|w_i| + 1) }   (their A = I, full space),

    the maximum found by projected sign-gradient ascent (Keskar et al. use L-BFGS-B) with
    ``n_steps`` steps from a seeded random start; a lower bound on the true maximum.
    """
    base, best = _worst_case(model, loss_fn, lambda w: w.abs() + 1.0, eps, math.inf, n_steps, seed)
    return (best - base) / (1.0 + base)


def adaptive_sharpness(
    model: torch.nn.Module,
    loss_fn: LossClosure,
    *,
    rho: float = 0.1,
    p: float = 2,
    eta: float = 0.0,
    n_steps: int = 20,
    seed: int = 0,
) -> float:
    """Andriushchenko et al. 2023 adaptive worst-case sharpness.

        S = max_{ || delta / (|w| + eta) ||_p <= rho } L(w + delta) - L(w),   p in {2, inf},

    with delta = (|w| + eta) * z and z ascended by projected gradient (p = 2: normalised
    gradient steps, projection onto the l2 ball) or sign gradient (p = inf: clipping).
    Here the maximum is over the whole closure's batches (their m-sharpness with m = the
    closure's data); eta = 0 is their elementwise-adaptive definition, eta > 0 lets
    zero weights move (as in ASAM, Kwon et al. 2021).
    """
    if eta < 0:
        raise ValueError(f"adaptive_sharpness: eta must be >= 0, got {eta}")
    base, best = _worst_case(model, loss_fn, lambda w: w.abs() + eta, rho, p, n_steps, seed)
    return best - base


def _expected_deviation(
    model: torch.nn.Module,
    loss_fn: LossClosure,
    w0: list[torch.Tensor],
    base: float,
    std: Callable[[torch.Tensor, float], torch.Tensor],
    sigma: float,
    n_mc: int,
    seed: int,
) -> float:
    """Monte Carlo E_u[L(w + u)] - L(w), u = std(w, sigma) * xi with xi fixed by the seed.

    Antithetic pairs: each draw xi_k is evaluated at w + u and w - u, which cancels the
    first-order term grad L . u exactly (it has zero mean but, away from a minimum, a Monte
    Carlo spread larger than the 0.1 target itself). The same draws are used for every sigma
    (common random numbers), so the bisection sees a smooth function of sigma.
    """
    params = _params(model)
    total = 0.0
    for k in range(n_mc):
        for sign in (1.0, -1.0):
            gen = torch.Generator().manual_seed(int(seed) * 100_003 + k)
            with torch.no_grad():
                for prm, w in zip(params, w0):
                    xi = torch.randn(w.shape, generator=gen, dtype=torch.float64).to(device=w.device, dtype=w.dtype)
                    prm.copy_(w + sign * std(w, sigma) * xi)
                total += _scalar(loss_fn(model), "pac_bayes")
    return total / (2 * n_mc) - base


def pac_bayes_sigma(
    model: torch.nn.Module,
    loss_fn: LossClosure,
    *,
    magnitude_aware: bool = False,
    target: float = 0.1,
    mag_eps: float = 1e-3,
    n_mc: int = 10,
    n_bisect: int = 25,
    seed: int = 0,
) -> float:
    """Largest sigma with E_u[L(w + u)] - L(w) <= target (Jiang et al. 2020, Sec. C.3).

    u_i ~ N(0, sigma^2) (PAC-Bayes flatness) or, with ``magnitude_aware``,
    u_i ~ N(0, sigma^2 w_i^2 + mag_eps^2) with mag_eps = 1e-3 (their magnitude-aware
    perturbation). Jiang et al. take L as the training *error* and a deviation target of 0.1;
    pass a closure returning the error rate to follow them (any loss works for the math).
    The expectation is a Monte Carlo mean over ``n_mc`` seeded antithetic pairs (2 * n_mc
    loss evaluations per sigma); sigma is bracketed by
    doubling/halving from 1 and refined by ``n_bisect`` geometric bisection steps.
    """
    if target <= 0 or n_mc < 1:
        raise ValueError(f"pac_bayes_sigma: need target > 0 and n_mc >= 1, got {target}, {n_mc}")

    def std(w: torch.Tensor, sigma: float) -> torch.Tensor:
        if magnitude_aware:
            return torch.sqrt(sigma**2 * w**2 + mag_eps**2)
        return torch.full_like(w, sigma)

    with _restoring(model) as w0:
        base = _scalar(loss_fn(model), "pac_bayes")

        def dev(sigma: float) -> float:
            return _expected_deviation(model, loss_fn, w0, base, std, sigma, n_mc, seed)

        if magnitude_aware and dev(0.0) > target:
            raise ValueError(
                f"pac_bayes_sigma: the fixed magnitude-aware noise (eps={mag_eps}) alone moves the "
                f"loss by more than target={target}; lower mag_eps or raise target"
            )
        lo, hi = 0.0, 1.0
        if dev(hi) <= target:
            for _ in range(60):
                lo, hi = hi, hi * 2.0
                if dev(hi) > target:
                    break
            else:
                raise ValueError(
                    f"pac_bayes_sigma: loss deviation stays <= {target} up to sigma={hi:g}; "
                    "the loss closure does not depend on the weights?"
                )
        else:
            for _ in range(60):
                lo = hi / 2.0
                if dev(lo) <= target:
                    break
                hi = lo
            else:
                raise ValueError(f"pac_bayes_sigma: deviation exceeds {target} even at sigma={lo:g}")
        for _ in range(n_bisect):
            mid = math.sqrt(lo * hi) if lo > 0 else hi / 2.0
            if dev(mid) <= target:
                lo = mid
            else:
                hi = mid
    return 0.5 * (lo + hi)


def pac_bayes_flatness(model: torch.nn.Module, loss_fn: LossClosure, *, seed: int = 0, **kwargs) -> float:
    """Jiang et al. 2020 PAC-Bayes flatness 1 / sigma'^2 (u ~ N(0, sigma'^2 I)); see pac_bayes_sigma."""
    sigma = pac_bayes_sigma(model, loss_fn, magnitude_aware=False, seed=seed, **kwargs)
    return 1.0 / sigma**2


def pac_bayes_mag_flatness(model: torch.nn.Module, loss_fn: LossClosure, *, seed: int = 0, **kwargs) -> float:
    """Jiang et al. 2020 magnitude-aware PAC-Bayes flatness 1 / sigma'^2; see pac_bayes_sigma."""
    sigma = pac_bayes_sigma(model, loss_fn, magnitude_aware=True, seed=seed, **kwargs)
    return 1.0 / sigma**2
