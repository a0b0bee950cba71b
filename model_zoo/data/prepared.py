"""The prepared-data format: a Hugging Face ``datasets`` DatasetDict on disk, read back with pyarrow.

A task's prepared arrays (``x_<split>``, ``y_<split>`` and any extra arrays such as the text
vocabulary) are written once with ``DatasetDict.save_to_disk`` into
``<cache>/data/<task>-<prep_version>/``::

    dataset_dict.json, train/, test/[, shift/]   one Dataset per split: columns x, y
    extras/                                       one row, one list column per extra array (if any)
    gapbench.json                                 per array: dtype, shape, sha256, where it is stored

Column types are the ones ``datasets`` users expect: ``x`` is ``Array2D``/``Array3D`` (a row
of 2 or 3 dimensions) or a fixed-length ``List`` (one dimension) of the array's own dtype, ``y``
a ``ClassLabel`` with the task's class names. Each split's ``datasets`` fingerprint is the
sha256 of its arrays, so equal data have equal fingerprints. So ``datasets.load_from_disk``
opens the folder (memory-mapped) like any saved dataset.

Reading never needs ``datasets``: the Arrow files are memory-mapped with ``pyarrow`` and every
array is checked against the sha256 recorded in ``gapbench.json`` (Arrow files carry no
checksum; a flipped bit would otherwise pass silently). This keeps ``model_zoo`` free of a
``datasets`` import in training workers (it costs seconds per process) and lets a GPU box with
only torch/numpy/pyarrow read caches prepared elsewhere. Writing needs ``datasets``
(:func:`can_write`); without it, ``model_zoo.data.base`` falls back to its npz cache.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model_zoo.data._fetch import array_sha256, one_line

FORMAT = 2  # the npz cache was format 1
META_FILE = "gapbench.json"
EXTRAS = "extras"
_SPLIT_ORDER = ("train", "test", "shift")


class PreparedDataError(ValueError):
    """A prepared-data folder is unreadable, incomplete, or does not match its recorded digests."""


def can_write() -> bool:
    """Whether ``datasets`` can be imported here (needed to write, never to read)."""
    try:
        import datasets  # noqa: F401
    except ImportError:
        return False
    return True


def split_names(arrays: dict[str, np.ndarray]) -> list[str]:
    """The splits of a prepared-array dict: each ``<split>`` with both ``x_<split>`` and ``y_<split>``."""
    names = {k[2:] for k in arrays if k.startswith("x_") and f"y_{k[2:]}" in arrays}
    return sorted(names, key=lambda s: (_SPLIT_ORDER.index(s) if s in _SPLIT_ORDER else len(_SPLIT_ORDER), s))


# ---------------------------------------------------------------------------------------------- write


def write(
    folder: Path, *, task: str, prep_version: int, arrays: dict[str, np.ndarray], class_names: Sequence[str]
) -> None:
    """Save ``arrays`` as a DatasetDict in ``folder`` atomically (temporary folder, then rename).

    A folder that already exists is replaced; if another process renamed its own complete copy
    into place first, that copy is kept (both hold the same arrays).
    """
    import datasets

    splits = split_names(arrays)
    extras = sorted(k for k in arrays if not any(k in (f"x_{s}", f"y_{s}") for s in splits))
    meta: dict[str, Any] = {"task": task, "prep_version": prep_version, "format": FORMAT, "tables": {}, "arrays": {}}
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()  # a cache write is not a user-facing step
    try:
        digests = {name: array_sha256(array) for name, array in arrays.items()}
        dataset_dict = datasets.DatasetDict(
            {s: _split_dataset(arrays[f"x_{s}"], arrays[f"y_{s}"], class_names, task, s, digests) for s in splits}
        )
        dataset_dict.save_to_disk(str(tmp))
        for s in splits:
            meta["tables"][s] = _arrow_files(tmp, s)
            for column in ("x", "y"):
                name = f"{column}_{s}"
                meta["arrays"][name] = _array_meta(arrays[name], digests, name, s, column)
        if extras:
            _extras_dataset({k: arrays[k] for k in extras}, task).save_to_disk(str(tmp / EXTRAS))
            meta["tables"][EXTRAS] = _arrow_files(tmp, EXTRAS)
            for name in extras:
                meta["arrays"][name] = _array_meta(arrays[name], digests, name, EXTRAS, name)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bars_were_on:
            datasets.utils.enable_progress_bars()


def _split_dataset(
    x: np.ndarray, y: np.ndarray, class_names: Sequence[str], task: str, split: str, digests: dict[str, str]
) -> Any:
    import datasets
    import pyarrow as pa

    x_column, x_feature = _x_column(x)
    features = datasets.Features({"x": x_feature, "y": datasets.ClassLabel(names=list(class_names))})
    table = pa.table({"x": x_column, "y": pa.array(np.asarray(y, dtype=np.int64))})
    fingerprint = array_sha256(np.array([digests[f"x_{split}"], digests[f"y_{split}"]]))[:16]
    info = datasets.DatasetInfo(description=f"gapbench task {task!r}, split {split!r} (prepared arrays)",
                                features=features)
    return datasets.Dataset(table, info=info, split=split, fingerprint=fingerprint)


def _x_column(x: np.ndarray) -> tuple[Any, Any]:
    """An Arrow column holding one row per example of ``x``, and its ``datasets`` feature."""
    import datasets
    import pyarrow as pa

    x = np.ascontiguousarray(x)
    row_shape = x.shape[1:]
    dtype = x.dtype.name
    values = pa.array(x.reshape(-1))
    if len(row_shape) == 1:
        return pa.FixedSizeListArray.from_arrays(values, row_shape[0]), datasets.List(
            datasets.Value(dtype), length=row_shape[0]
        )
    array_types = {2: datasets.Array2D, 3: datasets.Array3D, 4: datasets.Array4D, 5: datasets.Array5D}
    if len(row_shape) not in array_types:
        raise ValueError(f"prepared arrays: rows of {len(row_shape)} dimensions are not supported (x is {x.shape})")
    feature = array_types[len(row_shape)](shape=row_shape, dtype=dtype)
    # ``datasets`` stores ArrayND as nested variable-size lists; build them from offsets directly
    # (Dataset.from_dict would convert every row through Python: 18 s for Fashion-MNIST's train split).
    storage = values
    for size in reversed(row_shape):
        offsets = pa.array(np.arange(0, len(storage) + 1, size, dtype=np.int32))
        storage = pa.ListArray.from_arrays(offsets, storage)
    return pa.ExtensionArray.from_storage(feature(), storage), feature  # feature() is its Arrow extension type


def _extras_dataset(extras: dict[str, np.ndarray], task: str) -> Any:
    import datasets
    import pyarrow as pa

    columns = {}
    for name, array in extras.items():
        if array.ndim != 1:
            raise ValueError(f"prepared arrays: extra array {name!r} must be 1-D, got shape {array.shape}")
        values = pa.array(array.tolist() if array.dtype.kind == "U" else array)
        columns[name] = pa.ListArray.from_arrays(pa.array([0, len(values)], type=pa.int32()), values)
    info = datasets.DatasetInfo(description=f"gapbench task {task!r}: arrays shared by every split (one row)")
    return datasets.Dataset(pa.table(columns), info=info)


def _arrow_files(root: Path, table: str) -> list[str]:
    files = sorted(p.name for p in (root / table).glob("*.arrow"))
    if not files:
        raise PreparedDataError(f"{root / table}: save_to_disk wrote no .arrow file")
    return [f"{table}/{name}" for name in files]


def _array_meta(array: np.ndarray, digests: dict[str, str], name: str, table: str, column: str) -> dict[str, Any]:
    return {"dtype": array.dtype.str, "shape": list(array.shape), "sha256": digests[name], "table": table,
            "column": column}


def _replace_folder(tmp: Path, folder: Path) -> None:
    if folder.exists():
        trash = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".old", dir=folder.parent))
        try:
            os.replace(folder, trash / "old")
        except FileNotFoundError:
            pass  # another process removed it meanwhile
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(tmp, folder)
    except OSError:
        if not (folder / META_FILE).is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # a concurrent writer's complete copy is in place


# ---------------------------------------------------------------------------------------------- read


def read(folder: Path, *, task: str, prep_version: int) -> dict[str, np.ndarray]:
    """The arrays saved in ``folder``, each checked against its recorded dtype, shape and sha256.

    The Arrow files are memory-mapped; the arrays returned are private, writable copies (torch
    does not support tensors over read-only memory). Raises PreparedDataError naming the folder
    and the first problem.
    """
    import pyarrow as pa

    meta_path = folder / META_FILE
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise PreparedDataError(f"{meta_path}: unreadable ({exc})") from None
    expected = {"task": task, "prep_version": prep_version, "format": FORMAT}
    found = {key: meta.get(key) for key in expected}
    if found != expected:
        raise PreparedDataError(f"{meta_path}: metadata {found} != {expected}")
    tables = {name: _read_table(folder, files) for name, files in meta["tables"].items()}
    try:
        arrays = {name: _column_array(tables[spec["table"]], spec) for name, spec in meta["arrays"].items()}
    except (KeyError, TypeError, ValueError, pa.ArrowException) as exc:
        raise PreparedDataError(f"{folder}: {one_line(exc)}") from None
    for name, array in arrays.items():
        spec = meta["arrays"][name]
        if array.dtype.str != spec["dtype"] or list(array.shape) != spec["shape"]:
            raise PreparedDataError(f"{folder}: array {name!r} is {array.dtype.str}{list(array.shape)}, "
                                    f"recorded {spec['dtype']}{spec['shape']}")
        if array_sha256(array) != spec["sha256"]:
            raise PreparedDataError(f"{folder}: array {name!r} does not match its recorded sha256")
    return arrays


def _read_table(folder: Path, files: list[str]) -> Any:
    import pyarrow as pa

    tables = []
    for name in files:
        try:
            with pa.memory_map(str(folder / name)) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
        except (OSError, pa.ArrowException) as exc:
            raise PreparedDataError(f"{folder / name}: {one_line(exc)}") from None
    try:
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    except (IndexError, pa.ArrowException) as exc:
        raise PreparedDataError(f"{folder}: tables {files}: {one_line(exc)}") from None


def _column_array(table: Any, spec: dict[str, Any]) -> np.ndarray:
    """Rebuild one recorded array from its column (nested lists flattened, dtype and shape restored)."""
    import pyarrow as pa

    column = table.column(spec["column"]).combine_chunks()
    if isinstance(column, pa.ExtensionArray):
        column = column.storage
    while pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
        column = column.flatten()
    dtype = np.dtype(spec["dtype"])
    if dtype.kind == "U":
        values = np.array(column.to_pylist(), dtype=dtype)
    else:
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype != dtype:
            cast = values.astype(dtype)
            if not np.array_equal(cast, values):
                raise ValueError(f"column {spec['column']!r} does not fit dtype {dtype}")
            values = cast
    values = values.reshape(spec["shape"])
    # Zero-copy views of the memory map are read-only; torch does not support tensors over them.
    return values if values.flags.writeable else values.copy()
