"""The zoo's hyperparameter axes and training-protocol settings: one typed table each.

``AXES`` lists every hyperparameter a spec may fix or vary (name, type, bounds, default);
``PROTOCOL`` lists the training-protocol settings of a spec's ``[training]`` section. Spec
validation, the defaults an experiment inherits, the fields of :class:`TrainConfig` and the
canonical strings models are grouped by all come from these two tables, so adding an axis is
one new ``Setting`` entry. Torch-free: importing this module loads no model code.

Values are checked strictly: a number must be a TOML number (not a string, not a boolean),
finite, and within its bounds; an integer setting must be an integer; a boolean a boolean.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AXES",
    "AXIS_NAMES",
    "OPTIMIZERS",
    "PROTOCOL",
    "PROTOCOL_NAMES",
    "Setting",
    "TrainConfig",
    "WINDOW_OPTIMIZERS",
    "axis_defaults",
    "canonical",
    "setting",
]

OPTIMIZERS: tuple[str, ...] = ("sgd", "adam")
"""``sgd``: SGD with momentum 0.9; ``adam``: Adam with torch's default betas."""

WINDOW_OPTIMIZERS: tuple[str, ...] = ("sgd", "same")
"""How the post-convergence window steps: ``sgd`` (constant-learning-rate SGD, the process the
trajectory measures assume; an SGD recipe simply continues) or ``same`` (the recipe's optimizer)."""


@dataclass(frozen=True)
class Setting:
    """One typed entry: an axis of the grid or a protocol setting.

    ``low``/``high`` bound numbers (inclusive unless ``low_open``/``high_open``); ``choices``
    lists the allowed strings; ``optional`` admits ``None`` (TOML cannot write it, so only a
    default can be None).
    """

    name: str
    type: type
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a valid value of this setting (None when it is)."""
        if value is None:
            return None if self.optional else f"{self.name} needs a value"
        if self.type is bool:
            return None if isinstance(value, bool) else f"{self.name} must be true or false, got {value!r}"
        if self.type is str:
            if not isinstance(value, str):
                return f"{self.name} must be a string, got {value!r}"
            if self.choices and value not in self.choices:
                return f"{self.name} must be one of {list(self.choices)}, got {value!r}"
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            kind = "an integer" if self.type is int else "a number"
            return f"{self.name} must be {kind}, got {type(value).__name__} {value!r}"
        if self.type is int and not isinstance(value, int):
            return f"{self.name} must be an integer, got {value!r}"
        if not math.isfinite(value):
            return f"{self.name} must be finite, got {value!r}"
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return f"{self.name} must be {'>' if self.low_open else '>='} {self.low:g}, got {value!r}"
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return f"{self.name} must be {'<' if self.high_open else '<='} {self.high:g}, got {value!r}"
        return None

    def coerce(self, value: Any) -> Any:
        """The typed value TrainConfig stores (an int given for a float setting becomes a float)."""
        if value is None:
            return None
        return float(value) if self.type is float else value


AXES: tuple[Setting, ...] = (
    Setting("architecture", str, None, "model architecture (model_zoo.architectures registry)"),
    Setting("lr", float, 0.05, "learning rate (constant)", low=0.0, high=10.0, low_open=True),
    Setting("batch_size", int, 64, "minibatch size", low=1, high=65536),
    Setting("width", int, 64, "hidden units / channels per layer", low=1, high=65536),
    Setting("depth", int, 2, "hidden layers / conv blocks", low=1, high=64),
    Setting("weight_decay", float, 0.0, "L2 weight decay (optimizer's weight_decay)", low=0.0, high=1.0),
    Setting("dropout", float, 0.0, "dropout probability", low=0.0, high=1.0, high_open=True),
    Setting("optimizer", str, "sgd", "training optimizer", choices=OPTIMIZERS),
    Setting("train_size", int, 1000, "training examples drawn from the task's pool", low=1, high=10_000_000),
    Setting("label_noise", float, 0.0, "fraction of training labels changed to another class",
            low=0.0, high=1.0, high_open=True),
    Setting("augmentation", bool, False, "seeded per-example data augmentation of the modality"),
)
"""Every grid axis, in canonical order (the seed is not an axis: it comes from ``seeds``)."""

PROTOCOL: tuple[Setting, ...] = (
    Setting("target_ce", float, 0.01, "converged when the full-train-set cross-entropy is <= this",
            low=0.0, high=10.0, low_open=True),
    Setting("max_steps", int, 20_000, "step cap before the window (else status not_converged)",
            low=1, high=10_000_000),
    Setting("window_steps", int, 1000, "post-convergence steps recorded (0: no window, for retraining)",
            low=0, high=1_000_000),
    Setting("window_optimizer", str, "sgd", "optimizer of the window steps", choices=WINDOW_OPTIMIZERS),
    Setting("projection_dim", int, 1024, "dimension of the random projection of large models' iterates",
            low=1, high=65536),
    Setting("exact_max_params", int, 1024, "iterates are stored exactly up to this many parameters",
            low=0, high=1_000_000_000),
    Setting("projection_seed", int, 0, "seed of the zoo's fixed projection map", low=0, high=2**62),
    Setting("eval_every", int, None, "steps between convergence checks (default: once per epoch)",
            low=1, high=10_000_000, optional=True),
)
"""Training-protocol settings shared by all models of a zoo (a spec's ``[training]``)."""

AXIS_NAMES: tuple[str, ...] = tuple(s.name for s in AXES)
PROTOCOL_NAMES: tuple[str, ...] = tuple(s.name for s in PROTOCOL)
_BY_NAME: dict[str, Setting] = {s.name: s for s in (*AXES, *PROTOCOL)}


def setting(name: str) -> Setting:
    """The axis or protocol setting called ``name``."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no axis or protocol setting {name!r}; axes: {', '.join(AXIS_NAMES)}; "
                       f"protocol: {', '.join(PROTOCOL_NAMES)}") from None


def canonical(value: Any) -> str:
    """The canonical string of a grid value as the spec gave it (what models are grouped by).

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


def _validate(self: Any) -> None:
    problems = []
    for name, kind in (("task", str), ("seed", int)):
        value = getattr(self, name)
        if not isinstance(value, kind) or isinstance(value, bool):
            problems.append(f"{name} must be {kind.__name__}, got {value!r}")
    if isinstance(self.seed, int) and self.seed < 0:
        problems.append(f"seed must be >= 0, got {self.seed}")
    for s in (*AXES, *PROTOCOL):
        value = getattr(self, s.name)
        why = s.problem(value)
        if why:
            problems.append(why)
        else:
            object.__setattr__(self, s.name, s.coerce(value))
    if problems:
        raise ValueError(f"invalid TrainConfig for {self.task}/{self.architecture}: " + "; ".join(problems))


def _field(s: Setting) -> tuple[str, type, Any]:
    if s.default is None and not s.optional:
        return (s.name, s.type)  # required (the architecture)
    return (s.name, s.type | None if s.optional else s.type, dataclasses.field(default=s.default))


TrainConfig = dataclasses.make_dataclass(
    "TrainConfig",
    [("task", str), ("seed", int), *(_field(s) for s in (*AXES, *PROTOCOL))],
    frozen=True,
    kw_only=True,
    namespace={
        "__post_init__": _validate,
        "__doc__": (
            "Everything that determines one trained model besides its data: task, seed, one field "
            "per axis of ``AXES`` and per setting of ``PROTOCOL`` (keyword-only, validated)."
        ),
        "__module__": __name__,
    },
)


def axis_defaults(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every axis's default, updated with ``overrides`` (the architecture has none)."""
    out = {s.name: s.default for s in AXES}
    out.update(overrides or {})
    return out


def markdown() -> str:
    """The axis and protocol tables as Markdown (docs/ARCHITECTURE.md embeds it; a test compares)."""

    def bounds(s: Setting) -> str:
        if s.choices:
            return " / ".join(f"`{c}`" for c in s.choices)
        if s.low is None and s.high is None:
            return "—"
        lo = "" if s.low is None else f"{'(' if s.low_open else '['}{s.low:g}"
        hi = "" if s.high is None else f"{s.high:g}{')' if s.high_open else ']'}"
        return f"{lo}, {hi}"

    lines = []
    for title, table in (("Axes (`AXES`)", AXES), ("Protocol settings (`PROTOCOL`, a spec's `[training]`)", PROTOCOL)):
        lines += [f"#### {title}", "", "| name | type | bounds | default | meaning |",
                  "| :--- | :--- | :--- | :--- | :--- |"]
        for s in table:
            default = "—" if s.default is None else f"`{canonical(s.default)}`"
            lines.append(f"| `{s.name}` | {s.type.__name__} | {bounds(s)} | {default} | {s.doc} |")
        lines.append("")
    return "\n".join(lines)
