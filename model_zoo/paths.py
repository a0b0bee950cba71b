"""Default locations on disk, overridable through the environment.

- ``GAPBENCH_HOME``: project working directory (default: the current directory).
- ``GAPBENCH_CACHE``: prepared-data cache (default: ``$GAPBENCH_HOME/.cache``).
- ``GAPBENCH_ZOOS``: where ``gapbench zoo build`` writes zoos (default: ``$GAPBENCH_HOME/zoos``).
- ``GAPBENCH_DATA_MIRROR``: a local mirror of the raw data sets (see ``model_zoo.data``).
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    return Path(os.environ.get("GAPBENCH_HOME", ".")).resolve()


def cache_dir() -> Path:
    return Path(os.environ.get("GAPBENCH_CACHE", home() / ".cache")).resolve()


def zoos_dir() -> Path:
    return Path(os.environ.get("GAPBENCH_ZOOS", home() / "zoos")).resolve()


def data_mirror() -> Path | None:
    value = os.environ.get("GAPBENCH_DATA_MIRROR")
    return Path(value).resolve() if value else None
