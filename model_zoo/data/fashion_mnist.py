"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 28x28 grayscale clothing images, 10 classes.

x: float32 ``[N, 1, 28, 28]`` in [0, 1] (pixel / 255); the official 60,000 / 10,000 split;
no shift set. Read with torchvision's ``FashionMNIST`` dataset class from one of three sources:

- the mirror (``$GAPBENCH_DATA_MIRROR/fashion-mnist/*.gz``, always first when set): each file is
  checked against its sha256, decompressed into a private staging root laid out as torchvision
  expects (``<root>/FashionMNIST/raw/<name>``), read by ``FashionMNIST(root, download=False)``,
  and the staging root is deleted. The mirror's ``.gz`` files were re-gzipped by Debian, so
  their MD5s differ from the ones torchvision checks on a download; torchvision checks no MD5
  of decompressed files, and we check the sha256 of each decompressed payload ourselves.
- source ``"url"`` (default without a mirror): ``FashionMNIST(<cache>/raw/torchvision,
  download=True)`` downloads Zalando's files and checks their published MD5s.
- source ``"hub"``: ``zalando-datasets/fashion_mnist`` on the Hugging Face Hub (PNG images in
  parquet), loaded with ``datasets``.

Whatever the source, the prepared uint8 arrays must match ``ARRAY_SHA256`` (computed from the
original idx files), so every source gives the same bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from model_zoo import paths
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
# (file, sha256 of the mirror copy, md5 published by Zalando for the official file (torchvision
#  checks the same MD5s on a download), sha256 of the decompressed idx payload, identical for both).
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


# The prepared uint8 arrays (``_fetch.array_sha256``), identical from every source.
ARRAY_SHA256 = {
    "x_train": "e5e8ebc8e5c346c5d7293be2c5744d5a802ee14323e467a93e0d4ffdafb0573e",
    "y_train": "dc283a3842fc55f248e4e9fbedf2c779bdb0effa0f61970327e091d2592f13b6",
    "x_test": "37186a354edac0481bcda752504636323916e2e5fc83e28cd6528d503f957e1b",
    "y_test": "ec235c26f84209aa73974ced5af2828fdd113ecbba80e905fc85a0fad010e569",
}
HUB_REPO = "zalando-datasets/fashion_mnist"
# None = the repository's main branch: no commit could be checked from here (no internet); the
# array digests above make any revision that changes a pixel or a label fail loudly.
HUB_REVISION: str | None = None


def _prepare(
    mirror: str | os.PathLike[str] | None, cache_dir: Path | None, source: str | None
) -> dict[str, np.ndarray]:
    root = _fetch.resolve_mirror(mirror)
    if root is not None:
        arrays, origin = _from_mirror(mirror, cache_dir), str(root / "fashion-mnist")
    elif _fetch.resolve_source(source) == "hub":
        hub = _fetch.hub_dataset(HUB_REPO, revision=HUB_REVISION, cache_dir=cache_dir)
        arrays, origin = arrays_from_hub(hub), f"the Hugging Face Hub ({HUB_REPO})"
    else:
        arrays, origin = _from_official(cache_dir), _URL
    _fetch.verify_arrays("Fashion-MNIST", origin, arrays, ARRAY_SHA256)
    return arrays


def _from_mirror(mirror: str | os.PathLike[str] | None, cache_dir: Path | None) -> dict[str, np.ndarray]:
    from torchvision.datasets.utils import extract_archive  # torchvision: imported only when preparing

    sources = {key: _fetch.fetch(raw, mirror=mirror, cache_dir=cache_dir) for key, raw in RAW_FILES.items()}
    staging_parent = paths.raw_download_dir(cache_dir)
    staging_parent.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix=".fashion_mnist-staging.", dir=staging_parent))
    try:
        raw_folder = root / "FashionMNIST" / "raw"
        raw_folder.mkdir(parents=True)
        for key, path in sources.items():
            extract_archive(str(path), str(raw_folder))
            _verify_payload(key, raw_folder, path)
        return _read_torchvision(root, download=False)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _from_official(cache_dir: Path | None) -> dict[str, np.ndarray]:
    root = paths.raw_download_dir(cache_dir) / "torchvision"
    arrays = _read_torchvision(root, download=True)
    raw_folder = root / "FashionMNIST" / "raw"
    for key, raw in RAW_FILES.items():
        _verify_payload(key, raw_folder, raw_folder / raw.name)
    return arrays


def _verify_payload(key: str, raw_folder: Path, source: Path) -> None:
    """Check the sha256 of a decompressed idx file (what torchvision parses) against ``_FILES``."""
    name = RAW_FILES[key].name.removesuffix(".gz")
    digest = _fetch.file_digest(raw_folder / name)
    _fetch.verify_content(name, source, digest, _FILES[key][3])


def _read_torchvision(root: Path, *, download: bool) -> dict[str, np.ndarray]:
    """Both splits through ``torchvision.datasets.FashionMNIST`` (uint8 images and labels)."""
    from torchvision.datasets import FashionMNIST

    arrays = {}
    for train, split in ((True, "train"), (False, "test")):
        try:
            dataset = FashionMNIST(str(root), train=train, download=download)
        except RuntimeError as exc:
            url = FashionMNIST.mirrors[0] if FashionMNIST.mirrors else "<no URL>"
            raise ConnectionError(
                f"could not download Fashion-MNIST from {url} into {root / 'FashionMNIST' / 'raw'} with torchvision "
                f"({_fetch.one_line(exc)}). Without internet access, set ${_fetch.MIRROR_ENV} to a local mirror "
                "of the data (the project's is ../shared/data)."
            ) from exc
        arrays[f"x_{split}"] = dataset.data.numpy().astype(np.uint8, copy=True)
        arrays[f"y_{split}"] = dataset.targets.numpy().astype(np.uint8)
    return arrays


def arrays_from_hub(dataset_dict: Any) -> dict[str, np.ndarray]:
    """The prepared uint8 arrays from the Hub's DatasetDict (``image``: 28x28 grayscale, ``label``)."""
    arrays = {}
    for split in ("train", "test"):
        if split not in dataset_dict:
            raise ValueError(f"{HUB_REPO}: no {split!r} split (found {sorted(dataset_dict)})")
        part = dataset_dict[split]
        missing = {"image", "label"} - set(part.column_names)
        if missing:
            raise ValueError(f"{HUB_REPO}: split {split!r} lacks columns {sorted(missing)} (has {part.column_names})")
        arrays[f"x_{split}"] = np.stack([np.asarray(image, dtype=np.uint8) for image in part["image"]])
        arrays[f"y_{split}"] = np.asarray(part["label"], dtype=np.uint8)
    return arrays


def _validate(arrays: dict[str, np.ndarray]) -> None:
    require_arrays(arrays, _ARRAYS)


def load(
    *, mirror: str | os.PathLike[str] | None = None, cache_dir: Path | None = None, source: str | None = None
) -> TaskData:
    """Load Fashion-MNIST (prepared arrays are cached as uint8 and scaled to [0, 1] here)."""
    arrays = load_or_prepare(
        NAME, PREP_VERSION, lambda: _prepare(mirror, cache_dir, source), _validate, cache_dir, class_names=CLASS_NAMES
    )

    def images(x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32) / np.float32(255.0))[:, None, :, :]

    return TaskData(
        info=INFO,
        x_train=images(arrays["x_train"]),
        y_train=arrays["y_train"].astype(np.int64),
        x_test=images(arrays["x_test"]),
        y_test=arrays["y_test"].astype(np.int64),
    )
