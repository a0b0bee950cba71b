"""Data loaders: shapes, splits, train-only vocabulary, checksums, cache behaviour, errors."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from model_zoo.data import TASKS, _fetch, cache_file, fashion_mnist, fsdd, load_task, newsgroups, task_info

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
    import gzip

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


def test_cache_hit_returns_identical_arrays(tasks: dict, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = cache_file("fsdd", cache)
    stamp = path.stat().st_mtime_ns

    def no_prepare(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(fsdd, "_prepare", no_prepare)
    again = load_task("fsdd", mirror=MIRROR, cache_dir=cache)
    for field in ("x_train", "y_train", "x_test", "y_test", "x_shift", "y_shift"):
        np.testing.assert_array_equal(getattr(again, field), getattr(tasks["fsdd"], field))
    assert path.stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("damage", "reason"),
    [("flip_byte", "Bad CRC-32"), ("truncate", "not an npz")],
)
def test_corrupted_cache_is_rebuilt(tasks: dict, cache: Path, tmp_path: Path, damage: str, reason: str) -> None:
    path = cache_file("fsdd", tmp_path)
    path.parent.mkdir(parents=True)
    shutil.copyfile(cache_file("fsdd", cache), path)
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
