"""Default locations on disk, overridable through the environment.

- ``GAPBENCH_HOME``: project working directory (default: the current directory).
- ``GAPBENCH_CACHE``: cache root (default: ``$GAPBENCH_HOME/.cache``); prepared task arrays live
  in ``<cache>/data``, raw files downloaded from the official sources in ``<cache>/raw``.
- ``GAPBENCH_ZOOS``: where ``gapbench zoo build`` writes zoos (default: ``$GAPBENCH_HOME/zoos``).
- ``GAPBENCH_DATA_MIRROR``: a local mirror of the raw data sets (see ``model_zoo.data``).
"""

from __future__ import annotations

import os
from pathlib import Path

MIRROR_ENV = "GAPBENCH_DATA_MIRROR"


def home() -> Path:
    return Path(os.environ.get("GAPBENCH_HOME", ".")).resolve()


def cache_dir() -> Path:
    return Path(os.environ.get("GAPBENCH_CACHE", home() / ".cache")).resolve()


def zoos_dir() -> Path:
    return Path(os.environ.get("GAPBENCH_ZOOS", home() / "zoos")).resolve()


def data_mirror() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    return Path(value).resolve() if value else None


def prepared_data_dir(root: Path | None = None) -> Path:
    """Where prepared task arrays are cached: ``<root or cache_dir()>/data``."""
    return Path(root if root is not None else cache_dir()) / "data"


def raw_download_dir(root: Path | None = None) -> Path:
    """Where raw files fetched from official sources are kept: ``<root or cache_dir()>/raw``."""
    return Path(root if root is not None else cache_dir()) / "raw"


class ZooNotFound(FileNotFoundError):
    """A zoo argument names neither a built zoo directory nor a zoo under zoos_dir()."""


def resolve_zoo(name_or_path: str | os.PathLike[str]) -> Path:
    """A zoo argument: a built zoo's directory (root or ``public/``), or a name under ``zoos_dir()``."""
    candidate = Path(name_or_path)
    for path in (candidate, zoos_dir() / str(name_or_path)):
        if (path / "public" / "zoo.json").is_file() or (path / "zoo.json").is_file():
            return path
    name = candidate.name or str(name_or_path)
    under = zoos_dir() / str(name_or_path)
    where = str(candidate) if under == candidate else f"{candidate} nor {under}"
    raise ZooNotFound(
        f"no built zoo at {where}; build one with "
        f"`gapbench zoo build SPEC --root {candidate}` (SPEC: a shipped spec such as mini, or a .toml file)"
        if name else f"no built zoo at {candidate}"
    )
