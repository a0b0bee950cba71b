"""The training objective on fixed subsamples: loss/error closures, flat and full-batch gradients.

Curvature and sharpness measures (Hessian eigenvalue and trace, epsilon- and adaptive
sharpness, PAC-Bayes flatness) evaluate the training loss on **the subsample**: the first
``SUBSAMPLE_EXAMPLES`` examples of a permutation of the training set seeded by the
predictor's seed (all of them when the training set is smaller). It is declared here once so
that those measures stay comparable with one another, and sized so that the whole board
fits its CPU budget (about 5 s per model for the whole board on a 2-core CPU).

Gradient-noise measures (``sgn_tail_index``, ``gradient_noise_scale``) do not use the
subsample: their noise is defined relative to the training set the minibatches are drawn
from, and drawing them from a subsample of 64 changes the numbers completely (the tail index
of a CNN's noise measured 1.1 over its 1,000 training examples, 1.5 over 256, 2.3 over 128,
and no finite value over 64), so they read the full training set through
:func:`full_gradient` and :func:`flat_gradient`.

(The zoo's *loss probe*, the fixed training examples whose per-example losses the trainer
records at each window step, is a different thing: see ``model_zoo.trainer``.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from predictors.api import Subject

__all__ = [
    "SUBSAMPLE_EXAMPLES",
    "subsample_batches",
    "mean_loss_closure",
    "error_closure",
    "flat_gradient",
    "full_gradient",
]

SUBSAMPLE_EXAMPLES = 64
"""Training examples in the subsample on which curvature/sharpness measures evaluate the loss."""

_BATCH = 256  # examples per forward pass when evaluating on the subsample (memory only)


def subsample_batches(
    subject: Subject, *, seed: int = 0, batch_size: int = _BATCH
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The subsample: the first SUBSAMPLE_EXAMPLES of a permutation of the training set seeded by ``seed``.

    Returned as batches of at most ``batch_size`` examples (the batching only bounds memory).
    """
    if batch_size < 1:
        raise ValueError(f"subsample_batches: batch_size must be >= 1, got {batch_size}")
    batches = list(subject.train_batches(batch_size, shuffle=True, seed=seed, max_examples=SUBSAMPLE_EXAMPLES))
    if not batches:
        raise ValueError(f"the training set of model {subject.model_id!r} is empty; no subsample to evaluate")
    return batches


def mean_loss_closure(
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[..., torch.Tensor] = torch.nn.functional.cross_entropy,
) -> Callable[[torch.nn.Module], torch.Tensor]:
    """model -> mean loss over the fixed batches (weighted by batch size), differentiable."""
    n = sum(len(y) for _, y in batches)

    def closure(model: torch.nn.Module) -> torch.Tensor:
        return sum(loss_fn(model(x), y, reduction="sum") for x, y in batches) / n

    return closure


def error_closure(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> Callable[[torch.nn.Module], torch.Tensor]:
    """model -> error rate over the fixed batches (not differentiable)."""
    n = sum(len(y) for _, y in batches)

    def closure(model: torch.nn.Module) -> torch.Tensor:
        with torch.no_grad():
            wrong = sum(int((model(x).argmax(1) != y).sum()) for x, y in batches)
        return torch.tensor(wrong / n, dtype=torch.float64)

    return closure


def flat_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Gradient of the mean cross-entropy on (x, y) as one float64 vector; .grad untouched."""
    params = [p for p in model.parameters() if p.requires_grad]
    loss = torch.nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params)
    return torch.cat([g.reshape(-1) for g in grads]).double()


def full_gradient(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, chunk: int = 512) -> torch.Tensor:
    """Gradient of the mean cross-entropy over all of (x, y), accumulated in chunks (float64)."""
    if len(y) == 0:
        raise ValueError("full_gradient: no examples")
    total = None
    for start in range(0, len(y), chunk):
        part = flat_gradient(model, x[start : start + chunk], y[start : start + chunk]) * len(y[start : start + chunk])
        total = part if total is None else total + part
    return total / len(y)
