"""Model architectures of the zoo, one small builder per name, in one registry.

``build_model(name, info, width=, depth=, dropout=)`` builds a freshly initialised
``nn.Module`` that maps a batch of the task's representation (see docs/ARCHITECTURE.md:
vision ``[B,1,28,28]`` float32, audio ``[B,1,8000]`` float32 waveform, text ``[B,L]`` int64
token ids with 0 = padding) to logits ``[B, n_classes]``. Every model does its own feature
extraction (spectrogram, TF-IDF), so the trainer and predictors see one tensor in, logits out.
Fixed feature-extraction tensors (the STFT window, the idf vector) are registered buffers:
they never appear in ``parameters()`` and so never in a trajectory.

The default CPU architectures are small on purpose (a CPU trains one in seconds). The vision
architectures from timm (a core dependency, imported only when one is built): ``vit_patch7``
and ``resnet10t_narrow`` are CPU-sized designs whose width and depth follow the grid (the
micro zoo and the tests train them in seconds); ``resnet10t`` and ``vit_tiny`` are the
GPU-zoo designs.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from model_zoo.data.base import TaskInfo

Builder = Callable[[TaskInfo, int, int, float], nn.Module]

MODALITIES = ("vision", "audio", "text")


@dataclass(frozen=True)
class ArchSpec:
    """A registered architecture: which modality it accepts, how to build it, what it is."""

    name: str
    modality: str
    builder: Builder
    doc: str
    requires: tuple[str, ...] = ()  # packages beyond torch that the builder imports (checked when a spec loads)


ARCHITECTURES: dict[str, ArchSpec] = {}


def register(name: str, *, modality: str, requires: tuple[str, ...] = ()) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(info, width, depth, dropout)`` under ``name``.

    The first paragraph of the builder's docstring (its summary) is the architecture's ``doc``.
    Duplicate names raise.
    """
    if modality not in MODALITIES:
        raise ValueError(f"architecture {name!r}: unknown modality {modality!r}; expected one of {MODALITIES}")

    def decorate(builder: Builder) -> Builder:
        if name in ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is already registered; pick another name")
        summary = (builder.__doc__ or "").strip().split("\n\n")[0]
        doc = " ".join(summary.split())
        ARCHITECTURES[name] = ArchSpec(name=name, modality=modality, builder=builder, doc=doc, requires=requires)
        return builder

    return decorate


def list_architectures(modality: str | None = None) -> list[str]:
    """Registered architecture names, sorted, optionally only those of one modality."""
    return sorted(n for n, s in ARCHITECTURES.items() if modality is None or s.modality == modality)


def get_arch(name: str) -> ArchSpec:
    """The ``ArchSpec`` registered under ``name``; unknown names raise with "did you mean"."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(ARCHITECTURES), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown architecture {name!r}{hint} (known: {', '.join(sorted(ARCHITECTURES))})"
        ) from None


def missing_packages(architecture: str) -> list[str]:
    """The optional packages ``architecture`` needs that cannot be imported here."""
    import importlib.util

    return [pkg for pkg in get_arch(architecture).requires if importlib.util.find_spec(pkg) is None]


def build_model(architecture: str, info: TaskInfo, *, width: int, depth: int, dropout: float = 0.0) -> nn.Module:
    """Build a freshly initialised model (uses torch's global RNG: seed it before calling).

    Raises ValueError for an unknown name, an architecture of another modality than
    ``info.modality``, or out-of-range width/depth/dropout.
    """
    spec = get_arch(architecture)
    if spec.modality != info.modality:
        fits = ", ".join(list_architectures(info.modality)) or "none"
        raise ValueError(
            f"architecture {architecture!r} is for {spec.modality} tasks but task {info.name!r} is "
            f"{info.modality}; architectures for {info.modality}: {fits}"
        )
    if int(width) < 1:
        raise ValueError(f"architecture {architecture!r}: width must be >= 1, got {width}")
    if int(depth) < 0:
        raise ValueError(f"architecture {architecture!r}: depth must be >= 0, got {depth}")
    if not 0.0 <= float(dropout) < 1.0:
        raise ValueError(f"architecture {architecture!r}: dropout must be in [0, 1), got {dropout}")
    return spec.builder(info, int(width), int(depth), float(dropout))


def n_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (what a trajectory iterate holds)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_free_front(model: nn.Module) -> nn.Module | None:
    """The parameter-free front end a Sequential model starts with (``spec_mlp``'s standardised
    spectrogram, ``bow_mlp``'s TF-IDF), else None.

    It acts on each example alone and gives the same bits whatever the batch (measured for every
    batch from 1 to a whole training set; the equivalence tests assert it model by model), so the
    plain trainer (``trainer._features_once``) and populations (``population._Program``) compute
    it once per training set instead of at every step: one decision, taken here.
    """
    if isinstance(model, nn.Sequential) and len(model) and isinstance(model[0], (StandardisedSpectrogram, TfidfBag)) \
            and not any(True for _ in model[0].parameters()):
        return model[0]
    return None


# ----------------------------------------------------------------------------- helpers


def _mlp_head(n_in: int, width: int, depth: int, dropout: float, n_out: int) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), nn.ReLU(), nn.Dropout(dropout)]
        n_in = width
    layers.append(nn.Linear(n_in, n_out))
    return layers


def _require_extra(info: TaskInfo, key: str, architecture: str) -> object:
    if key not in info.extras:
        raise ValueError(
            f"architecture {architecture!r} needs TaskInfo.extras[{key!r}] for task {info.name!r}; "
            f"the task loader must provide it (extras has: {sorted(info.extras)})"
        )
    return info.extras[key]


# ----------------------------------------------------------------------------- vision


@register("mlp", modality="vision")
def _build_mlp(info: TaskInfo, width: int, depth: int, dropout: float) -> nn.Module:
    """Flatten, then `depth` hidden layers of `width` units (ReLU, dropout), then a linear classifier."""
    n_in = math.prod(info.input_shape)
    return nn.Sequential(nn.Flatten(), *_mlp_head(n_in, width, depth, dropout, info.n_classes))


@register("cnn", modality="vision")
def _build_cnn(info: TaskInfo, width: int, depth: int, dropout: float) -> nn.Module:
    """`depth` blocks of 3x3 conv (`width` channels), ReLU, 2x2 max-pool; then dropout and a linear classifier."""
    channels, height, wide = info.input_shape
    layers: list[nn.Module] = []
    c_in = channels
    for _ in range(depth):
        layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU()]
        # Pool only while the map is at least 2x2 so that deep variants stay valid on 28x28.
        if min(height, wide) >= 2:
            layers.append(nn.MaxPool2d(2))
            height, wide = height // 2, wide // 2
        c_in = width
    layers += [nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in * height * wide, info.n_classes)]
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- audio


class M5(nn.Module):
    """M5 1-D CNN on raw waveforms (Dai et al. 2017, "Very deep CNNs for raw waveforms").

    Conv(kernel 80, stride 4) + ReLU + max-pool 4, then `depth` blocks of conv(kernel 3) + ReLU +
    max-pool 4 (pooling stops once the sequence is short), global average pool, linear.
    No batch norm: the zoo's models behave identically in train and eval mode (bar dropout).
    """

    def __init__(self, n_in: int, length: int, n_classes: int, width: int, depth: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(n_in, width, kernel_size=80, stride=4), nn.ReLU(), nn.MaxPool1d(4)]
        length = ((length - 80) // 4 + 1) // 4
        if length < 1:
            raise ValueError("architecture 'm5': input length too short for the first conv (kernel 80, stride 4)")
        for _ in range(depth):
            layers += [nn.Conv1d(width, width, kernel_size=3, padding=1), nn.ReLU()]
            if length >= 8:
                layers.append(nn.MaxPool1d(4))
                length //= 4
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x).mean(dim=-1)
        return self.classifier(self.dropout(h))


@register("m5", modality="audio")
def _build_m5(info: TaskInfo, width: int, depth: int, dropout: float) -> nn.Module:
    """M5-style 1-D CNN on the raw waveform (first conv kernel 80 stride 4, `depth` conv blocks,
    global average pool).
    """
    channels, length = info.input_shape
    return M5(channels, length, info.n_classes, width, depth, dropout)


class LogSpectrogram(nn.Module):
    """log(|STFT(x)| + eps) with a Hann window kept as a buffer (not a parameter), average-pooled.

    ``[B, 1, T]`` waveform -> ``[B, 1, (n_fft // 2 + 1) // pool[0], frames // pool[1]]``. The
    pooling (4 frequency bins x 2 frames by default: 32 bands x 31 frames for 1 s at 8 kHz)
    keeps the 2-D CNN small enough to train a CPU zoo; it has no parameters.
    """

    def __init__(self, n_fft: int = 256, hop_length: int = 128, eps: float = 1e-4, pool: tuple[int, int] = (4, 2)):
        super().__init__()
        self.n_fft, self.hop_length, self.eps, self.pool = n_fft, hop_length, eps, pool
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        spec = torch.stft(
            x.reshape(batch, -1), self.n_fft, hop_length=self.hop_length, window=self.window,
            center=True, return_complex=True,
        )
        logspec = torch.log(spec.abs() + self.eps).unsqueeze(1)
        return F.avg_pool2d(logspec, self.pool) if self.pool != (1, 1) else logspec


class StandardisedSpectrogram(LogSpectrogram):
    """The log-spectrogram of ``LogSpectrogram``, standardised per clip (zero mean, unit std + 1e-5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = super().forward(x)
        mean = spec.mean(dim=(-2, -1), keepdim=True)
        std = spec.std(dim=(-2, -1), keepdim=True) + 1e-5
        return (spec - mean) / std


class SpecCNN(nn.Module):
    """Log-spectrogram (standardised per clip), `depth` blocks of 3x3 conv + ReLU + 2x2 max-pool, linear.

    The classifier reads the flattened feature map (time-frequency position matters for
    spoken digits; a global average pool throws it away and fits far more slowly).
    """

    def __init__(self, n_classes: int, width: int, depth: int, dropout: float, n_samples: int = 8000):
        super().__init__()
        self.spectrogram = LogSpectrogram()
        layers: list[nn.Module] = []
        c_in = 1
        for _ in range(depth):
            layers += [nn.Conv2d(c_in, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c_in = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        with torch.no_grad():
            n_features = self.features(self.spectrogram(torch.zeros(1, 1, n_samples))).numel()
        self.classifier = nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = self.spectrogram(x)
        mean = spec.mean(dim=(-2, -1), keepdim=True)
        std = spec.std(dim=(-2, -1), keepdim=True) + 1e-5
        h = self.features((spec - mean) / std).flatten(1)
        return self.classifier(self.dropout(h))


@register("spec_cnn", modality="audio")
def _build_spec_cnn(info: TaskInfo, width: int, depth: int, dropout: float) -> nn.Module:
    """2-D CNN on a log-magnitude spectrogram computed in the model (torch.stft, n_fft 256, hop 128,
    Hann, 4x2 average pool).
    """
    return SpecCNN(info.n_classes, width, depth, dropout, n_samples=int(info.input_shape[-1]))


@register("spec_mlp", modality="audio")
def _build_spec_mlp(info: TaskInfo, width: int, depth: int, dropout: float) -> nn.Module:
    """MLP on the standardised log-spectrogram (as spec_cnn's: 32 bands x 31 frames, 992 inputs), `depth` hidden
    layers of `width` units (ReLU, dropout), linear classifier.

    The small feed-forward keyword-spotting model of Chen, Parada & Heigold (2014) on log
    spectral features; its front end has no parameters, so a population computes it once per
    clip and the model then trains at the cost of an MLP.
    """
    front = StandardisedSpectrogram()
    with torch.no_grad():
        n_in = front(torch.zeros(1, 1, int(info.input_shape[-1]))).numel()
    return nn.Sequential(front, nn.Flatten(), *_mlp_head(n_in, width, depth, dropout, info.n_classes))


# ----------------------------------------------------------------------------- text


class TfidfBag(nn.Module):
    """Token ids ``[B, L]`` -> L2-normalised TF-IDF bag of words ``[B, V]`` (padding id 0 ignored).

    tfidf[b, v] = count(v in doc b) * idf[v], then divided by its L2 norm (as scikit-learn's
    ``TfidfVectorizer(norm="l2")`` with raw counts). ``idf`` is a buffer, not a parameter.
    """

    def __init__(self, idf: torch.Tensor):
        super().__init__()
        self.register_buffer("idf", idf.to(torch.float32).clone())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        vocab = self.idf.shape[0]
        ones = (ids != 0).to(self.idf.dtype)
        counts = torch.zeros(ids.shape[0], vocab, dtype=self.idf.dtype, device=ids.device)
        counts.scatter_add_(1, ids.clamp(0, vocab - 1), ones)
        tfidf = counts * self.idf
        return F.normalize(tfidf, p=2.0, dim=1)


@register("bow_mlp", modality="text")
def _build_bow_mlp(info: TaskInfo, width: int, depth: int, dropout: float) -> nn.Module:
    """MLP on TF-IDF bag-of-words built inside the model from token ids (idf from TaskInfo.extras["idf"])."""
    idf = torch.as_tensor(_require_extra(info, "idf", "bow_mlp"), dtype=torch.float32).reshape(-1)
    vocab = int(info.extras.get("vocab_size", idf.shape[0]))
    if idf.shape[0] != vocab:
        raise ValueError(
            f"architecture 'bow_mlp': TaskInfo.extras['idf'] has {idf.shape[0]} entries but "
            f"extras['vocab_size'] is {vocab} for task {info.name!r}"
        )
    return nn.Sequential(TfidfBag(idf), *_mlp_head(vocab, width, depth, dropout, info.n_classes))


class TextCNN(nn.Module):
    """Embedding (padding_idx 0), `depth` 1-D conv blocks (kernel 5, ReLU), max over time, linear."""

    def __init__(self, vocab: int, n_classes: int, width: int, depth: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab, width, padding_idx=0)
        layers: list[nn.Module] = []
        for _ in range(depth):
            layers += [nn.Conv1d(width, width, kernel_size=5, padding=2), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embedding(ids).transpose(1, 2)  # [B, width, L]
        h = self.convs(h).amax(dim=-1)
        return self.classifier(self.dropout(h))


@register("text_cnn", modality="text")
def _build_text_cnn(info: TaskInfo, width: int, depth: int, dropout: float) -> nn.Module:
    """Embedding(V, width) + `depth` 1-D conv blocks + max-pool over time + linear."""
    vocab = int(_require_extra(info, "vocab_size", "text_cnn"))
    return TextCNN(vocab, info.n_classes, width, depth, dropout)


# ----------------------------------------------------------------------------- timm


def _timm():
    try:
        import timm
    except ImportError as err:
        timm_archs = ", ".join(repr(a) for a in sorted(ARCHITECTURES) if "timm" in ARCHITECTURES[a].requires)
        raise ImportError(f"architectures {timm_archs} need timm, which is not installed: pip install timm") from err
    return timm


def _unfused_attention(model: nn.Module) -> nn.Module:
    """Route timm's attention through its plain matmul/softmax path instead of the fused
    ``scaled_dot_product_attention``: PyTorch's CPU flash-attention backward has no derivative, so
    Hessian-vector products (double backward: the Hessian predictors) fail on the fused path.
    """
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    return model


def _vit_heads(width: int) -> int:
    """ViT-Tiny's head size (64): width // 64 heads when 64 divides the width, else one head."""
    return width // 64 if width % 64 == 0 else 1


@register("vit_patch7", modality="vision", requires=("timm",))
def _build_vit_patch7(info: TaskInfo, width: int, depth: int, dropout: float) -> nn.Module:
    """timm VisionTransformer: 7x7 patches (16 tokens on 28x28), embed dim `width`, `depth` blocks,
    heads of 64 dims as in ViT-Tiny (one head when 64 does not divide `width`).
    """
    timm = _timm()
    channels, height, wide = info.input_shape
    if height % 7 or wide % 7:
        raise ValueError(
            f"architecture 'vit_patch7': input {height}x{wide} of task {info.name!r} is not a multiple of 7"
        )
    return _unfused_attention(timm.models.vision_transformer.VisionTransformer(
        img_size=(height, wide), patch_size=7, in_chans=channels, num_classes=info.n_classes, embed_dim=width,
        depth=max(1, depth), num_heads=_vit_heads(width), drop_rate=dropout,
    ))


@register("resnet10t_narrow", modality="vision", requires=("timm",))
def _build_resnet10t_narrow(info: TaskInfo, width: int, depth: int, dropout: float) -> nn.Module:
    """timm ResNet-10-T design (tiered stem, BasicBlock, layers [1,1,1,1]) with stage channels `width` x (1,2,4,8).

    `width` 64 is resnet10t itself; `depth` is ignored (fixed design). Batch norm: the model
    is evaluated with running statistics (eval mode), as every zoo model is.
    """
    timm = _timm()
    if width < 4:
        raise ValueError(
            f"architecture 'resnet10t_narrow': width must be >= 4 (the stem has width/2 channels), got {width}"
        )
    return timm.create_model(
        "resnet10t", pretrained=False, num_classes=info.n_classes, in_chans=info.input_shape[0], drop_rate=dropout,
        channels=(width, 2 * width, 4 * width, 8 * width), stem_width=width // 2,
    )


@register("resnet10t", modality="vision", requires=("timm",))
def _build_resnet10t(info: TaskInfo, width: int, depth: int, dropout: float) -> nn.Module:
    """timm ResNet-10-T (tiered stem), trained from scratch; `width` and `depth` are ignored
    (fixed design, 4.9 M parameters).
    """
    timm = _timm()
    return timm.create_model(
        "resnet10t", pretrained=False, num_classes=info.n_classes, in_chans=info.input_shape[0], drop_rate=dropout
    )


@register("vit_tiny", modality="vision", requires=("timm",))
def _build_vit_tiny(info: TaskInfo, width: int, depth: int, dropout: float) -> nn.Module:
    """timm ViT-Tiny design (patch 4, embed dim `width` rounded to a multiple of 64, `depth` blocks, embed/64 heads)."""
    timm = _timm()
    embed = max(64, 64 * round(width / 64))
    return _unfused_attention(timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=info.n_classes, in_chans=info.input_shape[0],
        img_size=info.input_shape[1:], patch_size=4, embed_dim=embed, depth=max(1, depth),
        num_heads=max(1, embed // 64), drop_rate=dropout,
    ))
