"""The benchmark's tasks: ``load_task(name)`` returns its prepared arrays, ``task_info(name)`` its shape.

Raw files come from a local mirror (argument ``mirror`` or env ``GAPBENCH_DATA_MIRROR``) or,
without one, from the official sources (downloaded once into ``<cache>/raw``); every file and
its parsed content is checksummed (see ``model_zoo.data._fetch``). Prepared arrays are cached in
``<cache>/data/<task>-<prep_version>.npz`` (cache root: argument ``cache_dir`` or
``model_zoo.paths.cache_dir()``), so a second load only reads that file.
"""

from __future__ import annotations

import difflib
import importlib
import os
from pathlib import Path
from types import ModuleType

from model_zoo.data.base import TaskData, TaskInfo
from model_zoo.data.base import cache_file as _cache_file

__all__ = ["TASKS", "TaskData", "TaskInfo", "cache_file", "load_task", "task_info"]

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
) -> TaskData:
    """Load a task's train/test (and shift) arrays, preparing and caching them on first use.

    ``mirror``: folder of raw files laid out as ``<mirror>/<folder>/<file>`` (default: env
    ``GAPBENCH_DATA_MIRROR``; unset: download from the official source). ``cache_dir``: cache
    root (default ``model_zoo.paths.cache_dir()``). Deterministic: the same arrays every time.
    """
    return _module(name).load(mirror=mirror, cache_dir=cache_dir)


def cache_file(name: str, cache_dir: Path | None = None) -> Path:
    """Path of a task's prepared-array cache file (it may not exist yet)."""
    module = _module(name)
    return _cache_file(name, module.PREP_VERSION, cache_dir)
