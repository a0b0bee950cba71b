"""Zoos at fsspec URLs: ``memory://`` and a local S3 server (moto, on 127.0.0.1) hold the same bytes
and give the same hashes as the local zoo; writes keep the store's order; a killed writer's
leftovers are found and removed; predictions read from S3 equal those read from disk."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from model_zoo import store
from model_zoo.store import FsPath, ZooLayout, as_path, is_url
from model_zoo.zoo import Zoo

REPO = Path(__file__).resolve().parents[1]


def test_locations():
    assert is_url("s3://bucket/zoo") and is_url("memory://z") and is_url("gs://b/z")
    assert not is_url("/tmp/zoo") and not is_url("file:///tmp/zoo") and not is_url("zoos/mini")
    assert as_path("file:///tmp/zoo") == Path("/tmp/zoo")
    p = as_path("memory://loc/public")
    assert isinstance(p, FsPath) and str(p) == "memory:///loc/public"
    assert str(p / "models" / "m1") == "memory:///loc/public/models/m1" and (p / "x").parent == p
    assert p.name == "public" and str(p.with_name("answers")) == "memory:///loc/answers"
    assert as_path(str(p)) == p  # what a job argument carries to another process


def _model(layout: ZooLayout, mid: str, index: int = 0) -> None:
    blobs = {n: f"{mid}:{n}".encode() for n in store.MODEL_FILES if n != "config.json"}
    config = {"model_id": mid, "index": index, "task": "t", "architecture": "a", "seed": 0, "status": "converged",
              "config_id": "c", "axes": ["lr"], "hp": {"lr": "0.1"}, "n_params": 3, "total_steps": 5,
              "steps_to_converge": 4, "train_seconds": 0.5, "trajectory": {"drift_share": 0.1}}
    store.write_model(layout, mid, config=config, blobs=blobs, answer={"model_id": mid, "gap": 0.25})


def test_a_model_on_a_url_is_published_answer_first_and_config_last(monkeypatch):
    layout = ZooLayout.for_root("memory://order")
    written: list[str] = []
    real = FsPath.write_bytes

    def record(self, data):
        written.append(str(self).removeprefix("memory:///order/"))
        return real(self, data)

    monkeypatch.setattr(FsPath, "write_bytes", record)
    _model(layout, "m1")
    assert written[0] == "answers/models/m1.json" and written[-1] == "public/models/m1/config.json"
    files = [*(n for n in store.MODEL_FILES if n != "config.json"), store.TIMING_FILE]
    assert sorted(written[1:-1]) == sorted(f"public/models/m1/{n}" for n in files)
    assert store.model_is_done(layout, "m1") and store.done_model_ids(layout) == {"m1"}
    written.clear()
    _model(layout, "m1")  # already published: only the answer is rewritten
    assert written == ["answers/models/m1.json"]


def test_a_killed_writer_leaves_no_finished_model_and_is_cleaned(monkeypatch):
    layout = ZooLayout.for_root("memory://killed")
    _model(layout, "m1")
    real = FsPath.write_bytes

    def die_on_config(self, data):
        if self.name == "config.json":
            raise KeyboardInterrupt  # the writer is killed before its last write
        return real(self, data)

    monkeypatch.setattr(FsPath, "write_bytes", die_on_config)
    with pytest.raises(KeyboardInterrupt):
        _model(layout, "m2", 1)
    monkeypatch.undo()
    assert not store.model_is_done(layout, "m2") and store.finished_model_ids(layout) == ["m1"]
    assert store.done_model_ids(layout) == {"m1"}
    store.rebuild_manifest(layout)
    problems = [(p.kind, p.path.name) for p in store.verify("memory://killed") if p.kind == "leftover_tmp"]
    assert problems == [("leftover_tmp", "m2")]
    assert [p.name for p in store.clean_tmp(layout)] == ["m2"]
    assert store.partial_model_dirs(layout) == [] and not (layout.models_dir / "m2").exists()
    _model(layout, "m2", 1)  # the rebuild resumes
    assert store.finished_model_ids(layout) == ["m1", "m2"]


def _same_zoo(url: str, local_root: Path) -> None:
    remote, local = Zoo(url), Zoo(local_root)
    assert remote.content_hash == local.content_hash == local.meta["content_hash"]
    assert remote.manifest.equals(local.manifest)
    assert store.verify(url) == []
    assert store.sha256_file(remote.layout.answers_table) == local.meta["answers_sha256"]
    mid = local.model_ids()[-1]
    a, b = remote.record(mid), local.record(mid)
    for name in store.MODEL_FILES:
        assert (a.dir / name).read_bytes() == (b.dir / name).read_bytes()
    assert a.train_set()[1].tolist() == b.train_set()[1].tolist()
    assert sorted(a.state_dict()) == sorted(b.state_dict())


def test_a_zoo_on_memory_reads_back_with_the_same_hashes(micro_zoo):
    url = "memory://zoos/micro"
    assert store.copy_zoo(micro_zoo, url) == len(Zoo(micro_zoo)) > 0
    _same_zoo(url, micro_zoo)
    assert store.copy_zoo(micro_zoo, url) == 0  # resumable: nothing left to copy
    (ZooLayout.at(url).model_dir(Zoo(url).model_ids()[0]) / "final.safetensors").write_bytes(b"tampered")
    assert [p.kind for p in store.verify(url)] == ["hash_mismatch"]


# ---------------------------------------------------------------------------------------------
# a local S3-compatible server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 and the environment that points s3fs (and worker processes) at it."""
    pytest.importorskip("s3fs")
    port = _free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the moto S3 server did not start") from None
            time.sleep(0.5)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import fsspec

    fsspec.filesystem("s3", use_listings_cache=False).mkdir("zoos")
    yield endpoint
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def s3_zoo(s3, micro_zoo):
    url = "s3://zoos/micro"
    assert store.copy_zoo(micro_zoo, url) == len(Zoo(micro_zoo)) > 0
    return url


@pytest.mark.slow
def test_a_zoo_on_s3_reads_back_with_the_same_hashes(s3_zoo, micro_zoo):
    _same_zoo(s3_zoo, micro_zoo)
    assert sorted(store.done_model_ids(ZooLayout.at(s3_zoo))) == sorted(Zoo(micro_zoo).model_ids())


_WORKER = textwrap.dedent("""
    import sys
    from model_zoo import store
    layout = store.ZooLayout(store.as_path(sys.argv[1]), store.as_path(sys.argv[2]))
    blobs = {n: n.encode() for n in store.MODEL_FILES if n != "config.json"}
    store.write_model(layout, "w1", config={"index": 0}, blobs=blobs, answer={"model_id": "w1"})
""")


@pytest.mark.slow
def test_another_process_writes_a_model_to_s3(s3):
    # what a training worker does: it gets the zoo's URLs as job arguments and the endpoint from its environment
    layout = ZooLayout.for_root("s3://zoos/worker")
    subprocess.run([sys.executable, "-c", _WORKER, str(layout.public), str(layout.answers)], check=True, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert store.model_is_done(layout, "w1")
    config = store.read_json(layout.model_dir("w1") / "config.json")
    assert config["files"]["final.safetensors"] == store.sha256_bytes(b"final.safetensors")


@pytest.mark.slow
def test_predictions_read_from_s3_equal_those_read_from_disk(s3_zoo, micro_zoo, tmp_path):
    from benchmark.predict import predict
    from benchmark.sandbox import Isolation, ModelStager
    from predictors.registry import resolve_names

    stager = ModelStager(s3_zoo, link_data=True)
    assert stager.prepare() == stager.data_dir and stager.data_dir.is_dir()  # the pools, fetched once
    assert sorted(store.list_files(stager.data_dir)) == sorted(store.list_files(Path(micro_zoo) / "public" / "data"))
    refs = resolve_names(["weight_norm"])
    isolation = Isolation(sandbox=False, memory_mb=4096)
    remote = predict(s3_zoo, refs, results_dir=tmp_path / "s3", isolation=isolation, progress=False)
    local = predict(micro_zoo, refs, results_dir=tmp_path / "disk", isolation=isolation, progress=False)
    cols = ["model_id", "score", "status"]
    assert remote.computed == local.computed == len(Zoo(micro_zoo))
    assert remote.predictions[cols].equals(local.predictions[cols])
    assert (remote.predictions["status"] == "ok").all()
