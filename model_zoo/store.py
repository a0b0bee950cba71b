"""The zoo on disk or on object storage: atomic per-model writes, the manifest, the answers table,
hashing, verification.

Layout (docs/ARCHITECTURE.md)::

    <zoo>/public/zoo.json, spec.toml, manifest.parquet, data/<task>/{train.npz,info.json},
                 models/<model_id>/{config.json, init.safetensors, final.safetensors,
                                    trajectory.safetensors, curve.json}
    <zoo>/answers/models/<model_id>.json, answers.parquet

A zoo lives in a local folder or at any fsspec URL (``s3://bucket/zoo``, ``gs://...``,
``memory://...``; ``file://`` is a local folder). Locations are ``pathlib.Path`` for local
folders and :class:`FsPath` for URLs; both offer the few path methods this package uses
(``/``, ``name``, ``parent``, ``exists``, ``is_file``, ``is_dir``, ``read_bytes``, ``glob``), and
the functions here take either (:func:`as_path` turns a string into one).

Locally a model is written into ``public/models/.tmp-<id>-<pid>/``, fsynced, then renamed into
place. An object store has no rename, but writes each object whole or not at all: there a
model's files are written first and its ``config.json`` last, so ``config.json`` marks a
finished model. Either way the model's answer is written (atomically) *before* it is
published, so a published model always has its answer, and a model is done only when both
exist. ``config.json`` records the sha256 of the model's other files at write time; the
manifest adds config.json's own hash, so any later change to any file is caught by `verify` or
when the read API loads it. The same bytes give the same hashes wherever they are stored.
"""

from __future__ import annotations

import hashlib
import io
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
TIMING_FILE = "timing.json"
"""Per-model wall-clock seconds: beside MODEL_FILES, never hashed (two builds never share it)."""
TMP_PREFIX = ".tmp-"
ANSWER_COLUMNS = ("train_error", "train_loss", "test_error", "test_loss", "gap", "shift_error")
MANIFEST_BASE_COLUMNS = (
    "model_id", "task", "architecture", "seed", "status", "config_id", "axes",
    "n_params", "steps", "steps_to_converge", "train_seconds", "window_drift_share",
)


# ---------------------------------------------------------------------------------------------
# locations: local paths and fsspec URLs


def is_url(location: str | os.PathLike[str] | FsPath) -> bool:
    """True for an fsspec URL other than ``file://`` (``s3://``, ``gs://``, ``memory://``, ...)."""
    if isinstance(location, FsPath):
        return True
    text = os.fspath(location) if isinstance(location, os.PathLike) else str(location)
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.replace("+", "").replace("-", "").isalnum() and scheme != "file"


class FsPath:
    """A file or folder on an fsspec filesystem, with the pathlib methods the zoo code uses.

    ``FsPath.from_url("s3://bucket/zoo")``; ``str()`` gives the URL back (what a job argument
    carries to another process, which reopens it with the same fsspec configuration: storage
    options come from fsspec's configuration and the environment, e.g. ``AWS_ENDPOINT_URL``).
    Directory listings are never cached: other processes write the same zoo.
    """

    __slots__ = ("fs", "path")

    def __init__(self, fs: Any, path: str):
        self.fs = fs
        self.path = path.rstrip("/") or "/"

    @classmethod
    def from_url(cls, url: str) -> FsPath:
        from fsspec.core import url_to_fs

        try:
            fs, path = url_to_fs(url, use_listings_cache=False)
        except ImportError as exc:  # e.g. s3fs/gcsfs not installed
            raise ValueError(f"{url}: cannot open this URL ({exc})") from None
        return cls(fs, path)

    def __str__(self) -> str:
        return self.fs.unstrip_protocol(self.path)

    def __repr__(self) -> str:
        return f"FsPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FsPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __truediv__(self, other: str | os.PathLike[str]) -> FsPath:
        return FsPath(self.fs, f"{self.path.rstrip('/')}/{os.fspath(other).strip('/')}")

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> FsPath:
        head = self.path.rstrip("/").rsplit("/", 1)[0]
        return FsPath(self.fs, head if head else "/")

    def with_name(self, name: str) -> FsPath:
        return self.parent / name

    def resolve(self) -> FsPath:
        return self

    def exists(self) -> bool:
        return bool(self.fs.exists(self.path))

    def is_file(self) -> bool:
        return bool(self.fs.isfile(self.path))

    def is_dir(self) -> bool:
        return bool(self.fs.isdir(self.path))

    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        """Write the object in one request (readers see the old object or the new one)."""
        self.fs.pipe_file(self.path, bytes(data))
        return len(data)

    def iterdir(self) -> list[FsPath]:
        try:
            entries = self.fs.ls(self.path, detail=False)
        except FileNotFoundError:
            return []
        own = self.path.rstrip("/")
        return [FsPath(self.fs, e) for e in entries if e.rstrip("/") != own]

    def glob(self, pattern: str) -> list[FsPath]:
        return [FsPath(self.fs, p) for p in sorted(self.fs.glob(f"{self.path.rstrip('/')}/{pattern}"))]

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Folders exist implicitly on object stores; this makes them where the filesystem has them."""
        self.fs.makedirs(self.path, exist_ok=True)

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def rmtree(self) -> None:
        """Remove this folder and everything under it (missing: nothing to do)."""
        try:
            self.fs.rm(self.path, recursive=True)
        except FileNotFoundError:
            pass

    def files(self) -> dict[str, int]:
        """Every file under this folder: relative path -> size in bytes (one listing request)."""
        try:
            found = self.fs.find(self.path, detail=True)
        except FileNotFoundError:
            return {}
        base = self.path.rstrip("/") + "/"
        return {p[len(base):]: int(info.get("size") or 0) for p, info in found.items()
                if p.startswith(base) and info.get("type", "file") == "file"}


Location = Path | FsPath


def as_path(location: str | os.PathLike[str] | FsPath) -> Location:
    """A location as a path: an :class:`FsPath` for a URL, else a local ``Path`` (``file://`` stripped)."""
    if isinstance(location, FsPath | Path):
        return location
    text = os.fspath(location)
    if is_url(text):
        return FsPath.from_url(text)
    if text.startswith("file://"):
        text = text[len("file://"):]
    return Path(text)


def list_files(folder: Location) -> dict[str, int]:
    """Every file under ``folder`` (recursively): relative POSIX path -> size in bytes; {} if absent."""
    if isinstance(folder, FsPath):
        return folder.files()
    out: dict[str, int] = {}
    if not folder.is_dir():
        return out
    for dirpath, _, names in os.walk(folder):
        for name in names:
            p = Path(dirpath) / name
            out[p.relative_to(folder).as_posix()] = p.stat().st_size
    return out


def _rmtree(path: Location) -> None:
    if isinstance(path, FsPath):
        path.rmtree()
    elif path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


class ZooIntegrityError(RuntimeError):
    """A zoo file is missing, unreadable or does not match its recorded hash."""

    def __init__(self, path: Location | str, detail: str):
        self.path = path if isinstance(path, FsPath) else Path(path)
        self.detail = detail
        super().__init__(f"{path}: {detail} (rebuild the zoo or run `gapbench zoo verify` for a full report)")


@dataclass(frozen=True)
class Problem:
    """One integrity problem found by `verify`."""

    path: Location
    kind: str  # "missing" | "hash_mismatch" | "unreadable" | "not_in_manifest" | "leftover_tmp" | ...
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}: {self.detail}"


@dataclass(frozen=True)
class ZooLayout:
    """Paths of one zoo (local ``Path``s or ``FsPath``s). ``answers`` is None when only the public part is at hand."""

    public: Location
    answers: Location | None

    @classmethod
    def at(cls, path: str | os.PathLike[str] | FsPath) -> ZooLayout:
        """Layout of the zoo at `path` (a folder or URL): the zoo root, or its ``public/`` directory."""
        p = as_path(path).resolve()
        if (p / PUBLIC).is_dir() or not (p / "zoo.json").exists() and p.name != PUBLIC:
            return cls(public=p / PUBLIC, answers=p / ANSWERS)
        answers = p.parent / ANSWERS
        return cls(public=p, answers=answers if answers.is_dir() else None)

    @classmethod
    def for_root(cls, root: str | os.PathLike[str] | FsPath) -> ZooLayout:
        """The layout a build writes at ``root`` (a local folder, resolved, or a URL)."""
        p = as_path(root).resolve()
        return cls(public=p / PUBLIC, answers=p / ANSWERS)

    @property
    def remote(self) -> bool:
        """True when the zoo is at a URL (an object store): no renames, ``config.json`` marks a model done."""
        return isinstance(self.public, FsPath)

    @property
    def root(self) -> Location:
        return self.public.parent

    @property
    def models_dir(self) -> Location:
        return self.public / "models"

    def model_dir(self, model_id: str) -> Location:
        return self.models_dir / model_id

    @property
    def zoo_json(self) -> Location:
        return self.public / "zoo.json"

    @property
    def spec_toml(self) -> Location:
        return self.public / "spec.toml"

    @property
    def manifest(self) -> Location:
        return self.public / "manifest.parquet"

    def data_dir(self, task: str) -> Location:
        return self.public / "data" / task

    def _require_answers(self) -> Location:
        if self.answers is None:
            raise FileNotFoundError(f"{self.public}: this zoo has no answers/ directory beside its public part")
        return self.answers

    def answer_file(self, model_id: str) -> Location:
        return self._require_answers() / "models" / f"{model_id}.json"

    @property
    def answers_table(self) -> Location:
        return self._require_answers() / "answers.parquet"


# ---------------------------------------------------------------------------------------------
# hashing and atomic writes


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Location) -> str:
    h = hashlib.sha256()
    opener = path.fs.open(path.path, "rb") if isinstance(path, FsPath) else open(path, "rb")
    with opener as f:
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


def atomic_write_bytes(path: Location, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a part."""
    if isinstance(path, FsPath):
        path.write_bytes(data)  # one object, written whole or not at all
        return
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
    if isinstance(obj, Path | FsPath):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in JSON")


def atomic_write_json(path: Location, obj: Any) -> None:
    atomic_write_bytes(path, to_json_bytes(obj))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    """A frame as parquet file bytes (what `atomic_write_parquet` writes)."""
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def atomic_write_parquet(path: Location, frame: pd.DataFrame) -> None:
    if isinstance(path, FsPath):
        path.write_bytes(parquet_bytes(frame))
        return
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


def read_json(path: Location) -> Any:
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ZooIntegrityError(path, "file is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ZooIntegrityError(path, f"unreadable JSON ({exc})") from None


def read_parquet(path: Location) -> pd.DataFrame:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ZooIntegrityError(path, "file is missing") from None
    except IsADirectoryError:
        raise ZooIntegrityError(path, "a folder where a parquet file is expected") from None
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupted file
        raise ZooIntegrityError(path, f"unreadable parquet ({type(exc).__name__}: {exc})") from None


def read_checked(path: Location, sha256: str | None) -> bytes:
    """The bytes of `path`, checked against `sha256` when given; raises ZooIntegrityError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ZooIntegrityError(path, "file is missing") from None
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise ZooIntegrityError(path, f"sha256 {sha256_bytes(data)[:12]}... does not match the recorded "
                                      f"{sha256[:12]}...")
    return data


# ---------------------------------------------------------------------------------------------
# per-model writes


def model_is_done(layout: ZooLayout, model_id: str) -> bool:
    """True when the model's public directory (its config.json) and its answer both exist."""
    return (layout.model_dir(model_id) / "config.json").is_file() and layout.answer_file(model_id).is_file()


def done_model_ids(layout: ZooLayout) -> set[str]:
    """Ids of the finished models (published and answered), from two listings: for many models on a URL."""
    answered = {name[: -len(".json")] for name in list_files(layout._require_answers() / "models")
                if name.endswith(".json") and "/" not in name and not name.startswith(TMP_PREFIX)}
    return answered & set(finished_model_ids(layout))


def write_model(
    layout: ZooLayout, model_id: str, *, config: dict[str, Any], blobs: dict[str, bytes], answer: dict[str, Any],
    timing: dict[str, Any] | None = None,
) -> None:
    """Atomically publish one model: answer first, then the public directory (see the module docstring).

    `blobs` holds every file of MODEL_FILES except config.json; their sha256 go into
    ``config["files"]``. ``timing`` (wall-clock seconds: the one thing two builds never share)
    goes to ``TIMING_FILE`` beside them, outside the hashed files, so that rebuilds are
    byte-identical. If the model is already published (another process finished it first),
    the freshly written copy is discarded.
    """
    missing = set(MODEL_FILES) - {"config.json"} - set(blobs)
    if missing:
        raise ValueError(f"model {model_id}: files {sorted(missing)} were not given")
    config = dict(config, files={name: sha256_bytes(data) for name, data in sorted(blobs.items())})
    blobs = {**blobs, TIMING_FILE: to_json_bytes(timing or {})}
    atomic_write_json(layout.answer_file(model_id), answer)
    final = layout.model_dir(model_id)
    if isinstance(final, FsPath):
        if (final / "config.json").exists():
            return
        for name, data in blobs.items():
            (final / name).write_bytes(data)
        (final / "config.json").write_bytes(to_json_bytes(config))  # last: it marks the model done
        return
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


def partial_model_dirs(layout: ZooLayout) -> list[Location]:
    """Model folders on a URL that hold files but no config.json: writes a killed build left half done."""
    if not layout.remote:
        return []
    files = list_files(layout.models_dir)
    folders = {rel.split("/", 1)[0] for rel in files if "/" in rel}
    done = {rel.split("/", 1)[0] for rel in files if rel.count("/") == 1 and rel.endswith("/config.json")}
    return [layout.models_dir / name for name in sorted(folders - done)]


def clean_tmp(layout: ZooLayout) -> list[Location]:
    """Remove half-written leftovers of a killed build (``.tmp-*``; on a URL, model folders
    without config.json); returns what was removed. Run it only while no build writes the zoo.
    """
    removed: list[Location] = []
    for folder in (layout.models_dir, layout.public, layout.answers, layout.answers and layout.answers / "models"):
        if folder is None or not folder.is_dir():
            continue
        for p in folder.glob(f"{TMP_PREFIX}*"):
            _rmtree(p)
            removed.append(p)
    for p in partial_model_dirs(layout):
        _rmtree(p)
        removed.append(p)
    return removed


def finished_model_ids(layout: ZooLayout) -> list[str]:
    """Ids of the models whose public directory has been published (sorted)."""
    if isinstance(layout.models_dir, FsPath):
        return sorted(rel.split("/", 1)[0] for rel in list_files(layout.models_dir)
                      if rel.count("/") == 1 and rel.endswith("/config.json") and not rel.startswith(TMP_PREFIX))
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
        "train_seconds": _train_seconds(layout, model_id),
        "window_drift_share": float(config["trajectory"].get("drift_share", float("nan"))),
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


def rebuild_answers(layout: ZooLayout, model_ids: list[str]) -> str:
    """(Re)write answers.parquet from answers/models/<id>.json for `model_ids` (in that order).

    Returns the table's sha256 (recorded in zoo.json as ``answers_sha256``, checked by verify).
    """
    rows = [read_json(layout.answer_file(mid)) for mid in model_ids]
    frame = pd.DataFrame(rows, columns=None if rows else ["model_id", "task", "status", *ANSWER_COLUMNS])
    atomic_write_parquet(layout.answers_table, frame)
    return sha256_file(layout.answers_table)


def content_hash(manifest: pd.DataFrame, data: dict[str, dict[str, str]]) -> str:
    """sha256 of what a zoo holds: every model's file hashes and the task data's hashes.

    Two builds with the same content hash hold byte-identical public files. It is computed
    from the manifest (model id and ``sha256.*`` columns) and zoo.json's ``data`` hashes.
    """
    sha_cols = sorted(c for c in manifest.columns if c.startswith("sha256."))
    models = sorted(
        [row["model_id"], *(row[c] if isinstance(row[c], str) else "" for c in sha_cols)]
        for row in manifest.to_dict("records")
    )
    payload = json.dumps({"columns": sha_cols, "models": models, "data": data}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def load_answers(root: str | os.PathLike[str] | FsPath) -> pd.DataFrame:
    """The answers table of a zoo (train/test error and loss, gap, shift error per model).

    The only reader of ``answers/``: predictor workers never call it.
    """
    layout = ZooLayout.at(root)
    if layout.answers is None:
        raise FileNotFoundError(f"{root}: no answers/ directory (only the public part of the zoo is here)")
    return read_parquet(layout.answers_table)


def copy_zoo(source: str | os.PathLike[str] | FsPath, target: str | os.PathLike[str] | FsPath) -> int:
    """Copy a built zoo (public part and answers) to another folder or URL; returns the models copied.

    Each model goes through `write_model` (answer, files, config.json last), so the target is
    resumable like a build: models already there are skipped. The target's manifest and answers
    table are rebuilt from its own files and zoo.json is written last, so `verify(target)` checks
    the copy against the hashes recorded at build time.
    """
    src = ZooLayout.at(source)
    dst = ZooLayout.for_root(target)
    if src.answers is None:
        raise FileNotFoundError(f"{source}: no answers/ beside the public part; copy a whole zoo")
    zoo = read_json(src.zoo_json)
    if dst.zoo_json.exists() and read_json(dst.zoo_json).get("zoo_id") != zoo.get("zoo_id"):
        raise ValueError(f"{dst.zoo_json}: holds another zoo than {zoo.get('zoo_id')!r}; copy into an empty location")
    for task, files in zoo.get("data", {}).items():
        for name, digest in files.items():
            target_file = dst.data_dir(task) / name
            if not (target_file.is_file() and sha256_file(target_file) == digest):
                atomic_write_bytes(target_file, read_checked(src.data_dir(task) / name, digest))
    atomic_write_bytes(dst.spec_toml, read_checked(src.spec_toml, zoo.get("spec_sha256")))
    manifest = read_parquet(src.manifest)
    clean_tmp(dst)
    done = done_model_ids(dst)
    copied = 0
    for row in manifest.to_dict("records"):
        mid = row["model_id"]
        if mid in done:
            continue
        folder = src.model_dir(mid)
        config = json.loads(read_checked(folder / "config.json", row.get("sha256.config.json")))
        blobs = {name: read_checked(folder / name, config["files"][name]) for name in config["files"]}
        config.pop("files")
        timing = {"train_seconds": row.get("train_seconds")} if row.get("train_seconds") == row.get("train_seconds") else {}
        write_model(dst, mid, config=config, blobs=blobs, answer=read_json(src.answer_file(mid)), timing=timing)
        copied += 1
    ids = list(rebuild_manifest(dst)["model_id"])
    rebuild_answers(dst, ids)
    atomic_write_json(dst.zoo_json, zoo)
    return copied


# ---------------------------------------------------------------------------------------------
# verification


def verify(root: str | os.PathLike[str] | FsPath) -> list[Problem]:
    """Check every file of a zoo against its recorded sha256; returns the problems found."""
    layout = ZooLayout.at(root)
    problems: list[Problem] = []

    def guard(path: Location, fn: Any) -> Any:
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
    for p in partial_model_dirs(layout):
        problems.append(Problem(p, "leftover_tmp", "half-written model of an interrupted build (no config.json)"))
    if layout.answers is not None:
        table = guard(layout.answers_table, lambda: read_parquet(layout.answers_table))
        if table is not None and set(table["model_id"]) != listed:
            problems.append(Problem(layout.answers_table, "incomplete", "models differ from the manifest's"))
        recorded = (zoo or {}).get("answers_sha256")
        if table is not None and recorded is not None:
            problems += _check_file(layout.answers_table, recorded)
    return problems


def _train_seconds(layout: ZooLayout, model_id: str) -> float:
    """A model's training wall time from its timing file (NaN when absent or unreadable)."""
    try:
        return float(read_json(layout.model_dir(model_id) / TIMING_FILE).get("train_seconds", float("nan")))
    except (OSError, ValueError, TypeError, AttributeError):
        return float("nan")


def compare_manifests(ours: pd.DataFrame, published: pd.DataFrame) -> list[str]:
    """One line per model whose files differ between two manifests (or that only one has)."""
    sha_cols = sorted(c for c in set(ours.columns) | set(published.columns) if c.startswith("sha256."))
    a = ours.set_index("model_id").reindex(columns=sha_cols)
    b = published.set_index("model_id").reindex(columns=sha_cols)
    lines = []
    for mid in sorted(set(a.index) | set(b.index)):
        if mid not in b.index:
            lines.append(f"{mid}: not in the published manifest")
        elif mid not in a.index:
            lines.append(f"{mid}: in the published manifest but not built here")
        else:
            differ = [c[len("sha256."):] for c in sha_cols if a.at[mid, c] != b.at[mid, c]]
            if differ:
                lines.append(f"{mid}: {', '.join(differ)} differ")
    return lines


def _check_file(path: Location, digest: str) -> list[Problem]:
    if not path.is_file():
        return [Problem(path, "missing", "file is missing")]
    actual = sha256_file(path)
    if actual != digest:
        return [Problem(path, "hash_mismatch", f"sha256 {actual[:12]}... != recorded {digest[:12]}...")]
    return []
