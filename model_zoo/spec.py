"""Zoo specs: a TOML file naming tasks, architectures, a full factorial grid and seeds.

A spec looks like::

    name = "micro"
    description = "..."
    seeds = [0, 1]

    [training]            # optional; settings and defaults: model_zoo.axes.PROTOCOL
    target_ce = 0.01
    max_steps = 2000

    [[experiments]]
    task = "fashion_mnist"
    architecture = ["mlp", "cnn"]          # a string, or a list (= an axis)
    [experiments.fixed]
    batch_size = 64
    [experiments.grid]
    lr = [0.01, 0.05]
    train_size = [200, 400]

`load_spec` validates it (pydantic and the typed tables of `model_zoo.axes`: unknown keys
rejected, values strictly typed, finite and in bounds, the grid's size capped) and `expand` turns it into one
`ModelConfig` per (grid point x seed). Every model keeps the grid values exactly as the spec
wrote them (`model_zoo.axes.canonical`), because metrics group models by those strings: re-parsing floats
through another precision has silently split groups before.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import os
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StrictInt, ValidationError, field_validator

from model_zoo.axes import AXES, AXIS_NAMES, PROTOCOL, PROTOCOL_NAMES, TrainConfig, axis_defaults, canonical, setting

# Bump when the zoo's on-disk format or the meaning of a stored number changes.
ZOO_FORMAT_VERSION = "4"  # 4: timing.json beside the hashed model files

# Bump when a change to the trainer, the architectures, the trajectory recorder, the data
# preparation or the pinned numerics (model_zoo.determinism) can change a trained model's
# numbers: it is part of every zoo id, so zoos built by older code are rebuilt instead of
# silently mixed with new ones. (A hash of the source did this automatically but also
# invalidated every zoo on a cosmetic edit.)
TRAINING_CODE_VERSION = "3"  # 3: population training, pinned numerics, torchvision loader

DEFAULT_MAX_MODELS = 100_000
"""Specs expanding to more models are refused before expansion (env GAPBENCH_MAX_MODELS)."""

_SHIPPED_DIR = "specs"


class SpecError(ValueError):
    """A spec file is invalid; the message names the file and the offending key or value."""


def max_models() -> int:
    """The largest zoo a spec may describe: env ``GAPBENCH_MAX_MODELS`` or DEFAULT_MAX_MODELS."""
    raw = os.environ.get("GAPBENCH_MAX_MODELS")
    if raw is None:
        return DEFAULT_MAX_MODELS
    try:
        return int(raw)
    except ValueError:
        raise SpecError(f"GAPBENCH_MAX_MODELS={raw!r} is not an integer") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Experiment(_Strict):
    """One task with its architectures, fixed values and grid axes."""

    task: str
    architecture: str | list[str]
    fixed: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, Any] = Field(default_factory=dict)

    @property
    def architectures(self) -> list[str]:
        return [self.architecture] if isinstance(self.architecture, str) else list(self.architecture)

    def axis_values(self) -> dict[str, list[Any]]:
        """Every varied axis's list of values (the architecture if it is a list, then grid axes)."""
        values: dict[str, list[Any]] = {}
        if isinstance(self.architecture, list):
            values["architecture"] = list(self.architecture)
        for axis in AXIS_NAMES:
            if axis in self.grid and isinstance(self.grid[axis], list):
                values[axis] = list(self.grid[axis])
        return values

    def grid_axes(self) -> list[str]:
        """Names of the axes this experiment varies, in canonical order."""
        return [a for a in AXIS_NAMES if a in self.axis_values()]

    def n_points(self) -> int:
        """Grid points of this experiment (product of the axis lengths), before seeds."""
        return math.prod(len(v) for v in self.axis_values().values())


class ZooSpec(_Strict):
    """A validated zoo spec. Build one with `load_spec` or `parse_spec`."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    description: str = ""
    seeds: list[StrictInt] = Field(min_length=1)
    training: dict[str, Any] = Field(default_factory=dict)
    experiments: list[Experiment] = Field(min_length=1)

    _text: str = PrivateAttr(default="")
    _source: str = PrivateAttr(default="<string>")

    @field_validator("seeds")
    @classmethod
    def _seeds_unique(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"duplicate seeds in {seeds}")
        if any(s < 0 for s in seeds):
            raise ValueError(f"seeds must be >= 0, got {seeds}")
        return seeds

    @property
    def text(self) -> str:
        """The spec file's text, verbatim."""
        return self._text

    @property
    def source(self) -> str:
        """Where the spec was read from (a path, or ``<string>``)."""
        return self._source

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(e.task for e in self.experiments))

    @property
    def n_models(self) -> int:
        """How many models the spec describes (grid points x seeds, over experiments)."""
        return len(self.seeds) * sum(e.n_points() for e in self.experiments)

    def protocol(self) -> dict[str, Any]:
        """The ``[training]`` settings with PROTOCOL's defaults filled in."""
        return {s.name: self.training.get(s.name, s.default) for s in PROTOCOL}

    def canonical_json(self) -> str:
        """The parsed spec as canonical JSON (independent of comments and key order)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    @property
    def text_sha256(self) -> str:
        return hashlib.sha256(self._text.encode()).hexdigest()

    @property
    def spec_hash(self) -> str:
        """Short hash of the parsed spec + zoo format version + trainer code version."""
        payload = "\n".join([self.canonical_json(), ZOO_FORMAT_VERSION, code_version()])
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def zoo_id(self) -> str:
        """``<name>-<spec_hash>``: changes whenever the spec or the code version changes."""
        return f"{self.name}-{self.spec_hash}"


def code_version() -> str:
    """The version of the code that trains zoo models (see TRAINING_CODE_VERSION)."""
    return f"training-{TRAINING_CODE_VERSION}"


@dataclass(frozen=True)
class ModelConfig:
    """One model of a zoo: its training config, the experiment's grid axes and its hp strings."""

    train: TrainConfig
    axes: tuple[str, ...]
    hp: dict[str, str]

    @property
    def task(self) -> str:
        return self.train.task

    @property
    def architecture(self) -> str:
        return self.train.architecture

    @property
    def seed(self) -> int:
        return self.train.seed

    @property
    def model_id(self) -> str:
        return f"{self.task}-{self.architecture}-{config_hash(self.train, with_seed=True)}"

    @property
    def config_id(self) -> str:
        return f"{self.task}-{self.architecture}-{config_hash(self.train, with_seed=False)}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (what a build job carries to its worker)."""
        return {"train": dataclasses.asdict(self.train), "axes": list(self.axes), "hp": dict(self.hp)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """The inverse of :meth:`to_dict`."""
        return cls(train=TrainConfig(**data["train"]), axes=tuple(data["axes"]), hp=dict(data["hp"]))


def config_hash(train_config: TrainConfig, *, with_seed: bool) -> str:
    """10 hex digits of the sha256 of the canonical JSON of a TrainConfig (optionally sans seed)."""
    d = dataclasses.asdict(train_config)
    if not with_seed:
        d.pop("seed")
    payload = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


# ---------------------------------------------------------------------------------------------
# Loading and semantic validation


def shipped_specs() -> list[str]:
    """Names of the specs shipped in model_zoo/specs/."""
    folder = resources.files("model_zoo").joinpath(_SHIPPED_DIR)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_spec(name_or_path: str | Path, *, limit: int | None = None) -> ZooSpec:
    """Load and validate a spec: a shipped name (``"micro"``) or a path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml" and not path.exists():
        names = shipped_specs()
        if str(name_or_path) not in names:
            hint = _did_you_mean(str(name_or_path), names)
            raise SpecError(
                f"unknown zoo spec {str(name_or_path)!r}: not a file and not a shipped spec{hint} "
                f"(shipped: {', '.join(names)})"
            )
        ref = resources.files("model_zoo").joinpath(_SHIPPED_DIR, f"{name_or_path}.toml")
        return parse_spec(ref.read_text(), source=str(ref), limit=limit)
    if not path.is_file():
        raise SpecError(f"spec file {path} does not exist")
    return parse_spec(path.read_text(), source=str(path), limit=limit)


def parse_spec(text: str, *, source: str = "<string>", limit: int | None = None) -> ZooSpec:
    """Parse and validate spec text; `source` names the file in error messages.

    Strict: numbers must be numbers (no strings, no booleans), finite and within the bounds of
    ``model_zoo.axes``; a spec describing more than ``limit`` models (default: `max_models()`)
    is refused before anything is expanded.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source}: invalid TOML: {exc}") from exc
    try:
        spec = ZooSpec.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = _format_loc(err["loc"])
            if err["type"] == "extra_forbidden":
                lines.append(f"unknown key {loc!r}")
            else:
                lines.append(f"{loc}: {err['msg']} (got {err.get('input')!r})")
        raise SpecError(f"{source}: invalid spec:\n  " + "\n  ".join(lines)) from None
    problems = _check_training(spec.training)
    for i, exp in enumerate(spec.experiments):
        problems += [f"experiments[{i}] ({exp.task}): {p}" for p in _check_experiment(exp)]
    if problems:
        raise SpecError(f"{source}: invalid spec:\n  " + "\n  ".join(problems))
    limit = max_models() if limit is None else limit
    if spec.n_models > limit:
        raise SpecError(
            f"{source}: the spec describes {spec.n_models:,} models (grid points x {len(spec.seeds)} seeds), "
            f"more than the limit of {limit:,}; shrink the grid or raise GAPBENCH_MAX_MODELS"
        )
    spec._text = text
    spec._source = source
    return spec


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@cache
def pool_size(task: str) -> int:
    """Number of examples in a task's training pool (what train_size may not exceed)."""
    from model_zoo.data import task_info

    n = task_info(task).extras.get("n_train")
    if n is not None:
        return int(n)
    from model_zoo.data import load_task

    return len(load_task(task).y_train)


def _check_training(training: dict[str, Any]) -> list[str]:
    problems = []
    for key, value in training.items():
        if key not in PROTOCOL_NAMES:
            problems.append(f"unknown key 'training.{key}'{_did_you_mean(key, PROTOCOL_NAMES)} "
                            f"(keys: {', '.join(PROTOCOL_NAMES)})")
            continue
        why = setting(key).problem(value)
        if why:
            problems.append(f"training.{why}")
    return problems


def _check_value(axis: str, value: Any, task: str) -> str | None:
    """Why `value` is invalid for `axis` on `task` (None if it is valid)."""
    if axis == "architecture":
        return _check_architecture(value, task)
    why = setting(axis).problem(value)
    if why is None and axis == "train_size":
        n = pool_size(task)
        return None if value <= n else f"train_size {value} exceeds the {task} pool of {n} examples"
    return why


def _check_architecture(name: Any, task: str) -> str | None:
    from model_zoo.architectures import ARCHITECTURES, missing_packages
    from model_zoo.data import task_info

    if not isinstance(name, str):
        return f"architecture must be a string, got {name!r}"
    if name not in ARCHITECTURES:
        return f"unknown architecture {name!r}{_did_you_mean(name, sorted(ARCHITECTURES))}"
    modality = task_info(task).modality
    if ARCHITECTURES[name].modality != modality:
        fitting = sorted(a for a, s in ARCHITECTURES.items() if s.modality == modality)
        return (
            f"architecture {name!r} is for {ARCHITECTURES[name].modality} tasks, but {task!r} is "
            f"{modality} (use one of {fitting})"
        )
    missing = missing_packages(name)
    if missing:
        return f"architecture {name!r} needs {', '.join(missing)}, which is not installed (pip install {' '.join(missing)})"
    return None


def _unknown_axis(axis: str) -> str:
    if axis == "seed":
        return "unknown axis 'seed': seeds come from the top-level `seeds = [...]`"
    return f"unknown axis {axis!r}{_did_you_mean(axis, AXIS_NAMES)} (axes: {', '.join(AXIS_NAMES)})"


def _check_experiment(exp: Experiment) -> list[str]:
    from model_zoo.data import TASKS

    problems: list[str] = []
    if exp.task not in TASKS:
        return [f"unknown task {exp.task!r}{_did_you_mean(exp.task, list(TASKS))} (tasks: {', '.join(TASKS)})"]
    for section, mapping in (("fixed", exp.fixed), ("grid", exp.grid)):
        for axis in mapping:
            if axis not in AXIS_NAMES:
                problems.append(f"{section}: {_unknown_axis(axis)}")
    if "architecture" in exp.fixed or "architecture" in exp.grid:
        problems.append(
            "architecture is given by the experiment's `architecture` key (a string or a list), "
            "not in fixed/grid"
        )
    for axis in sorted(set(exp.fixed) & set(exp.grid)):
        problems.append(f"axis {axis!r} is given both in fixed and in grid; keep one")
    for axis, value in exp.fixed.items():
        if axis in AXIS_NAMES and axis != "architecture":
            why = _check_value(axis, value, exp.task)
            if why:
                problems.append(f"fixed.{why}")
    values = {"architecture": exp.architectures}
    for axis, vals in exp.grid.items():
        if axis in AXIS_NAMES and axis != "architecture":
            if isinstance(vals, list):
                values[axis] = vals
            else:
                problems.append(f"grid.{axis}: an axis takes a list of values, got {vals!r} (put a single value in fixed)")
    for axis, vals in values.items():
        where = "architecture" if axis == "architecture" else f"grid.{axis}"
        if len(vals) == 0:
            problems.append(f"{where}: empty axis; give at least one value")
            continue
        for v in vals:
            why = _check_value(axis, v, exp.task)
            if why:
                problems.append(f"{where}: {why}")
        if not all(isinstance(v, int | float | str | bool) for v in vals):
            continue  # already reported as a bad type
        keys = [_dup_key(v) for v in vals]
        dups = sorted({canonical(v) for v, k in zip(vals, keys) if keys.count(k) > 1})
        if dups:
            problems.append(f"{where}: duplicate values {dups}")
    return problems


def _dup_key(v: Any) -> Any:
    # 1 and 1.0 name the same grid point; True and 1 do not.
    return ("b", v) if isinstance(v, bool) else ("n", float(v)) if isinstance(v, int | float) else ("s", v)


# ---------------------------------------------------------------------------------------------
# Expansion


def expand(spec: ZooSpec) -> list[ModelConfig]:
    """Every model of the spec: the full factorial grid of each experiment x seeds.

    Order is deterministic: experiments in file order, then grid points in row-major order
    over the axes (canonical axis order, values in the order given), then seeds.
    """
    protocol = spec.protocol()
    out: list[ModelConfig] = []
    seen: set[str] = set()
    for exp in spec.experiments:
        axis_values = exp.axis_values()
        axes = tuple(exp.grid_axes())
        base = axis_defaults(exp.fixed)
        if isinstance(exp.architecture, str):
            base["architecture"] = exp.architecture
        for point in itertools.product(*(axis_values[a] for a in axes)):
            values = dict(base)
            values.update(dict(zip(axes, point)))
            hp = {s.name: canonical(values[s.name]) for s in AXES}
            for seed in spec.seeds:
                cfg = TrainConfig(task=exp.task, seed=seed, **values, **protocol)
                mc = ModelConfig(train=cfg, axes=axes, hp=hp)
                if mc.model_id in seen:
                    raise SpecError(
                        f"{spec.source}: model {mc.model_id} appears twice; two experiments "
                        f"give the same config for task {exp.task!r}"
                    )
                seen.add(mc.model_id)
                out.append(mc)
    return out
