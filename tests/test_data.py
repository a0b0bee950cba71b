"""Data loaders: shapes, splits, train-only vocabulary, checksums, cache behaviour, errors, sources
(mirror, torchvision's download, the Hugging Face Hub) and the prepared-data format (datasets/Arrow)."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from model_zoo.data import (
    TASKS,
    _fetch,
    base,
    cache_file,
    fashion_mnist,
    fsdd,
    load_task,
    newsgroups,
    prepared,
    prepared_dir,
    task_info,
)

MIRROR = Path(os.environ.get("GAPBENCH_DATA_MIRROR") or Path(__file__).parents[1].parent / "shared" / "data")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gapbench-cache")


@pytest.fixture(scope="module")
def tasks(cache: Path) -> dict:
    """Each task prepared once for the whole module, from the mirror into a fresh cache."""
    return {name: load_task(name, mirror=MIRROR, cache_dir=cache) for name in TASKS}


@pytest.mark.parametrize("name", TASKS)
def test_arrays_match_task_info(tasks: dict, name: str) -> None:
    data = tasks[name]
    info = task_info(name)
    assert data.info == info
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test), (data.x_shift, data.y_shift)):
        if x is None:
            assert y is None and not info.has_shift
            continue
        assert x.shape[1:] == info.input_shape and x.dtype == np.dtype(info.input_dtype)
        assert y.dtype == np.int64 and y.shape == (x.shape[0],)
        assert set(np.unique(y)) == set(range(info.n_classes))
    assert info.has_shift == (data.x_shift is not None)
    assert info.extras["n_train"] == len(data.y_train) and info.extras["n_test"] == len(data.y_test)
    assert info.extras.get("n_shift") == (None if data.y_shift is None else len(data.y_shift))
    assert len(info.extras["class_names"]) == info.n_classes


def test_fashion_mnist(tasks: dict) -> None:
    data = tasks["fashion_mnist"]
    assert data.x_train.shape == (60_000, 1, 28, 28) and data.x_test.shape == (10_000, 1, 28, 28)
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert np.bincount(data.y_train).tolist() == [6000] * 10
    assert np.bincount(data.y_test).tolist() == [1000] * 10
    # Independent reference: the idx payload read with the standard library, pixel / 255.
    with gzip.open(MIRROR / "fashion-mnist" / "t10k-images-idx3-ubyte.gz") as handle:
        raw = handle.read()
    last = np.frombuffer(raw[-784:], dtype=np.uint8).reshape(28, 28) / 255.0
    np.testing.assert_allclose(data.x_test[-1, 0], last, rtol=1e-6)


def _reference_clip(name: str) -> np.ndarray:
    with tarfile.open(MIRROR / "fsdd" / "fsdd-recordings.tar.gz") as archive:
        member = archive.extractfile(f"recordings/{name}")
        assert member is not None
        rate, samples = wavfile.read(io.BytesIO(member.read()))
    assert rate == 8000
    clip = np.zeros(8000)
    clip[: min(8000, len(samples))] = samples[:8000] / 32768.0
    return clip / np.abs(clip).max()


def test_fsdd_splits(tasks: dict) -> None:
    data = tasks["fsdd"]
    sizes = (len(data.x_train), len(data.x_test), len(data.x_shift))
    assert sizes == (2250, 250, 500) and sum(sizes) == 3000
    assert np.bincount(data.y_train).tolist() == [225] * 10
    assert np.bincount(data.y_test).tolist() == [25] * 10
    assert np.bincount(data.y_shift).tolist() == [50] * 10
    for x in (data.x_train, data.x_test, data.x_shift):
        np.testing.assert_allclose(np.abs(x).max(axis=(1, 2)), 1.0)
    assert data.info.extras["sample_rate"] == 8000
    # Order (digit, speaker, index): first clip of each split; the shift set is theo's.
    np.testing.assert_allclose(data.x_train[0, 0], _reference_clip("0_george_5.wav"), atol=1e-6)
    np.testing.assert_allclose(data.x_test[0, 0], _reference_clip("0_george_0.wav"), atol=1e-6)
    np.testing.assert_allclose(data.x_shift[0, 0], _reference_clip("0_theo_0.wav"), atol=1e-6)
    np.testing.assert_allclose(data.x_shift[-1, 0], _reference_clip("9_theo_49.wav"), atol=1e-6)


def test_fsdd_waveform_crops_and_pads() -> None:
    long = np.arange(1, 9001, dtype=np.int16)
    out = fsdd.waveform(long)
    assert out.shape == (1, 8000) and out[0, -1] == 1.0 and out[0, 0] == np.float32(1 / 8000)
    short = np.array([0, -16384, 8192], dtype=np.int16)
    np.testing.assert_array_equal(fsdd.waveform(short)[0, :4], [0.0, -1.0, 0.5, 0.0])
    assert not fsdd.waveform(np.zeros(10, dtype=np.int16)).any()


def test_newsgroups_arrays_and_idf(tasks: dict) -> None:
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfTransformer

    data = tasks["newsgroups"]
    extras = data.info.extras
    assert data.x_train.shape == (11_314, 512) and data.x_test.shape == (7_532, 512)
    assert data.info.n_classes == 20 and extras["class_names"] == sorted(extras["class_names"])
    assert extras["vocab_size"] == 5002 == len(extras["idf"]) == len(extras["vocab"]) + 2
    assert data.x_train.min() == 0 and data.x_train.max() == 5001 and data.x_test.max() <= 5001
    # Padding only at the end of a row.
    nonzero = data.x_train != 0
    assert (np.sort(nonzero, axis=1)[:, ::-1] == nonzero).all()
    # Reference: scikit-learn's smooth idf on the id counts of x_train.
    rows = np.repeat(np.arange(len(data.x_train)), 512)
    counts = sparse.csr_matrix((np.ones(rows.size), (rows, data.x_train.ravel())), shape=(len(data.x_train), 5002))
    reference = TfidfTransformer(smooth_idf=True).fit(counts[:, 1:]).idf_
    assert extras["idf"][0] == 0.0
    np.testing.assert_allclose(extras["idf"][1:], reference, rtol=1e-12)


def test_newsgroups_vocabulary_is_train_only(tasks: dict) -> None:
    data = tasks["newsgroups"]
    vocab = data.info.extras["vocab"]
    docs = newsgroups.read_documents(MIRROR / "20newsgroups" / "20news-bydate.tar.gz")
    train = [newsgroups.tokenize(text) for _, text in docs["train"]]
    test = [newsgroups.tokenize(text) for _, text in docs["test"]]
    train_tokens = {token for tokens in train for token in tokens}
    test_only = {token for tokens in test for token in tokens} - train_tokens
    assert test_only and not test_only & set(vocab)
    # Counting test documents too would have changed the vocabulary.
    assert newsgroups.build_vocabulary(train + test) != vocab
    assert newsgroups.build_vocabulary(train) == vocab
    # A test post holding a test-only word encodes that word as OOV (id 1).
    i, position, word = next(
        (i, p, t) for i, tokens in enumerate(test) for p, t in enumerate(tokens[:512]) if t in test_only
    )
    assert data.x_test[i, position] == 1, word
    index = {token: k + 2 for k, token in enumerate(vocab)}
    expected = [index.get(token, 1) for token in test[i][:512]]
    assert data.x_test[i, : len(expected)].tolist() == expected


def test_missing_mirror_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        load_task("fashion_mnist", mirror=tmp_path / "mirror", cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert str(tmp_path / "mirror" / "fashion-mnist" / "train-images-idx3-ubyte.gz") in message
    assert "GAPBENCH_DATA_MIRROR" in message


def test_wrong_checksum_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "mirror" / "fashion-mnist"
    shutil.copytree(MIRROR / "fashion-mnist", folder)
    bad = folder / "t10k-labels-idx1-ubyte.gz"
    bad.chmod(0o644)
    payload = bytearray(bad.read_bytes())
    payload[100] ^= 0xFF
    bad.write_bytes(bytes(payload))
    with pytest.raises(_fetch.ChecksumError) as err:
        load_task("fashion_mnist", mirror=tmp_path / "mirror", cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert str(bad) in message
    assert fashion_mnist.RAW_FILES["test_labels"].mirror_sha256 in message
    assert _fetch.file_digest(bad) in message
    assert not cache_file("fashion_mnist", tmp_path / "cache").exists()
    assert not prepared_dir("fashion_mnist", tmp_path / "cache").exists()


def test_cache_hit_returns_identical_arrays(tasks: dict, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = prepared_dir("fsdd", cache) / prepared.META_FILE
    stamp = path.stat().st_mtime_ns

    def no_prepare(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(fsdd, "_prepare", no_prepare)
    again = load_task("fsdd", mirror=MIRROR, cache_dir=cache)
    for field in ("x_train", "y_train", "x_test", "y_test", "x_shift", "y_shift"):
        np.testing.assert_array_equal(getattr(again, field), getattr(tasks["fsdd"], field))
        assert getattr(again, field).flags.writeable  # torch must never wrap read-only (memory-mapped) memory
    assert path.stat().st_mtime_ns == stamp
    assert not cache_file("fsdd", cache).exists()  # with datasets installed, no npz is written


@pytest.fixture()
def no_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import datasets`` fail, as on a GPU box that has only torch, numpy and pyarrow."""
    monkeypatch.setitem(sys.modules, "datasets", None)
    assert not prepared.can_write()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [("flip_byte", "Bad CRC-32"), ("truncate", "not an npz")],
)
def test_corrupted_npz_cache_is_rebuilt(
    tasks: dict, cache: Path, tmp_path: Path, no_datasets: None, damage: str, reason: str
) -> None:
    path = cache_file("fsdd", tmp_path)
    # The npz a process without datasets writes (base._write_cache), from the module's prepared arrays.
    arrays = prepared.read(prepared_dir("fsdd", cache), task="fsdd", prep_version=fsdd.PREP_VERSION)
    base._write_cache(path, "fsdd", fsdd.PREP_VERSION, arrays)
    np.testing.assert_array_equal(load_task("fsdd", mirror=MIRROR, cache_dir=tmp_path).x_test, tasks["fsdd"].x_test)
    payload = bytearray(path.read_bytes())
    if damage == "flip_byte":
        payload[len(payload) // 2] ^= 0xFF
    else:
        payload = payload[: len(payload) // 3]
    path.write_bytes(bytes(payload))
    with pytest.warns(RuntimeWarning, match=re.escape(f"rebuilding corrupted data cache {path}: {reason}")):
        rebuilt = load_task("fsdd", mirror=MIRROR, cache_dir=tmp_path)
    np.testing.assert_array_equal(rebuilt.x_train, tasks["fsdd"].x_train)
    np.testing.assert_array_equal(rebuilt.y_shift, tasks["fsdd"].y_shift)
    load_task("fsdd", mirror=MIRROR, cache_dir=tmp_path)  # now a clean hit: no warning


def _copy_prepared(cache: Path, tmp_path: Path, task: str) -> Path:
    folder = prepared_dir(task, tmp_path)
    shutil.copytree(prepared_dir(task, cache), folder)
    return folder


def _flip_in_data(arrow: Path) -> None:
    """Flip one byte in the middle of an Arrow file (inside the data buffers, past the schema)."""
    payload = bytearray(arrow.read_bytes())
    payload[len(payload) // 2] ^= 0x01
    arrow.write_bytes(bytes(payload))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("flip_byte", "array 'x_train' does not match its recorded sha256"),
        ("truncate", "(OSError|ArrowInvalid)"),
        ("no_meta", "unreadable"),
        ("other_version", "metadata"),
    ],
)
def test_corrupted_prepared_folder_is_rebuilt(
    tasks: dict, cache: Path, tmp_path: Path, damage: str, reason: str
) -> None:
    folder = _copy_prepared(cache, tmp_path, "fsdd")
    arrow = folder / "train" / "data-00000-of-00001.arrow"
    meta = folder / prepared.META_FILE
    if damage == "flip_byte":
        _flip_in_data(arrow)
    elif damage == "truncate":
        arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 3])
    elif damage == "no_meta":
        meta.unlink()
    else:
        meta.write_text(json.dumps({**json.loads(meta.read_text()), "prep_version": 0}))
    with pytest.warns(RuntimeWarning, match=f"rebuilding corrupted data cache {re.escape(str(folder))}.*: {reason}"):
        rebuilt = load_task("fsdd", mirror=MIRROR, cache_dir=tmp_path)
    np.testing.assert_array_equal(rebuilt.x_train, tasks["fsdd"].x_train)
    np.testing.assert_array_equal(rebuilt.y_shift, tasks["fsdd"].y_shift)
    assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folders left
    load_task("fsdd", mirror=MIRROR, cache_dir=tmp_path)  # now a clean hit: no warning


def test_official_download_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tasks: dict) -> None:
    """The download branch, with a file:// URL standing in for GitHub (no network in tests)."""
    monkeypatch.delenv("GAPBENCH_DATA_MIRROR", raising=False)
    url = (MIRROR / "fsdd" / "fsdd-recordings.tar.gz").resolve().as_uri()
    monkeypatch.setattr(fsdd, "RAW", dataclasses.replace(fsdd.RAW, url=url))
    data = load_task("fsdd", cache_dir=tmp_path)
    assert (tmp_path / "raw" / "fsdd" / fsdd.RAW.download_name).is_file()
    np.testing.assert_array_equal(data.x_test, tasks["fsdd"].x_test)


def test_download_of_wrong_content_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAPBENCH_DATA_MIRROR", raising=False)
    other = (MIRROR / "20newsgroups" / "20news-bydate.tar.gz").resolve().as_uri()
    monkeypatch.setattr(fsdd, "RAW", dataclasses.replace(fsdd.RAW, url=other))
    with pytest.raises(ValueError, match="expected 3000 recordings"):
        load_task("fsdd", cache_dir=tmp_path)


def test_failed_download_names_url_and_mirror_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAPBENCH_DATA_MIRROR", raising=False)
    missing = (tmp_path / "nowhere.tar.gz").as_uri()
    monkeypatch.setattr(fsdd, "RAW", dataclasses.replace(fsdd.RAW, url=missing))
    with pytest.raises(ConnectionError, match="GAPBENCH_DATA_MIRROR") as err:
        load_task("fsdd", cache_dir=tmp_path / "cache")
    assert missing in str(err.value)
    assert not list((tmp_path / "cache" / "raw" / "fsdd").iterdir())  # no partial file left


@pytest.mark.parametrize(("typo", "suggestion"), [("fashion-mnist", "fashion_mnist"), ("newsgroup", "newsgroups")])
def test_unknown_task_suggests_the_right_one(typo: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match=f"did you mean '{suggestion}'"):
        load_task(typo)
    with pytest.raises(ValueError, match=f"did you mean '{suggestion}'"):
        task_info(typo)


# --------------------------------------------------------------------------------------- arrays as before

# sha256 of every TaskData array (dtype, shape, C-order bytes) as prepared before the loaders moved to
# torchvision and the datasets format (the hand-written idx parser and the npz cache): the zoo's
# models were trained on exactly these arrays.
BEFORE = {
    "fashion_mnist": {
        "x_train": ("<f4", (60000, 1, 28, 28), "c8e7985e4e6a3382c3c25c81a43502a695894fef5d797f4c58a637801efb1612"),
        "y_train": ("<i8", (60000,), "e3245b63f7c40d1c8b652835f19744d970c1613b40ddac6bcfc87b9c46e16a0b"),
        "x_test": ("<f4", (10000, 1, 28, 28), "0c0f08b9d95e81a9c662a7e200cbb82a22e7669e3a79c4e861585d1dbf736efd"),
        "y_test": ("<i8", (10000,), "d51d859896c55775b9e9e219b77ff03bcec1b6ac322f313544dc3f9e7bc94fae"),
    },
    "fsdd": {
        "x_train": ("<f4", (2250, 1, 8000), "6a011fb404e5da7b9b435c65cfd4c47f9dd948f23a2df90c32ff4684cd03d640"),
        "y_train": ("<i8", (2250,), "68b0c9df8567d773d1c2cf64f87071d526801ddb2b25218a938fcbb588b764ce"),
        "x_test": ("<f4", (250, 1, 8000), "6901ee1bedef7a92f3425ffd4fd6f4fe09cb868d8fe0304d221e6251c0bcfc85"),
        "y_test": ("<i8", (250,), "7ab00faf23c486e0bd85c15c2bb08b83939c355d64c82b3bb0c2443676786265"),
        "x_shift": ("<f4", (500, 1, 8000), "4ea944c6e12cb223f4859780b10b85515a9e421d1ecfee1b4d5864392cfcb0bb"),
        "y_shift": ("<i8", (500,), "ba00b684429f2175128ed64579f6d29618e7ac1b7c7f8ce8ce1189b38908a239"),
    },
    "newsgroups": {
        "x_train": ("<i8", (11314, 512), "eec71c22791dcf3527656fe0963ff403e163467c902c2ce54fc13c4db0533982"),
        "y_train": ("<i8", (11314,), "856ff7ab1d40e9ddf545dd98e3c59d78dfd3933e4250eb605e731815bde6ef8f"),
        "x_test": ("<i8", (7532, 512), "60312e737499569c63c15c858c20138f32de2da5810d8ce7564b788ee61e4b38"),
        "y_test": ("<i8", (7532,), "a36aab35c4b9398a43e8d626388fe19f78c7da90bd085a192ff7e5d191b601e4"),
    },
}
BEFORE_IDF = "6584dc503e6b193e25831d94f49afaeb98ab711947b3a65ff5a5810a17c981df"
BEFORE_VOCAB = "a3e051f53468c8a9e76b042f0ee35b9fdf8ffe95cb9d960e7a922660890fa227"  # sha256 of "\n".join(vocab)


def _digests(data: object) -> dict[str, tuple[str, tuple[int, ...], str]]:
    out = {}
    for field in ("x_train", "y_train", "x_test", "y_test", "x_shift", "y_shift"):
        a = getattr(data, field)
        if a is not None:
            out[field] = (a.dtype.str, a.shape, hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest())
    return out


@pytest.mark.parametrize("name", TASKS)
def test_arrays_are_identical_to_those_the_zoo_was_trained_on(tasks: dict, name: str) -> None:
    assert _digests(tasks[name]) == BEFORE[name]
    if name == "newsgroups":
        extras = tasks[name].info.extras
        assert hashlib.sha256(np.asarray(extras["idf"]).tobytes()).hexdigest() == BEFORE_IDF
        assert hashlib.sha256("\n".join(extras["vocab"]).encode()).hexdigest() == BEFORE_VOCAB


# --------------------------------------------------------------------------------------- the datasets format


@pytest.mark.parametrize("name", TASKS)
def test_prepared_folder_is_a_datasets_dataset_dict(tasks: dict, cache: Path, name: str) -> None:
    import datasets

    data = tasks[name]
    dd = datasets.load_from_disk(str(prepared_dir(name, cache)))
    splits = ["train", "test"] + (["shift"] if data.info.has_shift else [])
    assert list(dd) == splits
    for split in splits:
        part = dd[split]
        y = getattr(data, f"y_{split}")
        assert part.num_rows == len(y)
        assert part.features["y"].names == data.info.extras["class_names"]
        rows = part.with_format("numpy")[:7]  # datasets' numpy format widens integers to int64
        np.testing.assert_array_equal(rows["y"], y[:7])
        x = getattr(data, f"x_{split}")[:7]
        if name == "fashion_mnist":  # stored as the original uint8 pixels; load_task scales them
            assert part.features["x"] == datasets.Array2D(shape=(28, 28), dtype="uint8")
            np.testing.assert_array_equal(rows["x"].astype(np.float32) / np.float32(255.0), x[:, 0])
        else:
            np.testing.assert_array_equal(rows["x"], x)
    if name == "newsgroups":
        extras = datasets.load_from_disk(str(prepared_dir(name, cache) / prepared.EXTRAS))[0]
        assert extras["vocab"] == data.info.extras["vocab"] and extras["idf"] == data.info.extras["idf"]


def test_fingerprints_are_content_hashes(cache: Path, tmp_path: Path) -> None:
    """Two independent preparations give the same ``datasets`` fingerprints; other arrays, other ones."""
    import datasets

    load_task("fsdd", mirror=MIRROR, cache_dir=tmp_path)
    ours, theirs = (datasets.load_from_disk(str(prepared_dir("fsdd", c))) for c in (cache, tmp_path))
    prints = {split: ours[split]._fingerprint for split in ours}
    assert prints == {split: theirs[split]._fingerprint for split in theirs}
    assert len(set(prints.values())) == 3


def test_reads_with_pyarrow_alone(tasks: dict, cache: Path, tmp_path: Path, no_datasets: None) -> None:
    _copy_prepared(cache, tmp_path, "newsgroups")
    data = load_task("newsgroups", mirror=MIRROR, cache_dir=tmp_path)
    assert _digests(data) == BEFORE["newsgroups"]
    assert data.info.extras["vocab"] == tasks["newsgroups"].info.extras["vocab"]
    assert not cache_file("newsgroups", tmp_path).exists()


def test_npz_fallback_then_conversion(tasks: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without datasets the npz fallback is written; with it, the npz becomes a DatasetDict without re-preparing."""
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "datasets", None)
        load_task("fsdd", mirror=MIRROR, cache_dir=tmp_path)
    assert cache_file("fsdd", tmp_path).is_file() and not prepared_dir("fsdd", tmp_path).exists()

    def no_prepare(*args: object, **kwargs: object) -> None:
        raise AssertionError("the npz cache was not used")

    monkeypatch.setattr(fsdd, "_prepare", no_prepare)
    converted = load_task("fsdd", mirror=MIRROR, cache_dir=tmp_path)
    assert (prepared_dir("fsdd", tmp_path) / prepared.META_FILE).is_file()
    assert _digests(converted) == BEFORE["fsdd"]
    assert _digests(load_task("fsdd", mirror=MIRROR, cache_dir=tmp_path)) == BEFORE["fsdd"]


def test_model_zoo_trains_without_datasets(cache: Path) -> None:
    """Where ``datasets`` cannot be imported, model_zoo imports (pulling in neither torchvision nor timm),
    reads the prepared folder with pyarrow and trains."""
    script = f"""
import sys
sys.modules["datasets"] = None
import model_zoo.build, model_zoo.spec, model_zoo.trainer, model_zoo.zoo, model_zoo.architectures
from model_zoo.axes import TrainConfig
from model_zoo.data import load_task
from model_zoo.trainer import train_model
print("imported", sorted(m for m in ("torchvision", "timm") if m in sys.modules))
data = load_task("fashion_mnist", mirror={str(MIRROR)!r}, cache_dir={str(cache)!r})
cfg = TrainConfig(task="fashion_mnist", seed=0, architecture="mlp", width=8, depth=1, train_size=20, batch_size=10,
                  max_steps=4, window_steps=2)
result = train_model(cfg, data.info, data.x_train[:20], data.y_train[:20])
print("steps", result.total_steps)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["imported []", "steps 6"]


# --------------------------------------------------------------------------------------- torchvision


def test_our_fashion_mnist_checksums_are_torchvisions() -> None:
    from torchvision.datasets import FashionMNIST

    assert FashionMNIST.mirrors == [fashion_mnist._URL]
    ours = fashion_mnist.RAW_FILES.values()
    assert dict(FashionMNIST.resources) == {raw.name: raw.official_checksum[1] for raw in ours}
    assert all(raw.official_checksum[0] == "md5" for raw in ours)


def test_mirror_staging_is_removed(tmp_path: Path) -> None:
    load_task("fashion_mnist", mirror=MIRROR, cache_dir=tmp_path)
    assert list((tmp_path / "raw").iterdir()) == []


@pytest.fixture()
def official_server(monkeypatch: pytest.MonkeyPatch) -> str:
    """A local HTTP server standing in for Zalando's: it serves the mirror's four files."""
    from torchvision.datasets import FashionMNIST

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    folder = MIRROR / "fashion-mnist"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    monkeypatch.setattr(FashionMNIST, "mirrors", [url])
    monkeypatch.delenv("GAPBENCH_DATA_MIRROR", raising=False)
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    yield url
    server.shutdown()
    thread.join()


def test_official_download_through_torchvision(
    official_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from torchvision.datasets import FashionMNIST

    # The mirror's files were re-gzipped by Debian: give torchvision their MD5s (computed here).
    md5 = {name: hashlib.md5((MIRROR / "fashion-mnist" / name).read_bytes()).hexdigest() for name, _ in
           FashionMNIST.resources}
    monkeypatch.setattr(FashionMNIST, "resources", list(md5.items()))
    data = load_task("fashion_mnist", cache_dir=tmp_path)
    assert _digests(data) == BEFORE["fashion_mnist"]
    raw = tmp_path / "raw" / "torchvision" / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted([*md5, *(name[:-3] for name in md5)])


def test_torchvision_md5_check_rejects_other_bytes(official_server: str, tmp_path: Path) -> None:
    """Served under the official MD5s, the mirror's re-gzipped files fail torchvision's check: one line."""
    with pytest.raises(ConnectionError) as err:
        load_task("fashion_mnist", cache_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message and official_server in message and "GAPBENCH_DATA_MIRROR" in message
    assert "File not found or corrupted" in message
    assert not prepared_dir("fashion_mnist", tmp_path).exists()


def test_failed_torchvision_download_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from torchvision.datasets import FashionMNIST

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_port}/"
    server.server_close()  # nothing listens there any more
    monkeypatch.setattr(FashionMNIST, "mirrors", [url])
    monkeypatch.delenv("GAPBENCH_DATA_MIRROR", raising=False)
    with pytest.raises(ConnectionError) as err:
        load_task("fashion_mnist", cache_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message and url in message and "GAPBENCH_DATA_MIRROR" in message


# --------------------------------------------------------------------------------------- the Hugging Face Hub


def _mirror_idx(name: str, offset: int) -> np.ndarray:
    with gzip.open(MIRROR / "fashion-mnist" / name) as handle:
        return np.frombuffer(handle.read(), dtype=np.uint8, offset=offset)


def _fake_hub(n: int) -> object:
    """A DatasetDict shaped like zalando-datasets/fashion_mnist (PNG images, ClassLabel), first n rows of each split."""
    import datasets

    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=list(fashion_mnist.CLASS_NAMES))})
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _mirror_idx(f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)[:n]
        labels = _mirror_idx(f"{prefix}-labels-idx1-ubyte.gz", 8)[:n]
        parts[split] = datasets.Dataset.from_dict({"image": list(images), "label": labels.tolist()}, features=features)
    return datasets.DatasetDict(parts)


def test_hub_images_convert_exactly() -> None:
    hub = _fake_hub(40)
    arrays = fashion_mnist.arrays_from_hub(hub)
    images = _mirror_idx("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    np.testing.assert_array_equal(arrays["x_test"], images[:40])
    np.testing.assert_array_equal(arrays["y_train"], _mirror_idx("train-labels-idx1-ubyte.gz", 8)[:40])
    assert arrays["x_train"].dtype == np.uint8 and arrays["y_train"].dtype == np.uint8


def test_hub_source_is_selected_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake(repo: str, **kwargs: object) -> object:
        calls.append(repo)
        return _fake_hub(30)

    monkeypatch.setattr(_fetch, "hub_dataset", fake)
    monkeypatch.delenv("GAPBENCH_DATA_MIRROR", raising=False)
    monkeypatch.setenv("GAPBENCH_DATA_SOURCE", "hub")
    # A copy that differs from the original arrays (here: 30 images instead of 60,000) is refused.
    with pytest.raises(_fetch.ChecksumError, match="Hugging Face Hub.*zalando-datasets/fashion_mnist.*'x_train'"):
        load_task("fashion_mnist", cache_dir=tmp_path)
    assert calls == ["zalando-datasets/fashion_mnist"]
    # The mirror, when set, comes first whatever the source says.
    load_task("fashion_mnist", mirror=MIRROR, cache_dir=tmp_path, source="hub")
    assert calls == ["zalando-datasets/fashion_mnist"]


def test_hub_offline_is_one_line(tmp_path: Path) -> None:
    script = (
        "from model_zoo.data import load_task\n"
        "try:\n"
        f"    load_task('fashion_mnist', cache_dir={str(tmp_path)!r}, source='hub')\n"
        "except ConnectionError as exc:\n"
        "    print(exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GAPBENCH_DATA_MIRROR"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1, out.stdout
    assert "zalando-datasets/fashion_mnist" in lines[0] and "GAPBENCH_DATA_MIRROR" in lines[0]


@pytest.mark.parametrize("name", ["fsdd", "newsgroups"])
def test_tasks_without_a_hub_copy_say_so(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GAPBENCH_DATA_MIRROR", raising=False)
    with pytest.raises(ValueError, match=f"task '{name}' has no copy on the Hugging Face Hub") as err:
        load_task(name, cache_dir=tmp_path, source="hub")
    assert "\n" not in str(err.value)


def test_unknown_source_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown data source 'hbu' \\(from the source argument\\)"):
        load_task("fsdd", mirror=MIRROR, cache_dir=tmp_path, source="hbu")
    monkeypatch.setenv("GAPBENCH_DATA_SOURCE", "zenodo")
    with pytest.raises(ValueError, match="'zenodo' \\(from the \\$GAPBENCH_DATA_SOURCE\\); expected one of url, hub"):
        load_task("fsdd", mirror=MIRROR, cache_dir=tmp_path)


def test_array_digest_covers_dtype_shape_and_bytes() -> None:
    a = np.arange(6, dtype=np.uint8)
    digests = {_fetch.array_sha256(v) for v in (a, a.reshape(2, 3), a.astype(np.int64), a[::-1].copy())}
    assert len(digests) == 4
    assert _fetch.array_sha256(a.reshape(2, 3)[:, :]) == _fetch.array_sha256(np.ascontiguousarray(a.reshape(2, 3)))
