"""Hessian spectrum estimators from Hessian-vector products.

Top eigenvalues by the Lanczos algorithm with full reorthogonalisation (Golub & Van Loan,
"Matrix Computations", Alg. 10.1.1 plus reorthogonalisation; PyHessian, Yao et al. 2020,
uses the same building blocks), the trace by Hutchinson's estimator with Rademacher probes
(Hutchinson 1990; Avron & Toledo 2011), and the spectral density by stochastic Lanczos
quadrature (Ghorbani, Krishnan & Xiao 2019). Everything here sees the Hessian only through a
callable ``hvp(v) -> H v`` on flat vectors; :func:`make_hvp` builds one from a torch model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.linalg import eigh_tridiagonal

__all__ = [
    "HVP",
    "make_hvp",
    "lanczos_tridiagonal",
    "lanczos_top_eigenvalues",
    "hutchinson_trace",
    "lanczos_spectral_density",
]

HVP = Callable[[torch.Tensor], torch.Tensor]


def make_hvp(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[HVP, int]:
    """Hessian-vector product of the averaged loss over a fixed list of batches.

    L(w) = (1/B) sum_b loss_fn(model(x_b), y_b); hvp(v) = d/dw <grad L(w), v> by double
    backprop (Pearlmutter 1994), one batch at a time so memory is that of one batch.
    ``v`` is a flat vector over the parameters with ``requires_grad`` (in ``model.parameters()``
    order); it may be float64, the product is computed in the parameters' dtype and returned
    as a float64 flat tensor on the CPU. The model runs in eval mode during each product
    (dropout off, batch-norm running statistics: H must be a fixed matrix) and its training
    flag is restored afterwards; parameters and their ``.grad`` are never written.
    Returns (hvp, n_params).
    """
    if len(batches) == 0:
        raise ValueError("make_hvp: batches is empty; pass at least one (inputs, targets) batch")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("make_hvp: the model has no parameters with requires_grad=True")
    sizes = [p.numel() for p in params]
    n_params = sum(sizes)
    dtype, device = params[0].dtype, params[0].device

    def hvp(v: torch.Tensor) -> torch.Tensor:
        v = torch.as_tensor(v)
        if v.shape != (n_params,):
            raise ValueError(f"hvp: expected a flat vector of length {n_params}, got {tuple(v.shape)}")
        chunks = v.to(dtype=dtype, device=device).split(sizes)
        vs = [c.view_as(p) for c, p in zip(chunks, params)]
        was_training = model.training
        model.eval()
        try:
            total = torch.zeros(n_params, dtype=torch.float64)
            for x, y in batches:
                loss = loss_fn(model(x), y)
                grads = torch.autograd.grad(loss, params, create_graph=True)
                dot = sum((g * u).sum() for g, u in zip(grads, vs))
                hv = torch.autograd.grad(dot, params, allow_unused=True)
                flat = torch.cat(
                    [
                        (h if h is not None else torch.zeros_like(p)).reshape(-1)
                        for h, p in zip(hv, params)
                    ]
                )
                total += flat.detach().to(device="cpu", dtype=torch.float64)
        finally:
            model.train(was_training)
        return total / len(batches)

    return hvp, n_params


def _as_f64(t: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(t).detach().to(device="cpu", dtype=torch.float64).reshape(-1)


def lanczos_tridiagonal(
    hvp: HVP, dim: int, n_iter: int, v0: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """m steps of Lanczos with full reorthogonalisation from start vector ``v0``.

    Builds an orthonormal Krylov basis q_1..q_m and the tridiagonal T = Q^T H Q with diagonal
    a_j = q_j^T H q_j and off-diagonal b_j = ||r_j||, where r_j = H q_j - a_j q_j - b_{j-1}
    q_{j-1} is then reorthogonalised against all previous q (twice, "twice is enough"), which
    keeps the Ritz values free of the ghost copies plain Lanczos produces. Stops early when
    b_j vanishes (an invariant subspace was found). Returns (a, b) with len(b) = len(a) - 1.
    All vectors are float64 on the CPU.
    """
    m = min(int(n_iter), int(dim))
    if m < 1:
        raise ValueError(f"lanczos: n_iter and dim must be >= 1, got n_iter={n_iter}, dim={dim}")
    q = _as_f64(v0)
    q = q / q.norm()
    basis = torch.empty((m, dim), dtype=torch.float64)
    a: list[float] = []
    b: list[float] = []
    scale = 0.0
    for j in range(m):
        basis[j] = q
        w = _as_f64(hvp(q))
        if not torch.all(torch.isfinite(w)):
            raise FloatingPointError("lanczos: the Hessian-vector product returned NaN/inf")
        alpha = float(q @ w)
        a.append(alpha)
        w = w - alpha * q
        if j > 0:
            w = w - b[-1] * basis[j - 1]
        for _ in range(2):
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(w.norm())
        scale = max(scale, abs(alpha), beta)
        if j == m - 1 or beta <= 1e-12 * max(scale, 1e-300):
            break
        b.append(beta)
        q = w / beta
    return np.asarray(a), np.asarray(b[: len(a) - 1])


def lanczos_top_eigenvalues(
    hvp: HVP, dim: int, k: int = 1, n_iter: int = 50, seed: int = 0
) -> np.ndarray:
    """The k algebraically largest eigenvalues of H (descending), by Lanczos.

    Runs :func:`lanczos_tridiagonal` for min(n_iter, dim) steps from a seeded Gaussian start
    and returns the top k eigenvalues of T (Ritz values), which converge to the extreme
    eigenvalues of H far faster than power iteration when the spectral gap is small. Memory:
    n_iter * dim float64 numbers for the basis.
    """
    if k < 1:
        raise ValueError(f"lanczos_top_eigenvalues: k must be >= 1, got {k}")
    gen = torch.Generator().manual_seed(int(seed))
    v0 = torch.randn(dim, generator=gen, dtype=torch.float64)
    a, b = lanczos_tridiagonal(hvp, dim, max(n_iter, k), v0)
    if a.size < k:
        raise ValueError(
            f"lanczos_top_eigenvalues: the Krylov space closed after {a.size} steps, fewer than k={k}"
        )
    ritz = eigh_tridiagonal(a, b, eigvals_only=True) if a.size > 1 else a.copy()
    return np.sort(ritz)[::-1][:k].copy()


def hutchinson_trace(
    hvp: HVP, dim: int, n_samples: int = 100, seed: int = 0
) -> tuple[float, float]:
    """Hutchinson's trace estimator: tr(H) = E[z^T H z], z with i.i.d. Rademacher entries.

    Returns (mean, standard error of the mean) over ``n_samples`` seeded probes.
    """
    if n_samples < 2:
        raise ValueError(f"hutchinson_trace: n_samples must be >= 2 for a standard error, got {n_samples}")
    gen = torch.Generator().manual_seed(int(seed))
    vals = np.empty(n_samples)
    for i in range(n_samples):
        z = torch.randint(0, 2, (dim,), generator=gen, dtype=torch.int64).to(torch.float64) * 2 - 1
        vals[i] = float(z @ _as_f64(hvp(z)))
    return float(vals.mean()), float(vals.std(ddof=1) / math.sqrt(n_samples))


def lanczos_spectral_density(
    hvp: HVP,
    dim: int,
    n_iter: int = 50,
    n_probes: int = 1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic Lanczos quadrature estimate of the Hessian eigenvalue density.

    For each probe v ~ N(0, I)/||v|| run m Lanczos steps; the eigenpairs (theta_i, u_i) of
    T give the Gauss quadrature nodes theta_i with weights u_i[0]^2, so that
    v^T f(H) v ~ sum_i u_i[0]^2 f(theta_i) (Ghorbani et al. 2019, Sec. 3). Returns (nodes,
    weights) pooled over probes, weights summing to 1; smooth with a Gaussian kernel to plot.
    """
    gen = torch.Generator().manual_seed(int(seed))
    nodes, weights = [], []
    for _ in range(n_probes):
        v0 = torch.randn(dim, generator=gen, dtype=torch.float64)
        a, b = lanczos_tridiagonal(hvp, dim, n_iter, v0)
        if a.size == 1:
            theta, u0 = a.copy(), np.ones(1)
        else:
            theta, vecs = eigh_tridiagonal(a, b)
            u0 = vecs[0]
        nodes.append(theta)
        weights.append(u0**2 / n_probes)
    return np.concatenate(nodes), np.concatenate(weights)
