"""The zoo on disk and its read API: layout, manifest, answers, integrity checks, atomic writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from model_zoo import store
from model_zoo.axes import AXIS_NAMES as AXES
from model_zoo.spec import load_spec
from model_zoo.store import ZooIntegrityError, ZooLayout, verify
from model_zoo.zoo import Zoo, load_answers

pytestmark = pytest.mark.slow  # every test here uses the built micro zoo


@pytest.fixture()
def zoo_copy(micro_zoo: Path, tmp_path: Path) -> Path:
    """A private copy of the micro zoo that a test may damage."""
    return Path(shutil.copytree(micro_zoo, tmp_path / "zoo"))


def test_layout_and_public_part_has_no_test_data(micro_zoo: Path):
    public, answers = micro_zoo / "public", micro_zoo / "answers"
    for name in ("zoo.json", "spec.toml", "manifest.parquet"):
        assert (public / name).is_file()
    assert (answers / "answers.parquet").is_file()
    meta = json.loads((public / "zoo.json").read_text())
    spec = load_spec("micro")
    assert meta["zoo_id"] == spec.zoo_id and meta["spec_name"] == "micro"
    assert meta["spec_sha256"] == store.sha256_file(public / "spec.toml") == spec.text_sha256
    assert {"created", "code_version", "versions"} <= set(meta)
    for task in ("fashion_mnist", "fsdd", "newsgroups"):
        with np.load(public / "data" / task / "train.npz") as pool:
            assert sorted(pool.files) == ["x", "y"]
    names = {p.name for p in public.rglob("*")}
    assert not any("test" in n or "shift" in n for n in names), names
    assert not any(n.startswith(store.TMP_PREFIX) for n in names)


def test_manifest_rows_and_hp_strings(micro_zoo: Path):
    m = pd.read_parquet(micro_zoo / "public" / "manifest.parquet")
    assert len(m) == 28 and m["model_id"].is_unique
    for col in ("model_id", "task", "architecture", "seed", "status", "config_id", "n_params", "steps",
                "train_seconds", *(f"hp.{a}" for a in AXES), *(f"sha256.{f}" for f in store.MODEL_FILES)):
        assert col in m.columns, col
    assert set(m["hp.lr"]) == {"0.05", "0.1", "0.01", "0.02", "0.003", "0.03"}
    assert set(m["axes"]) == {"lr,train_size", "architecture"}
    assert (m.groupby("config_id")["seed"].nunique() == 2).all()
    assert verify(micro_zoo) == []


def test_answers_table(micro_zoo: Path, tmp_path: Path):
    a = load_answers(micro_zoo)
    assert len(a) == 28
    np.testing.assert_allclose(a["gap"], a["test_error"] - a["train_error"])
    fsdd = a[a["task"] == "fsdd"]
    assert fsdd["shift_error"].notna().all() and a[a["task"] != "fsdd"]["shift_error"].isna().all()
    public_only = shutil.copytree(micro_zoo / "public", tmp_path / "alone" / "public")
    with pytest.raises(FileNotFoundError, match="answers"):
        load_answers(public_only)


def test_read_api_from_public_dir_only(micro_zoo: Path, tmp_path: Path):
    public = Path(shutil.copytree(micro_zoo / "public", tmp_path / "only" / "public"))
    zoo = Zoo(public)
    answers = load_answers(micro_zoo).set_index("model_id")
    assert zoo.zoo_id == load_spec("micro").zoo_id and len(zoo) == 28
    assert zoo.spec.name == "micro" and zoo.spec_text.startswith("# The micro zoo")
    assert zoo.model_ids(task="fsdd") == [i for i in zoo.model_ids() if i.startswith("fsdd-")]
    assert len(zoo.model_ids(task="fsdd", status="converged")) == 8
    for task in zoo.tasks:
        rec = zoo.record(zoo.model_ids(task=task)[-1])
        assert rec.info.name == task and rec.hparams["train_size"] in ("200", "30", "50")
        x, y = rec.train_set()
        assert len(x) == len(y) == rec.train_config.train_size
        model = rec.build_model("final")
        assert not model.training
        with torch.no_grad():
            logits = model(torch.as_tensor(x))
        train_error = float((logits.argmax(1).numpy() != y).mean())
        assert train_error == pytest.approx(answers.loc[rec.model_id, "train_error"], abs=1e-12)
        init = rec.state_dict("init")
        assert init.keys() == rec.state_dict("final").keys()
        traj = rec.trajectory()
        assert traj.iterates.shape[0] == traj.losses.shape[0] == 100  # the micro window
        assert traj.n_params == rec.n_params and np.all(traj.iterates[0] == 0)
        curve = rec.curve()
        assert list(curve.columns) == ["step", "train_loss", "train_error"] and len(curve) >= 1
    with pytest.raises(KeyError, match="did you mean"):
        zoo.record(zoo.model_ids()[0][:-1])


def test_label_noise_is_reproduced_in_train_set(micro_zoo: Path):
    zoo = Zoo(micro_zoo)
    rec = zoo.record(zoo.model_ids()[0])
    x, y = rec.train_set()
    _, y_pool = zoo.pool(rec.task)
    indices = np.asarray(rec.config["train_indices"])
    assert np.array_equal(y, y_pool[indices])  # micro has no label noise
    assert rec.config["noisy_indices"] == []


def test_flipped_byte_is_detected(zoo_copy: Path):
    zoo = Zoo(zoo_copy)
    mid = zoo.model_ids()[3]
    target = zoo_copy / "public" / "models" / mid / "final.safetensors"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    problems = verify(zoo_copy)
    assert [(p.path, p.kind) for p in problems] == [(target, "hash_mismatch")]
    with pytest.raises(ZooIntegrityError, match=str(target)):
        Zoo(zoo_copy).record(mid).state_dict("final")
    with pytest.raises(ZooIntegrityError, match=str(target)):
        Zoo(zoo_copy, verify="full")
    assert Zoo(zoo_copy, verify="none").record(mid).config  # other files stay readable


def test_deleted_trajectory_is_detected(zoo_copy: Path):
    mid = Zoo(zoo_copy).model_ids()[0]
    target = zoo_copy / "public" / "models" / mid / "trajectory.safetensors"
    target.unlink()
    assert [(p.path, p.kind) for p in verify(zoo_copy)] == [(target, "missing")]
    with pytest.raises(ZooIntegrityError, match=str(target)):
        Zoo(zoo_copy)
    with pytest.raises(ZooIntegrityError, match=str(target)):
        Zoo(zoo_copy, verify="none").record(mid).trajectory()


def test_corrupted_manifest_and_data_are_detected(zoo_copy: Path):
    manifest = zoo_copy / "public" / "manifest.parquet"
    manifest.write_bytes(manifest.read_bytes()[:100])
    with pytest.raises(ZooIntegrityError, match=str(manifest)):
        Zoo(zoo_copy)
    assert any(p.path == manifest for p in verify(zoo_copy))
    store.rebuild_manifest(ZooLayout.at(zoo_copy))
    pool = zoo_copy / "public" / "data" / "fsdd" / "train.npz"
    pool.write_bytes(pool.read_bytes()[:-10])
    assert [(p.path, p.kind) for p in verify(zoo_copy)] == [(pool, "hash_mismatch")]
    zoo = Zoo(zoo_copy)
    with pytest.raises(ZooIntegrityError, match=str(pool)):
        zoo.record(zoo.model_ids(task="fsdd")[0]).train_set()


def test_write_model_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    layout = ZooLayout.at(tmp_path / "z")
    layout.models_dir.mkdir(parents=True)
    blobs = {n: n.encode() for n in store.MODEL_FILES if n != "config.json"}
    calls = []
    real = store._write_synced

    def failing(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(store, "_write_synced", failing)
    with pytest.raises(OSError, match="disk full"):
        store.write_model(layout, "m1", config={"a": 1}, blobs=blobs, answer={"model_id": "m1"})
    assert not layout.model_dir("m1").exists()
    assert list(layout.models_dir.iterdir()) == []
    assert not store.model_is_done(layout, "m1")  # its answer alone does not make it done
    monkeypatch.setattr(store, "_write_synced", real)
    store.write_model(layout, "m1", config={"a": 1}, blobs=blobs, answer={"model_id": "m1"})
    assert store.model_is_done(layout, "m1")
    cfg = json.loads((layout.model_dir("m1") / "config.json").read_text())
    assert cfg["files"]["final.safetensors"] == store.sha256_bytes(b"final.safetensors")
    leftover = layout.models_dir / f"{store.TMP_PREFIX}m2-123"
    leftover.mkdir()
    assert store.clean_tmp(layout) == [leftover] and not leftover.exists()
