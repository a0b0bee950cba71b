"""Population training: models of one architecture and task that share a step schedule train together.

A *population* is a set of zoo models with the same task, architecture, width, depth, batch
size and train-set size (so every member takes the same number of steps per epoch and its
batches have the same shape) and the same training protocol. They differ in anything else:
learning rate, weight decay, optimizer (SGD momentum 0.9 / Adam), dropout rate, label noise,
augmentation, seed (init, data subset, data order, dropout masks). All members take one
vectorised step together:

- parameters of all members live in one ``[P, D]`` float32 matrix (row p = member p's
  ``flat_params``, in ``parameters()`` order), as do the gradients and optimizer states;
- a linear layer is one ``baddbmm`` over the members, a convolution runs per member (one
  autograd node for all), pooling, ReLU, dropout, the loss and its gradient run once on the
  stacked ``[P, B, ...]`` activations;
- the optimizer update is a handful of elementwise operations per group of members that share
  (optimizer, lr, weight decay), on rows of the ``[P, D]`` matrices.

**Every member gets exactly the numbers ``model_zoo.trainer.train_model`` gives it alone**
(bit-identical weights, trajectory, curve; measured under the pinned numerics of
``model_zoo.determinism``, see docs/population.md). This holds because every operation either
is the same ATen kernel on the same per-member operands (a ``bmm`` slice is the ``addmm`` of
the plain loop; a per-member convolution is the plain convolution), or acts row by row /
element by element (ReLU, pooling, log-softmax and its backward, the optimizer), and because
the few cross-example reductions of the plain loop (the cross-entropy's mean) are reproduced
in their exact order (``nll_sum``). Each member draws from its own seeded generators exactly
what the plain loop draws: the init (``torch.manual_seed(cfg.seed)`` then ``build_model``),
then its dropout masks from the generator state the init left, its batch order and its
augmentation. No operation mixes members, so a diverging member cannot change another's
numbers; it is dropped from the population at its next check (non-finite loss) and reported.

Members converge at different steps: a converged member records its post-convergence window
(``cfg.window_steps`` steps, with ``trainer.window_optimizer`` semantics; a ``WindowRecorder``
per member, the probe losses from one batched forward) while the others go on; a member whose
window is complete leaves the population (the matrices are compacted) and is handed to
``on_done`` at once, so a caller can publish it before the population finishes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from model_zoo.architectures import (
    M5,
    SpecCNN,
    StandardisedSpectrogram,
    TextCNN,
    TfidfBag,
    build_model,
    parameter_free_front,
)
from model_zoo.axes import TrainConfig
from model_zoo.data.base import TaskInfo
from model_zoo.plan import VECTORISED_ARCHITECTURES, population_key
from model_zoo.projection import WindowRecorder
from model_zoo.trainer import (
    _AUG_STREAM,
    _LOSS_PROBE_STREAM,
    _ORDER_STREAM,
    EVAL_BATCH,
    LOSS_PROBE_EXAMPLES,
    TrainResult,
    _cpu_state,
    _deterministic,
    as_standard_tensor,
    augment_apply,
    augment_draws,
)

__all__ = [
    "MemberOutcome",
    "NotVectorisable",
    "VECTORISED_ARCHITECTURES",
    "linear",
    "nll_sum",
    "population_key",
    "train_population",
]

EVAL_CHUNK = EVAL_BATCH  # rows per forward in the convergence check, as trainer.evaluate
# Activations of one member-chunk in an evaluation forward are capped near this many bytes by
# evaluating members in slices (text and raw-audio models have large per-example activations).
EVAL_BYTES = 256 * 2**20


class NotVectorisable(ValueError):
    """The architecture has a module the population program does not know (train it alone)."""


# ---------------------------------------------------------------------------------------------
# the exact cross-entropy reduction


def nll_sum(values: np.ndarray) -> np.ndarray:
    """Row sums of ``values [P, B]`` in the order ATen's ``nll_loss`` sums a batch (per row).

    ``F.cross_entropy(logits, y)`` (mean or sum) adds the per-example losses with an 8-level
    cascade: level 0 accumulates examples and is folded into level j + 1 whenever the example
    index has its j-th group of ``level_bits`` bits all zero (``level_bits = max(4,
    ceil(log2 B) // 8)``); the levels are added up at the end. Replaying it (in the array's
    dtype, vectorised over rows) gives the plain loop's loss bit for bit.
    """
    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"nll_sum expects [P, B], got shape {values.shape}")
    n_rows, batch = values.shape
    levels = 8
    level_bits = max(4, (math.ceil(math.log2(batch)) if batch > 1 else 0) // levels)
    mask = (1 << level_bits) - 1
    partial = np.zeros((levels, n_rows), dtype=values.dtype)
    b = 0
    while b < batch:
        if b & mask:
            # examples up to the next multiple of 2**level_bits only add to level 0, in order
            stop = min(batch, (b | mask) + 1)
            run = np.concatenate([partial[0][:, None], values[:, b:stop]], axis=1)
            partial[0] = np.add.accumulate(run, axis=1, dtype=values.dtype)[:, -1]
            b = stop
            continue
        partial[0] += values[:, b]
        for j in range(levels - 1):
            if b & (mask << (j * level_bits)):
                break
            partial[j + 1] += partial[j]
            partial[j] = 0
        b += 1
    out = np.zeros(n_rows, dtype=values.dtype)
    for j in range(levels):
        out += partial[j]
    return out


# ---------------------------------------------------------------------------------------------
# the vectorised forward: a program lowered from a member's module


@dataclass(frozen=True)
class _Op:
    kind: str
    module: nn.Module | None = None
    params: tuple[str, ...] = ()  # names of the op's parameters (weight[, bias]) in named_parameters()


def _lower(module: nn.Module, prefix: str = "") -> list[_Op]:
    """The list of population ops equivalent to ``module.forward`` (raises NotVectorisable)."""

    def names(sub: nn.Module, sub_prefix: str) -> tuple[str, ...]:
        return tuple(f"{sub_prefix}{n}" for n, p in sub.named_parameters(recurse=False) if p.requires_grad)

    if isinstance(module, nn.Sequential):
        ops: list[_Op] = []
        for name, child in module.named_children():
            ops += _lower(child, f"{prefix}{name}.")
        return ops
    if isinstance(module, M5):
        return [*_lower(module.features, f"{prefix}features."), _Op("mean_last"),
                *_lower(module.dropout, f"{prefix}dropout."), *_lower(module.classifier, f"{prefix}classifier.")]
    if isinstance(module, SpecCNN):
        return [_Op("spectrogram", module.spectrogram), *_lower(module.features, f"{prefix}features."),
                _Op("flatten"), *_lower(module.dropout, f"{prefix}dropout."),
                *_lower(module.classifier, f"{prefix}classifier.")]
    if isinstance(module, TextCNN):
        emb = module.embedding
        if emb.max_norm is not None or emb.scale_grad_by_freq or emb.sparse:
            raise NotVectorisable("TextCNN embedding with max_norm / scale_grad_by_freq / sparse")
        return [_Op("embedding", emb, names(emb, f"{prefix}embedding.")), _Op("transpose_last"),
                *_lower(module.convs, f"{prefix}convs."), _Op("amax_last"),
                *_lower(module.dropout, f"{prefix}dropout."), *_lower(module.classifier, f"{prefix}classifier.")]
    if isinstance(module, nn.Flatten):
        if module.start_dim != 1 or module.end_dim != -1:
            raise NotVectorisable(f"Flatten(start_dim={module.start_dim}, end_dim={module.end_dim})")
        return [_Op("flatten")]
    if isinstance(module, nn.Linear):
        return [_Op("linear", module, names(module, prefix))]
    if isinstance(module, nn.ReLU):
        return [_Op("relu")]
    if isinstance(module, nn.Dropout):
        return [_Op("dropout", module)]
    if isinstance(module, nn.Conv1d | nn.Conv2d):
        if module.padding_mode != "zeros" or module.groups != 1:
            raise NotVectorisable(f"{type(module).__name__} with padding_mode={module.padding_mode!r} "
                                  f"groups={module.groups}")
        return [_Op("conv", module, names(module, prefix))]
    if isinstance(module, nn.MaxPool1d | nn.MaxPool2d):
        if module.return_indices:
            raise NotVectorisable("MaxPool with return_indices")
        return [_Op("maxpool", module)]
    if isinstance(module, TfidfBag):
        return [_Op("tfidf", module)]
    if isinstance(module, StandardisedSpectrogram):
        return [_Op("front", module)]
    raise NotVectorisable(f"no population op for module {type(module).__name__} ({prefix.rstrip('.') or 'root'})")


_FEATURE_OPS = ("conv", "maxpool", "spectrogram", "front", "embedding", "transpose_last")
_TO_VECTOR = ("flatten", "mean_last", "amax_last")


class _Program:
    """A member module lowered to population ops.

    Convolutional models run their feature extractor (everything up to the flatten / pooling
    that makes each example a vector) member by member, with the very calls of the plain
    module: a member's activations then stay in cache, which measured faster than stacking the
    members' large maps (docs/population.md). The rest (linear layers, dropout, the loss, the
    optimizer) runs once on the stacked ``[P, B, ...]`` tensors. Models without a feature
    extractor (MLPs) run stacked throughout.
    """

    def __init__(self, template: nn.Module):
        self.template = template
        ops = _lower(template)
        split = next((i for i, op in enumerate(ops) if op.kind in _TO_VECTOR), None)
        if split is not None and any(op.kind in _FEATURE_OPS for op in ops[:split]):
            self.member_ops, self.ops = ops[: split + 1], ops[split + 1 :]
        else:
            self.member_ops, self.ops = [], ops
        for op in self.ops:
            if op.kind in _FEATURE_OPS or op.kind in ("mean_last", "amax_last"):
                raise NotVectorisable(f"{op.kind} after the model's features ({type(template).__name__})")
        if any(op.kind == "dropout" for op in self.member_ops):
            raise NotVectorisable(f"dropout inside the feature extractor of {type(template).__name__}")
        named = [(n, p) for n, p in template.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.shapes = {n: tuple(p.shape) for n, p in named}
        self.slices: dict[str, slice] = {}
        offset = 0
        for n, p in named:
            self.slices[n] = slice(offset, offset + p.numel())
            offset += p.numel()
        self.n_params = offset
        used = {n for op in (*self.member_ops, *self.ops) for n in op.params}
        if used != set(self.names):
            raise NotVectorisable(f"parameters {sorted(set(self.names) - used)} are not used by the program")
        self.has_dropout = any(op.kind == "dropout" for op in self.ops)

    def pop_front_end(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Remove the program's leading parameter-free front end and return it (None: there is none).

        That is ``architectures.parameter_free_front`` of the template (as the plain trainer
        decides), or ``SpecCNN``'s spectrogram with its standardisation (populations only).
        """
        first = (self.member_ops or self.ops)[0] if (self.member_ops or self.ops) else None
        front = parameter_free_front(self.template)
        if first is None or not (first.kind == "spectrogram" or (front is not None and first.module is front)):
            return None
        if self.member_ops:
            self.member_ops = self.member_ops[1:]
            if [o.kind for o in self.member_ops] == ["flatten"]:  # an MLP on the features: stacked throughout
                self.member_ops, self.ops = [], [*self.member_ops, *self.ops]
            return lambda x: self._member_op(first, [], x)
        self.ops = self.ops[1:]
        return first.module

    def leaves(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-parameter ``[P, *shape]`` views of the rows of ``flat`` that require grad."""
        p = flat.shape[0]
        return {n: flat[:, self.slices[n]].view(p, *self.shapes[n]).requires_grad_(True) for n in self.names}

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-parameter ``[P, *shape]`` views (no grad)."""
        p = flat.shape[0]
        return {n: flat[:, self.slices[n]].view(p, *self.shapes[n]) for n in self.names}

    def flat_grad(self, leaves: dict[str, torch.Tensor]) -> torch.Tensor:
        """The leaves' gradients as one ``[P, D]`` matrix (``parameters()`` order)."""
        p = next(iter(leaves.values())).shape[0]
        return torch.cat([leaves[n].grad.reshape(p, -1) for n in self.names], dim=1)

    def forward(self, params: dict[str, torch.Tensor], x: torch.Tensor,
                noise: Callable[[tuple[int, ...]], torch.Tensor | None] | None,
                trace: list[int] | None = None) -> torch.Tensor:
        """Logits ``[P, B, C]`` of every member on its own batch ``x [P, B, ...]``.

        ``noise(shape)``: the dropout multiplier ``[P, B, *shape]`` of the next dropout site (or
        None: no member drops out); None in eval mode. ``trace`` collects each op's output bytes.
        """
        n_members, batch = x.shape[0], x.shape[1]
        h = x
        if self.member_ops:
            per_member = {n: params[n].unbind(0) for op in self.member_ops for n in op.params}
            outs = []
            for p, xp in enumerate(x.unbind(0)):
                hp = xp
                for op in self.member_ops:
                    hp = self._member_op(op, [per_member[n][p] for n in op.params], hp)
                    if trace is not None and p == 0:
                        trace.append(hp.numel() * hp.element_size())
                outs.append(hp)
            h = torch.stack(outs)
        for op in self.ops:
            kind = op.kind
            if kind == "linear":
                h = linear(h, params[op.params[0]], params[op.params[1]] if len(op.params) > 1 else None)
            elif kind == "relu":
                h = torch.relu(h)
            elif kind == "dropout":
                if noise is not None:
                    mult = noise(tuple(h.shape[2:]))
                    if mult is not None:
                        h = h * mult
            elif kind == "flatten":
                h = h.reshape(n_members, batch, -1)
            elif kind == "tfidf":
                out = op.module(h.reshape(n_members * batch, *h.shape[2:]))
                h = out.reshape(n_members, batch, *out.shape[1:])
            else:  # pragma: no cover - __init__ rejects the other kinds here
                raise AssertionError(kind)
            if trace is not None:
                trace.append(h.numel() * h.element_size() // n_members)
        return h

    @staticmethod
    def _member_op(op: _Op, params: list[torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        """One op of the feature extractor on one member's batch: the plain module's own call."""
        kind, m = op.kind, op.module
        if kind == "conv":
            conv = F.conv2d if isinstance(m, nn.Conv2d) else F.conv1d
            return conv(h, params[0], params[1] if len(params) > 1 else None, m.stride, m.padding, m.dilation, m.groups)
        if kind == "relu":
            return torch.relu(h)
        if kind == "maxpool":
            pool = F.max_pool2d if isinstance(m, nn.MaxPool2d) else F.max_pool1d
            return pool(h, m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode)
        if kind == "front":  # a parameter-free module on one member's batch
            return m(h)
        if kind == "spectrogram":  # SpecCNN.forward's standardisation
            spec = m(h)
            mean = spec.mean(dim=(-2, -1), keepdim=True)
            std = spec.std(dim=(-2, -1), keepdim=True) + 1e-5
            return (spec - mean) / std
        if kind == "embedding":
            return F.embedding(h, params[0], m.padding_idx)
        if kind == "transpose_last":
            return h.transpose(-1, -2)
        if kind == "flatten":
            return h.flatten(1)
        if kind == "mean_last":
            return h.mean(dim=-1)
        if kind == "amax_last":
            return h.amax(dim=-1)
        raise NotVectorisable(f"no per-member op {kind!r}")


def _bmm_is_exact(rows: int, k: int, n: int) -> bool:
    """Whether a ``bmm`` slice runs the very GEMM ``F.linear`` runs for one member.

    ATen computes a batched product whose per-slice ``rows * k * n`` is below 400 with its own
    loop instead of BLAS, and MKL treats a dimension of 1 as a matrix-vector product: there
    the members go through ``F.linear`` one by one (measured: docs/population.md).
    """
    return rows * k * n >= 400 and min(rows, k, n) > 1


class _Linear(torch.autograd.Function):
    """``F.linear`` of every member at once, with the backward products ``F.linear`` uses.

    Forward: ``baddbmm(b, x, W^T)`` (each slice is the ``addmm(b, x, W.t())`` of F.linear).
    Backward as autograd's ``mm_mat1_backward`` / ``mm_mat2_backward`` for F.linear's layout:
    dx = g @ W and dW = g^T @ x (autograd's default for bmm would compute (x^T @ g)^T, another
    GEMM whose bits differ once the batch reaches 128 rows), db = g summed over the batch.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad_x = grad.bmm(weight) if ctx.needs_input_grad[0] else None
        grad_w = grad.transpose(1, 2).bmm(x) if ctx.needs_input_grad[1] else None
        grad_b = grad.sum(1) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Every member's ``F.linear(x[p], weight[p], bias[p])``, bit for bit, as ``[P, B, out]``."""
    n_members, rows, k = x.shape
    if _bmm_is_exact(rows, k, weight.shape[1]):
        return _Linear.apply(x, weight, bias)
    biases = bias.unbind(0) if bias is not None else [None] * n_members
    return torch.stack([F.linear(xp, wp, bp) for xp, wp, bp in zip(x.unbind(0), weight.unbind(0), biases, strict=True)])


_PROJECTORS: dict[tuple[int, int, int], Any] = {}
_MAX_PROJECTORS = 4


def _shared_projector(projector: Any) -> Any:
    """One Projector per (n_params, dim, seed) in this process (its sparse map costs ~0.1 s to draw)."""
    key = (projector.n_params, projector.dim, projector.seed)
    if key not in _PROJECTORS:
        while len(_PROJECTORS) >= _MAX_PROJECTORS:
            _PROJECTORS.pop(next(iter(_PROJECTORS)))
        _PROJECTORS[key] = projector
    return _PROJECTORS[key]


# ---------------------------------------------------------------------------------------------
# members and outcomes


@dataclass
class MemberOutcome:
    """What became of one member: its TrainResult, or why it left the population."""

    index: int  # position in train_population's ``cfgs``
    result: TrainResult | None = None
    error: str = ""  # one line when result is None


@dataclass
class _Member:
    index: int
    cfg: TrainConfig
    module: nn.Module
    init_state: dict[str, torch.Tensor]
    order_gen: torch.Generator
    aug_gen: torch.Generator | None
    drop_gen: torch.Generator
    probe: torch.Tensor  # positions (into the member's train set) of the loss probe
    opt: str  # optimizer of the current phase: "sgd" | "adam"
    fresh: bool = True  # SGD momentum buffer not yet created (the first step clones the gradient)
    adam_steps: int = 0
    phase: str = "train"  # "train" | "window"
    status: str = "not_converged"
    steps_to_converge: int | None = None
    curve: list[dict[str, float]] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)
    recorder: WindowRecorder | None = None
    probe_losses: np.ndarray | None = None
    window_t: int = 0
    seconds: float = 0.0
    window_seconds: float = 0.0

    def group(self) -> tuple:
        """Members with equal groups take their optimizer step together."""
        cfg = self.cfg
        if self.opt == "sgd":
            # window SGD of an Adam recipe: lr and weight decay of the recipe (trainer.window_optimizer)
            return ("sgd", cfg.lr, cfg.weight_decay, self.fresh)
        return ("adam", cfg.lr, cfg.weight_decay, self.adam_steps)


# ---------------------------------------------------------------------------------------------
# the population


def train_population(
    cfgs: Sequence[TrainConfig],
    info: TaskInfo,
    x_pool: np.ndarray | torch.Tensor,
    indices: Sequence[np.ndarray],
    labels: Sequence[np.ndarray],
    *,
    device: str | torch.device = "cpu",
    on_done: Callable[[MemberOutcome], None] | None = None,
) -> list[MemberOutcome]:
    """Train ``cfgs`` as one population; returns one outcome per config, in ``cfgs`` order.

    Member i trains on ``x_pool[indices[i]]`` with labels ``labels[i]`` (what
    ``train_model(cfgs[i], info, x_pool[indices[i]], labels[i])`` would get, which gives the same
    TrainResult bit for bit). All configs must share ``population_key``. ``on_done`` is called
    with each outcome as soon as it is final (a finished member, or one dropped for a
    non-finite loss), before the population goes on.
    """
    if not cfgs:
        return []
    keys = {population_key(c) for c in cfgs}
    if None in keys:
        bad = next(c.architecture for c in cfgs if population_key(c) is None)
        raise NotVectorisable(f"architecture {bad!r} is not vectorised; train it alone (trainer.train_model)")
    if len(keys) != 1:
        raise ValueError("train_population: configs differ in shape or protocol; group them with population_key")
    if len(indices) != len(cfgs) or len(labels) != len(cfgs):
        raise ValueError(f"train_population: {len(cfgs)} configs but {len(indices)} index sets and "
                         f"{len(labels)} label sets")
    for cfg in cfgs:
        if cfg.task != info.name:
            raise ValueError(f"TrainConfig.task={cfg.task!r} but the TaskInfo is for {info.name!r}")
    device = torch.device(device)
    outcomes: dict[int, MemberOutcome] = {}

    def finish(outcome: MemberOutcome) -> None:
        outcomes[outcome.index] = outcome
        if on_done is not None:
            on_done(outcome)

    with _deterministic(device), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        _Population(cfgs, info, x_pool, indices, labels, device, finish).run()
    return [outcomes[i] for i in range(len(cfgs))]


class _Population:
    """The state of a running population (rows of every ``[P, ...]`` tensor = ``self.members``)."""

    def __init__(self, cfgs, info, x_pool, indices, labels, device, finish):
        self.info, self.device, self.finish = info, device, finish
        cfg0 = cfgs[0]
        self.n, self.batch_size = cfg0.train_size, cfg0.batch_size
        self.steps_per_epoch = math.ceil(self.n / self.batch_size)
        self.eval_every = cfg0.eval_every or self.steps_per_epoch
        self.max_steps = cfg0.max_steps
        self.x_pool = as_standard_tensor(x_pool).to(device)
        members, flats, rows, ys = [], [], [], []
        for i, cfg in enumerate(cfgs):
            idx = np.asarray(indices[i], dtype=np.int64)
            y = np.asarray(labels[i], dtype=np.int64)
            if len(idx) != cfg.train_size or len(y) != cfg.train_size:
                raise ValueError(f"train_population: member {i} has {len(idx)} examples and {len(y)} labels but "
                                 f"train_size={cfg.train_size}")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= info.n_classes):
                raise ValueError(f"train_population: member {i} labels must be in [0, {info.n_classes}), "
                                 f"got [{int(y.min())}, {int(y.max())}]")
            torch.manual_seed(cfg.seed)
            module = build_model(cfg.architecture, info, width=cfg.width, depth=cfg.depth, dropout=cfg.dropout)
            module = module.to(device)
            drop_gen = torch.Generator()
            drop_gen.set_state(torch.get_rng_state())  # dropout masks continue the global stream after init
            probe_gen = torch.Generator().manual_seed(cfg.seed + _LOSS_PROBE_STREAM)
            probe = torch.randperm(cfg.train_size, generator=probe_gen)
            members.append(_Member(
                index=i, cfg=cfg, module=module, init_state=_cpu_state(module),
                order_gen=torch.Generator().manual_seed(cfg.seed + _ORDER_STREAM),
                aug_gen=torch.Generator().manual_seed(cfg.seed + _AUG_STREAM) if cfg.augmentation else None,
                drop_gen=drop_gen, probe=probe[:LOSS_PROBE_EXAMPLES], opt=cfg.optimizer,
            ))
            flats.append(torch.cat([p.detach().reshape(-1) for p in module.parameters() if p.requires_grad]))
            rows.append(torch.from_numpy(idx))
            ys.append(torch.from_numpy(y))
        self.program = _Program(members[0].module)
        self.members = members
        self.flat = torch.stack(flats).to(device)
        self.momentum = torch.zeros_like(self.flat)
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.rows = torch.stack(rows).to(device)  # [P, n] pool rows of each member's train set
        self.labels = torch.stack(ys).to(device)  # [P, n]
        if not any(m.aug_gen is not None for m in members):
            self._cache_front_end()
        self.perm: torch.Tensor | None = None  # [P, n] this epoch's order
        self.steps = 0
        self.example_bytes = self._example_activation_bytes()
        self._sort()

    def _cache_front_end(self) -> None:
        """Run the model's parameter-free front end (TF-IDF, standardised spectrogram) once per pool row.

        The front end acts on each example alone and gives the same bits whatever the batch
        (measured for every batch size from 1 to the whole pool, and asserted member by member by
        the equivalence tests), so computing it once for the rows the members use, instead of at
        every step and every convergence check, changes no number. The pool becomes those
        features and ``rows`` index into them. Not with augmentation (it acts on raw inputs).
        """
        front = self.program.pop_front_end()
        if front is None:
            return
        used, local = torch.unique(self.rows, sorted=True, return_inverse=True)
        with torch.no_grad():
            feats = [front(self.x_pool.index_select(0, used[a : a + EVAL_CHUNK])) for a in range(0, len(used), EVAL_CHUNK)]
        self.x_pool = torch.cat(feats)
        self.rows = local.reshape(self.rows.shape)

    # -- bookkeeping ------------------------------------------------------------------------

    def _sort(self) -> None:
        """Order members so that every optimizer group and the window members are contiguous rows."""
        order = sorted(range(len(self.members)), key=lambda i: (self.members[i].phase, repr(self.members[i].group()),
                                                                 self.members[i].index))
        if order != list(range(len(self.members))):
            self._take(order)

    def _take(self, keep: list[int]) -> None:
        idx = torch.tensor(keep, dtype=torch.int64, device=self.device)
        self.members = [self.members[i] for i in keep]
        for name in ("flat", "momentum", "exp_avg", "exp_avg_sq", "rows", "labels"):
            setattr(self, name, getattr(self, name).index_select(0, idx))
        if self.perm is not None:
            self.perm = self.perm.index_select(0, idx)

    def _remove(self, gone: set[int]) -> None:
        self._take([i for i in range(len(self.members)) if i not in gone])

    def _ranges(self, key: Callable[[_Member], Any]) -> list[tuple[Any, int, int]]:
        """Contiguous runs of members with equal ``key(member)``: (key, start, stop)."""
        runs: list[tuple[Any, int, int]] = []
        for i, m in enumerate(self.members):
            k = key(m)
            if runs and runs[-1][0] == k and runs[-1][2] == i:
                runs[-1] = (k, runs[-1][1], i + 1)
            else:
                runs.append((k, i, i + 1))
        return runs

    def _example_activation_bytes(self) -> int:
        """Largest activation of one example in the forward (bytes), to size evaluation slices."""
        trace: list[int] = []
        with torch.no_grad():
            x = self.x_pool.index_select(0, self.rows[0, :1]).unsqueeze(0)
            self.program.forward(self.program.views(self.flat[:1]), x, None, trace=trace)
        return max([x.numel() * x.element_size(), *trace])

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        while self.members:
            started = time.perf_counter()
            losses = self._step()
            self.steps += 1
            elapsed = time.perf_counter() - started
            share = elapsed / len(self.members)
            for m in self.members:
                m.seconds += share
                if m.phase == "window":
                    m.window_seconds += share
            self._after_step(losses)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        position = self.steps % self.steps_per_epoch
        if position == 0:
            perms = [torch.randperm(self.n, generator=m.order_gen) for m in self.members]
            self.perm = torch.stack(perms).to(self.device)
        start = position * self.batch_size
        take = self.perm[:, start : start + self.batch_size]
        rows = self.rows.gather(1, take)
        x = self.x_pool.index_select(0, rows.reshape(-1))
        x = x.reshape(len(self.members), -1, *x.shape[1:])
        y = self.labels.gather(1, take)
        aug = [i for i, m in enumerate(self.members) if m.aug_gen is not None]
        if aug:
            b = x.shape[1]
            draws = [augment_draws(self.info.modality, self.members[i].aug_gen, b, x.shape[2:]) for i in aug]
            which = torch.tensor(aug, device=self.device)
            sub = x.index_select(0, which)
            merged = [torch.cat([d[k] for d in draws]) for k in range(len(draws[0]))]
            out = augment_apply(self.info.modality, sub.reshape(-1, *sub.shape[2:]), merged)
            x = x.index_copy(0, which, out.reshape(sub.shape).to(x.dtype))
        return x, y

    def _noise(self, batch: int) -> Callable[[tuple[int, ...]], torch.Tensor | None] | None:
        rates = [m.cfg.dropout for m in self.members]
        if not any(rates) or not self.program.has_dropout:
            return None

        def noise(shape: tuple[int, ...]) -> torch.Tensor:
            parts = []
            for m, rate in zip(self.members, rates, strict=True):
                if rate == 0.0:
                    parts.append(torch.ones((batch, *shape)))
                else:  # exactly F.dropout's mask on CPU: bernoulli_(1 - p) then div_(1 - p)
                    parts.append(torch.empty((batch, *shape)).bernoulli_(1 - rate, generator=m.drop_gen).div_(1 - rate))
            return torch.stack(parts).to(self.device)

        return noise

    def _step(self) -> np.ndarray | None:
        """One training step of every member; returns the window members' minibatch losses."""
        x, y = self._batch()
        n_members, batch = y.shape
        leaves = self.program.leaves(self.flat)
        logits = self.program.forward(leaves, x, self._noise(batch))
        logp = F.log_softmax(logits, dim=-1)
        picked = logp.gather(-1, y.unsqueeze(-1))
        # nll_loss(mean)'s gradient: -grad_output / total_weight, in float32
        scale = -(torch.ones((), dtype=logp.dtype) / torch.tensor(float(batch), dtype=logp.dtype))
        picked.backward(scale.to(self.device).expand_as(picked))
        with torch.no_grad():
            grad = self.program.flat_grad(leaves)
            del leaves, logits, logp
            self._update(grad)
            window = [i for i, m in enumerate(self.members) if m.phase == "window"]
            if not window:
                return None
            lo, hi = window[0], window[-1] + 1
            per_example = (-picked[lo:hi, :, 0]).cpu().numpy()
            return nll_sum(per_example) / np.float32(batch)

    def _update(self, grad: torch.Tensor) -> None:
        """The optimizer step of every group, on its rows (torch.optim's single-tensor code path)."""
        for group, lo, hi in self._ranges(lambda m: m.group()):
            param, g = self.flat[lo:hi], grad[lo:hi]
            kind, lr, weight_decay = group[0], group[1], group[2]
            if weight_decay != 0:
                g = g.add(param, alpha=weight_decay)
            if kind == "sgd":
                buf = self.momentum[lo:hi]
                if group[3]:  # fresh: torch.optim.SGD's first step clones the gradient
                    buf.copy_(g)
                else:
                    buf.mul_(0.9).add_(g, alpha=1)
                param.add_(buf, alpha=-lr)
            else:
                step = float(group[3] + 1)  # Adam's step counter is a float32 tensor; .item() is exact
                beta1, beta2, eps = 0.9, 0.999, 1e-8
                exp_avg, exp_avg_sq = self.exp_avg[lo:hi], self.exp_avg_sq[lo:hi]
                exp_avg.lerp_(g, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                bias_correction1 = 1 - beta1**step
                bias_correction2 = 1 - beta2**step
                step_size = lr / bias_correction1
                denom = (exp_avg_sq.sqrt() / bias_correction2**0.5).add_(eps)
                param.addcdiv_(exp_avg, denom, value=-step_size)
        for m in self.members:
            if m.opt == "sgd":
                m.fresh = False
            else:
                m.adam_steps += 1

    # -- after a step: window recording, convergence checks, leaving ----------------------------

    def _after_step(self, losses: np.ndarray | None) -> None:
        gone: set[int] = set()
        resort = False
        window = [i for i, m in enumerate(self.members) if m.phase == "window"]
        if window:
            started = time.perf_counter()
            probe = self._probe_losses(window[0], window[-1] + 1)
            for j, i in enumerate(window):
                m = self.members[i]
                loss = float(losses[j])
                if not math.isfinite(loss):
                    self.finish(MemberOutcome(m.index, error=f"non-finite minibatch loss ({loss}) at window step "
                                                            f"{m.window_t + 1} (step {self.steps})"))
                    gone.add(i)
                    continue
                m.recorder.record(self.flat[i], loss)
                m.probe_losses[m.window_t] = probe[j]
                m.window_t += 1
                if m.window_t == m.cfg.window_steps:
                    self._complete(m, i)
                    gone.add(i)
            elapsed = time.perf_counter() - started
            for i in window:
                self.members[i].seconds += elapsed / len(window)
                self.members[i].window_seconds += elapsed / len(window)
        training = [i for i, m in enumerate(self.members) if m.phase == "train" and i not in gone]
        epoch_end = self.steps % self.steps_per_epoch == 0
        if training and (self.steps % self.eval_every == 0 or epoch_end or self.steps == self.max_steps):
            started = time.perf_counter()
            results = self._evaluate(training[0], training[-1] + 1)
            share = (time.perf_counter() - started) / len(training)
            for i, (error, ce) in zip(training, results, strict=True):
                m = self.members[i]
                m.seconds += share
                point = {"step": self.steps, "train_loss": ce, "train_error": error}
                if not math.isfinite(ce):
                    self.finish(MemberOutcome(m.index, error=f"non-finite train loss ({ce}) at step {self.steps}"))
                    gone.add(i)
                    continue
                if epoch_end:
                    m.curve.append(point)
                m.history.append(point)
                if ce <= m.cfg.target_ce:
                    m.status, m.steps_to_converge = "converged", self.steps
                    resort |= self._enter_window(m, i, gone)
        if self.steps == self.max_steps:
            for i in training:
                m = self.members[i]
                if m.phase == "train" and i not in gone:
                    resort |= self._enter_window(m, i, gone)
        if gone:
            self._remove(gone)
        if gone or resort:
            self._sort()

    def _enter_window(self, m: _Member, i: int, gone: set[int]) -> bool:
        """Start member i's window (or finish it at once when window_steps is 0)."""
        cfg = m.cfg
        if not cfg.window_steps:
            self._complete(m, i)
            gone.add(i)
            return True
        m.phase = "window"
        if cfg.window_optimizer == "sgd" and cfg.optimizer == "adam":
            m.opt, m.fresh = "sgd", True  # a fresh SGD (momentum 0.9) at the recipe's lr and weight decay
        m.recorder = WindowRecorder(
            self.program.n_params, cfg.window_steps, projection_dim=cfg.projection_dim,
            exact_max_params=cfg.exact_max_params, projection_seed=cfg.projection_seed,
        )
        if m.recorder.projector is not None:
            # the map is a pure function of (n_params, dim, seed): draw it once per worker, not per member
            m.recorder.projector = _shared_projector(m.recorder.projector)
        m.recorder.start(self.flat[i])
        m.probe_losses = np.empty((cfg.window_steps, len(m.probe)), dtype=np.float32)
        return True

    def _complete(self, m: _Member, i: int) -> None:
        cfg = m.cfg
        started = time.perf_counter()
        window = None
        if cfg.window_steps:
            window = dataclasses.replace(m.recorder.finish(), probe_losses=m.probe_losses)
            m.recorder = None
        with torch.no_grad():
            params = [p for p in m.module.parameters() if p.requires_grad]
            torch.nn.utils.vector_to_parameters(self.flat[i].clone(), params)
        final_state = _cpu_state(m.module)
        extra = time.perf_counter() - started
        result = TrainResult(
            init_state=m.init_state, final_state=final_state, status=m.status, steps_to_converge=m.steps_to_converge,
            total_steps=(m.steps_to_converge if m.status == "converged" else self.max_steps) + cfg.window_steps,
            curve=m.curve, window=window, seconds=m.seconds + extra, n_params=self.program.n_params,
            window_seconds=m.window_seconds + extra, history=m.history,
        )
        self.finish(MemberOutcome(m.index, result=result))

    # -- evaluation ---------------------------------------------------------------------------

    def _member_slices(self, lo: int, hi: int, rows_per_member: int) -> list[tuple[int, int]]:
        per = max(1, EVAL_BYTES // max(1, self.example_bytes * rows_per_member))
        return [(a, min(hi, a + per)) for a in range(lo, hi, per)]

    @torch.no_grad()
    def _logits(self, lo: int, hi: int, rows: torch.Tensor) -> torch.Tensor:
        """Eval-mode logits ``[hi - lo, r, C]`` of members lo..hi-1 on pool rows ``rows [hi - lo, r]``."""
        x = self.x_pool.index_select(0, rows.reshape(-1))
        x = x.reshape(hi - lo, -1, *x.shape[1:])
        return self.program.forward(self.program.views(self.flat[lo:hi]), x, None)

    @torch.no_grad()
    def _evaluate(self, lo: int, hi: int) -> list[tuple[float, float]]:
        """trainer.evaluate on each member's full train set (its labels): (error, mean CE), exactly."""
        loss = np.zeros(hi - lo, dtype=np.float64)
        wrong = np.zeros(hi - lo, dtype=np.int64)
        losses = [0.0] * (hi - lo)
        for a, b in self._member_slices(lo, hi, min(self.n, EVAL_CHUNK)):
            for start in range(0, self.n, EVAL_CHUNK):
                rows = self.rows[a:b, start : start + EVAL_CHUNK]
                target = self.labels[a:b, start : start + EVAL_CHUNK]
                logits = self._logits(a, b, rows)
                logp = F.log_softmax(logits.double(), dim=-1)
                sums = nll_sum((-logp.gather(-1, target.unsqueeze(-1))[..., 0]).cpu().numpy())
                miss = (logits.argmax(dim=-1) != target).sum(dim=1).cpu().numpy()
                for j in range(b - a):
                    losses[a - lo + j] += float(sums[j])  # the plain loop's Python float accumulation
                wrong[a - lo : b - lo] += miss
        del loss
        return [(int(wrong[j]) / self.n, losses[j] / self.n) for j in range(hi - lo)]

    @torch.no_grad()
    def _probe_losses(self, lo: int, hi: int) -> np.ndarray:
        """Per-example losses ``[hi - lo, m]`` of members lo..hi-1 on their loss probes (eval mode)."""
        out = []
        probe = torch.stack([m.probe for m in self.members[lo:hi]]).to(self.device)
        for a, b in self._member_slices(lo, hi, probe.shape[1]):
            rows = self.rows[a:b].gather(1, probe[a - lo : b - lo])
            target = self.labels[a:b].gather(1, probe[a - lo : b - lo])
            logp = F.log_softmax(self._logits(a, b, rows), dim=-1)
            out.append((-logp.gather(-1, target.unsqueeze(-1))[..., 0]).cpu().numpy())
        return np.concatenate(out)
