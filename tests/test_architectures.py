"""Every registered architecture builds and runs a forward pass on a tiny batch of its modality."""

from __future__ import annotations

import importlib.util
import sys
import time

import numpy as np
import pytest
import torch

from model_zoo.architectures import (
    ARCHITECTURES,
    LogSpectrogram,
    TfidfBag,
    build_model,
    list_architectures,
    missing_packages,
)
from model_zoo.data.base import TaskInfo

VOCAB = 50
IDF = np.linspace(1.0, 3.0, VOCAB).tolist()

INFOS = {
    "vision": TaskInfo("tiny_vision", "vision", 10, (1, 28, 28), "float32", False),
    "audio": TaskInfo("tiny_audio", "audio", 10, (1, 8000), "float32", True, {"sample_rate": 8000}),
    "text": TaskInfo("tiny_text", "text", 4, (32,), "int64", False, {"vocab_size": VOCAB, "idf": IDF}),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine, 2 spinning OpenMP threads ran 60 steps 50x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_batch(info: TaskInfo, batch: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if info.modality == "text":
        ids = torch.randint(0, VOCAB, (batch, *info.input_shape), generator=gen)
        ids[:, -5:] = 0  # trailing padding
        return ids
    return torch.rand((batch, *info.input_shape), generator=gen)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_forward_gives_logits(name):
    info = INFOS[ARCHITECTURES[name].modality]
    torch.manual_seed(0)
    model = build_model(name, info, width=16, depth=2, dropout=0.1)
    out = model.eval()(tiny_batch(info))
    assert out.shape == (3, info.n_classes)
    assert torch.isfinite(out).all()
    assert ARCHITECTURES[name].doc


@pytest.mark.parametrize("name", ["mlp", "cnn", "m5", "spec_cnn", "spec_mlp", "bow_mlp", "text_cnn"])
def test_default_architectures_are_small_and_seeded(name):
    info = INFOS[ARCHITECTURES[name].modality]
    torch.manual_seed(1)
    a = build_model(name, info, width=16, depth=2)
    torch.manual_seed(1)
    b = build_model(name, info, width=16, depth=2)
    n = sum(p.numel() for p in a.parameters())
    assert 0 < n < 200_000
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_mlp_layout_and_depth_zero_is_linear():
    info = INFOS["vision"]
    mlp = build_model("mlp", info, width=64, depth=2)
    assert sum(p.numel() for p in mlp.parameters()) == 784 * 64 + 64 + 64 * 64 + 64 + 64 * 10 + 10
    linear = build_model("mlp", info, width=64, depth=0)
    assert sum(p.numel() for p in linear.parameters()) == 784 * 10 + 10


def test_cnn_deep_variant_stays_valid():
    info = INFOS["vision"]
    model = build_model("cnn", info, width=4, depth=6)  # more pools than 28x28 allows
    assert model(tiny_batch(info)).shape == (3, 10)


def test_buffers_are_not_parameters():
    spec = build_model("spec_cnn", INFOS["audio"], width=8, depth=1)
    names = {n for n, _ in spec.named_parameters()}
    assert not any("window" in n for n in names)
    assert any("window" in n for n, _ in spec.named_buffers())
    bow = build_model("bow_mlp", INFOS["text"], width=8, depth=1)
    assert not any("idf" in n for n, _ in bow.named_parameters())
    assert torch.allclose(dict(bow.named_buffers())["0.idf"], torch.tensor(IDF, dtype=torch.float32))


def test_tfidf_bag_matches_hand_computation():
    idf = torch.tensor([9.0, 1.0, 2.0, 0.5])
    ids = torch.tensor([[2, 2, 3, 0, 0], [1, 0, 0, 0, 0]])
    out = TfidfBag(idf)(ids)
    first = torch.tensor([0.0, 0.0, 4.0, 0.5]) / np.hypot(4.0, 0.5)
    assert torch.allclose(out[0], first)
    assert torch.allclose(out[1], torch.tensor([0.0, 1.0, 0.0, 0.0]))


def test_log_spectrogram_shape_and_tone_peak():
    t = torch.arange(8000) / 8000.0
    tone = torch.sin(2 * torch.pi * 1000.0 * t).reshape(1, 1, -1)  # 1 kHz = bin 1000 / (8000/256) = 32
    spec = LogSpectrogram(pool=(1, 1))(tone)
    assert spec.shape == (1, 1, 129, 63)
    assert int(spec[0, 0, :, 30].argmax()) == 32
    pooled = LogSpectrogram()(tone)  # 4 bins x 2 frames average pool
    assert pooled.shape == (1, 1, 32, 31)
    assert int(pooled[0, 0, :, 15].argmax()) == 32 // 4


def test_text_cnn_ignores_padding_embedding():
    model = build_model("text_cnn", INFOS["text"], width=8, depth=1)
    assert torch.count_nonzero(model.embedding.weight[0]) == 0


def test_unknown_name_suggests_close_match():
    with pytest.raises(ValueError, match="did you mean 'mlp'"):
        build_model("mpl", INFOS["vision"], width=8, depth=1)


def test_wrong_modality_is_rejected():
    with pytest.raises(ValueError, match="'m5' is for audio.*tiny_vision"):
        build_model("m5", INFOS["vision"], width=8, depth=1)


def test_missing_idf_names_the_field():
    info = TaskInfo("tiny_text", "text", 4, (32,), "int64", False, {"vocab_size": VOCAB})
    with pytest.raises(ValueError, match=r"extras\['idf'\]"):
        build_model("bow_mlp", info, width=8, depth=1)


def test_bad_hyperparameters_are_rejected():
    with pytest.raises(ValueError, match="dropout"):
        build_model("mlp", INFOS["vision"], width=8, depth=1, dropout=1.5)
    with pytest.raises(ValueError, match="width"):
        build_model("mlp", INFOS["vision"], width=0, depth=1)


def test_list_architectures_by_modality():
    assert set(list_architectures("audio")) >= {"m5", "spec_cnn"}
    assert set(list_architectures("text")) >= {"bow_mlp", "text_cnn"}
    assert "mlp" not in list_architectures("text")


# ----------------------------------------------------------------------------- timm


def test_timm_is_installed_and_declared():
    """timm is a core dependency: no test of its architectures may be skipped."""
    assert importlib.util.find_spec("timm") is not None
    timm_archs = {n for n, a in ARCHITECTURES.items() if "timm" in a.requires}
    assert timm_archs == {"vit_patch7", "resnet10t_narrow", "resnet10t", "vit_tiny"}


@pytest.mark.parametrize(
    ("name", "width", "depth", "expected"),
    [
        # ViT: patch embedding 49w + w, cls token w, 17 positions x w, per block 12w^2 + 13w (qkv, proj,
        # 4x MLP, two LayerNorms), final LayerNorm 2w, head 10w + 10.
        ("vit_patch7", 64, 1, 49 * 64 + 64 + 64 + 17 * 64 + 12 * 64**2 + 13 * 64 + 2 * 64 + 10 * 64 + 10),
        ("vit_patch7", 16, 2, 49 * 16 + 16 + 16 + 17 * 16 + 2 * (12 * 16**2 + 13 * 16) + 2 * 16 + 10 * 16 + 10),
        ("resnet10t", 1, 1, 4_927_186),  # timm's resnet10t with a 1-channel stem and 10 classes
        ("resnet10t_narrow", 64, 1, 4_927_186),  # width 64 is resnet10t itself
    ],
)
def test_timm_designs_have_the_documented_size(name, width, depth, expected):
    model = build_model(name, INFOS["vision"], width=width, depth=depth)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_vit_patch7_design():
    model = build_model("vit_patch7", INFOS["vision"], width=128, depth=3, dropout=0.1)
    assert model.patch_embed.proj.kernel_size == (7, 7) and model.patch_embed.num_patches == 16
    assert len(model.blocks) == 3 and model.blocks[0].attn.num_heads == 2  # 64-dim heads
    assert build_model("vit_patch7", INFOS["vision"], width=48, depth=1).blocks[0].attn.num_heads == 1
    with pytest.raises(ValueError, match="not a multiple of 7"):
        build_model("vit_patch7", TaskInfo("odd", "vision", 10, (1, 30, 30), "float32", False), width=16, depth=1)


@pytest.mark.parametrize("name", ["vit_patch7", "vit_tiny", "resnet10t_narrow"])
def test_timm_models_allow_hessian_vector_products(name):
    """Double backward works (the Hessian predictors need it; timm's fused attention has no such derivative)."""
    torch.manual_seed(0)
    model = build_model(name, INFOS["vision"], width=64 if name != "resnet10t_narrow" else 8, depth=1).eval()
    model = model.double()  # float64, so that the second difference below is accurate
    x, y = tiny_batch(INFOS["vision"], batch=4).double(), torch.tensor([0, 1, 2, 3])
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), params, create_graph=True)
    v = [torch.randn_like(p) for p in params]
    norm = torch.sqrt(sum((u**2).sum() for u in v))
    v = [u / norm for u in v]
    hv = torch.autograd.grad(sum((g * u).sum() for g, u in zip(grads, v)), params)
    assert all(torch.isfinite(h).all() for h in hv)
    if name.startswith("vit"):  # smooth (GELU, softmax, LayerNorm): v.Hv against a central second difference
        vhv = float(sum((h * u).sum() for h, u in zip(hv, v)))
        assert vhv == pytest.approx(_second_difference(model, x, y, params, v), rel=1e-3)


def _second_difference(model, x, y, params, v, eps=1e-3):
    def loss_at(t):
        with torch.no_grad():
            for p, u in zip(params, v):
                p.add_(t * u)
            out = float(torch.nn.functional.cross_entropy(model(x), y))
            for p, u in zip(params, v):
                p.sub_(t * u)
        return out

    return (loss_at(eps) - 2 * loss_at(0.0) + loss_at(-eps)) / eps**2


def test_resnet10t_narrow_design():
    model = build_model("resnet10t_narrow", INFOS["vision"], width=16, depth=5)
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    assert [len(s) for s in stages] == [1, 1, 1, 1]  # BasicBlock layers [1, 1, 1, 1], depth ignored
    assert [s[0].conv2.out_channels for s in stages] == [16, 32, 64, 128]
    assert model.conv1[0].in_channels == 1 and model.fc.out_features == 10
    with pytest.raises(ValueError, match="width must be >= 4"):
        build_model("resnet10t_narrow", INFOS["vision"], width=2, depth=1)


@pytest.mark.parametrize(("name", "width"), [("vit_patch7", 64), ("resnet10t_narrow", 8)])
def test_small_timm_designs_train_in_seconds(name, width):
    """The CPU-sized timm designs memorise 40 Fashion-MNIST-like images in a few dozen Adam steps."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 28, 28, generator=gen)
    y = torch.arange(40) % 10
    torch.manual_seed(0)
    model = build_model(name, INFOS["vision"], width=width, depth=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    started = time.process_time()  # CPU seconds: what other processes on the machine take does not count
    for _ in range(60):
        model.train()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    seconds = time.process_time() - started
    with torch.no_grad():
        accuracy = float((model.eval()(x).argmax(1) == y).float().mean())
    assert accuracy == 1.0, f"{name}: train accuracy {accuracy} after 60 steps"
    assert seconds < 30, f"{name}: 60 steps took {seconds:.1f} CPU seconds"


def test_timm_architectures_explain_missing_timm(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # as if timm were not installed
    with pytest.raises(ImportError, match="need timm, which is not installed: pip install timm") as err:
        build_model("vit_patch7", INFOS["vision"], width=16, depth=1)
    assert "\n" not in str(err.value) and "'resnet10t_narrow'" in str(err.value)


def test_spec_naming_an_architecture_whose_package_is_missing_fails_at_load(monkeypatch):
    from model_zoo.spec import SpecError, parse_spec

    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "timm" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert missing_packages("resnet10t_narrow") == ["timm"] and missing_packages("cnn") == []
    text = """
name = "needs_timm"
seeds = [0]
[[experiments]]
task = "fashion_mnist"
architecture = ["cnn", "vit_patch7"]
"""
    with pytest.raises(SpecError) as err:
        parse_spec(text, source="needs_timm.toml")
    problems = [line.strip() for line in str(err.value).splitlines()[1:]]
    assert problems == [
        "experiments[0] (fashion_mnist): architecture: architecture 'vit_patch7' needs timm, which is not installed "
        "(pip install timm)"
    ]
