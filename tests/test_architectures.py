"""Every registered architecture builds and runs a forward pass on a tiny batch of its modality."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from model_zoo.architectures import ARCHITECTURES, LogSpectrogram, TfidfBag, build_model, list_architectures
from model_zoo.data.base import TaskInfo

VOCAB = 50
IDF = np.linspace(1.0, 3.0, VOCAB).tolist()

INFOS = {
    "vision": TaskInfo("tiny_vision", "vision", 10, (1, 28, 28), "float32", False),
    "audio": TaskInfo("tiny_audio", "audio", 10, (1, 8000), "float32", True, {"sample_rate": 8000}),
    "text": TaskInfo("tiny_text", "text", 4, (32,), "int64", False, {"vocab_size": VOCAB, "idf": IDF}),
}


def tiny_batch(info: TaskInfo, batch: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    if info.modality == "text":
        ids = torch.randint(0, VOCAB, (batch, *info.input_shape), generator=gen)
        ids[:, -5:] = 0  # trailing padding
        return ids
    return torch.rand((batch, *info.input_shape), generator=gen)


def _available(name: str) -> bool:
    return all(importlib.util.find_spec(pkg) is not None for pkg in ARCHITECTURES[name].requires)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_forward_gives_logits(name):
    if not _available(name):
        pytest.skip(f"{name} needs {ARCHITECTURES[name].requires}")
    info = INFOS[ARCHITECTURES[name].modality]
    torch.manual_seed(0)
    model = build_model(name, info, width=16, depth=2, dropout=0.1)
    out = model.eval()(tiny_batch(info))
    assert out.shape == (3, info.n_classes)
    assert torch.isfinite(out).all()
    assert ARCHITECTURES[name].doc


@pytest.mark.parametrize("name", ["mlp", "cnn", "m5", "spec_cnn", "bow_mlp", "text_cnn"])
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


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_timm_architectures_explain_missing_timm():
    with pytest.raises(ImportError, match="timm"):
        build_model("resnet10t", INFOS["vision"], width=8, depth=1)
