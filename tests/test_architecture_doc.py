"""docs/ARCHITECTURE.md stays true: its generated blocks match the code, its layout lists every module."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _sync_docs():
    spec = importlib.util.spec_from_file_location("sync_docs", REPO / "scripts" / "sync_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["sync_docs"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_blocks_match_the_code():
    sync = _sync_docs()
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    assert sync.render(text) == text, "docs/ARCHITECTURE.md is out of date: run python scripts/sync_docs.py"


def test_every_table_column_and_axis_is_documented():
    from benchmark.tables import TABLES
    from model_zoo.axes import AXES, PROTOCOL

    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    for table in TABLES:
        assert f"#### `{table.file}`" in text
        for col in table.columns:
            assert f"| `{col.name}` | {col.type} |" in text, (table.name, col.name)
    for s in (*AXES, *PROTOCOL):
        assert f"| `{s.name}` |" in text, s.name


def test_layout_lists_every_module():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    layout = text[text.index("## Packages"):text.index("## Vocabulary")]
    missing = []
    for package in ("model_zoo", "predictors", "benchmark"):
        for path in sorted((REPO / package).glob("*.py")):
            if path.name in ("__init__.py", "__main__.py"):
                continue
            if not re.search(rf"\b{re.escape(path.name)}\b", layout):
                missing.append(f"{package}/{path.name}")
        for path in sorted(p for p in (REPO / package).iterdir() if p.is_dir() and not p.name.startswith("__")):
            if f"{path.name}/" not in layout:
                missing.append(f"{package}/{path.name}/")
    assert not missing, f"modules missing from docs/ARCHITECTURE.md's layout: {missing}"
