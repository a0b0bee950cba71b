"""The prediction cache: what was computed, keyed by everything that can change a number.

One parquet file per (predictor name, version, code hash, seed, `NUMERICS`) under
``<results>/<zoo_id>/cache/<zoo content hash>/<sandboxed|unsandboxed>/``, one row per model, with a ``.sha256`` file
beside it. A second run recomputes nothing; adding a predictor computes only that predictor;
a rebuilt zoo whose files differ (another content hash) starts a fresh cache, and predictions
made without the sandbox (which a hostile file could have forged) are never reused by a
sandboxed run, nor marked sandboxed. Only the parent
process writes here (workers return numbers over their socket). A file that fails its
checksum, its schema or its key (one row per model, its own predictor and seed only) is named
in one line and recomputed, never scored.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from benchmark.tables import PREDICTIONS, TableError
from predictors.registry import PredictorRef

__all__ = ["NUMERICS", "PredictionCache"]

NUMERICS = "pinned1"
"""How predictor workers compute (bump when that changes a number): ``pinned1``, the training
workers' pinned numerics (`model_zoo.determinism`); predictions cached before it (one thread,
the CPU's own kernels) are recomputed."""


class PredictionCache:
    """Cached predictions of one zoo (by id and content hash)."""

    def __init__(self, results_dir: str | os.PathLike[str], zoo_id: str, content_hash: str, *,
                 sandboxed: bool = True):
        self.zoo_id = zoo_id
        self.content_hash = content_hash
        self.sandboxed = sandboxed
        self.dir = Path(results_dir) / zoo_id / "cache" / content_hash[:16] / ("sandboxed" if sandboxed else "unsandboxed")

    def path(self, ref: PredictorRef, seed: int) -> Path:
        return self.dir / f"{ref.name}__{ref.version}__{ref.code_hash}__seed{seed}__{NUMERICS}.parquet"

    def exists(self, ref: PredictorRef, seed: int) -> bool:
        return self.path(ref, seed).is_file()

    def load(self, ref: PredictorRef, seed: int) -> tuple[pd.DataFrame, str | None]:
        """The cached rows of ``ref`` at ``seed`` and a problem line (None when the file is sound).

        A missing file is no problem (nothing cached); a damaged, foreign or tampered file is
        reported and treated as empty, so its predictions are recomputed.
        """
        path = self.path(ref, seed)
        if not path.is_file():
            return PREDICTIONS.empty(), None
        try:
            data = path.read_bytes()
            recorded = _sidecar(path).read_text().strip() if _sidecar(path).is_file() else None
            if recorded != hashlib.sha256(data).hexdigest():
                raise TableError(f"{path}: its sha256 does not match {_sidecar(path).name} (changed outside gapbench)")
            frame = PREDICTIONS.read(path)
            own = ((frame["predictor"] == ref.name) & (frame["version"] == ref.version)
                   & (frame["code_hash"] == ref.code_hash) & (frame["seed"] == seed) & (frame["zoo_id"] == self.zoo_id))
            if not own.all():
                raise TableError(f"{path}: holds rows of another predictor, version, seed or zoo")
            if frame["model_id"].duplicated().any():
                raise TableError(f"{path}: a model appears twice")
        except TableError as exc:
            return PREDICTIONS.empty(), f"{exc}; recomputing it"
        return frame, None

    def save(self, ref: PredictorRef, seed: int, frame: pd.DataFrame) -> Path:
        """Write ``ref``'s rows (sorted by model) and their checksum, atomically."""
        path = self.path(ref, seed)
        frame = frame.sort_values("model_id", kind="stable").reset_index(drop=True)
        PREDICTIONS.write(frame, path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        tmp = _sidecar(path).with_name(f".tmp-{_sidecar(path).name}-{os.getpid()}")
        tmp.write_text(digest + "\n")
        os.replace(tmp, _sidecar(path))
        return path


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")
