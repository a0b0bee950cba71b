"""The types every task loader returns (TaskInfo, TaskData) and the prepared-array cache."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from model_zoo import paths
from model_zoo.data import prepared


@dataclass(frozen=True)
class TaskInfo:
    """Static description of a task: enough to build a model for it without loading data."""

    name: str
    modality: str  # "vision" | "audio" | "text"
    n_classes: int
    input_shape: tuple[int, ...]  # one example's shape, without the batch dimension
    input_dtype: str  # "float32" or "int64" (token ids)
    has_shift: bool
    extras: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class TaskData:
    """A task's prepared arrays. ``y_*`` are int64 class indices."""

    info: TaskInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_shift: np.ndarray | None = None
    y_shift: np.ndarray | None = None


# --- the prepared-array cache shared by every task loader -----------------------------------
#
# Preferred: a ``datasets`` DatasetDict folder ``<cache>/data/<task>-<prep_version>/`` (see
# model_zoo.data.prepared; written when ``datasets`` is installed, read with pyarrow alone).
# Fallback where ``datasets`` is missing (a GPU box with torch/numpy/pyarrow only): the npz
# file ``<cache>/data/<task>-<prep_version>.npz`` of format 1.

_CACHE_FORMAT = 1
_META_KEY = "__meta__"


def cache_file(task: str, prep_version: int, cache_dir: Path | None = None) -> Path:
    """The npz fallback cache of a task: ``<cache>/data/<task>-<prep_version>.npz``."""
    return paths.prepared_data_dir(cache_dir) / f"{task}-{prep_version}.npz"


def prepared_dir(task: str, prep_version: int, cache_dir: Path | None = None) -> Path:
    """The prepared-data folder of a task (a saved DatasetDict): ``<cache>/data/<task>-<prep_version>/``."""
    return paths.prepared_data_dir(cache_dir) / f"{task}-{prep_version}"


def load_or_prepare(
    task: str,
    prep_version: int,
    prepare: Callable[[], dict[str, np.ndarray]],
    validate: Callable[[dict[str, np.ndarray]], None],
    cache_dir: Path | None = None,
    *,
    class_names: Sequence[str] = (),
) -> dict[str, np.ndarray]:
    """Return a task's prepared arrays from the cache, or ``prepare()`` them and cache them.

    Looks first for the prepared-data folder (``prepared_dir``), then for the npz fallback
    (``cache_file``). A cache that cannot be read (truncated or corrupted files, missing keys,
    wrong metadata, arrays that differ from their recorded sha256 or that ``validate`` rejects
    with ValueError) is reported with a warning naming it and rebuilt. With ``datasets``
    installed the arrays are written as a DatasetDict (an npz cache found instead is converted
    without re-reading the raw files); without it, as npz. ``class_names`` label the ``y``
    column's ClassLabel. Writes are atomic, so concurrent loaders and killed processes never
    leave a half-written cache behind.
    """
    folder = prepared_dir(task, prep_version, cache_dir)
    if folder.is_dir():
        try:
            arrays = prepared.read(folder, task=task, prep_version=prep_version)
            validate(arrays)
            return arrays
        except prepared.PreparedDataError as exc:  # its message names the folder or file
            warnings.warn(f"rebuilding corrupted data cache {exc}", RuntimeWarning, stacklevel=2)
        except ValueError as exc:
            warnings.warn(f"rebuilding corrupted data cache {folder}: {exc}", RuntimeWarning, stacklevel=2)
    writer = prepared.can_write()
    names = list(class_names)

    def save(arrays: dict[str, np.ndarray]) -> None:
        if writer:
            prepared.write(folder, task=task, prep_version=prep_version, arrays=arrays, class_names=names)
        else:
            _write_cache(path, task, prep_version, arrays)

    path = cache_file(task, prep_version, cache_dir)
    if path.is_file():
        try:
            arrays = _read_cache(path, task, prep_version)
            validate(arrays)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(f"rebuilding corrupted data cache {path}: {exc}", RuntimeWarning, stacklevel=2)
        else:
            if writer:
                save(arrays)
            return arrays
    arrays = prepare()
    validate(arrays)
    save(arrays)
    return arrays


def _read_cache(path: Path, task: str, prep_version: int) -> dict[str, np.ndarray]:
    with open(path, "rb") as handle:
        if not zipfile.is_zipfile(handle):
            raise ValueError("not an npz (zip) archive")
        handle.seek(0)
        # Reading every member in full makes zipfile check each member's CRC-32.
        with np.load(handle, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    meta = json.loads(str(arrays.pop(_META_KEY)))
    expected = {"task": task, "prep_version": prep_version, "format": _CACHE_FORMAT}
    if meta != expected:
        raise ValueError(f"metadata {meta} != {expected}")
    return arrays


def _write_cache(path: Path, task: str, prep_version: int, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"task": task, "prep_version": prep_version, "format": _CACHE_FORMAT}, sort_keys=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz.part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, **arrays, **{_META_KEY: np.array(meta)})
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def require_arrays(arrays: dict[str, np.ndarray], spec: dict[str, tuple[str, tuple[int | None, ...]]]) -> None:
    """Check that ``arrays`` has exactly the keys of ``spec`` with those dtypes and shapes.

    ``spec`` maps a key to ``(dtype, shape)``; dtype ``"str"`` matches any unicode string dtype
    and ``None`` in a shape matches any length. Raises ValueError naming the first offending array.
    """
    if set(arrays) != set(spec):
        raise ValueError(f"arrays {sorted(arrays)} != expected {sorted(spec)}")
    for key, (dtype, shape) in spec.items():
        array = arrays[key]
        ok_dtype = array.dtype.kind == "U" if dtype == "str" else array.dtype == np.dtype(dtype)
        ok_shape = array.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, array.shape))
        if not (ok_dtype and ok_shape):
            raise ValueError(f"array {key!r} is {array.dtype}{list(array.shape)}, expected {dtype}{list(shape)}")
