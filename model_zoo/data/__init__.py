"""The benchmark's tasks: ``load_task(name)`` returns its prepared arrays, ``task_info(name)`` its shape.

Raw files come from a local mirror (argument ``mirror`` or env ``GAPBENCH_DATA_MIRROR``) or,
without one, from the official sources (downloaded once into ``<cache>/raw``): the publisher's
download (source ``"url"``, the default) or, where the publisher put it there, the Hugging Face
Hub (source ``"hub"``, argument ``source`` or env ``GAPBENCH_DATA_SOURCE``). Every file, its parsed
content and, where recorded, the prepared arrays are checksummed (see ``model_zoo.data._fetch``).
Prepared arrays are cached as a ``datasets`` DatasetDict in ``<cache>/data/<task>-<prep_version>/``
(``model_zoo.data.prepared``; an npz file where ``datasets`` is not installed; cache root:
argument ``cache_dir`` or ``model_zoo.paths.cache_dir()``), so a second load only reads that.
"""

from __future__ import annotations

import difflib
import importlib
import os
from pathlib import Path
from types import ModuleType

from model_zoo.data import _fetch
from model_zoo.data.base import TaskData, TaskInfo
from model_zoo.data.base import cache_file as _cache_file
from model_zoo.data.base import prepared_dir as _prepared_dir

__all__ = ["TASKS", "TaskData", "TaskInfo", "cache_file", "load_task", "prepared_dir", "task_info"]

TASKS: tuple[str, ...] = ("fashion_mnist", "fsdd", "newsgroups")


def _module(name: str) -> ModuleType:
    if name not in TASKS:
        close = difflib.get_close_matches(str(name), TASKS, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown task {name!r}{hint} Known tasks: {', '.join(TASKS)}.")
    return importlib.import_module(f"model_zoo.data.{name}")


def task_info(name: str) -> TaskInfo:
    """A task's static description (no data is read; newsgroups' idf/vocab come with ``load_task``)."""
    return _module(name).INFO


def load_task(
    name: str,
    *,
    mirror: str | os.PathLike[str] | None = None,
    cache_dir: Path | None = None,
    source: str | None = None,
) -> TaskData:
    """Load a task's train/test (and shift) arrays, preparing and caching them on first use.

    ``mirror``: folder of raw files laid out as ``<mirror>/<folder>/<file>`` (default: env
    ``GAPBENCH_DATA_MIRROR``; unset: download from the official source). ``source``: where to
    download from when no mirror is set, ``"url"`` or ``"hub"`` (default: env
    ``GAPBENCH_DATA_SOURCE``, else ``"url"``). ``cache_dir``: cache root (default
    ``model_zoo.paths.cache_dir()``). Deterministic: the same arrays every time, from any source.
    """
    module = _module(name)
    _fetch.resolve_source(source)  # a bad source fails even when the mirror or the cache answers
    return module.load(mirror=mirror, cache_dir=cache_dir, source=source)


def cache_file(name: str, cache_dir: Path | None = None) -> Path:
    """Path of a task's npz fallback cache file (written where ``datasets`` is missing; may not exist)."""
    module = _module(name)
    return _cache_file(name, module.PREP_VERSION, cache_dir)


def prepared_dir(name: str, cache_dir: Path | None = None) -> Path:
    """Path of a task's prepared-data folder, a saved ``datasets`` DatasetDict (may not exist yet)."""
    module = _module(name)
    return _prepared_dir(name, module.PREP_VERSION, cache_dir)
