"""Zoo specs: a TOML file naming tasks, architectures, a full factorial grid and seeds.

A spec looks like::

    name = "micro"
    description = "..."
    seeds = [0, 1]

    [training]            # optional; defaults come from model_zoo.trainer.TrainConfig
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

`load_spec` validates it (pydantic, unknown keys rejected) and `expand` turns it into one
`ModelConfig` per (grid point x seed). Every model keeps the grid values exactly as the spec
wrote them (`format_value`), because metrics group models by those strings: re-parsing floats
through another precision has silently split groups before.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

# Bump when the zoo's on-disk format or the meaning of a stored number changes.
ZOO_FORMAT_VERSION = "2"

# The grid axes a spec may vary (seed comes from the top-level `seeds`).
AXES: tuple[str, ...] = (
    "architecture",
    "lr",
    "batch_size",
    "width",
    "depth",
    "weight_decay",
    "dropout",
    "optimizer",
    "train_size",
    "label_noise",
    "augmentation",
)
OPTIMIZERS = ("sgd", "adam")

# Values used for an axis that an experiment neither fixes nor varies.
_COMMON_DEFAULTS: dict[str, Any] = {
    "lr": 0.05,
    "batch_size": 64,
    "width": 64,
    "depth": 2,
    "weight_decay": 0.0,
    "dropout": 0.0,
    "optimizer": "sgd",
    "label_noise": 0.0,
    "augmentation": False,
}
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "fashion_mnist": {**_COMMON_DEFAULTS, "train_size": 1000},
    "fsdd": {**_COMMON_DEFAULTS, "train_size": 1000},
    "newsgroups": {**_COMMON_DEFAULTS, "train_size": 1000, "lr": 0.1},
}

_SHIPPED_DIR = "specs"


class SpecError(ValueError):
    """A spec file is invalid; the message names the file and the offending key or value."""


def format_value(value: Any) -> str:
    """The canonical string of a grid value as the spec gave it.

    Floats use ``repr`` (the shortest string that round-trips the parsed TOML float, so
    ``0.001585`` stays ``"0.001585"``), booleans are lowercase, ints and strings are as-is.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int | str):
        return str(value)
    raise TypeError(f"cannot format grid value {value!r} of type {type(value).__name__}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _trainer_defaults() -> dict[str, Any]:
    from model_zoo.trainer import TrainConfig

    out = {}
    for f in dataclasses.fields(TrainConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # pragma: no cover - none today
            out[f.name] = f.default_factory()
    return out


TRAINING_KEYS = (
    "target_ce",
    "max_steps",
    "window_steps",
    "projection_dim",
    "exact_max_params",
    "projection_seed",
    "eval_every",
)


class TrainingSection(_Strict):
    """Training-protocol settings shared by every model of the zoo (None = trainer default)."""

    target_ce: float | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, ge=1)
    window_steps: int | None = Field(default=None, ge=2)
    projection_dim: int | None = Field(default=None, ge=1)
    exact_max_params: int | None = Field(default=None, ge=0)
    projection_seed: int | None = Field(default=None, ge=0)
    eval_every: int | None = Field(default=None, ge=1)

    def resolved(self) -> dict[str, Any]:
        """These settings with the trainer's defaults filled in."""
        defaults = _trainer_defaults()
        out = {}
        for key in TRAINING_KEYS:
            value = getattr(self, key)
            out[key] = defaults[key] if value is None else value
        return out


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
        """Every axis's list of values (grid axes, then the architecture if it is a list)."""
        values: dict[str, list[Any]] = {}
        if isinstance(self.architecture, list):
            values["architecture"] = list(self.architecture)
        for axis in AXES:
            if axis in self.grid and isinstance(self.grid[axis], list):
                values[axis] = list(self.grid[axis])
        return values

    def grid_axes(self) -> list[str]:
        """Names of the axes this experiment varies, in canonical order."""
        return [a for a in AXES if a in self.axis_values()]


class ZooSpec(_Strict):
    """A validated zoo spec. Build one with `load_spec` or `parse_spec`."""

    name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    description: str = ""
    seeds: list[int] = Field(min_length=1)
    training: TrainingSection = Field(default_factory=TrainingSection)
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


# Bump when a change to the trainer, the architectures, the trajectory recorder or the data
# preparation can change a trained model's numbers: it is part of every zoo id, so zoos built
# by older code are then rebuilt instead of silently mixed with new ones. (A hash of the
# source did this automatically but also invalidated every zoo on a cosmetic edit.)
TRAINING_CODE_VERSION = "1"


def code_version() -> str:
    """The version of the code that trains zoo models (see TRAINING_CODE_VERSION)."""
    return f"training-{TRAINING_CODE_VERSION}"


@dataclass(frozen=True)
class ModelConfig:
    """One model of a zoo: its training config, the experiment's grid axes and its hp strings."""

    train: Any  # model_zoo.trainer.TrainConfig
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


def config_hash(train_config: Any, *, with_seed: bool) -> str:
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


def load_spec(name_or_path: str | Path) -> ZooSpec:
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
        return parse_spec(ref.read_text(), source=str(ref))
    if not path.is_file():
        raise SpecError(f"spec file {path} does not exist")
    return parse_spec(path.read_text(), source=str(path))


def parse_spec(text: str, *, source: str = "<string>") -> ZooSpec:
    """Parse and validate spec text; `source` names the file in error messages."""
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
    problems = []
    for i, exp in enumerate(spec.experiments):
        problems += [f"experiments[{i}] ({exp.task}): {p}" for p in _check_experiment(exp)]
    if problems:
        raise SpecError(f"{source}: invalid spec:\n  " + "\n  ".join(problems))
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


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check_value(axis: str, value: Any, task: str) -> str | None:
    """Why `value` is invalid for `axis` (None if it is valid)."""
    if axis == "lr":
        ok = _is_number(value) and value > 0
        return None if ok else f"lr must be a number > 0, got {value!r}"
    if axis == "weight_decay":
        ok = _is_number(value) and value >= 0
        return None if ok else f"weight_decay must be a number >= 0, got {value!r}"
    if axis in ("dropout", "label_noise"):
        ok = _is_number(value) and 0 <= value < 1
        return None if ok else f"{axis} must be a number in [0, 1), got {value!r}"
    if axis in ("batch_size", "width", "depth"):
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        return None if ok else f"{axis} must be an integer >= 1, got {value!r}"
    if axis == "train_size":
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            return f"train_size must be an integer >= 1, got {value!r}"
        n = pool_size(task)
        return None if value <= n else f"train_size {value} exceeds the {task} pool of {n} examples"
    if axis == "optimizer":
        ok = value in OPTIMIZERS
        return None if ok else f"optimizer must be one of {OPTIMIZERS}, got {value!r}"
    if axis == "augmentation":
        ok = isinstance(value, bool)
        return None if ok else f"augmentation must be true or false, got {value!r}"
    if axis == "architecture":
        return _check_architecture(value, task)
    raise AssertionError(axis)


def _check_architecture(name: Any, task: str) -> str | None:
    from model_zoo.architectures import ARCHITECTURES
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
    return None


def _unknown_axis(axis: str) -> str:
    if axis == "seed":
        return "unknown axis 'seed': seeds come from the top-level `seeds = [...]`"
    return f"unknown axis {axis!r}{_did_you_mean(axis, AXES)} (axes: {', '.join(AXES)})"


def _check_experiment(exp: Experiment) -> list[str]:
    from model_zoo.data import TASKS

    problems: list[str] = []
    if exp.task not in TASKS:
        return [f"unknown task {exp.task!r}{_did_you_mean(exp.task, list(TASKS))} (tasks: {', '.join(TASKS)})"]
    for section, mapping in (("fixed", exp.fixed), ("grid", exp.grid)):
        for axis in mapping:
            if axis not in AXES:
                problems.append(f"{section}: {_unknown_axis(axis)}")
    if "architecture" in exp.fixed or "architecture" in exp.grid:
        problems.append(
            "architecture is given by the experiment's `architecture` key (a string or a list), "
            "not in fixed/grid"
        )
    for axis in sorted(set(exp.fixed) & set(exp.grid)):
        problems.append(f"axis {axis!r} is given both in fixed and in grid; keep one")
    for axis, value in exp.fixed.items():
        if axis in AXES and axis != "architecture":
            why = _check_value(axis, value, exp.task)
            if why:
                problems.append(f"fixed.{axis}: {why}")
    values = {"architecture": exp.architectures}
    for axis, vals in exp.grid.items():
        if axis in AXES and axis != "architecture":
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
        dups = sorted({format_value(v) for v, k in zip(vals, keys) if keys.count(k) > 1})
        if dups:
            problems.append(f"{where}: duplicate values {dups}")
    return problems


def _dup_key(v: Any) -> Any:
    # 1 and 1.0 name the same grid point; True and 1 do not.
    return ("b", v) if isinstance(v, bool) else ("n", float(v)) if _is_number(v) else ("s", v)


# ---------------------------------------------------------------------------------------------
# Expansion


def expand(spec: ZooSpec) -> list[ModelConfig]:
    """Every model of the spec: the full factorial grid of each experiment x seeds.

    Order is deterministic: experiments in file order, then grid points in row-major order
    over the axes (canonical axis order, values in the order given), then seeds.
    """
    from model_zoo.trainer import TrainConfig

    training = spec.training.resolved()
    out: list[ModelConfig] = []
    seen: set[str] = set()
    for exp in spec.experiments:
        axis_values = exp.axis_values()
        axes = tuple(exp.grid_axes())
        base = dict(TASK_DEFAULTS[exp.task])
        base.update(exp.fixed)
        if isinstance(exp.architecture, str):
            base["architecture"] = exp.architecture
        for point in itertools.product(*(axis_values[a] for a in axes)):
            values = dict(base)
            values.update(dict(zip(axes, point)))
            hp = {a: format_value(values[a]) for a in AXES}
            for seed in spec.seeds:
                cfg = TrainConfig(
                    task=exp.task,
                    architecture=values["architecture"],
                    seed=seed,
                    lr=float(values["lr"]),
                    batch_size=int(values["batch_size"]),
                    width=int(values["width"]),
                    depth=int(values["depth"]),
                    weight_decay=float(values["weight_decay"]),
                    dropout=float(values["dropout"]),
                    optimizer=str(values["optimizer"]),
                    train_size=int(values["train_size"]),
                    label_noise=float(values["label_noise"]),
                    augmentation=bool(values["augmentation"]),
                    **training,
                )
                mc = ModelConfig(train=cfg, axes=axes, hp=hp)
                if mc.model_id in seen:
                    raise SpecError(
                        f"{spec.source}: model {mc.model_id} appears twice; two experiments "
                        f"give the same config for task {exp.task!r}"
                    )
                seen.add(mc.model_id)
                out.append(mc)
    return out
