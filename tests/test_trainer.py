"""Trainer: determinism, convergence protocol, window, label noise, augmentation, evaluate."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from model_zoo.axes import TrainConfig
from model_zoo.data.base import TaskInfo
from model_zoo.trainer import (
    augment_audio,
    augment_text,
    augment_vision,
    evaluate,
    flat_params,
    make_train_subset,
    train_model,
)

torch.set_num_threads(1)

INFO = TaskInfo("blobs", "vision", 3, (1, 4, 4), "float32", False)


def blobs(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated Gaussian blobs in 16 dimensions (an easy, separable problem)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = rng.standard_normal((3, 16)) * 3.0
    x = centres[y] + 0.3 * rng.standard_normal((n, 16))
    return x.reshape(n, 1, 4, 4).astype(np.float32), y.astype(np.int64)


def config(**overrides) -> TrainConfig:
    base = dict(task="blobs", architecture="mlp", seed=0, lr=0.05, batch_size=16, width=16, depth=1,
                train_size=60, window_steps=6, projection_dim=32, exact_max_params=100, max_steps=3000)
    base.update(overrides)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def data():
    return blobs()


@pytest.fixture(scope="module")
def run(data):
    return train_model(config(), INFO, *data)


def test_converges_on_an_easy_problem(run, data):
    assert run.status == "converged"
    assert run.steps_to_converge is not None and run.steps_to_converge % 4 == 0  # checked once per epoch
    assert run.total_steps == run.steps_to_converge + 6
    assert run.curve[-1]["train_loss"] <= 0.01 and run.curve[-1]["step"] == run.steps_to_converge
    assert [c["step"] for c in run.curve] == list(range(4, run.steps_to_converge + 1, 4))
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Dropout(0.0), nn.Linear(16, 3))
    model.load_state_dict(run.final_state)
    error, ce = evaluate(model, *data)
    assert error == 0.0 and ce < 0.05  # still fitted after the window


def test_window_shapes_and_projection(run):
    win = run.window
    p = 16 * 16 + 16 + 16 * 3 + 3
    assert run.n_params == win.n_params == p
    assert win.projected and win.iterates.shape == (6, 32) and win.iterates.dtype == np.float32
    assert win.losses.shape == win.norms.shape == win.step_norms.shape == (6,)
    assert np.all(win.iterates[0] == 0) and np.all(win.step_norms > 0)
    final = torch.cat([t.reshape(-1) for t in run.final_state.values()]).double()
    assert win.norms[-1] == pytest.approx(float(final.norm()), rel=1e-6)
    # per-example probe losses of the last iterate = the final model's losses on those examples
    assert win.probe_losses.shape[0] == 6 and win.probe_losses.dtype == np.float32
    assert "probe_losses" in win.arrays()
    assert float(win.probe_losses[-1].mean()) <= 0.05


def test_exact_window_when_small(data):
    result = train_model(config(exact_max_params=10_000, max_steps=8), INFO, *data)
    assert not result.window.projected and result.window.iterates.shape == (6, result.n_params)
    assert result.total_steps == 8 + 6


def test_step_cap_gives_not_converged(data):
    result = train_model(config(max_steps=3, eval_every=1), INFO, *data)
    assert result.status == "not_converged" and result.steps_to_converge is None
    assert result.total_steps == 3 + 6
    assert len(result.history) == 3


def test_same_seed_is_bitwise_identical_and_other_seed_differs(run, data):
    again = train_model(config(), INFO, *data)
    assert again.steps_to_converge == run.steps_to_converge
    for key, value in run.final_state.items():
        assert torch.equal(value, again.final_state[key])
    assert np.array_equal(again.window.iterates, run.window.iterates)
    other = train_model(config(seed=1), INFO, *data)
    assert not torch.equal(other.init_state["1.weight"], run.init_state["1.weight"])
    assert not torch.equal(other.final_state["1.weight"], run.final_state["1.weight"])


def test_determinism_with_dropout_adam_and_augmentation(data):
    cfg = config(dropout=0.2, optimizer="adam", lr=0.01, augmentation=True, max_steps=40, weight_decay=1e-4)
    a, b = train_model(cfg, INFO, *data), train_model(cfg, INFO, *data)
    for key in a.final_state:
        assert torch.equal(a.final_state[key], b.final_state[key])


def test_caller_rng_is_untouched(data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_model(config(max_steps=4), INFO, *data)
    assert torch.equal(torch.rand(3), expected)


def test_init_state_is_the_untrained_model(run):
    torch.manual_seed(0)
    from model_zoo.architectures import build_model

    fresh = build_model("mlp", INFO, width=16, depth=1)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, run.init_state[key])


def test_progress_callback_and_flat_params(data):
    seen = []
    train_model(config(max_steps=8), INFO, *data, progress=seen.append)
    assert [s["step"] for s in seen] == [4, 8]
    model = nn.Linear(2, 3)
    assert flat_params(model).shape == (9,)


def test_config_and_data_checks(data):
    with pytest.raises(ValueError, match="optimizer must be one of .*'rmsprop'"):
        config(optimizer="rmsprop")
    with pytest.raises(ValueError, match="train_size=50"):
        train_model(config(train_size=50), INFO, *data)
    with pytest.raises(ValueError, match="TaskInfo is for 'blobs'"):
        train_model(config(task="other"), INFO, *data)


STRIDES = r"""
import json
from model_zoo.determinism import pin
pin()
import numpy as np, torch
from torch.nn import functional as F
from model_zoo.axes import TrainConfig
from model_zoo.data.base import TaskInfo
from model_zoo.trainer import train_model
rng = np.random.default_rng(0)
base = rng.random((48, 28, 28), dtype=np.float32)
odd = np.broadcast_to(base[:, None], (48, 1, 28, 28))[np.arange(48)]  # as a loader's pool, fancy-indexed
std = np.array(odd)  # the same values with row-major strides
y = rng.integers(0, 10, 48)
# the hazard: ATen takes a [B, 1, H, W] batch with channel stride 1 for channels-last
w = [torch.randn(4, 1, 3, 3, generator=torch.Generator().manual_seed(0)).requires_grad_() for _ in range(2)]
for x, wi in zip((odd, std), w):
    F.conv2d(torch.as_tensor(x), wi, padding=1).square().sum().backward()
info = TaskInfo("strides", "vision", 10, (1, 28, 28), "float32", False)
cfg = TrainConfig(task="strides", architecture="cnn", seed=0, width=4, depth=1, batch_size=16, train_size=48,
                  max_steps=6, window_steps=2, projection_dim=16, exact_max_params=100)
a, b = train_model(cfg, info, odd, y), train_model(cfg, info, std, y)
print("RESULT " + json.dumps({
    "strides": [list(torch.as_tensor(odd).stride()), list(torch.as_tensor(std).stride())],
    "raw_grads_equal": torch.equal(w[0].grad, w[1].grad),
    "trained_equal": all(torch.equal(a.final_state[k], b.final_state[k]) for k in a.final_state)
    and np.array_equal(a.window.iterates, b.window.iterates),
}))
"""


@pytest.mark.slow
def test_numbers_do_not_depend_on_how_numpy_strided_the_data():
    """Under the pinned numerics a channel stride of 1 sends conv2d to its channels-last kernel."""
    import json
    import subprocess
    import sys

    from model_zoo.determinism import training_env

    repo = Path(__file__).resolve().parents[1]
    env = training_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", STRIDES], env=env, cwd=repo, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1][7:])
    assert result["strides"] == [[784, 1, 28, 1], [784, 784, 28, 1]]
    assert not result["raw_grads_equal"]  # the hazard is real (so the next check can fail)
    assert result["trained_equal"]


# ----------------------------------------------------------------------------- subsets and noise


def test_label_noise_flips_exactly_the_requested_number_to_other_classes():
    y_pool = np.repeat(np.arange(10), 100)
    sub = make_train_subset(y_pool, 10, 500, 0.2, seed=3)
    assert len(sub.indices) == 500 and len(np.unique(sub.indices)) == 500
    assert np.all(np.diff(sub.indices) > 0)
    changed = sub.labels != y_pool[sub.indices]
    assert changed.sum() == 100
    assert set(sub.indices[changed]) == set(sub.noisy_indices)
    assert np.bincount(y_pool[sub.indices], minlength=10).tolist() == [50] * 10
    again = make_train_subset(y_pool, 10, 500, 0.2, seed=3)
    assert np.array_equal(again.indices, sub.indices) and np.array_equal(again.labels, sub.labels)
    other = make_train_subset(y_pool, 10, 500, 0.2, seed=4)
    assert not np.array_equal(other.indices, sub.indices)


def test_noisy_labels_are_spread_over_other_classes():
    y_pool = np.zeros(3000, dtype=np.int64)
    y_pool[1::2] = 1
    y_pool[::3] = 2
    sub = make_train_subset(y_pool, 3, 3000, 1.0, seed=0)
    assert np.all(sub.labels != y_pool)
    for c in range(3):
        new = sub.labels[y_pool == c]
        assert set(np.unique(new)) == set(range(3)) - {c}


def test_subset_handles_rare_classes_and_rejects_oversize():
    y_pool = np.array([0] * 95 + [1] * 5)
    sub = make_train_subset(y_pool, 2, 40, 0.0, seed=0)
    assert len(sub.indices) == 40 and (y_pool[sub.indices] == 1).sum() == 5
    assert len(sub.noisy_indices) == 0
    with pytest.raises(ValueError, match="train_size=101"):
        make_train_subset(y_pool, 2, 101, 0.0, seed=0)


# ----------------------------------------------------------------------------- augmentation


def test_vision_augmentation_shifts_and_flips_within_bounds():
    x = torch.zeros(64, 1, 8, 8)
    x[:, 0, 3, 3] = 1.0
    out = augment_vision(x, torch.Generator().manual_seed(0))
    rows, cols = torch.nonzero(out[:, 0] == 1.0, as_tuple=True)[1:]
    assert out.sum(dim=(1, 2, 3)).eq(1.0).all()  # a shift by <= 2 px keeps this pixel
    assert rows.min() >= 1 and rows.max() <= 5
    assert set(cols.tolist()) - set(range(1, 6)) <= {7 - c for c in range(1, 6)}
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 5


def test_audio_augmentation_shift_and_gain():
    x = torch.zeros(32, 1, 4000)
    x[:, 0, 2000] = 1.0
    out = augment_audio(x, torch.Generator().manual_seed(0))
    peak, where = out[:, 0].max(dim=1)
    assert torch.all((peak >= 0.8) & (peak <= 1.2))
    assert torch.all((where - 2000).abs() <= 800) and len(set(where.tolist())) > 5


def test_text_augmentation_drops_about_ten_percent():
    ids = torch.randint(1, 100, (50, 200), generator=torch.Generator().manual_seed(1))
    out = augment_text(ids, torch.Generator().manual_seed(0))
    dropped = (out == 0).float().mean().item()
    assert 0.08 < dropped < 0.12
    assert torch.equal(out[out != 0], ids[out != 0])


# ----------------------------------------------------------------------------- evaluate


def test_evaluate_matches_hand_computation():
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]], dtype=np.float32)
    y = np.array([0, 0, 1])
    # logits = x; CE = logsumexp(x) - x[y]
    ce = [np.log(np.exp(2) + 1) - 2, np.log(1 + np.e) - 0, np.log(np.exp(3) + 1) - 0]
    model.train()
    error, loss = evaluate(model, x, y, batch_size=2)
    assert error == pytest.approx(2 / 3)
    assert loss == pytest.approx(np.mean(ce), rel=1e-6)
    assert model.training  # mode restored


def test_evaluate_uses_eval_mode():
    model = nn.Sequential(nn.Dropout(0.9), nn.Linear(2, 2))
    x, y = np.ones((20, 2), dtype=np.float32), np.zeros(20, dtype=np.int64)
    assert evaluate(model, x, y) == evaluate(model, x, y)


# ----------------------------------------------------------------------------- one real-data check


MIRROR = os.environ.get("GAPBENCH_DATA_MIRROR")


@pytest.mark.slow
@pytest.mark.skipif(not MIRROR or not Path(MIRROR, "fashion-mnist").is_dir(), reason="needs GAPBENCH_DATA_MIRROR")
def test_mlp_fits_200_fashion_mnist_images(tmp_path):
    from model_zoo.data import load_task

    task = load_task("fashion_mnist", mirror=MIRROR, cache_dir=tmp_path)
    sub = make_train_subset(task.y_train, 10, 200, 0.1, seed=0)
    cfg = TrainConfig(task="fashion_mnist", architecture="mlp", seed=0, lr=0.05, batch_size=64, width=32, depth=1,
                      train_size=200, window_steps=20, max_steps=3000)
    result = train_model(cfg, task.info, task.x_train[sub.indices], sub.labels)
    assert result.status == "converged" and result.window.projected
    assert result.window.iterates.shape == (20, cfg.projection_dim)
    assert len(sub.noisy_indices) == 20
    from model_zoo.architectures import build_model

    model = build_model("mlp", task.info, width=32, depth=1)
    model.load_state_dict(result.final_state)
    error, _ = evaluate(model, task.x_train[sub.indices], sub.labels)
    assert error <= 0.01  # the noisy labels are memorised too
