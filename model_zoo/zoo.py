"""The read API over the public part of a built zoo: `Zoo` and its `ModelRecord`s.

``Zoo(path)`` takes a zoo root or just its ``public/`` directory, a local folder or an fsspec
URL such as ``s3://bucket/zoo`` (model_zoo.store; predictor workers get only a local ``public/``);
it never reads ``answers/`` (see `load_answers` for that). On open it checks that the
manifest is readable and that every file it lists exists; each file is checked against its
recorded sha256 when a record loads it (``verify="lazy"``, the default), so a corrupted or
missing file raises `ZooIntegrityError` naming its path. ``verify="full"`` hashes everything
on open (``gapbench zoo verify`` does the same and reports every problem).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from model_zoo import store
from model_zoo.axes import TrainConfig
from model_zoo.store import ZooIntegrityError, ZooLayout, load_answers
from model_zoo.trajectory import TrajectoryWindow

__all__ = ["ModelRecord", "RetrainOutcome", "TrajectoryWindow", "Zoo", "ZooIntegrityError", "load_answers"]

Which = Literal["final", "init"]


@dataclass(frozen=True)
class RetrainOutcome:
    """What ``ModelRecord.retrain`` returns: the retrained model and its training error."""

    n_train: int
    seed: int
    train_error: float
    train_loss: float
    converged: bool
    steps: int
    model: Any


class Zoo:
    """A built zoo, read-only. ``Zoo(root_or_public_dir, verify="lazy"|"full"|"none")``."""

    def __init__(self, path: str | os.PathLike[str], *, verify: bool | Literal["lazy", "full", "none"] = "lazy",
                 pool_cache: dict[str, tuple[np.ndarray, np.ndarray]] | None = None):
        mode = {True: "lazy", False: "none"}.get(verify, verify) if isinstance(verify, bool) else verify
        if mode not in ("lazy", "full", "none"):
            raise ValueError(f"verify must be 'lazy', 'full' or 'none', got {verify!r}")
        self.layout = ZooLayout.at(path)
        self.path = self.layout.public
        self.verify_mode = mode
        if not self.layout.zoo_json.is_file():
            raise FileNotFoundError(
                f"{path}: not a zoo (no {self.layout.zoo_json}); build one with `gapbench zoo build SPEC`"
            )
        self.meta: dict[str, Any] = store.read_json(self.layout.zoo_json)
        self.manifest: pd.DataFrame = store.read_parquet(self.layout.manifest)
        self._rows = {row["model_id"]: row for row in self.manifest.to_dict("records")}
        # task -> training pool; a caller may share one dict between Zoo objects of one zoo
        self._pools: dict[str, tuple[np.ndarray, np.ndarray]] = {} if pool_cache is None else pool_cache
        if mode == "full":
            problems = store.verify(self.layout.public)
            if problems:
                raise ZooIntegrityError(problems[0].path, f"{problems[0].kind}: {problems[0].detail} "
                                        f"({len(problems)} problem(s) in all)")
        elif mode == "lazy":
            self._check_files_exist()

    def _check_files_exist(self) -> None:
        sha_cols = [c for c in self.manifest.columns if c.startswith("sha256.")]
        present = store.list_files(self.layout.models_dir)  # one listing, also on a URL
        for row in self._rows.values():
            for col in sha_cols:
                name = col[len("sha256."):]
                if isinstance(row[col], str) and f"{row['model_id']}/{name}" not in present:
                    raise ZooIntegrityError(self.layout.model_dir(row["model_id"]) / name, "file is missing")

    def __repr__(self) -> str:
        return f"Zoo({str(self.path)!r}, zoo_id={self.zoo_id!r}, models={len(self)})"

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def zoo_id(self) -> str:
        return self.meta["zoo_id"]

    @cached_property
    def content_hash(self) -> str:
        """sha256 of the zoo's content (every file hash), computed from the manifest."""
        return store.content_hash(self.manifest, self.meta.get("data", {}))

    @cached_property
    def spec_text(self) -> str:
        """The spec the zoo was built from, verbatim."""
        data = self._read(self.layout.spec_toml, self.meta.get("spec_sha256"))
        return data.decode()

    @cached_property
    def spec(self) -> Any:
        """The parsed spec (a model_zoo.spec.ZooSpec, validated)."""
        from model_zoo.spec import parse_spec

        return parse_spec(self.spec_text, source=str(self.layout.spec_toml))

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys(self.manifest["task"]))

    def model_ids(self, task: str | None = None, status: str | None = None) -> list[str]:
        """Model ids in build order, optionally only one task's and/or one status's."""
        m = self.manifest
        if task is not None:
            m = m[m["task"] == task]
        if status is not None:
            m = m[m["status"] == status]
        return list(m["model_id"])

    def record(self, model_id: str) -> ModelRecord:
        if model_id not in self._rows:
            import difflib

            close = difflib.get_close_matches(model_id, list(self._rows), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise KeyError(f"no model {model_id!r} in zoo {self.zoo_id}{hint}")
        return ModelRecord(self, self._rows[model_id])

    def __iter__(self):
        return (self.record(mid) for mid in self._rows)

    # -- internals shared by records

    def _read(self, path: Path, sha256: str | None) -> bytes:
        return store.read_checked(path, sha256 if self.verify_mode != "none" else None)

    def _data_sha(self, task: str, name: str) -> str | None:
        return self.meta.get("data", {}).get(task, {}).get(name)

    def task_info(self, task: str) -> Any:
        """The TaskInfo the zoo's models were built with (read from data/<task>/info.json)."""
        from model_zoo.data import TaskInfo

        path = self.layout.data_dir(task) / "info.json"
        raw = (store.read_json(path) if self.verify_mode == "none"
               else _json(self._read(path, self._data_sha(task, "info.json")), path))
        raw["input_shape"] = tuple(raw["input_shape"])
        return TaskInfo(**raw)

    def pool(self, task: str) -> tuple[np.ndarray, np.ndarray]:
        """The task's prepared training pool (x, y) that every model's subset indexes into."""
        if task not in self._pools:
            path = self.layout.data_dir(task) / "train.npz"
            data = self._read(path, self._data_sha(task, "train.npz"))
            try:
                with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                    self._pools[task] = (archive["x"], archive["y"])
            except (ValueError, KeyError, OSError) as exc:
                raise ZooIntegrityError(path, f"unreadable npz ({exc})") from None
        return self._pools[task]


def _json(data: bytes, path: Path) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ZooIntegrityError(path, f"unreadable JSON ({exc})") from None


class ModelRecord:
    """One model of a zoo: its config, hyperparameters, weights, trajectory and training set."""

    def __init__(self, zoo: Zoo, row: dict[str, Any]):
        self.zoo = zoo
        self.row = row
        self.model_id: str = row["model_id"]
        self.task: str = row["task"]
        self.architecture: str = row["architecture"]
        self.seed: int = int(row["seed"])
        self.status: str = row["status"]
        self.n_params: int = int(row["n_params"])
        self.dir = zoo.layout.model_dir(self.model_id)

    def __repr__(self) -> str:
        return f"ModelRecord({self.model_id!r}, status={self.status!r})"

    def _file(self, name: str) -> bytes:
        return self.zoo._read(self.dir / name, self.row.get(f"sha256.{name}"))

    @cached_property
    def config(self) -> dict[str, Any]:
        """Everything in config.json (train_config, hp, indices, status, versions, ...)."""
        return _json(self._file("config.json"), self.dir / "config.json")

    @property
    def hparams(self) -> dict[str, str]:
        """Axis -> value exactly as the spec wrote it (strings; group by these, never re-parse)."""
        return dict(self.config["hp"])

    @property
    def axes(self) -> tuple[str, ...]:
        """The axes the model's experiment varies."""
        return tuple(self.config["axes"])

    @property
    def train_config(self) -> TrainConfig:
        """The model's training config (model_zoo.axes.TrainConfig)."""
        return TrainConfig(**self.config["train_config"])

    @cached_property
    def info(self) -> Any:
        return self.zoo.task_info(self.task)

    def state_dict(self, which: Which = "final") -> dict[str, Any]:
        """The weights at initialisation (``"init"``) or at the end of the window (``"final"``)."""
        from safetensors.torch import load

        name = _which(which) + ".safetensors"
        data = self._file(name)
        try:
            return load(data)
        except Exception as exc:  # safetensors raises its own error types for malformed files
            raise ZooIntegrityError(self.dir / name, f"unreadable safetensors ({exc})") from None

    def build_model(self, which: Which = "final") -> Any:
        """A fresh nn.Module of the model's architecture with the stored weights, in eval mode."""
        from model_zoo.architectures import build_model

        cfg = self.config["train_config"]
        model = build_model(cfg["architecture"], self.info, width=cfg["width"], depth=cfg["depth"],
                            dropout=cfg["dropout"])
        model.load_state_dict(self.state_dict(which))
        return model.eval()

    def trajectory(self) -> TrajectoryWindow:
        """The recorded post-convergence window."""
        from safetensors.numpy import load

        path = self.dir / "trajectory.safetensors"
        data = self._file("trajectory.safetensors")
        try:
            arrays = load(data)
        except Exception as exc:
            raise ZooIntegrityError(path, f"unreadable safetensors ({exc})") from None
        meta = self.config["trajectory"]
        return TrajectoryWindow(
            iterates=arrays["iterates"], losses=arrays["losses"], norms=arrays["norms"],
            step_norms=arrays["step_norms"], projected=bool(meta["projected"]), n_params=int(meta["n_params"]),
            projection_dim=meta.get("projection_dim"), projection_seed=meta.get("projection_seed"),
            probe_losses=arrays.get("probe_losses"), coordinates=arrays.get("coordinates"),
            coordinate_index=arrays.get("coordinate_index"),
        )

    def train_set(self) -> tuple[np.ndarray, np.ndarray]:
        """(x, y): exactly the examples the model was trained on, with the (noisy) labels it saw."""
        x_pool, y_pool = self.zoo.pool(self.task)
        indices = np.asarray(self.config["train_indices"], dtype=np.int64)
        labels = y_pool[indices].astype(np.int64, copy=True)
        noisy = np.asarray(self.config["noisy_indices"], dtype=np.int64)
        labels[np.searchsorted(indices, noisy)] = np.asarray(self.config["noisy_labels"], dtype=np.int64)
        return x_pool[indices], labels

    @property
    def pool_size(self) -> int:
        """How many examples the task's training pool holds."""
        return int(len(self.zoo.pool(self.task)[1]))

    def retrain(self, n_train: int, *, seed: int = 0, max_steps: int | None = None) -> Any:
        """Train this model's recipe again on ``n_train`` pool examples (what EMC needs).

        Same architecture, optimiser, learning rate, batch size, label-noise fraction and
        convergence target; a fresh seeded subset of the pool; no post-convergence window.
        """
        import dataclasses

        from model_zoo.architectures import build_model
        from model_zoo.trainer import evaluate, make_train_subset, train_model

        x_pool, y_pool = self.zoo.pool(self.task)
        if not 2 <= n_train <= len(y_pool):
            raise ValueError(f"retrain: n_train must be in [2, {len(y_pool)}] (the pool), got {n_train}")
        base = TrainConfig(**self.config["train_config"])
        cfg = dataclasses.replace(
            base, train_size=int(n_train), seed=int(seed), window_steps=0,
            max_steps=int(max_steps) if max_steps is not None else base.max_steps,
        )
        subset = make_train_subset(y_pool, self.info.n_classes, cfg.train_size, cfg.label_noise, cfg.seed)
        x = x_pool[subset.indices]
        result = train_model(cfg, self.info, x, subset.labels)
        model = build_model(cfg.architecture, self.info, width=cfg.width, depth=cfg.depth, dropout=cfg.dropout)
        model.load_state_dict(result.final_state)
        model.eval()
        error, loss = evaluate(model, x, subset.labels)
        return RetrainOutcome(n_train=cfg.train_size, seed=cfg.seed, train_error=error, train_loss=loss,
                              converged=result.status == "converged", steps=result.total_steps, model=model)

    def curve(self) -> pd.DataFrame:
        """Per-epoch training curve: step, train_loss, train_error (full training set, eval mode)."""
        raw = _json(self._file("curve.json"), self.dir / "curve.json")
        return pd.DataFrame(raw["curve"], columns=["step", "train_loss", "train_error"])

    def to_dict(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "task": self.task, "architecture": self.architecture,
                "seed": self.seed, "status": self.status, "hp": self.hparams}


def _which(which: str) -> str:
    if which not in ("final", "init"):
        raise ValueError(f"which must be 'final' or 'init', got {which!r}")
    return which

