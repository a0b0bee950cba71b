"""The leaderboard writer: ordering, markers, the beats-best-baseline rule, determinism, schema
coverage, error messages, and reproduction of the committed board from its committed tables."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import leaderboard_fixtures as fx  # noqa: E402

from benchmark.leaderboard import build_board, load_board, render_leaderboard  # noqa: E402
from benchmark.leaderboard.figures import psi_axes_path, scatter_path  # noqa: E402
from benchmark.leaderboard.markdown import md_escape  # noqa: E402
from benchmark.leaderboard.tables import BoardMeta, slug  # noqa: E402
from benchmark.schema import METRICS, SCORE_METRICS, format_interval, format_value, metric_spec  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMMITTED_DATA = REPO / "leaderboards" / "data"
COMMITTED_BOARD = REPO / "leaderboards"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return fx.write_fixture(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def rendered(data_dir, tmp_path_factory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("board")
    return out, render_leaderboard(data_dir, out)


@pytest.fixture(scope="module")
def readme(rendered) -> str:
    return (rendered[0] / "README.md").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def index_html(rendered) -> str:
    return (rendered[0] / "index.html").read_text(encoding="utf-8")


def _board_files(root: Path) -> dict[str, bytes]:
    files = [root / "README.md", root / "index.html", *sorted((root / "figures").rglob("*.png"))]
    return {str(p.relative_to(root)): p.read_bytes() for p in files if p.is_file()}


def _readme_tables(readme: str) -> dict[str, list[str]]:
    """task -> predictor names in the order of the README's table rows."""
    tables: dict[str, list[str]] = {}
    task = None
    for line in readme.splitlines():
        heading = re.match(r"^## (?:Task `(\w+)`|(Overall))", line)
        if heading:
            task = heading.group(1) or "overall"
            continue
        if line.startswith("## "):
            task = None
        row = re.match(r"^\| (\d+) \| `([^`]+)`", line)
        if task and row:
            tables.setdefault(task, []).append(row.group(2))
    return tables


# --- the metric schema -------------------------------------------------------------------------


def test_schema_names_every_metric_once_with_a_description():
    expected = {"kendall_tau", "psi", "psi_axis", "cmi", "cmi_signed", "sign_error_mean",
                "sign_error_p90", "sign_error_max", "regret", "seconds_per_model", "failure_rate"}
    assert set(METRICS) == expected
    assert set(SCORE_METRICS) <= set(METRICS)
    for spec in METRICS.values():
        assert spec.display and spec.short and len(spec.description) > 40, spec.name
    directions = {m: METRICS[m].higher_is_better for m in METRICS}
    assert directions["psi"] and directions["kendall_tau"] and directions["cmi"]
    assert not any(directions[m] for m in ("sign_error_max", "regret", "seconds_per_model", "failure_rate"))


def test_schema_formats_intervals_and_missing_values():
    assert format_interval("psi", 0.42, 0.31, 0.55) == "0.42 [0.31, 0.55]"
    assert format_interval("psi", 0.42, float("nan"), 0.55) == "0.42"
    assert format_interval("psi", float("nan"), 0.1, 0.2) == "n/a"
    assert format_value("failure_rate", 0.125) == "12.5%"
    assert format_value("psi", -0.001) == "0.00"  # no "-0.00"
    with pytest.raises(KeyError, match="Did you mean 'psi'"):
        metric_spec("psy")


# --- board contents ----------------------------------------------------------------------------


def test_rows_are_sorted_by_psi_missing_last(data_dir, readme):
    board = load_board(data_dir)
    assert [t.task for t in board.tasks] == ["overall", *fx.TASKS]
    for task, order in fx.EXPECTED_ORDER.items():
        assert [r.predictor for r in board.task(task).rows] == order, task
    assert _readme_tables(readme) == fx.EXPECTED_ORDER


def test_secondary_targets_stay_off_the_gap_board(data_dir):
    row = next(r for r in load_board(data_dir).task("fashion_mnist").rows if r.predictor == "ph_dim")
    assert row.cell("psi").value == pytest.approx(0.60)


def test_baselines_and_noise_floor_are_marked(readme, index_html):
    for task, order in fx.EXPECTED_ORDER.items():
        section = readme.split(f"Task `{task}`" if task != "overall" else "## Overall")[1].split("\n## ")[0]
        assert "`weight_norm` *(baseline)*" in section and "`random` *(baseline)*" in section, task
        assert "`seed_oracle` *(noise floor)*" in section, task
        assert "`ph_dim` *(" not in section
    assert index_html.count('<span class="tag tag-oracle">noise floor</span>') >= len(fx.EXPECTED_ORDER)
    assert index_html.count('<span class="tag tag-baseline">baseline</span>') >= 2 * len(fx.EXPECTED_ORDER)


def test_beats_best_baseline_needs_non_overlapping_intervals(data_dir, readme):
    board = load_board(data_dir)
    for task, expected in fx.EXPECTED_BEATS.items():
        tb = board.task(task)
        assert tb.best_baseline == "weight_norm"
        got = {r.predictor: r.beats_best_baseline for r in tb.rows if r.kind == "predictor"}
        # a predictor without a Psi makes no claim either way
        expected = {**expected, **{p: None for p, c in fx.PSI[task].items() if c[0] != c[0]}}
        assert got == expected, task
        assert all(r.beats_best_baseline is None for r in tb.rows if r.kind != "predictor")
    fashion = readme.split("## Task `fashion_mnist`")[1].split("\n## ")[0]
    assert re.search(r"\| `ph_dim` \|.*\| \*\*yes\*\* \(> weight\\_norm\) \|$", fashion, re.M)
    assert re.search(r"\| `sharpness_trace` \|.*\| no \|$", fashion, re.M)


def test_beats_is_strict_and_uses_the_best_baseline_by_psi():
    meta, tables = fx.make_tables()
    scores = tables["scores"].copy()
    psi = (scores["metric"] == "psi") & (scores["task"] == "fashion_mnist") & (scores["target"] == "gap")
    # touching intervals: ph_dim's ci_low == best baseline's ci_high -> no claim of beating it
    scores.loc[psi & (scores["predictor"] == "ph_dim"), "ci_low"] = 0.45
    # a worse baseline with a lower ci_high must not become the reference
    scores.loc[psi & (scores["predictor"] == "random"), ["value", "ci_low", "ci_high"]] = [0.29, 0.20, 0.30]
    board = build_board(BoardMeta(**meta), {**tables, "scores": scores})
    rows = {r.predictor: r for r in board.task("fashion_mnist").rows}
    assert board.task("fashion_mnist").best_baseline == "weight_norm"
    assert rows["ph_dim"].beats_best_baseline is False
    scores.loc[psi & (scores["predictor"] == "ph_dim"), "ci_low"] = 0.4501
    board = build_board(BoardMeta(**meta), {**tables, "scores": scores})
    assert next(r for r in board.task("fashion_mnist").rows if r.predictor == "ph_dim").beats_best_baseline


def test_every_metric_description_is_shown(readme, index_html):
    for spec in METRICS.values():
        assert md_escape(spec.description) in readme, spec.name
        assert html.escape(spec.description, quote=True) in index_html, spec.name
        assert f"<code>{spec.name}</code>" in index_html


def test_header_has_provenance(readme, index_html):
    for text in (fx.ZOO_ID, "mini", "0123456789abcdef0123456789abcdef01234567", "2025-01-15",
                 "`fashion_mnist` 24", "`fsdd` 24", "`newsgroups` 24"):
        assert text in readme
    assert "Zoo size: 72 models." in readme
    assert fx.ZOO_ID in index_html and "0123456789ab" in index_html


def test_failures_and_protocol_notes_are_listed(readme, index_html):
    failures = readme.split("## Failures")[1].split("\n## ")[0]
    assert "| `ph_dim` | `fsdd` | 3/24 (12.5%) | ValueError: MST of 1 point (×3) |" in failures
    assert "| `sharpness_trace` | `newsgroups` | 24/24 (100.0%) | timeout after 300 s (×24) |" in failures
    assert "`weight_norm`" not in failures
    notes = readme.split("## Protocol notes")[1].split("\n## ")[0]
    assert fx.NOTES["sharpness_trace"] in notes
    assert html.escape(fx.NOTES["sharpness_trace"]) in index_html


def test_cost_columns_come_from_predictions(data_dir):
    _, tables = fx.make_tables()
    preds = tables["predictions"]
    mine = preds[(preds["predictor"] == "ph_dim") & (preds["task"] == "fsdd")]
    row = next(r for r in load_board(data_dir).task("fsdd").rows if r.predictor == "ph_dim")
    assert row.failure_rate == pytest.approx(3 / 24)
    assert row.seconds_per_model == pytest.approx(float(mine["seconds"].median()))


def test_figures_are_written_with_sanitized_names(rendered):
    out, written = rendered
    rel = {str(p.relative_to(out)) for p in written}
    assert {"README.md", "index.html", "figures/cost_vs_psi.png"} <= rel
    for task in ("overall", *fx.TASKS):
        assert psi_axes_path(task) in rel
    for pred in fx.PREDICTORS:
        for task in fx.TASKS:
            has_points = not (pred == "sharpness_trace" and task == "newsgroups")
            assert (scatter_path(pred, task) in rel) == has_points, (pred, task)
    for p in written:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert slug("my/pred ictor:v2") == "my-pred-ictor-v2"
    assert scatter_path("../evil name", "fsdd") == "figures/scatter/evil-name__fsdd.png"


def test_html_is_one_offline_file(index_html):
    assert "<script src" not in index_html and "<link" not in index_html
    assert not re.search(r"""(src|href)=["'](https?:)?//""", index_html)
    assert "<style>" in index_html and "<script>" in index_html
    for src in re.findall(r'<img src="([^"]+)"', index_html):
        assert not src.startswith("/") and ".." not in src


# --- determinism -------------------------------------------------------------------------------


def test_rendering_is_byte_for_byte_deterministic(data_dir, rendered, tmp_path):
    first = _board_files(rendered[0])
    again = tmp_path / "again"
    shutil.copytree(rendered[0], again)
    # regenerating in place is idempotent and removes figures that are no longer produced
    stale = again / "figures" / "scatter" / "removed_predictor__fsdd.png"
    stale.write_bytes(b"old")
    (again / "README.md").write_text("hand edit")
    render_leaderboard(data_dir, again)
    assert not stale.exists()
    assert _board_files(again) == first


def test_rendering_in_another_process_gives_the_same_bytes(data_dir, rendered, tmp_path):
    """A fresh interpreter with another hash seed (set and dict-of-set orders change with it)."""
    out = tmp_path / "other"
    code = ("import sys; from benchmark.leaderboard import render_leaderboard; "
            "render_leaderboard(sys.argv[1], sys.argv[2])")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, "-c", code, str(data_dir), str(out)], check=True, env=env,
                   cwd=REPO, timeout=120)
    assert _board_files(out) == _board_files(rendered[0])


# --- errors name the file and field ------------------------------------------------------------


def test_missing_table_is_named(data_dir, tmp_path):
    for name in ("scores.parquet", "points.parquet", "board_meta.json"):
        d = tmp_path / name
        fx.write_fixture(d)
        (d / name).unlink()
        with pytest.raises(FileNotFoundError, match=re.escape(name)):
            load_board(d)


def test_missing_column_and_bad_meta_are_named(tmp_path):
    d = fx.write_fixture(tmp_path / "col")
    pd.read_parquet(d / "runs.parquet").drop(columns=["family"]).to_parquet(d / "runs.parquet")
    with pytest.raises(ValueError, match=r"runs\.parquet: missing column\(s\) \['family'\]"):
        load_board(d)
    d = fx.write_fixture(tmp_path / "meta")
    meta = json.loads((d / "board_meta.json").read_text())
    meta["zoo_size"] = meta.pop("n_models")
    (d / "board_meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="(?s)board_meta.json.*zoo_size"):
        load_board(d)


def test_several_versions_of_a_predictor_are_refused(tmp_path):
    d = fx.write_fixture(tmp_path / "ver")
    scores = pd.read_parquet(d / "scores.parquet")
    scores.loc[(scores["predictor"] == "ph_dim") & (scores["task"] == "fsdd"), "version"] = "0.9"
    scores.to_parquet(d / "scores.parquet")
    with pytest.raises(ValueError, match=r"\['ph_dim'\] appear with several versions"):
        load_board(d)


# --- the committed board -----------------------------------------------------------------------


def test_committed_board_is_reproduced_byte_for_byte(tmp_path):
    assert COMMITTED_DATA.is_dir(), (
        f"{COMMITTED_DATA} is missing: the published board must ship with the score tables it was "
        "rendered from (`make evaluate` writes both)"
    )
    render_leaderboard(COMMITTED_DATA, tmp_path)
    fresh = _board_files(tmp_path)
    committed = _board_files(COMMITTED_BOARD)
    assert sorted(committed) == sorted(fresh), "the committed board's files differ from a regeneration"
    changed = [name for name in fresh if fresh[name] != committed[name]]
    assert not changed, (f"regenerating from {COMMITTED_DATA} changes {changed}; run "
                         "`gapbench leaderboard` and commit its output (never edit leaderboards/ by hand)")
