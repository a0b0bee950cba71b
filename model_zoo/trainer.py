"""Training one zoo model: to a train cross-entropy target, then a recorded post-convergence window.

Protocol (Jiang et al. 2020, "Fantastic generalization measures"; Dziugaite et al. 2020): a
constant learning rate; train until the cross-entropy on the full training set (eval mode, no
augmentation, the possibly noisy labels the model is trained on) is <= ``target_ce``, checked
every ``eval_every`` steps, or until ``max_steps`` (status ``"not_converged"``); then continue
``window_steps`` steps at the same learning rate and record every iterate (Birdal et al. 2021).

Deterministic under ``cfg.seed``: the model init, dropout, data order and augmentation are all
drawn from seeded generators inside ``torch.random.fork_rng`` (the caller's RNG is untouched),
and deterministic algorithms are on, so on CPU the same config gives bitwise-identical weights.
Fast on CPU: the data are one tensor, batches index a seeded permutation (no DataLoader).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from model_zoo.architectures import build_model, n_parameters, parameter_free_front
from model_zoo.axes import TrainConfig
from model_zoo.data.base import TaskInfo
from model_zoo.projection import WindowRecorder
from model_zoo.trajectory import TrajectoryWindow

# Offsets that separate the seeded streams derived from cfg.seed.
_ORDER_STREAM, _AUG_STREAM, _LOSS_PROBE_STREAM = 1_000_003, 2_000_003, 3_000_003
LOSS_PROBE_EXAMPLES = 64
"""The loss probe: this many training examples (seeded per model) whose per-example losses are
recorded at every window step (Dupuis et al. 2023's data-dependent distance needs them)."""


@dataclass
class TrainSubset:
    """A model's training set: pool indices, the (noisy) labels it trains on, the relabelled indices.

    ``indices`` index the task's pool; ``labels`` are the labels the model trains on (noisy);
    ``noisy_indices`` are the pool indices (a subset of ``indices``) whose label was changed.
    """

    indices: np.ndarray
    labels: np.ndarray
    noisy_indices: np.ndarray


@dataclass
class TrainResult:
    """What ``train_model`` returns.

    ``final_state`` is the end of the window; ``curve`` has one entry per epoch (step,
    train_loss, train_error on the full training set, eval mode).
    """

    init_state: dict[str, torch.Tensor]
    final_state: dict[str, torch.Tensor]
    status: str  # "converged" | "not_converged"
    steps_to_converge: int | None
    total_steps: int
    curve: list[dict[str, float]]
    window: TrajectoryWindow | None  # None when window_steps == 0 (retraining)
    seconds: float
    n_params: int = 0
    window_seconds: float = 0.0  # part of ``seconds`` spent in the window (steps + projection)
    history: list[dict[str, float]] = field(default_factory=list)  # every convergence check


def make_train_subset(
    y_pool: np.ndarray, n_classes: int, train_size: int, label_noise: float, seed: int
) -> TrainSubset:
    """A seeded, class-balanced subset of the pool, then seeded label noise.

    Each class gets ``train_size // n_classes`` examples (the remainder goes to randomly chosen
    classes); a class with too few examples gives all it has and the shortfall is drawn from the
    rest of the pool. Then ``round(label_noise * train_size)`` examples, chosen uniformly, get a
    label drawn uniformly from the *other* ``n_classes - 1`` classes. ``indices`` are sorted.
    """
    y_pool = np.asarray(y_pool, dtype=np.int64)
    if not 1 <= train_size <= len(y_pool):
        raise ValueError(f"train_size={train_size} must be in [1, {len(y_pool)}] (the size of the task's pool)")
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise={label_noise} must be a fraction in [0, 1]")
    if label_noise > 0 and n_classes < 2:
        raise ValueError(f"label_noise={label_noise} needs n_classes >= 2, got {n_classes}")
    rng = np.random.default_rng([int(seed), 0x5EB5E7])
    quota = np.full(n_classes, train_size // n_classes, dtype=np.int64)
    quota[rng.choice(n_classes, size=train_size % n_classes, replace=False)] += 1
    chosen: list[np.ndarray] = []
    for c in range(n_classes):
        members = np.flatnonzero(y_pool == c)
        take = min(int(quota[c]), len(members))
        chosen.append(rng.choice(members, size=take, replace=False))
    picked = np.concatenate(chosen) if chosen else np.empty(0, dtype=np.int64)
    shortfall = train_size - len(picked)
    if shortfall > 0:
        rest = np.setdiff1d(np.arange(len(y_pool)), picked, assume_unique=False)
        picked = np.concatenate([picked, rng.choice(rest, size=shortfall, replace=False)])
    indices = np.sort(picked).astype(np.int64)
    labels = y_pool[indices].copy()
    n_noisy = int(round(label_noise * train_size))
    positions = np.sort(rng.choice(train_size, size=n_noisy, replace=False))
    labels[positions] = (labels[positions] + rng.integers(1, n_classes, size=n_noisy)) % n_classes
    return TrainSubset(indices=indices, labels=labels, noisy_indices=indices[positions])


EVAL_BATCH = 1024
"""Rows per forward when a whole training set is evaluated (convergence checks; populations
chunk the same way, which the summation order of the train loss depends on)."""


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, *,
             batch_size: int = EVAL_BATCH) -> tuple[float, float]:
    """(error fraction, mean cross-entropy) of ``model`` on (x, y), in eval mode under no_grad.

    The model's train/eval mode is restored afterwards. Inputs go to the model's device.
    """
    device = _device_of(model)
    xt = as_standard_tensor(x).to(device)
    yt = torch.as_tensor(y, dtype=torch.int64).to(device)
    if len(xt) != len(yt) or len(xt) == 0:
        raise ValueError(f"evaluate: x has {len(xt)} rows and y has {len(yt)}; need the same, non-zero")
    was_training = model.training
    model.eval()
    try:
        wrong, loss = 0, 0.0
        for start in range(0, len(xt), batch_size):
            logits = model(xt[start : start + batch_size])
            target = yt[start : start + batch_size]
            loss += float(F.cross_entropy(logits.double(), target, reduction="sum"))
            wrong += int((logits.argmax(dim=1) != target).sum())
    finally:
        model.train(was_training)
    return wrong / len(xt), loss / len(xt)


def as_standard_tensor(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``x`` as a CPU tensor with row-major strides, including the strides of its size-1 dims.

    numpy gives size-1 dims arbitrary strides (a fancy-indexed Fashion-MNIST subset has a
    channel stride of 1 element, a pool read from .npz one of 784), and a [B, 1, H, W] batch
    whose channel stride is 1 looks channels-last to ATen, whose convolution then takes its
    channels-last kernel: other bits. Normalising here makes a model's numbers independent of
    how its data were loaded (model_zoo.data, a zoo's train.npz, a population's pool).
    """
    t = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
    standard, step = [], 1
    for size in reversed(t.shape):
        standard.append(step)
        step *= size
    if tuple(reversed(standard)) != t.stride():
        t = t.clone(memory_format=torch.contiguous_format)
    return t


def flat_params(model: nn.Module) -> torch.Tensor:
    """All trainable parameters as one flat vector (``parameters()`` order)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])


def train_model(
    cfg: TrainConfig,
    info: TaskInfo,
    x: np.ndarray,
    y: np.ndarray,
    *,
    progress: Callable[[dict], None] | None = None,
    device: str | torch.device = "cpu",
) -> TrainResult:
    """Train ``cfg.architecture`` on (x, y) to ``cfg.target_ce``, then record the window.

    ``x``/``y`` are the model's training set (``y`` the possibly noisy labels it trains on);
    ``len(x)`` must equal ``cfg.train_size``. ``progress``, if given, is called with
    ``{"step", "train_loss", "train_error"}`` after every convergence check.
    """
    if cfg.task != info.name:
        raise ValueError(f"TrainConfig.task={cfg.task!r} but the TaskInfo is for {info.name!r}")
    if len(x) != len(y):
        raise ValueError(f"train_model: x has {len(x)} rows but y has {len(y)}")
    if len(x) != cfg.train_size:
        raise ValueError(
            f"train_model: got {len(x)} training examples but TrainConfig.train_size={cfg.train_size}; "
            "pass the subset from make_train_subset"
        )
    device = torch.device(device)
    started = time.perf_counter()
    with _deterministic(device), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.architecture, info, width=cfg.width, depth=cfg.depth, dropout=cfg.dropout).to(device)
        init_state = _cpu_state(model)
        n_params = n_parameters(model)
        xt = as_standard_tensor(x).to(device)
        yt = torch.as_tensor(np.asarray(y), dtype=torch.int64).to(device)
        if int(yt.min()) < 0 or int(yt.max()) >= info.n_classes:
            raise ValueError(f"train_model: labels must be in [0, {info.n_classes}), "
                             f"got [{int(yt.min())}, {int(yt.max())}]")
        optimizer = _make_optimizer(cfg, model)
        order_gen = torch.Generator().manual_seed(cfg.seed + _ORDER_STREAM)
        aug_gen = torch.Generator().manual_seed(cfg.seed + _AUG_STREAM)
        augment = _augmenter(info.modality) if cfg.augmentation else None
        net, xt = (model, xt) if augment is not None else _features_once(model, xt)
        n = len(xt)
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        eval_every = cfg.eval_every or steps_per_epoch
        batches = _batches(n, cfg.batch_size, order_gen)

        def step(opt: torch.optim.Optimizer = optimizer) -> float:
            idx = next(batches)
            xb, yb = xt[idx.to(device)], yt[idx.to(device)]
            if augment is not None:
                xb = augment(xb, aug_gen)
            net.train()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(xb), yb)
            loss.backward()
            opt.step()
            return float(loss.detach())

        curve: list[dict[str, float]] = []
        history: list[dict[str, float]] = []
        status, steps_to_converge, steps = "not_converged", None, 0
        while steps < cfg.max_steps:
            step()
            steps += 1
            epoch_end = steps % steps_per_epoch == 0
            if steps % eval_every == 0 or epoch_end or steps == cfg.max_steps:
                error, ce = evaluate(net, xt, yt)
                point = {"step": steps, "train_loss": ce, "train_error": error}
                if epoch_end:
                    curve.append(point)
                history.append(point)
                if progress is not None:
                    progress(point)
                if ce <= cfg.target_ce:
                    status, steps_to_converge = "converged", steps
                    break

        window_started = time.perf_counter()
        window = None
        if cfg.window_steps:
            window_opt = window_optimizer(cfg, model, optimizer)
            window = _record_window(cfg, net, lambda: step(window_opt), xt, yt, n_params)
        steps += cfg.window_steps
        window_seconds = time.perf_counter() - window_started
        final_state = _cpu_state(model)
    return TrainResult(
        init_state=init_state, final_state=final_state, status=status, steps_to_converge=steps_to_converge,
        total_steps=steps, curve=curve, window=window, seconds=time.perf_counter() - started,
        n_params=n_params, window_seconds=window_seconds, history=history,
    )


# ----------------------------------------------------------------------------- internals

def _features_once(model: nn.Module, xt: torch.Tensor) -> tuple[nn.Module, torch.Tensor]:
    """(the network after its parameter-free front end, the training set's features) when the
    model starts with one (``architectures.parameter_free_front``); else ``(model, xt)``.

    Computing the front end once instead of at every step, check and window probe changes no
    number (the equivalence tests check it); the rest of the Sequential shares the model's
    parameters. Not with augmentation, which acts on raw inputs.
    """
    front = parameter_free_front(model)
    if front is None:
        return model, xt
    with torch.no_grad():
        feats = torch.cat([front(xt[a : a + EVAL_BATCH]) for a in range(0, len(xt), EVAL_BATCH)])
    return model[1:], feats


def _record_window(cfg: TrainConfig, model: nn.Module, step: Callable[[], float], xt: torch.Tensor,
                   yt: torch.Tensor, n_params: int) -> TrajectoryWindow:
    """Run ``cfg.window_steps`` more steps, recording iterates, losses, norms and probe losses."""
    recorder = WindowRecorder(
        n_params, cfg.window_steps, projection_dim=cfg.projection_dim,
        exact_max_params=cfg.exact_max_params, projection_seed=cfg.projection_seed,
    )
    recorder.start(flat_params(model))
    device = xt.device
    probe_gen = torch.Generator().manual_seed(cfg.seed + _LOSS_PROBE_STREAM)
    probe = torch.randperm(len(xt), generator=probe_gen)[:LOSS_PROBE_EXAMPLES]
    probe_x, probe_y = xt[probe.to(device)], yt[probe.to(device)]
    probe_losses = np.empty((cfg.window_steps, len(probe)), dtype=np.float32)
    for t in range(cfg.window_steps):
        loss = step()
        recorder.record(flat_params(model), loss)
        model.eval()
        with torch.no_grad():
            probe_losses[t] = F.cross_entropy(model(probe_x), probe_y, reduction="none").cpu().numpy()
    return dataclasses.replace(recorder.finish(), probe_losses=probe_losses)


def window_optimizer(cfg: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer of the post-convergence window.

    ``window_optimizer = "same"`` or an SGD recipe: the training optimizer goes on (its state
    included). ``"sgd"`` with an Adam recipe: a fresh SGD (momentum 0.9) at the recipe's learning
    rate and weight decay, so that every window is the constant-learning-rate SGD process the
    trajectory measures (Simsekli et al. 2020, Birdal et al. 2021) are about.
    """
    if cfg.window_optimizer == "same" or cfg.optimizer == "sgd":
        return optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def _device_of(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    return torch.device("cpu")


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in model.state_dict().items()}


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _batches(n: int, batch_size: int, gen: torch.Generator):
    """Endless minibatch indices: a fresh seeded permutation per epoch, last batch may be short."""
    while True:
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, batch_size):
            yield perm[start : start + batch_size]


@contextmanager
def _deterministic(device: torch.device):
    """Deterministic algorithms for the duration (restoring the caller's setting afterwards)."""
    if device.type == "cuda":
        # cuBLAS needs this to be deterministic; it only takes effect if set before cuBLAS starts.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    was, was_warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    was_fill = torch.utils.deterministic.fill_uninitialized_memory
    # On CUDA a few backward kernels (e.g. adaptive pooling) have no deterministic version: warn, not fail.
    torch.use_deterministic_algorithms(True, warn_only=device.type == "cuda")
    # Deterministic mode also fills every new tensor with NaN, a debugging aid that costs a third
    # of a small model's step on CPU and changes no result (every kernel here writes its whole
    # output; measured: identical bytes with and without, docs/population.md).
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.utils.deterministic.fill_uninitialized_memory = was_fill
        torch.use_deterministic_algorithms(was, warn_only=was_warn)


def _augmenter(modality: str) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    return {"vision": augment_vision, "audio": augment_audio, "text": augment_text}[modality]


def _shift(x: torch.Tensor, shifts: torch.Tensor, dim: int, max_shift: int) -> torch.Tensor:
    """Shift each example along ``dim`` by its own integer offset, zero-filling (pad + crop)."""
    size = x.shape[dim]
    pad = [0, 0] * (x.ndim - 1 - dim) + [max_shift, max_shift]
    padded = F.pad(x, pad)
    # start index in the padded axis: max_shift - shift moves content by +shift.
    index = (max_shift - shifts).view(-1, *([1] * (x.ndim - 1))) + torch.arange(size, device=x.device).view(
        *([1] * dim), size, *([1] * (x.ndim - 1 - dim))
    )
    return padded.gather(dim, index.expand_as(x))


def augment_draws(modality: str, gen: torch.Generator, batch: int,
                  example_shape: tuple[int, ...]) -> tuple[torch.Tensor, ...]:
    """The random numbers the modality's augmentation draws for ``batch`` examples, in order.

    Split from :func:`augment_apply` so that a population (model_zoo.population) draws each
    member's numbers from the member's generator and applies them to all members at once.
    """
    if modality == "vision":
        dy = torch.randint(-2, 3, (batch,), generator=gen)
        dx = torch.randint(-2, 3, (batch,), generator=gen)
        flip = torch.rand(batch, generator=gen) < 0.5
        return dy, dx, flip
    if modality == "audio":
        shifts = torch.randint(-800, 801, (batch,), generator=gen)
        gain = 0.8 + 0.4 * torch.rand(batch, generator=gen)
        return shifts, gain
    if modality == "text":
        return (torch.rand((batch, *example_shape), generator=gen) < 0.1,)
    raise ValueError(f"no augmentation for modality {modality!r}")


def augment_apply(modality: str, x: torch.Tensor, draws: Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply :func:`augment_draws`'s numbers to the batch ``x`` (example by example)."""
    if modality == "vision":
        dy, dx, flip = (d.to(x.device) for d in draws)
        out = _shift(_shift(x, dy, x.ndim - 2, 2), dx, x.ndim - 1, 2)
        return torch.where(flip.view(-1, *([1] * (x.ndim - 1))), out.flip(-1), out)
    if modality == "audio":
        shifts, gain = draws
        gain = gain.to(x.device, x.dtype)
        return _shift(x, shifts.to(x.device), x.ndim - 1, 800) * gain.view(-1, *([1] * (x.ndim - 1)))
    if modality == "text":
        return x.masked_fill(draws[0].to(x.device), 0)
    raise ValueError(f"no augmentation for modality {modality!r}")


def augment_vision(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shift by up to 2 px in each direction (zero padding + crop) and horizontal flip (p=0.5)."""
    return augment_apply("vision", x, augment_draws("vision", gen, x.shape[0], tuple(x.shape[1:])))


def augment_audio(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random time shift by up to 800 samples (0.1 s at 8 kHz, zero-filled) and gain in [0.8, 1.2]."""
    return augment_apply("audio", x, augment_draws("audio", gen, x.shape[0], tuple(x.shape[1:])))


def augment_text(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random token dropout: each token id is replaced by padding (0) with probability 0.1."""
    return augment_apply("text", x, augment_draws("text", gen, x.shape[0], tuple(x.shape[1:])))
