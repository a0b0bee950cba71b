"""Baselines: the numbers any claimed predictor has to beat. Always on the board.

Norm- and margin-based measures follow the definitions collected by Jiang, Neyshabur, Mobahi,
Krishnan & Bengio (2020), "Fantastic generalization measures and where to find them" (ICLR),
Appendix C. Every score is oriented so that higher = larger predicted gap.
"""

from __future__ import annotations

import math

import torch

from predictors.api import Subject, predictor, seeded_generator

JIANG = "Jiang et al. 2020, Fantastic generalization measures and where to find them (ICLR)"


def _weight_matrices(model: torch.nn.Module) -> list[torch.Tensor]:
    """Parameters with >= 2 dims (linear, conv, embedding) as 2-D matrices [out, in*k]."""
    return [p.detach().reshape(p.shape[0], -1) for p in model.parameters() if p.dim() >= 2]


def _flat(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).double()


@predictor(version="1", family="baseline", reference="baseline: uniform noise", requires=(), kind="baseline")
def random(subject: Subject, *, seed: int = 0) -> float:
    """A uniform random number per (model, seed): the chance level of every metric."""
    return float(torch.rand((), generator=seeded_generator(subject, seed), dtype=torch.float64))


@predictor(
    version="1",
    family="baseline",
    reference="Keskar et al. 2017; Jastrzebski et al. 2017 (batch size / learning rate)",
    requires=("hparams",),
    kind="baseline",
)
def batch_over_lr(subject: Subject, *, seed: int = 0) -> float:
    """Hyperparameter-only: log(batch_size / learning_rate) (larger ratio, sharper minima, larger gap)."""
    cfg = subject.config
    return math.log(float(cfg["batch_size"]) / float(cfg["lr"]))


@predictor(version="1", family="baseline", reference=JIANG, requires=("weights", "train_data"), kind="baseline")
def train_loss(subject: Subject, *, seed: int = 0) -> float:
    """Mean cross-entropy of the final weights on the training set."""
    model = subject.model("final")
    total, n = 0.0, 0
    with torch.no_grad():
        for x, y in subject.train_batches(1024):
            total += float(torch.nn.functional.cross_entropy(model(x), y, reduction="sum"))
            n += len(y)
    return total / n


@predictor(version="1", family="baseline", reference="baseline: model size", requires=("weights",), kind="baseline")
def parameter_count(subject: Subject, *, seed: int = 0) -> float:
    """Number of trainable parameters."""
    return float(sum(p.numel() for p in subject.model("final").parameters()))


@predictor(
    version="1",
    family="baseline",
    reference=JIANG + ", eq. (44) frob / params.norm",
    requires=("weights",),
    kind="baseline",
)
def weight_norm(subject: Subject, *, seed: int = 0) -> float:
    """||w||_2 over all parameters of the final model."""
    return float(_flat(subject.model("final")).norm())


@predictor(
    version="1",
    family="baseline",
    reference=JIANG + ", dist.init (Nagarajan & Kolter 2019)",
    requires=("weights", "init"),
    kind="baseline",
)
def distance_to_init(subject: Subject, *, seed: int = 0) -> float:
    """||w_final - w_init||_2."""
    return float((_flat(subject.model("final")) - _flat(subject.model("init"))).norm())


@predictor(
    version="1",
    family="baseline",
    reference=JIANG + ", log.prod.of.spec (Bartlett et al. 2017)",
    requires=("weights",),
    kind="baseline",
)
def spectral_norm_product(subject: Subject, *, seed: int = 0) -> float:
    """log prod_i ||W_i||_2^2 = sum_i 2 log sigma_max(W_i) over weight matrices (convs reshaped to [out, in*k*k])."""
    return float(
        sum(
            2.0 * math.log(float(torch.linalg.matrix_norm(w.double(), ord=2)))
            for w in _weight_matrices(subject.model("final"))
        )
    )


@predictor(
    version="1",
    family="baseline",
    reference=JIANG + ", path.norm (Neyshabur et al. 2015)",
    requires=("weights",),
    kind="baseline",
)
def path_norm(subject: Subject, *, seed: int = 0) -> float:
    """log of sum over input-output paths of prod of squared weights: f_{w^2}(1) summed over outputs.

    Computed as in Jiang et al.: square every parameter, feed an all-ones input (for token
    models: every position holds the out-of-vocabulary id 1), sum the outputs. Fixed
    pre-processing inside a model (STFT, TF-IDF) is applied to that input as it is.
    """
    import copy

    model = copy.deepcopy(subject.model("final"))
    with torch.no_grad():
        for p in model.parameters():
            p.pow_(2)
        info = subject.task
        if info.input_dtype == "int64":
            x = torch.ones((1, *info.input_shape), dtype=torch.int64)
        else:
            x = torch.ones((1, *info.input_shape), dtype=torch.float32)
        total = float(model.double()(x.double() if x.is_floating_point() else x).sum())
    return math.log(max(total, 1e-300))


@predictor(
    version="1",
    family="baseline",
    reference=JIANG + ", inverse margin (10th percentile)",
    requires=("weights", "train_data"),
    kind="baseline",
)
def inverse_margin(subject: Subject, *, seed: int = 0) -> float:
    """Minus the 10th percentile over training examples of f_y(x) - max_{j != y} f_j(x)."""
    model = subject.model("final")
    margins = []
    with torch.no_grad():
        for x, y in subject.train_batches(1024):
            out = model(x)
            true = out.gather(1, y[:, None]).squeeze(1)
            other = out.scatter(1, y[:, None], float("-inf")).max(dim=1).values
            margins.append(true - other)
    return -float(torch.quantile(torch.cat(margins).double(), 0.1))
