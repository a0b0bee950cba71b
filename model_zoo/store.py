"""The zoo on disk: atomic per-model writes, the manifest, the answers table, hashing, verification.

Layout (docs/ARCHITECTURE.md)::

    <zoo>/public/zoo.json, spec.toml, manifest.parquet, data/<task>/{train.npz,info.json},
                 models/<model_id>/{config.json, init.safetensors, final.safetensors,
                                    trajectory.safetensors, curve.json}
    <zoo>/answers/models/<model_id>.json, answers.parquet

A model is written into ``public/models/.tmp-<id>-<pid>/``, fsynced, then renamed into place;
its answer is written (atomically) *before* that rename, so a model whose public directory
exists always has its answer. A model is done only when both exist. ``config.json`` records the
sha256 of the model's other files at write time; the manifest adds config.json's own hash, so
any later change to any file is caught by `verify` or when the read API loads it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PUBLIC = "public"
ANSWERS = "answers"
MODEL_FILES = ("config.json", "init.safetensors", "final.safetensors", "trajectory.safetensors", "curve.json")
TMP_PREFIX = ".tmp-"
ANSWER_COLUMNS = ("train_error", "train_loss", "test_error", "test_loss", "gap", "shift_error")
MANIFEST_BASE_COLUMNS = (
    "model_id", "task", "architecture", "seed", "status", "config_id", "axes",
    "n_params", "steps", "steps_to_converge", "train_seconds",
)


class ZooIntegrityError(RuntimeError):
    """A zoo file is missing, unreadable or does not match its recorded hash."""

    def __init__(self, path: Path | str, detail: str):
        self.path = Path(path)
        self.detail = detail
        super().__init__(f"{path}: {detail} (rebuild the zoo or run `gapbench zoo verify` for a full report)")


@dataclass(frozen=True)
class Problem:
    """One integrity problem found by `verify`."""

    path: Path
    kind: str  # "missing" | "hash_mismatch" | "unreadable" | "not_in_manifest" | "leftover_tmp" | ...
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"


@dataclass(frozen=True)
class ZooLayout:
    """Paths of one zoo. ``answers`` is None when only the public part is at hand."""

    public: Path
    answers: Path | None

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> ZooLayout:
        """Layout of the zoo at `path`: the zoo root, or its ``public/`` directory."""
        p = Path(path).resolve()
        if (p / PUBLIC).is_dir() or not (p / "zoo.json").exists() and p.name != PUBLIC:
            return cls(public=p / PUBLIC, answers=p / ANSWERS)
        answers = p.parent / ANSWERS
        return cls(public=p, answers=answers if answers.is_dir() else None)

    @property
    def root(self) -> Path:
        return self.public.parent

    @property
    def models_dir(self) -> Path:
        return self.public / "models"

    def model_dir(self, model_id: str) -> Path:
        return self.models_dir / model_id

    @property
    def zoo_json(self) -> Path:
        return self.public / "zoo.json"

    @property
    def spec_toml(self) -> Path:
        return self.public / "spec.toml"

    @property
    def manifest(self) -> Path:
        return self.public / "manifest.parquet"

    def data_dir(self, task: str) -> Path:
        return self.public / "data" / task

    def _require_answers(self) -> Path:
        if self.answers is None:
            raise FileNotFoundError(f"{self.public}: this zoo has no answers/ directory beside its public part")
        return self.answers

    def answer_file(self, model_id: str) -> Path:
        return self._require_answers() / "models" / f"{model_id}.json"

    @property
    def answers_table(self) -> Path:
        return self._require_answers() / "answers.parquet"


# ---------------------------------------------------------------------------------------------
# hashing and atomic writes


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")
    try:
        _write_synced(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def to_json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True, default=_json_default) + "\n").encode()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple | set):
        return list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, to_json_bytes(obj))


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{path.name}-{os.getpid()}")
    try:
        frame.to_parquet(tmp, index=False)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ZooIntegrityError(path, "file is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ZooIntegrityError(path, f"unreadable JSON ({exc})") from None


def read_parquet(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ZooIntegrityError(path, "file is missing")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupted file
        raise ZooIntegrityError(path, f"unreadable parquet ({type(exc).__name__}: {exc})") from None


def read_checked(path: Path, sha256: str | None) -> bytes:
    """The bytes of `path`, checked against `sha256` when given; raises ZooIntegrityError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ZooIntegrityError(path, "file is missing") from None
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise ZooIntegrityError(path, f"sha256 {sha256_bytes(data)[:12]}... does not match the recorded {sha256[:12]}...")
    return data


# ---------------------------------------------------------------------------------------------
# per-model writes


def model_is_done(layout: ZooLayout, model_id: str) -> bool:
    """True when the model's public directory and its answer both exist."""
    return (layout.model_dir(model_id) / "config.json").is_file() and layout.answer_file(model_id).is_file()


def write_model(
    layout: ZooLayout, model_id: str, *, config: dict[str, Any], blobs: dict[str, bytes], answer: dict[str, Any]
) -> None:
    """Atomically publish one model: answer first, then the public directory by rename.

    `blobs` holds every file of MODEL_FILES except config.json; their sha256 go into
    ``config["files"]``. If the model's directory already exists (another process finished it
    first), the freshly written copy is discarded.
    """
    missing = set(MODEL_FILES) - {"config.json"} - set(blobs)
    if missing:
        raise ValueError(f"model {model_id}: files {sorted(missing)} were not given")
    config = dict(config, files={name: sha256_bytes(data) for name, data in sorted(blobs.items())})
    atomic_write_json(layout.answer_file(model_id), answer)
    final = layout.model_dir(model_id)
    if final.exists():
        return
    tmp = layout.models_dir / f"{TMP_PREFIX}{model_id}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        for name, data in blobs.items():
            _write_synced(tmp / name, data)
        _write_synced(tmp / "config.json", to_json_bytes(config))
        _fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            shutil.rmtree(tmp)  # another process published the same model first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(layout.models_dir)


def clean_tmp(layout: ZooLayout) -> list[Path]:
    """Remove half-written leftovers (``.tmp-*``) of a killed build; returns what was removed."""
    removed = []
    for folder in (layout.models_dir, layout.public, layout.answers, layout.answers and layout.answers / "models"):
        if folder is None or not folder.is_dir():
            continue
        for p in folder.glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
            removed.append(p)
    return removed


def finished_model_ids(layout: ZooLayout) -> list[str]:
    """Ids of the models whose public directory has been published (sorted)."""
    if not layout.models_dir.is_dir():
        return []
    return sorted(p.name for p in layout.models_dir.iterdir() if p.is_dir() and not p.name.startswith(TMP_PREFIX))


# ---------------------------------------------------------------------------------------------
# manifest and answers tables


def manifest_row(layout: ZooLayout, model_id: str) -> dict[str, Any]:
    """One manifest row from a model's config.json (file hashes recorded at write time)."""
    cfg_path = layout.model_dir(model_id) / "config.json"
    config = read_json(cfg_path)
    row: dict[str, Any] = {
        "model_id": model_id,
        "task": config["task"],
        "architecture": config["architecture"],
        "seed": int(config["seed"]),
        "status": config["status"],
        "config_id": config["config_id"],
        "axes": ",".join(config["axes"]),
        "n_params": int(config["n_params"]),
        "steps": int(config["total_steps"]),
        "steps_to_converge": config["steps_to_converge"],
        "train_seconds": float(config["train_seconds"]),
        "_index": int(config["index"]),
    }
    for axis, value in config["hp"].items():
        row[f"hp.{axis}"] = value
    row["sha256.config.json"] = sha256_file(cfg_path)
    for name, digest in config["files"].items():
        row[f"sha256.{name}"] = digest
    return row


def rebuild_manifest(layout: ZooLayout) -> pd.DataFrame:
    """(Re)write manifest.parquet from every published model's config.json; returns it."""
    rows = [manifest_row(layout, mid) for mid in finished_model_ids(layout)]
    frame = pd.DataFrame(rows, columns=None if rows else [*MANIFEST_BASE_COLUMNS, "_index"])
    frame = frame.sort_values("_index", kind="stable").drop(columns="_index").reset_index(drop=True)
    frame["steps_to_converge"] = frame["steps_to_converge"].astype("Int64")
    atomic_write_parquet(layout.manifest, frame)
    return frame


def rebuild_answers(layout: ZooLayout, model_ids: list[str]) -> pd.DataFrame:
    """(Re)write answers.parquet from answers/models/<id>.json for `model_ids` (in that order)."""
    rows = [read_json(layout.answer_file(mid)) for mid in model_ids]
    frame = pd.DataFrame(rows, columns=None if rows else ["model_id", "task", "status", *ANSWER_COLUMNS])
    atomic_write_parquet(layout.answers_table, frame)
    return frame


def load_answers(root: str | os.PathLike[str]) -> pd.DataFrame:
    """The answers table of a zoo (train/test error and loss, gap, shift error per model).

    The only reader of ``answers/``: predictor workers never call it.
    """
    layout = ZooLayout.at(root)
    if layout.answers is None:
        raise FileNotFoundError(f"{root}: no answers/ directory (only the public part of the zoo is here)")
    return read_parquet(layout.answers_table)


# ---------------------------------------------------------------------------------------------
# verification


def verify(root: str | os.PathLike[str]) -> list[Problem]:
    """Check every file of a zoo against its recorded sha256; returns the problems found."""
    layout = ZooLayout.at(root)
    problems: list[Problem] = []

    def guard(path: Path, fn: Any) -> Any:
        try:
            return fn()
        except ZooIntegrityError as exc:
            problems.append(Problem(path, "missing" if "missing" in exc.detail else "unreadable", exc.detail))
            return None

    zoo = guard(layout.zoo_json, lambda: read_json(layout.zoo_json))
    if zoo is not None:
        if not layout.spec_toml.is_file():
            problems.append(Problem(layout.spec_toml, "missing", "file is missing"))
        elif sha256_file(layout.spec_toml) != zoo.get("spec_sha256"):
            problems.append(Problem(layout.spec_toml, "hash_mismatch", "does not match spec_sha256 in zoo.json"))
        for task, files in zoo.get("data", {}).items():
            for name, digest in files.items():
                problems += _check_file(layout.data_dir(task) / name, digest)
    manifest = guard(layout.manifest, lambda: read_parquet(layout.manifest))
    if manifest is None:
        return problems
    sha_cols = [c for c in manifest.columns if c.startswith("sha256.")]
    listed = set(manifest["model_id"])
    for _, row in manifest.iterrows():
        folder = layout.model_dir(row["model_id"])
        for col in sha_cols:
            if isinstance(row[col], str):
                problems += _check_file(folder / col[len("sha256."):], row[col])
        if layout.answers is not None and not layout.answer_file(row["model_id"]).is_file():
            problems.append(Problem(layout.answer_file(row["model_id"]), "missing", "answer of a published model"))
    for mid in finished_model_ids(layout):
        if mid not in listed:
            problems.append(Problem(layout.model_dir(mid), "not_in_manifest", "rebuild the manifest (rerun build)"))
    if layout.models_dir.is_dir():
        for p in layout.models_dir.glob(f"{TMP_PREFIX}*"):
            problems.append(Problem(p, "leftover_tmp", "half-written model of an interrupted build"))
    if layout.answers is not None:
        table = guard(layout.answers_table, lambda: read_parquet(layout.answers_table))
        if table is not None and set(table["model_id"]) != listed:
            problems.append(Problem(layout.answers_table, "incomplete", "models differ from the manifest's"))
    return problems


def _check_file(path: Path, digest: str) -> list[Problem]:
    if not path.is_file():
        return [Problem(path, "missing", "file is missing")]
    actual = sha256_file(path)
    if actual != digest:
        return [Problem(path, "hash_mismatch", f"sha256 {actual[:12]}... != recorded {digest[:12]}...")]
    return []
