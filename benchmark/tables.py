"""The tables that pass between stages, declared once: columns, types, keys, and their meaning.

Every stage writes and reads these through :class:`Table` (``frame``, ``validate``, ``read``,
``write``), so a table's columns are named in exactly one place; docs/ARCHITECTURE.md is
checked against this module by a test. A table read from disk that does not match raises one
:class:`TableError` line naming the file and the column or key at fault.

- ``predictions``: one row per (predictor ref, model, seed): the runner's output.
- ``models``: one row per model of a zoo: its grid values and answers (the scoring input).
- ``scores``: one row per (zoo, predictor, task, target, metric, axis): the scoring output.
- ``points``: one row per (predictor, converged model): score for the scatter plots.
- ``runs``: one row per (zoo, predictor): provenance and cost.
- ``board_meta.json``: :class:`BoardMeta`, the board's header.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "BOARD_TABLES",
    "BoardMeta",
    "Column",
    "MODELS",
    "POINTS",
    "PREDICTIONS",
    "RUNS",
    "SCORES",
    "TABLES",
    "Table",
    "TableError",
    "ZooRef",
    "read_board_meta",
    "write_board_meta",
]

_DTYPES = {"str": object, "float": "float64", "int": "int64", "bool": "bool"}


class TableError(ValueError):
    """A table does not match its declaration; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Column:
    """One column: its name, type (``str``, ``float``, ``int``, ``bool``) and meaning."""

    name: str
    type: str
    doc: str


@dataclass(frozen=True)
class Table:
    """A declared table: its file name, its columns in order, and the key that is unique."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    doc: str

    @property
    def file(self) -> str:
        return f"{self.name}.parquet"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def empty(self) -> pd.DataFrame:
        """An empty frame with the declared columns and types."""
        return pd.DataFrame({c.name: pd.Series(dtype=_DTYPES[c.type]) for c in self.columns})

    def frame(self, rows: Iterable[Mapping[str, Any]] | pd.DataFrame, *, source: str = "<rows>") -> pd.DataFrame:
        """A typed, validated frame of this table from rows (dicts) or a frame."""
        data = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        if data.empty and not len(data.columns):
            return self.empty()
        return self.validate(data, source=source)

    def validate(self, frame: pd.DataFrame, *, source: str | os.PathLike[str] = "<frame>") -> pd.DataFrame:
        """``frame`` with exactly the declared columns, in order, typed; raises TableError."""
        where = f"{source}"
        missing = [c for c in self.names if c not in frame.columns]
        extra = [c for c in frame.columns if c not in self.names]
        if missing or extra:
            parts = ([f"missing column(s) {missing}"] if missing else []) + ([f"unexpected column(s) {extra}"] if extra else [])
            raise TableError(f"{where}: not a {self.name} table: {'; '.join(parts)} (see benchmark/tables.py)")
        out = {}
        for col in self.columns:
            out[col.name] = _typed(frame[col.name], col, where, self.name)
        typed = pd.DataFrame(out, index=range(len(frame)))
        if self.key:
            dup = typed.duplicated(list(self.key), keep=False)
            if dup.any():
                first = typed.loc[dup, list(self.key)].iloc[0].to_dict()
                raise TableError(f"{where}: {int(dup.sum())} rows share a key of the {self.name} table, e.g. {first}; "
                                 f"each {tuple(self.key)} must appear once")
        return typed

    def read(self, path: str | os.PathLike[str]) -> pd.DataFrame:
        """Read and validate a parquet file of this table; one TableError line on any problem."""
        path = Path(path)
        if not path.is_file():
            raise TableError(f"{path}: missing (a {self.name} table is expected here)")
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types for a damaged file
            raise TableError(f"{path}: unreadable parquet ({type(exc).__name__}: {exc}); delete it to rebuild it") from None
        return self.validate(frame, source=path)

    def write(self, frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
        """Validate and write atomically (temporary file, then rename); returns the path."""
        path = Path(path)
        typed = self.validate(frame, source=path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
        try:
            typed.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path


def _typed(series: pd.Series, col: Column, where: str, table: str) -> pd.Series:
    values = series.reset_index(drop=True)
    if col.type == "str":
        bad = values.map(lambda v: not isinstance(v, str))
        if bad.any():
            raise TableError(f"{where}: column {col.name!r} of the {table} table must hold strings, "
                             f"found {values[bad].iloc[0]!r}")
        return values.astype(object)
    if col.type == "bool":
        if values.map(lambda v: isinstance(v, bool | np.bool_)).all():
            return values.astype(bool)
        raise TableError(f"{where}: column {col.name!r} of the {table} table must hold booleans")
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.isna().any() and not values[numeric.isna()].map(_is_nan).all():
        bad = values[numeric.isna() & ~values.map(_is_nan)].iloc[0]
        raise TableError(f"{where}: column {col.name!r} of the {table} table must hold numbers, found {bad!r}")
    if col.type == "int":
        if numeric.isna().any() or not np.all(np.mod(numeric.to_numpy(dtype=float), 1) == 0):
            raise TableError(f"{where}: column {col.name!r} of the {table} table must hold integers")
        return numeric.astype("int64")
    return numeric.astype("float64")


def _is_nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _t(name: str, key: tuple[str, ...], doc: str, *columns: tuple[str, str, str]) -> Table:
    return Table(name, tuple(Column(*c) for c in columns), key, doc)


_ZOO = ("zoo_id", "str", "the zoo's id: <spec name>-<hash of the spec and the training code version>")
_PRED = ("predictor", "str", "registry name of the predictor (or seed_oracle)")
_VERSION = ("version", "str", "the predictor's declared version")
_TASK = ("task", "str", "task name")
_MODEL = ("model_id", "str", "the model's id in its zoo")

PREDICTIONS = _t(
    "predictions", ("predictor", "version", "code_hash", "model_id", "seed"),
    "One row per (predictor, model, seed): the score a predictor gave a model, or why it failed.",
    _ZOO, _MODEL, _TASK, _PRED, _VERSION,
    ("code_hash", "str", "hash of the predictor's code (its module and the predictors.* modules it uses)"),
    ("seed", "int", "the predictor's seed"),
    ("score", "float", "the predictor's output (higher = larger predicted gap); NaN when it failed"),
    ("status", "str", "'ok' or 'failed'"),
    ("reason", "str", "one line saying why it failed ('' when ok)"),
    ("seconds", "float", "wall-clock seconds the job took in its worker"),
)

MODELS = _t(
    "models", ("zoo_id", "model_id"),
    "One row per model of a zoo: its configuration, grid values and answers (what scoring joins).",
    _ZOO, _MODEL, _TASK,
    ("architecture", "str", "architecture name"),
    ("config_id", "str", "hash of the configuration without the seed: the seeds of one configuration share it"),
    ("seed", "int", "training seed"),
    ("status", "str", "'converged' or 'not_converged'"),
    ("axes", "str", "comma-separated axes the model's experiment varies"),
    ("hp", "str", "JSON object axis -> value exactly as the spec wrote it (metrics group by these strings)"),
    ("train_error", "float", "training error of the final weights on the (noisy) training set"),
    ("test_error", "float", "error on the task's test set"),
    ("gap", "float", "test_error - train_error: the generalization gap"),
    ("shift_error", "float", "error on the held-out-speaker shift set (audio; NaN elsewhere)"),
    ("window_drift_share", "float", "stationarity diagnostic of the recorded window (model_zoo.trajectory.drift_share)"),
)

SCORES = _t(
    "scores", ("zoo_id", "predictor", "task", "target", "metric", "axis"),
    "One row per (zoo, predictor, task, target, metric, axis) with its 95% bootstrap interval.",
    _ZOO,
    ("split", "str", "'public' (development zoo, per-model answers published) or 'heldout' (official ranking)"),
    _PRED, _VERSION,
    ("kind", "str", "'predictor', 'baseline' or 'oracle'"),
    ("task", "str", "task name, or 'overall' (mean over tasks)"),
    ("target", "str", "what is ranked: 'gap', 'test_error' or 'shift_error'"),
    ("metric", "str", "metric name (benchmark/metrics/catalog.py)"),
    ("axis", "str", "the hyperparameter axis for per-axis metrics, '' otherwise"),
    ("value", "float", "the metric on the task (NaN where undefined)"),
    ("ci_low", "float", "lower end of the 95% bootstrap interval"),
    ("ci_high", "float", "upper end of the 95% bootstrap interval"),
    ("n_models", "int", "models scored (converged, predictor succeeded)"),
    ("n_units", "int", "units the value averages over: models (tau), groups (psi), bins (CMI), "
                       "environments (sign error), configs (regret)"),
)

POINTS = _t(
    "points", ("zoo_id", "predictor", "model_id"),
    "One row per (predictor, converged model) with a score: the data of the scatter plots (join models for targets and hp).",
    _ZOO, _TASK, _MODEL, _PRED,
    ("score", "float", "the predictor's score of the model (the seed oracle: the other seeds' mean gap)"),
)

RUNS = _t(
    "runs", ("zoo_id", "predictor"),
    "One row per (zoo, predictor): provenance and cost.",
    _ZOO,
    ("split", "str", "'public' or 'heldout'"),
    _PRED, _VERSION,
    ("code_hash", "str", "hash of the predictor's code"),
    ("family", "str", "predictor family"),
    ("kind", "str", "'predictor', 'baseline' or 'oracle'"),
    ("reference", "str", "the paper the predictor follows"),
    ("url", "str", "link to the paper (PredictorMeta.url; '' when none): the board links the reference to it"),
    ("requires", "str", "comma-separated parts of the subject it reads "
                        "(weights, init, train_data, trajectory, retrain, hparams)"),
    ("notes", "str", "protocol deviations shown on the board"),
    ("sandboxed", "bool", "whether its workers ran in the sandbox (False: --no-sandbox, marked on the board)"),
    ("git_commit", "str", "commit of the gapbench code that ran it"),
    ("package_versions", "str", "JSON object of package versions"),
    ("seconds_median", "float", "median seconds per model"),
    ("seconds_total", "float", "total seconds over the zoo"),
    ("failure_rate", "float", "fraction of models on which it failed"),
    ("n_models", "int", "models it was run on"),
    ("date", "str", "ISO date of the run"),
)

TABLES: tuple[Table, ...] = (PREDICTIONS, MODELS, SCORES, POINTS, RUNS)
BOARD_TABLES: tuple[Table, ...] = (SCORES, RUNS, POINTS, MODELS, PREDICTIONS)
"""The tables the published board is rendered from (leaderboards/data/)."""


class ZooRef(BaseModel):
    """A zoo as the board names it: spec id, content hash and size per task."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zoo_id: str
    content_hash: str
    spec_name: str
    n_models: dict[str, int]


class BoardMeta(BaseModel):
    """The board's header (``board_meta.json``): the zoos it ranks on and where the numbers come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    public: ZooRef
    heldout: ZooRef | None = None
    git_commit: str
    date: str
    sandboxed: bool = True

    @property
    def zoo_id(self) -> str:
        return self.public.zoo_id


def read_board_meta(path: str | os.PathLike[str]) -> BoardMeta:
    """Read and validate ``board_meta.json``; one TableError line on any problem."""
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: missing (the board's header: zoos, commit, date)")
    try:
        return BoardMeta.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValidationError, json.JSONDecodeError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": (), "msg": str(exc)}
        loc = ".".join(str(p) for p in first["loc"])
        raise TableError(f"{path}: invalid board metadata: {loc + ': ' if loc else ''}{first['msg']}") from None


def write_board_meta(meta: BoardMeta, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(meta.model_dump(mode="json"), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def markdown() -> str:
    """Every table's declaration as Markdown (docs/ARCHITECTURE.md embeds it; a test compares)."""
    lines = []
    for table in TABLES:
        lines += [f"#### `{table.file}`", "", table.doc, f"Key: {', '.join(f'`{k}`' for k in table.key)}.", "",
                  "| column | type | meaning |", "| :--- | :--- | :--- |"]
        lines += [f"| `{c.name}` | {c.type} | {c.doc} |" for c in table.columns]
        lines.append("")
    lines += ["#### `board_meta.json`", "", BoardMeta.__doc__ or "", "",
              "| field | meaning |", "| :--- | :--- |",
              "| `public` | the development zoo: `zoo_id`, `content_hash`, `spec_name`, `n_models` per task |",
              "| `heldout` | the held-out zoo of the official ranking (same fields), or null |",
              "| `git_commit`, `date` | where and when the numbers were computed |",
              "| `sandboxed` | whether every predictor ran in the sandbox |", ""]
    return "\n".join(lines)
