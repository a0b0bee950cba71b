"""The types every task loader returns: what a task is (TaskInfo) and its arrays (TaskData)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


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
