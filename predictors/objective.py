"""Shared, seeded ways for predictors to look at a model: fixed probe batches and loss closures.

Estimators that differentiate the loss (Hessians, sharpness, gradient noise) evaluate it on a
fixed, seeded subset of the training set; fixing it here keeps them comparable and cheap.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from predictors.api import Subject

DEFAULT_PROBE_EXAMPLES = 512


def probe_batches(
    subject: Subject, *, n_examples: int = DEFAULT_PROBE_EXAMPLES, batch_size: int = 256, seed: int = 0
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A seeded subset of at most ``n_examples`` training examples, as a list of batches."""
    return list(subject.train_batches(batch_size, shuffle=True, seed=seed, max_examples=n_examples))


def mean_loss_closure(
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = torch.nn.functional.cross_entropy,
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
    total = None
    for start in range(0, len(y), chunk):
        part = flat_gradient(model, x[start : start + chunk], y[start : start + chunk]) * len(y[start : start + chunk])
        total = part if total is None else total + part
    return total / len(y)


def subsample(x: torch.Tensor, y: torch.Tensor, max_examples: int, generator: torch.Generator):
    """At most ``max_examples`` of (x, y), drawn with ``generator`` (all of them if fewer)."""
    if len(y) <= max_examples:
        return x, y
    keep = torch.randperm(len(y), generator=generator)[:max_examples]
    return x[keep], y[keep]
