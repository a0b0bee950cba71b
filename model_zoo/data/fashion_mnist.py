"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 28x28 grayscale clothing images, 10 classes.

x: float32 ``[N, 1, 28, 28]`` in [0, 1] (pixel / 255); the official 60,000 / 10,000 split;
no shift set. Read from the four original idx ``.gz`` files with numpy.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np

from model_zoo.data import _fetch
from model_zoo.data.base import TaskData, TaskInfo, load_or_prepare, require_arrays

NAME = "fashion_mnist"
N_TRAIN, N_TEST = 60_000, 10_000
PREP_VERSION = 1
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
INFO = TaskInfo(
    name=NAME,
    modality="vision",
    n_classes=10,
    input_shape=(1, 28, 28),
    input_dtype="float32",
    has_shift=False,
    extras={"class_names": list(CLASS_NAMES), "n_train": N_TRAIN, "n_test": N_TEST},
)

_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# (file, sha256 of the mirror copy, md5 published by Zalando for the official file,
#  sha256 of the decompressed idx payload, identical for both).
# The mirror copies (from Debian's dataset-fashion-mnist) were re-gzipped, hence two file hashes.
_FILES = {
    "train_images": (
        "train-images-idx3-ubyte.gz",
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    "train_labels": (
        "train-labels-idx1-ubyte.gz",
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
        "25c81989df183df01b3e8a0aad5dffbe",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    "test_images": (
        "t10k-images-idx3-ubyte.gz",
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
        "bef4ecab320f06d8554ea6380940ec79",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    "test_labels": (
        "t10k-labels-idx1-ubyte.gz",
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        "bb300cfdad3c16e7a12a480ee83cd310",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
}
RAW_FILES = {
    key: _fetch.RawFile(
        folder="fashion-mnist",
        name=name,
        mirror_sha256=sha,
        url=_URL + name,
        download_name=name,
        official_checksum=("md5", md5),
    )
    for key, (name, sha, md5, _) in _FILES.items()
}

_ARRAYS = {
    "x_train": ("uint8", (N_TRAIN, 28, 28)),
    "y_train": ("uint8", (N_TRAIN,)),
    "x_test": ("uint8", (N_TEST, 28, 28)),
    "y_test": ("uint8", (N_TEST,)),
}


def read_idx(data: bytes, source: Path) -> np.ndarray:
    """Parse an idx file (LeCun's MNIST format) holding unsigned bytes.

    Layout: two zero bytes, a type code (0x08 = uint8), the number of dimensions d, d
    big-endian uint32 sizes, then the values in C order.
    """
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{source} is not a uint8 idx file (header {data[:4]!r})")
    ndim = data[3]
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(shape)):
        raise ValueError(f"{source}: header says shape {shape} but holds {len(data) - offset} values")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)


def _prepare(mirror: str | os.PathLike[str] | None, cache_dir: Path | None) -> dict[str, np.ndarray]:
    arrays = {}
    for key, raw in RAW_FILES.items():
        path = _fetch.fetch(raw, mirror=mirror, cache_dir=cache_dir)
        with gzip.open(path, "rb") as handle:
            data = handle.read()
        _fetch.verify_content(raw.name, path, hashlib.sha256(data).hexdigest(), _FILES[key][3])
        split, kind = key.split("_")
        arrays[("x_" if kind == "images" else "y_") + split] = read_idx(data, path).copy()
    return arrays


def _validate(arrays: dict[str, np.ndarray]) -> None:
    require_arrays(arrays, _ARRAYS)


def load(*, mirror: str | os.PathLike[str] | None = None, cache_dir: Path | None = None) -> TaskData:
    """Load Fashion-MNIST (prepared arrays are cached as uint8 and scaled to [0, 1] here)."""
    arrays = load_or_prepare(NAME, PREP_VERSION, lambda: _prepare(mirror, cache_dir), _validate, cache_dir)

    def images(x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) / np.float32(255.0))[:, None, :, :]

    return TaskData(
        info=INFO,
        x_train=images(arrays["x_train"]),
        y_train=arrays["y_train"].astype(np.int64),
        x_test=images(arrays["x_test"]),
        y_test=arrays["y_test"].astype(np.int64),
    )
