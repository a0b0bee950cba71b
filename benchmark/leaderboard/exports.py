"""Downloads and citation: CSV and JSON of every board table, and the BibTeX entry of the board.

``export_tables(data_dir, out_data_dir)`` writes, for each table of ``benchmark.tables.BOARD_TABLES``,
``<name>.csv`` and ``<name>.json`` into ``out_data_dir`` (``leaderboards/data/``, beside the parquet
files, which it copies there too when rendering from another folder). Rows are sorted by the
table's key; floats are written as Python's shortest round-trip ``repr`` (NaN as an empty CSV
field and JSON ``null``); the same tables give byte-identical files.

The JSON file is self-describing: ``{"table", "description", "key", "columns": [{"name", "type",
"description"}], "rows": [{column: value}, ...]}`` with one row per line.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.tables import BOARD_TABLES, BoardMeta, Table

__all__ = [
    "AUTHORS",
    "Download",
    "TITLE",
    "bibtex",
    "downloads",
    "export_tables",
    "table_csv",
    "table_json",
]

TITLE = "gapbench: a benchmark and leaderboard of predictors of generalization in deep learning"
"""The title under which the benchmark is cited (CITATION.cff says the same)."""
AUTHORS = "The gapbench developers"
"""The author entity (CITATION.cff says the same)."""
META_FILE = "board_meta.json"


@dataclass(frozen=True)
class Download:
    """One downloadable table: its name, what it holds, and its files relative to the board's folder."""

    name: str
    description: str
    csv: str
    json: str
    parquet: str


def downloads() -> list[Download]:
    """The board's downloadable tables, in ``BOARD_TABLES`` order."""
    return [Download(t.name, t.doc, f"data/{t.name}.csv", f"data/{t.name}.json", f"data/{t.file}")
            for t in BOARD_TABLES]


def _sorted(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(table.key), kind="mergesort").reset_index(drop=True) if len(frame) else frame


def _plain(value: object, kind: str) -> object:
    """A JSON-ready Python value of one cell (NaN -> None)."""
    if kind == "float":
        x = float(value)  # type: ignore[arg-type]
        return None if math.isnan(x) else x
    if kind == "int":
        return int(value)  # type: ignore[arg-type]
    if kind == "bool":
        return bool(value)
    return str(value)


def _csv_field(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    return str(value)


def _records(table: Table, frame: pd.DataFrame) -> list[list[object]]:
    frame = _sorted(table, frame)
    columns = [frame[c.name].tolist() for c in table.columns]
    kinds = [c.type for c in table.columns]
    return [[_plain(col[i], kind) for col, kind in zip(columns, kinds)] for i in range(len(frame))]


def table_csv(table: Table, frame: pd.DataFrame) -> str:
    """The table as CSV text: a header of the declared columns, rows sorted by the key."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.names)
    for record in _records(table, frame):
        writer.writerow([_csv_field(v) for v in record])
    return buf.getvalue()


def table_json(table: Table, frame: pd.DataFrame) -> str:
    """The table as self-describing JSON text (schema, key, one row object per line)."""
    head = json.dumps({"table": table.name, "description": table.doc, "key": list(table.key)}, ensure_ascii=False)
    columns = [json.dumps({"name": c.name, "type": c.type, "description": c.doc}, ensure_ascii=False)
               for c in table.columns]
    rows = [json.dumps(dict(zip(table.names, record)), ensure_ascii=False, allow_nan=False)
            for record in _records(table, frame)]
    return (head[:-1] + ',\n "columns": [\n  ' + ",\n  ".join(columns) + '\n ],\n "rows": [\n'
            + "".join(f"  {r},\n" for r in rows[:-1]) + (f"  {rows[-1]}\n" if rows else "") + " ]\n}\n")


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return path


def export_tables(data_dir: str | Path, out_data_dir: str | Path) -> list[Path]:
    """Write CSV and JSON of every board table of ``data_dir`` into ``out_data_dir``; return the paths.

    When the two folders differ, the parquet files and ``board_meta.json`` are copied as well, so
    the board's folder is complete (its pages link all three formats).
    """
    data_dir, out_data_dir = Path(data_dir), Path(out_data_dir)
    out_data_dir.mkdir(parents=True, exist_ok=True)
    same = data_dir.resolve() == out_data_dir.resolve()
    written = []
    for table in BOARD_TABLES:
        frame = table.read(data_dir / table.file)
        written.append(_write(out_data_dir / f"{table.name}.csv", table_csv(table, frame)))
        written.append(_write(out_data_dir / f"{table.name}.json", table_json(table, frame)))
        if not same:
            shutil.copyfile(data_dir / table.file, out_data_dir / table.file)
    if not same:
        shutil.copyfile(data_dir / META_FILE, out_data_dir / META_FILE)
    return written


def _tex(text: str) -> str:
    """Escape text for a BibTeX field."""
    out = str(text).replace("\\", "").replace("{", "").replace("}", "")
    for ch in ("_", "%", "&", "#", "$"):
        out = out.replace(ch, "\\" + ch)
    return out


def bibtex(meta: BoardMeta) -> str:
    """The BibTeX entry of this board: the benchmark, with the zoo(s), commit and date it ranks."""
    year = meta.date[:4] if meta.date[:4].isdigit() else "n.d."
    zoos = f"public zoo {meta.public.zoo_id} (content hash {meta.public.content_hash[:12]})"
    if meta.heldout is not None:
        zoos += f", held-out zoo {meta.heldout.zoo_id}"
    key = "gapbench" + "".join(c for c in meta.date if c.isdigit())
    fields = [
        ("title", "{" + _tex(TITLE.split(":")[0]) + "}:" + _tex(TITLE.split(":", 1)[1])),
        ("author", "{" + _tex(AUTHORS) + "}"),
        ("year", year),
        ("howpublished", f"Leaderboard, {_tex(zoos)}"),
        ("note", f"Code commit {_tex(meta.git_commit[:12])}, board of {_tex(meta.date)}"),
    ]
    width = max(len(k) for k, _ in fields)
    body = ",\n".join(f"  {k.ljust(width)} = {{{v}}}" for k, v in fields)
    return f"@misc{{{key},\n{body}\n}}\n"
