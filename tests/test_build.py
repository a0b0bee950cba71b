"""Building zoos: convergence, idempotence, determinism, resume after kill -9, failure reporting."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from model_zoo import store
from model_zoo.build import ZooMismatchError, build_zoo
from model_zoo.cli import app
from model_zoo.spec import expand, load_spec, parse_spec
from model_zoo.store import ZooLayout, verify

pytestmark = pytest.mark.slow

TINY = """
name = "tiny"
seeds = [0]
[training]
target_ce = 0.05
max_steps = 400
window_steps = 10
[[experiments]]
task = "fashion_mnist"
architecture = "cnn"
[experiments.fixed]
width = 4
depth = 1
batch_size = 16
[experiments.grid]
lr = [0.05, 0.1]
train_size = [40, 60]
"""


def tiny_spec(tmp_path: Path, text: str = TINY):
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return load_spec(path)


def file_states(root: Path) -> dict[str, tuple[int, str]]:
    models = root / "public" / "models"
    return {
        str(p.relative_to(models)): (p.stat().st_mtime_ns, store.sha256_file(p))
        for p in sorted(models.rglob("*")) if p.is_file()
    }


def test_micro_models_converge(micro_zoo: Path):
    m = pd.read_parquet(micro_zoo / "public" / "manifest.parquet")
    assert (m["status"] == "converged").all()
    answers = pd.read_parquet(micro_zoo / "answers" / "answers.parquet")
    # the final weights are those at the end of the window: SGD noise after convergence (lr 0.1
    # on 100 examples) can cost a few training examples, but the models stay fitted
    assert (answers["train_error"] <= 0.1).all()
    assert (answers["test_error"] > answers["train_error"]).all()


def test_rebuild_is_a_no_op(micro_zoo: Path):
    before = file_states(micro_zoo)
    report = build_zoo("micro", micro_zoo, workers=1, progress=False)
    assert (report.n_trained, report.n_skipped, report.ok) == (0, 28, True)
    assert file_states(micro_zoo) == before


def test_training_is_deterministic(micro_zoo: Path, tmp_path: Path):
    """The first micro model, rebuilt alone in this process, has byte-identical weights."""
    micro = load_spec("micro")
    first = expand(micro)[0]
    text = micro.text.split("[[experiments]]")[0] + "[[experiments]]" + micro.text.split("[[experiments]]")[1]
    text = text.replace("seeds = [0, 1]", "seeds = [0]").replace("lr = [0.05, 0.1]", "lr = [0.05]")
    text = text.replace("train_size = [100, 200]", "train_size = [100]")
    spec = parse_spec(text.replace('name = "micro"', 'name = "one"'))
    assert [m.model_id for m in expand(spec)] == [first.model_id]
    build_zoo(spec, tmp_path / "one", workers=1, progress=False)
    for name in ("init.safetensors", "final.safetensors", "trajectory.safetensors"):
        a = micro_zoo / "public" / "models" / first.model_id / name
        b = tmp_path / "one" / "public" / "models" / first.model_id / name
        assert store.sha256_file(a) == store.sha256_file(b), name
    answers = [json.loads((r / "answers" / "models" / f"{first.model_id}.json").read_text())
               for r in (micro_zoo, tmp_path / "one")]
    assert answers[0] == answers[1]


def test_resume_after_kill_9(tmp_path: Path):
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(TINY.replace("seeds = [0]", "seeds = [0, 1]"))
    root = tmp_path / "zoo"
    models = root / "public" / "models"
    code = (f"from model_zoo.build import build_zoo; build_zoo({str(spec_path)!r}, {str(root)!r}, workers=1, "
            "progress=False, population_size=1)")
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ))
    zoo_json = root / "public" / "zoo.json"
    first_sitting = 0.0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            done = [p for p in models.glob("*") if not p.name.startswith(".")] if models.is_dir() else []
            # the killed sitting's time so far is in zoo.json once a model's result has come back
            first_sitting = json.loads(zoo_json.read_text()).get("build_seconds", 0.0) if done else 0.0
            if first_sitting > 0:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the build finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    layout = ZooLayout.at(root)
    finished = store.finished_model_ids(layout)
    assert 1 <= len(finished) < 8
    before = {k: v for k, v in file_states(root).items() if k.split("/")[0] in finished}
    assert json.loads(zoo_json.read_text())["build_seconds"] >= first_sitting > 0
    report = build_zoo(load_spec(spec_path), root, workers=1, progress=False)
    assert report.ok and report.n_skipped == len(finished) and report.n_trained == 8 - len(finished)
    # build time counts both sittings: the killed one's (as recorded before the kill) and this one
    assert json.loads(zoo_json.read_text())["build_seconds"] >= round(first_sitting + report.seconds, 1) - 0.1
    after = file_states(root)
    assert {k: after[k] for k in before} == before  # finished models were not retrained
    assert not list(root.rglob(f"{store.TMP_PREFIX}*"))
    manifest = pd.read_parquet(root / "public" / "manifest.parquet")
    assert sorted(manifest["model_id"]) == sorted(m.model_id for m in expand(load_spec(spec_path)))
    assert verify(root) == []


def test_changed_spec_refuses_the_old_root(tmp_path: Path):
    spec = tiny_spec(tmp_path, TINY.replace("train_size = [40, 60]", "train_size = [40]").replace(
        "lr = [0.05, 0.1]", "lr = [0.1]"))
    build_zoo(spec, tmp_path / "z", workers=1, progress=False)
    changed = parse_spec(spec.text.replace("max_steps = 400", "max_steps = 300"))
    assert changed.zoo_id != spec.zoo_id
    with pytest.raises(ZooMismatchError, match="another --root"):
        build_zoo(changed, tmp_path / "z", workers=1, progress=False)


def test_failed_model_is_reported_and_the_rest_goes_on(tmp_path: Path):
    import os

    from model_zoo.determinism import training_env
    from model_zoo.executor import Lane, ProcessLauncher

    tests = str(Path(__file__).resolve().parent)
    env = training_env({**os.environ, "PYTHONPATH": tests})
    # a worker whose trainer raises for one config (tests/build_faults.py); every model trains
    # alone here (population failures: tests/test_population.py)
    lane = Lane("train", init="build_faults:init", launcher=ProcessLauncher(env=env))
    spec = tiny_spec(tmp_path)
    bad = next(m.model_id for m in expand(spec) if m.train.lr == 0.1 and m.train.train_size == 60)
    report = build_zoo(spec, tmp_path / "z", workers=1, progress=False, lane=lane, population_size=1)
    assert [f.model_id for f in report.failures] == [bad]
    assert report.failures[0].error.startswith("FloatingPointError: loss is NaN at build_faults.py")
    manifest = pd.read_parquet(tmp_path / "z" / "public" / "manifest.parquet")
    assert len(manifest) == 3 and bad not in set(manifest["model_id"])


def test_cli_info_and_verify(micro_zoo: Path):
    runner = CliRunner()
    info = runner.invoke(app, ["info", str(micro_zoo)])
    assert info.exit_code == 0, info.output
    assert load_spec("micro").zoo_id in info.output
    for task in ("fashion_mnist", "fsdd", "newsgroups"):
        assert task in info.output
    ok = runner.invoke(app, ["verify", str(micro_zoo)])
    assert ok.exit_code == 0 and "ok" in ok.output
