"""The predictor contract: what a predictor sees (``Subject``), declares (``PredictorMeta``) and returns.

A predictor is any callable ``(subject, *, seed) -> float`` carrying a ``meta`` attribute.
Convention: **a higher score means a larger predicted generalization gap.**

The smallest submission is one file with one function::

    from predictors.api import predictor

    @predictor(version="1", family="norm", reference="my paper", requires=("weights",))
    def my_norm(subject, *, seed=0):
        return float(sum(p.norm() ** 2 for p in subject.model().parameters()))

The registry (``predictors.registry``) collects every decorated function of a module it loads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:  # the zoo's read API; imported lazily so that metadata alone stays cheap
    from model_zoo.data.base import TaskInfo
    from model_zoo.zoo import ModelRecord, RetrainOutcome, TrajectoryWindow

DEFAULT_BUDGET_SECONDS = 300.0
"""Seconds a predictor may spend on one model unless the runner's ceiling is lower (as PGDL)."""

Requirement = Literal["weights", "init", "train_data", "trajectory", "retrain", "hparams"]
REQUIREMENTS: tuple[str, ...] = ("weights", "init", "train_data", "trajectory", "retrain", "hparams")
REQUIREMENT_FILES: dict[str, tuple[str, ...]] = {
    "weights": ("final.safetensors",),
    "init": ("init.safetensors",),
    "trajectory": ("trajectory.safetensors",),
    "train_data": (),  # config.json (train indices, noisy labels) and the task pool
    "retrain": (),  # config.json (the recipe) and the task pool
    "hparams": (),  # config.json
}
"""The model files (``model_zoo.store.MODEL_FILES``) each requirement reads besides ``config.json``,
which every Subject reads; a predictor's worker is given only the files its ``requires`` names."""
Kind = Literal["predictor", "baseline"]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def staged_files(requires: tuple[str, ...]) -> tuple[str, ...]:
    """The model files a predictor declaring ``requires`` may read: config.json plus its requirements'."""
    unknown = sorted(set(requires) - set(REQUIREMENT_FILES))
    if unknown:
        raise ValueError(f"unknown requirement(s) {unknown}; expected some of {list(REQUIREMENTS)}")
    return ("config.json", *sorted({f for r in requires for f in REQUIREMENT_FILES[r]}))


class PredictorMeta(BaseModel):
    """What a predictor declares about itself; validated, and versioned because it changes numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="registry key: snake_case, unique")
    version: str = Field(description="bump whenever the returned numbers can change")
    family: str = Field(description="e.g. tail_index, ph_dimension, sharpness, norm, baseline")
    reference: str = Field(description="the paper (authors, year, title) or 'baseline'")
    url: str = Field("", description="a link to the paper (the board links the reference to it)")
    requires: tuple[Requirement, ...] = Field(description="what of the Subject it reads")
    kind: Kind = "predictor"
    description: str = ""
    notes: str = Field("", description="protocol deviations shown on the board, e.g. a cheaper default")
    budget_seconds: float | None = Field(
        None, gt=0, description="per-model budget in seconds; it can only lower the runner's ceiling")
    known_failures: dict[str, str] = Field(
        default_factory=dict, description="conformance check name -> why it is expected to fail"
    )

    @field_validator("name")
    @classmethod
    def _snake_case(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"predictor name {value!r} must be snake_case ([a-z][a-z0-9_]*)")
        return value

    @field_validator("version", "family", "reference")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value


@runtime_checkable
class Predictor(Protocol):
    """Anything with ``meta`` that maps a Subject to one float."""

    meta: PredictorMeta

    def __call__(self, subject: Subject, *, seed: int = 0) -> float: ...


class RequirementError(PermissionError):
    """A predictor read a part of the Subject it did not declare in ``requires``."""


class Subject:
    """A read-only view of one zoo model, as a predictor sees it.

    Everything is loaded lazily. It never offers test data or answers: it is built from the
    zoo's public part only. With ``requires`` given, reading an undeclared part raises
    ``RequirementError`` so that the board's "requires" column stays true.
    """

    def __init__(self, record: ModelRecord, *, requires: tuple[str, ...] | None = None):
        self._record = record
        self._requires = None if requires is None else frozenset(requires)
        self.used: set[str] = set()  # the requirements read so far (the conformance suite checks them)
        self._models: dict[str, torch.nn.Module] = {}
        self._train: tuple[torch.Tensor, torch.Tensor] | None = None

    def _need(self, what: str) -> None:
        self.used.add(what)
        if self._requires is not None and what not in self._requires:
            raise RequirementError(
                f"this predictor reads the subject's {what!r} but does not declare it in "
                f"requires={sorted(self._requires)}; add {what!r} to its metadata"
            )

    # --- always available -------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        return self._record.model_id

    @property
    def task(self) -> TaskInfo:
        return self._record.info

    @property
    def architecture(self) -> str:
        return str(self._record.config["architecture"])

    @property
    def n_params(self) -> int:
        return int(self._record.n_params)

    # --- hyperparameters ------------------------------------------------------------------
    @property
    def hparams(self) -> dict[str, str]:
        """Grid axes -> value exactly as the spec wrote it (strings)."""
        self._need("hparams")
        return dict(self._record.hparams)

    @property
    def config(self) -> dict[str, Any]:
        """The full training recipe (typed values: lr, batch_size, optimizer, ...)."""
        self._need("hparams")
        return dict(self._record.config["train_config"])

    # --- weights --------------------------------------------------------------------------
    def model(self, which: str = "final") -> torch.nn.Module:
        """The network in eval mode with the ``final`` (end of training) or ``init`` weights.

        The same module object is returned on every call of this Subject; predictors that
        perturb weights must restore them (the conformance suite checks this).
        """
        if which not in ("final", "init"):
            raise ValueError(f"model(which={which!r}): expected 'final' or 'init'")
        self._need("weights" if which == "final" else "init")
        if which not in self._models:
            self._models[which] = self._record.build_model(which)
        return self._models[which]

    # --- data -----------------------------------------------------------------------------
    def train_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The exact training set the model saw, noisy labels included: ``(x, y)``."""
        self._need("train_data")
        if self._train is None:
            x, y = self._record.train_set()
            self._train = (torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.asarray(y)))
        return self._train

    def train_batches(
        self, batch_size: int = 256, *, shuffle: bool = False, seed: int = 0, max_examples: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Minibatches over the training set (a seeded permutation when ``shuffle``)."""
        x, y = self.train_data()
        n = len(y)
        if shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        else:
            order = torch.arange(n)
        if max_examples is not None:
            order = order[:max_examples]
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            yield x[idx], y[idx]

    def loss_fn(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """The training loss (mean cross-entropy)."""
        return torch.nn.functional.cross_entropy

    # --- trajectory -----------------------------------------------------------------------
    def trajectory(self) -> TrajectoryWindow:
        """The post-convergence window: iterates (offsets, exact or projected), losses, norms."""
        self._need("trajectory")
        return self._record.trajectory()

    # --- retraining -----------------------------------------------------------------------
    @property
    def pool_size(self) -> int:
        """How many examples the task's training pool holds (the most ``retrain`` can use)."""
        self._need("retrain")
        return int(self._record.pool_size)

    def retrain(self, n_train: int, *, seed: int = 0, max_steps: int | None = None) -> RetrainOutcome:
        """Run this model's recipe again on ``n_train`` examples of the task's training pool.

        Returns the retrained model with its training error (``model_zoo.zoo.RetrainOutcome``).
        """
        self._need("retrain")
        return self._record.retrain(n_train, seed=seed, max_steps=max_steps)


class FunctionPredictor:
    """A plain function made a predictor: ``fn(subject, *, seed) -> float`` plus metadata."""

    def __init__(self, fn: Callable[..., float], meta: PredictorMeta):
        self.fn = fn
        self.meta = meta
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self.__qualname__ = getattr(fn, "__qualname__", meta.name)
        self.__wrapped__ = fn

    def __call__(self, subject: Subject, *, seed: int = 0) -> float:
        return self.fn(subject, seed=seed)

    def __repr__(self) -> str:
        return f"<predictor {self.meta.name} v{self.meta.version} ({self.meta.family})>"


def predictor(
    name: str | None = None,
    *,
    version: str,
    family: str,
    reference: str,
    requires: tuple[str, ...],
    url: str = "",
    kind: str = "predictor",
    description: str | None = None,
    notes: str = "",
    budget_seconds: float | None = None,
    known_failures: dict[str, str] | None = None,
) -> Callable[[Callable[..., float]], FunctionPredictor]:
    """Decorator: declare a function as a predictor (the one predictor contract).

    The registry key is the function's name unless ``name`` is given; the registry collects
    every decorated function of a module it loads (built-ins, contrib/, files, entry points).
    """

    def wrap(fn: Callable[..., float]) -> FunctionPredictor:
        doc = (fn.__doc__ or "").strip()
        meta = PredictorMeta(
            name=name or fn.__name__,
            version=version,
            family=family,
            reference=reference,
            url=url,
            requires=tuple(requires),
            kind=kind,
            description=description if description is not None else (doc.splitlines()[0] if doc else ""),
            notes=notes,
            budget_seconds=budget_seconds,
            known_failures=known_failures or {},
        )
        return FunctionPredictor(fn, meta)

    return wrap


def seeded_generator(subject: Subject, seed: int) -> torch.Generator:
    """A torch generator that depends on the model and the seed only (for stochastic predictors)."""
    import hashlib

    digest = hashlib.sha256(f"{subject.model_id}:{seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
