"""Shared fixtures. `micro_zoo`: the micro zoo, built once per test session.

Set ``GAPBENCH_TEST_ZOO=/path/to/built/micro`` to reuse a built micro zoo across sessions
(it is rebuilt in place if unfinished or stale: building is idempotent).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tests read the raw data sets from the offline mirror (CI sets ../shared/data).
if not os.environ.get("GAPBENCH_DATA_MIRROR"):
    for candidate in (REPO.parent / "shared" / "data", Path("/work/shared/data")):
        if candidate.is_dir():
            os.environ["GAPBENCH_DATA_MIRROR"] = str(candidate)
            break


@pytest.fixture(scope="session")
def micro_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root directory of a built micro zoo (public/ + answers/)."""
    import json
    import shutil

    from model_zoo.build import ZooMismatchError, build_zoo

    reuse = os.environ.get("GAPBENCH_TEST_ZOO")
    root = Path(reuse) if reuse else tmp_path_factory.mktemp("zoo") / "micro"
    try:
        report = build_zoo("micro", root, workers=2, progress=False)
    except ZooMismatchError:
        # a reused micro zoo built by older code: rebuild it (only if it is a micro zoo)
        if json.loads((root / "public" / "zoo.json").read_text()).get("spec_name") != "micro":
            raise
        shutil.rmtree(root)
        report = build_zoo("micro", root, workers=2, progress=False)
    if not report.ok:
        raise RuntimeError(f"building the micro zoo failed: {[f.model_id for f in report.failures]}\n"
                           f"{report.failures[0].error}")
    return root
