"""The held-out twin of a zoo spec: same design, other seeds, shifted grid values, a secret salt.

The official ranking is computed on a zoo nobody can look answers up in: the twin of the public
spec, with the same tasks, protocol, axes and number of values per axis, but other seeds and
every non-zero numeric grid value moved by a factor drawn from a salt kept outside the
repository (``$GAPBENCH_HELDOUT_SALT``, ``$GAPBENCH_HELDOUT_SALT_FILE`` or
``../shared/heldout-salt.txt`` beside the project). Categorical values (architecture,
optimizer, augmentation), depths and zeros (no noise, no decay, no dropout) keep their
meaning. The twin is an ordinary spec (its TOML text is generated, stored in the zoo like any
spec); the salt itself never appears in it, and only aggregate scores of its zoo are published.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from model_zoo.axes import setting
from model_zoo.spec import ZooSpec, parse_spec, pool_size

SALT_ENV = "GAPBENCH_HELDOUT_SALT"
SALT_FILE_ENV = "GAPBENCH_HELDOUT_SALT_FILE"
SHIFT_OCTAVES = 0.35
"""Numeric values move by a factor 2**u, u uniform in [-SHIFT_OCTAVES, SHIFT_OCTAVES] (~0.78x-1.27x)."""
FRACTION_SHIFT = 0.25
"""Fractions in (0, 1) (label noise, dropout) move by a relative factor in [1 - this, 1 + this]."""
_KEPT = frozenset({"architecture", "optimizer", "augmentation", "depth"})


class HeldoutSaltMissing(RuntimeError):
    """No salt is available to derive the held-out spec."""


def salt_file_default() -> Path:
    """``<project>/../shared/heldout-salt.txt`` (the project: the folder holding model_zoo/)."""
    return Path(__file__).resolve().parents[2] / "shared" / "heldout-salt.txt"


def read_salt(path: str | os.PathLike[str] | None = None) -> str:
    """The salt: from ``path``, else ``$GAPBENCH_HELDOUT_SALT``, ``$GAPBENCH_HELDOUT_SALT_FILE``, the default file."""
    if path is None and os.environ.get(SALT_ENV):
        return os.environ[SALT_ENV].strip()
    candidate = Path(path or os.environ.get(SALT_FILE_ENV) or salt_file_default())
    if not candidate.is_file():
        raise HeldoutSaltMissing(
            f"no held-out salt: {candidate} does not exist; set {SALT_ENV} (the salt) or {SALT_FILE_ENV} "
            "(a file holding it). Only the maintainers who publish the official ranking need it."
        )
    salt = candidate.read_text().strip()
    if not salt:
        raise HeldoutSaltMissing(f"{candidate} is empty")
    return salt


def heldout_spec(spec: ZooSpec, salt: str) -> ZooSpec:
    """The held-out twin of ``spec`` under ``salt`` (deterministic in both)."""
    digest = hashlib.sha256((salt + "\n" + spec.canonical_json()).encode()).digest()
    rng = np.random.default_rng(list(digest[:16]))
    seeds = _new_seeds(spec.seeds, rng)
    experiments = []
    for exp in spec.experiments:
        grid = {axis: _shift_values(axis, values, exp.task, rng) if isinstance(values, list) else values
                for axis, values in exp.grid.items()}
        experiments.append({"task": exp.task, "architecture": exp.architecture, "fixed": dict(exp.fixed), "grid": grid})
    text = to_toml({
        "name": f"{spec.name}-heldout",
        "description": f"Held-out twin of {spec.name!r}: other seeds, salted grid values (model_zoo.heldout).",
        "seeds": seeds,
        "training": dict(spec.training),
        "experiments": experiments,
    })
    return parse_spec(text, source=f"<held-out twin of {spec.source}>")


def _new_seeds(seeds: list[int], rng: np.random.Generator) -> list[int]:
    out: list[int] = []
    while len(out) < len(seeds):
        s = int(rng.integers(10_000, 2**31 - 1))
        if s not in seeds and s not in out:
            out.append(s)
    return sorted(out)


def _shift_values(axis: str, values: list[Any], task: str, rng: np.random.Generator) -> list[Any]:
    if axis in _KEPT or not values or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return list(values)
    s = setting(axis)
    for _ in range(1000):
        shifted = [_shift(v, s, task, rng) for v in values]
        if _same_order(values, shifted) and len(set(shifted)) == len(shifted):
            return shifted
    raise ValueError(f"cannot shift grid.{axis} = {values} keeping the values distinct and ordered")


def _shift(value: float | int, s: Any, task: str, rng: np.random.Generator) -> float | int:
    if value == 0:
        return value
    if s.type is float and s.high is not None and s.high <= 1.0 and s.low == 0.0:
        out = float(value) * float(rng.uniform(1 - FRACTION_SHIFT, 1 + FRACTION_SHIFT))
        out = min(out, 0.95 if s.high_open else 1.0)
    else:
        out = float(value) * 2.0 ** float(rng.uniform(-SHIFT_OCTAVES, SHIFT_OCTAVES))
    if s.type is int:
        upper = pool_size(task) if s.name == "train_size" else (s.high or math.inf)
        return int(min(max(round(out), int(s.low or 1)), upper))
    return float(f"{out:.4g}")


def _same_order(a: list[Any], b: list[Any]) -> bool:
    return list(np.argsort(a, kind="stable")) == list(np.argsort(b, kind="stable"))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def to_toml(spec: dict[str, Any]) -> str:
    """A spec dict (name, description, seeds, training, experiments) as TOML text."""
    lines = [f"name = {_toml_value(spec['name'])}", f"description = {_toml_value(spec['description'])}",
             f"seeds = {_toml_value(spec['seeds'])}", ""]
    if spec.get("training"):
        lines.append("[training]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in spec["training"].items()]
        lines.append("")
    for exp in spec["experiments"]:
        lines += ["[[experiments]]", f"task = {_toml_value(exp['task'])}",
                  f"architecture = {_toml_value(exp['architecture'])}", "[experiments.fixed]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in exp["fixed"].items()]
        lines.append("[experiments.grid]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in exp["grid"].items()]
        lines.append("")
    return "\n".join(lines)
