"""The leaderboard writer: ordering and ranks, both targets, public and held-out columns with their
rank agreement, marks, links, downloads (CSV, JSON), citation files, figures, determinism, error
messages, the terminal view, and reproduction of the committed board from its committed tables."""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))

import leaderboard_fixtures as fx  # noqa: E402

from benchmark.leaderboard import build_board, load_board, render_leaderboard, render_terminal  # noqa: E402
from benchmark.leaderboard.board import Agreement, Board, rank_agreement  # noqa: E402
from benchmark.leaderboard.exports import AUTHORS, TITLE, bibtex, table_csv, table_json  # noqa: E402
from benchmark.leaderboard.figures import COST_FIGURE, cost_figure, psi_axes_path, render_figures  # noqa: E402
from benchmark.leaderboard.html import detail_id, render_html, scatter_data  # noqa: E402
from benchmark.leaderboard.markdown import md_escape, render_markdown  # noqa: E402
from benchmark.leaderboard.tables import slug  # noqa: E402
from benchmark.metrics.catalog import METRICS, SCORE_METRICS  # noqa: E402
from benchmark.tables import BOARD_TABLES, RUNS, SCORES, TableError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMMITTED_DATA = REPO / "leaderboards" / "data"
COMMITTED_BOARD = REPO / "leaderboards"
FLAT_METRICS = [m for m in SCORE_METRICS if not METRICS[m].per_axis]


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


@pytest.fixture(scope="module")
def board(data_dir) -> Board:
    return load_board(data_dir)


@pytest.fixture(scope="module")
def public_board(data_dir) -> Board:
    return load_board(data_dir, rank_by="public")


def _board_files(root: Path) -> dict[str, bytes]:
    files = [root / "README.md", root / "index.html", *sorted((root / "figures").rglob("*.png")),
             *sorted((root / "data").glob("*.csv")), *sorted((root / "data").glob("*.json"))]
    return {str(p.relative_to(root)): p.read_bytes() for p in files if p.is_file()}


def _section(readme: str, heading: str) -> str:
    """The README text from ``heading`` to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = readme.index(heading + "\n")
    rest = readme[start + len(heading) + 1:]
    stop = re.search(rf"^#{{1,{len(level)}}} ", rest, re.M)
    return rest[: stop.start()] if stop else rest


def _readme_tables(section: str) -> dict[str, list[str]]:
    """task -> predictor names in the order of the section's ### tables."""
    tables: dict[str, list[str]] = {}
    task = None
    for line in section.splitlines():
        heading = re.match(r"^### (?:Task `(\w+)`|(Overall))", line)
        if heading:
            task = heading.group(1) or "overall"
            continue
        row = re.match(r"^\| (?:\d+|—) \| `([^`]+)`", line)
        if task and row:
            tables.setdefault(task, []).append(row.group(1))
    return tables


def _table_rows(section: str) -> list[list[str]]:
    """The cells of every table row of a Markdown section (header and separator excluded)."""
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in rows[2:]]


# --- the catalogue as the board reads it ----------------------------------------------------------


def test_every_catalogue_score_metric_has_a_column_and_a_description(readme, index_html):
    header = next(line for line in _section(readme, "### Overall (all tasks)").splitlines() if line.startswith("| #"))
    shorts = [c.strip() for c in header.strip("|").split("|")]
    for m in FLAT_METRICS:
        spec = METRICS[m]
        assert any(s.startswith(spec.short) for s in shorts), (m, shorts)
        assert f'data-metric="{m}"' in index_html
    for spec in METRICS.values():
        assert md_escape(spec.description) in readme, spec.name
        assert html.escape(spec.description, quote=True) in index_html, spec.name
        assert f"<code>{spec.name}</code>" in index_html


def test_columns_follow_the_scores_not_a_hard_coded_list(data_dir, tmp_path):
    meta, tables = fx.make_tables()
    dropped = FLAT_METRICS[-1]
    scores = tables["scores"][tables["scores"]["metric"] != dropped]
    board = build_board(meta, {**tables, "scores": scores})
    assert dropped not in board.metrics and set(board.metrics) == set(FLAT_METRICS) - {dropped}
    assert f'data-metric="{dropped}"' not in render_html(board)


def test_unknown_metric_is_refused_with_the_file_name(tmp_path):
    meta, tables = fx.make_tables()
    scores = tables["scores"].copy()
    scores.loc[scores.index[0], "metric"] = "sign_error_maxx"
    d = fx.write_tables(tmp_path, meta, {**tables, "scores": scores})
    with pytest.raises(ValueError, match=r"scores\.parquet: unknown metric\(s\) \['sign_error_maxx'\]"):
        load_board(d)


# --- order, ranks, best baseline ------------------------------------------------------------------


def test_public_order_is_by_psi_missing_last(public_board):
    assert [t.task for t in public_board.tasks] == ["overall", *fx.TASKS]
    for task, order in fx.EXPECTED_ORDER.items():
        assert [r.predictor for r in public_board.task(task).rows] == order, task


def test_official_order_is_by_heldout_psi_and_shown_in_the_readme(board, readme):
    for task, order in fx.EXPECTED_OFFICIAL_ORDER.items():
        tb = board.task(task)
        assert tb.ranked_by == "heldout" and tb.has_heldout
        assert [r.predictor for r in tb.rows] == order, task
    assert _readme_tables(_section(readme, "## Target: generalization gap")) == fx.EXPECTED_OFFICIAL_ORDER


def test_ties_share_a_rank_and_unranked_rows_have_none(public_board, board):
    ranks = {r.predictor: r.rank for r in public_board.task("overall").rows}
    assert ranks == {"seed_oracle": 1, "ph_dim": 2, "sharpness_trace": 3, "weight_norm": 3, "lr_batch_ratio": 5,
                     "random": 6}
    assert {r.predictor: r.rank for r in public_board.task("newsgroups").rows}["sharpness_trace"] is None
    official = {r.predictor: r.rank for r in board.task("overall").rows}
    assert official["sharpness_trace"] is None  # no held-out score: not in the official ranking
    assert official["weight_norm"] == 2 and official["ph_dim"] == 3


def test_beats_best_baseline_needs_non_overlapping_intervals(public_board, board, readme):
    for task, expected in fx.EXPECTED_BEATS.items():
        tb = public_board.task(task)
        assert tb.best_baseline == "weight_norm"
        assert {r.predictor: r.beats_best_baseline for r in tb.rows if r.kind == "predictor"} == expected, task
        assert all(r.beats_best_baseline is None for r in tb.rows if r.kind != "predictor")
    # official: ph_dim's held-out [0.48, 0.68] is above weight_norm's held-out [0.15, 0.41] on fashion_mnist
    official = {r.predictor: r.beats_best_baseline for r in board.task("fashion_mnist").rows}
    assert official["ph_dim"] is True and official["sharpness_trace"] is None
    fashion = _section(readme, "### Task `fashion_mnist`")
    assert re.search(r"^\| 2 \| `ph_dim`.*\| \*\*yes\*\* \(> weight\\_norm\) \|$", fashion, re.M)


def test_beats_is_strict_and_uses_the_best_baseline_by_psi():
    meta, tables = fx.make_tables(heldout=False)
    scores = tables["scores"].copy()
    psi = (scores["metric"] == "psi") & (scores["task"] == "fashion_mnist") & (scores["target"] == "gap")
    scores.loc[psi & (scores["predictor"] == "ph_dim"), "ci_low"] = 0.45  # touches weight_norm's ci_high
    scores.loc[psi & (scores["predictor"] == "random"), ["value", "ci_low", "ci_high"]] = [0.29, 0.20, 0.30]
    board = build_board(meta, {**tables, "scores": scores})
    tb = board.task("fashion_mnist")
    assert tb.best_baseline == "weight_norm" and tb.ranked_by == "public" and not tb.has_heldout
    assert tb.row("ph_dim").beats_best_baseline is False
    scores.loc[psi & (scores["predictor"] == "ph_dim"), "ci_low"] = 0.4501
    assert build_board(meta, {**tables, "scores": scores}).task("fashion_mnist").row("ph_dim").beats_best_baseline


# --- targets --------------------------------------------------------------------------------------


def test_each_target_has_its_own_tables_and_values(board):
    assert board.targets == ("gap", "test_error", "shift_error")
    assert [tb.task for tb in board.boards["test_error"]] == ["overall", *fx.TASKS]
    assert [tb.task for tb in board.boards["shift_error"]] == ["fsdd"]
    gap = board.task("fashion_mnist").row("ph_dim").cell("psi")
    test = board.task("fashion_mnist", "test_error").row("ph_dim").cell("psi")
    assert (gap.value, test.value) == (pytest.approx(0.60), pytest.approx(0.10))
    expected = sorted(fx.TEST_PSI["overall"], key=lambda n: -fx.TEST_PSI["overall"][n][0])
    assert [r.predictor for r in board.task("overall", "test_error").rows] == expected
    assert not board.task("overall", "test_error").has_heldout  # held-out scores exist for the gap only


def test_readme_has_a_table_per_target_gap_first(readme):
    headings = re.findall(r"^## Target: (.+)$", readme, re.M)
    assert headings == ["generalization gap", "test error", "shift error"]
    test = _section(readme, "## Target: test error")
    rows = _table_rows(test)
    expected = sorted(fx.TEST_PSI["overall"], key=lambda n: -fx.TEST_PSI["overall"][n][0])
    assert [re.match(r"`([^`]+)`", r[1]).group(1) for r in rows] == expected
    assert rows[0][2:] == ["0.85 [0.78, 0.92] (n=8)"] * 4  # seed oracle, Psi per task
    assert "| n/a |" in test  # sharpness_trace has no test-error score on newsgroups
    shift = _section(readme, "## Target: shift error")
    assert "Ψ fsdd" in shift and "Ψ fashion_mnist" not in shift


def test_html_has_a_target_switch_and_hidden_secondary_tables(index_html):
    for target in ("gap", "test_error", "shift_error"):
        assert f'<input type="radio" name="target" value="{target}"' in index_html
    assert '<div class="target-view" data-target-view="gap">' in index_html
    assert '<div class="target-view" data-target-view="test_error" hidden>' in index_html
    assert 'id="board-shift_error-fsdd"' in index_html and 'id="board-shift_error-overall"' not in index_html


# --- public vs held-out ---------------------------------------------------------------------------


def test_rank_agreement_matches_scipy_and_known_answers():
    assert rank_agreement({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3}).tau == pytest.approx(1.0)
    assert rank_agreement({"a": 1, "b": 2, "c": 3}, {"a": 3, "b": 2, "c": 1}).tau == pytest.approx(-1.0)
    few = rank_agreement({"a": 1, "b": 2}, {"a": 1, "b": 2})
    assert math.isnan(few.tau) and few.n == 2
    missing = rank_agreement({"a": 1, "b": 2, "c": math.nan, "d": 4}, {"a": 2, "b": 1, "d": 3, "e": 9})
    assert missing.predictors == ("a", "b", "d")
    rng = np.random.default_rng(3)
    for _ in range(5):
        x, y = rng.normal(size=9).round(1), rng.normal(size=9).round(1)  # rounding makes ties
        names = [f"p{i}" for i in range(9)]
        got = rank_agreement(dict(zip(names, x)), dict(zip(names, y)))
        assert got.tau == pytest.approx(kendalltau(x, y).statistic, abs=1e-12)


def test_board_shows_the_rank_agreement_of_each_table(board, readme, index_html):
    for task in ("overall", *fx.TASKS):
        names = [n for n in fx.HELDOUT_PSI[task] if n != "seed_oracle"]
        expected = kendalltau([fx.PSI[task][n][0] for n in names], [fx.HELDOUT_PSI[task][n][0] for n in names])
        agreement = board.task(task).agreement
        assert isinstance(agreement, Agreement) and agreement.n == 4
        assert agreement.tau == pytest.approx(expected.statistic)
    assert board.task("overall").agreement.tau == pytest.approx(4 / 6)  # one discordant pair of six
    overall = _section(readme, "### Overall (all tasks)")
    assert "Rank agreement of the public and held-out Ψ: Kendall τ = 0.67 over 4 predictors" in overall
    assert "Kendall τ = 1.00 over 4 predictors" in _section(readme, "### Task `fashion_mnist`")
    assert index_html.count('class="agreement"') == 4


def test_heldout_column_sits_beside_the_public_one(readme):
    overall = _section(readme, "### Overall (all tasks)")
    header = next(line for line in overall.splitlines() if line.startswith("| #"))
    assert "| Ψ held-out |" in header and "| Ψ public |" in header
    rows = {re.match(r"`([^`]+)`", r[1]).group(1): r for r in _table_rows(overall)}
    assert rows["weight_norm"][2] == "0.38 [0.30, 0.46] (n=8)"
    assert rows["sharpness_trace"][:3] == ["—", "`sharpness_trace` *(not sandboxed)*", "n/a"]


def test_without_heldout_zoo_the_board_is_public_only(tmp_path):
    board = load_board(fx.write_fixture(tmp_path, heldout=False))
    assert not board.has_heldout and all(tb.agreement is None for tb in board.tasks)
    md = render_markdown(board)
    assert "held-out" not in _section(md, "## Target: generalization gap")
    assert [r.predictor for r in board.task("overall").rows] == fx.EXPECTED_ORDER["overall"]


def test_heldout_per_model_rows_are_refused(tmp_path):
    meta, tables = fx.make_tables()
    leak = tables["points"].iloc[:2].assign(zoo_id=fx.HELDOUT_ID)
    d = fx.write_tables(tmp_path / "leak", meta, {**tables, "points": pd.concat([tables["points"], leak])})
    with pytest.raises(ValueError, match=r"points\.parquet: 2 rows of the held-out zoo .*aggregate scores only"):
        load_board(d)


def test_heldout_rows_need_a_heldout_zoo_in_the_header(tmp_path):
    meta, tables = fx.make_tables()
    d = fx.write_tables(tmp_path / "nometa", meta.model_copy(update={"heldout": None}), tables)
    with pytest.raises(ValueError, match=r"scores\.parquet: has held-out rows but board_meta\.json names no held-out"):
        load_board(d)


def test_split_and_zoo_must_agree(tmp_path):
    meta, tables = fx.make_tables()
    runs = tables["runs"].copy()
    runs.loc[(runs["split"] == "public") & (runs["predictor"] == "random"), "split"] = "heldout"
    d = fx.write_tables(tmp_path / "mixed", meta, {**tables, "runs": RUNS.frame(runs)})
    with pytest.raises(ValueError, match=r"runs\.parquet: row of predictor 'random' has split 'heldout'"):
        load_board(d)


# --- marks, drift, links --------------------------------------------------------------------------


def test_kinds_hparams_sandbox_and_trajectory_are_marked(readme, index_html):
    for task in ("overall", *fx.TASKS):
        section = _section(readme, "### Overall (all tasks)" if task == "overall" else f"### Task `{task}`")
        assert "`weight_norm` *(baseline)*" in section and "`random` *(baseline)*" in section, task
        assert "`seed_oracle` *(noise floor)*" in section, task
        assert "`lr_batch_ratio` *(baseline, reads hparams)*" in section, task
        assert "`sharpness_trace` *(not sandboxed)*" in section, task
    assert "`ph_dim` *(drift 0.11)*" in _section(readme, "### Task `fashion_mnist`")
    assert "`ph_dim` *(drift 0.22)*" in _section(readme, "### Task `fsdd`")
    assert re.search(r"\| `ph_dim` \|", _section(readme, "### Task `newsgroups`"))  # drift not recorded: no mark
    for cls, label in (("tag-oracle", "noise floor"), ("tag-hparams", "reads hparams"),
                       ("tag-unsandboxed", "not sandboxed"), ("tag-drift", "drift 0.11")):
        assert re.search(rf'<span class="tag {cls}" title="[^"]+">{label}</span>', index_html), cls


def test_drift_median_is_over_converged_models(board):
    _, tables = fx.make_tables()
    models = tables["models"]
    ok = models[(models["status"] == "converged") & np.isfinite(models["window_drift_share"])]
    assert board.drift["fashion_mnist"] == pytest.approx(0.11)  # 0.00 .. 0.22: model 23 did not converge
    assert board.drift["fsdd"] == pytest.approx(0.22)
    assert "newsgroups" not in board.drift
    assert board.drift["overall"] == pytest.approx(float(np.median(ok["window_drift_share"])))
    assert board.task("fashion_mnist").drift_median == pytest.approx(0.11)


def test_references_link_to_papers_and_unsafe_urls_never_do(readme, index_html):
    predictors = _section(readme, "## Predictors")
    assert "[Birdal et al. 2021](<https://arxiv.org/abs/2111.13171>)" in predictors
    assert "javascript" not in readme
    assert '<a href="https://arxiv.org/abs/2111.13171" rel="noopener">Birdal et al. 2021</a>' in index_html
    assert "javascript:" not in index_html.split("<script>")[0]
    hrefs = re.findall(r'href="([^"]+)"', index_html)
    assert all(h.startswith(("#", "data/", "https://")) for h in hrefs), sorted(set(hrefs))
    assert sum(h.startswith("https://") for h in hrefs) >= 2


# --- downloads and citation -----------------------------------------------------------------------


def test_csv_and_json_of_every_table_match_the_parquet(rendered, data_dir):
    out = rendered[0]
    for table in BOARD_TABLES:
        original = table.read(data_dir / table.file)
        expected = original.sort_values(list(table.key), kind="mergesort").reset_index(drop=True)
        assert (out / "data" / table.file).read_bytes() == (data_dir / table.file).read_bytes()
        from_csv = table.validate(pd.read_csv(out / "data" / f"{table.name}.csv", keep_default_na=False,
                                              na_values={c.name: [""] for c in table.columns if c.type == "float"},
                                              dtype={c.name: str for c in table.columns if c.type == "str"}))
        pd.testing.assert_frame_equal(from_csv, expected, check_exact=True)
        doc = json.loads((out / "data" / f"{table.name}.json").read_text(encoding="utf-8"))
        assert doc["table"] == table.name and doc["key"] == list(table.key)
        assert [c["name"] for c in doc["columns"]] == table.names
        from_json = table.validate(pd.DataFrame(doc["rows"], columns=table.names))
        pd.testing.assert_frame_equal(from_json, expected, check_exact=True)
    assert json.loads((out / "data" / "board_meta.json").read_text()) == json.loads(
        (data_dir / "board_meta.json").read_text())


def test_csv_and_json_keep_awkward_strings_and_missing_values():
    meta, tables = fx.make_tables()
    runs = tables["runs"].copy()
    runs.loc[0, "notes"] = 'commas, "quotes"\nand a new line; unicode ψ'
    runs.loc[0, "seconds_median"] = math.nan
    text = table_csv(RUNS, runs)
    rows = list(csv.DictReader(io.StringIO(text)))
    first = next(r for r in rows if r["predictor"] == runs.loc[0, "predictor"] and r["split"] == "public")
    assert first["notes"] == runs.loc[0, "notes"] and first["seconds_median"] == ""
    assert first["sandboxed"] in ("true", "false")
    doc = json.loads(table_json(RUNS, runs))
    row = next(r for r in doc["rows"] if r["predictor"] == runs.loc[0, "predictor"] and r["split"] == "public")
    assert row["notes"] == runs.loc[0, "notes"] and row["seconds_median"] is None
    assert "NaN" not in table_json(SCORES, tables["scores"]).split('"rows"')[1]  # strict JSON: null, never NaN
    assert json.loads(table_json(SCORES, tables["scores"].iloc[:0]))["rows"] == []


def test_both_pages_link_every_download_and_the_files_exist(rendered, readme, index_html):
    out = rendered[0]
    for table in BOARD_TABLES:
        for ext in ("csv", "json", "parquet"):
            rel = f"data/{table.name}.{ext}"
            assert f"]({rel})" in readme, rel
            assert f'href="{rel}"' in index_html, rel
            assert (out / rel).is_file(), rel
    assert "](data/board_meta.json)" in readme and 'href="data/board_meta.json"' in index_html


def test_bibtex_on_both_pages(board, readme, index_html):
    entry = bibtex(board.meta)
    assert entry.startswith("@misc{gapbench20250115,") and entry.count("{") == entry.count("}")
    for text in (fx.ZOO_ID, fx.HELDOUT_ID, fx.COMMIT[:12], "year         = {2025}", "{The gapbench developers}"):
        assert text in entry, text
    assert f"```bibtex\n{entry}```" in _section(readme, "## How to cite")
    assert html.escape(entry.rstrip()) in index_html
    assert "\\_" in bibtex(board.meta.model_copy(update={"git_commit": "a_b"}))


def test_citation_license_and_changelog_files():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    for key in ("cff-version", "message", "title", "authors"):  # required by CFF 1.2.0
        assert cff.get(key), key
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["title"] == TITLE and cff["authors"] == [{"name": AUTHORS}]
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert cff["license"] == project["license"]["text"] == "MIT"
    assert cff["version"] == project["version"]
    license_text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert license_text.startswith("MIT License") and AUTHORS in license_text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in license_text
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert "keepachangelog.com" in changelog and "## [Unreleased]" in changelog
    assert re.search(r"^## \[0\.1\.0\]", changelog, re.M)


# --- the page -------------------------------------------------------------------------------------


def test_html_is_one_offline_file(index_html):
    assert "<script src" not in index_html and "<link" not in index_html
    assert not re.search(r"""src=["'](https?:)?//""", index_html)  # no remote resource; links to papers are fine
    assert "<style>" in index_html and "<script>" in index_html
    for src in re.findall(r'<img src="([^"]+)"', index_html):
        assert not src.startswith("/") and ".." not in src


def test_filter_controls_list_the_families_and_kinds(index_html, board):
    for family in {p.family for p in board.predictors}:
        assert f'<option value="{family}">{family}</option>' in index_html
    for kind in ("predictor", "baseline", "oracle"):
        assert f'<option value="{kind}">{kind}</option>' in index_html
    row = re.search(r'<tr class="kind-baseline" data-predictor="lr_batch_ratio" data-family="([^"]+)" '
                    r'data-kind="baseline"', index_html)
    assert row and row.group(1) == "hyperparameters"


def test_scatter_data_joins_points_with_targets_and_hyperparameters(board):
    data = scatter_data(board)
    _, tables = fx.make_tables()
    models = tables["models"].set_index("model_id")
    task = data["tasks"]["fsdd"]
    assert task["models"] == sorted(set(board.points.loc[board.points["task"] == "fsdd", "model_id"]))
    assert data["levels"]["lr"] == {"values": ["0.01", "0.1"], "colours": data["levels"]["lr"]["colours"]}
    assert len(set(data["levels"]["lr"]["colours"])) == 2
    for i, model_id in enumerate(task["models"]):
        hp = json.loads(models.loc[model_id, "hp"])
        assert data["levels"]["lr"]["values"][task["hp"]["lr"][i]] == hp["lr"]
        assert task["targets"]["gap"][i] == pytest.approx(models.loc[model_id, "gap"], rel=1e-5)
        assert task["targets"]["shift_error"][i] == pytest.approx(models.loc[model_id, "shift_error"], rel=1e-5)
    assert all(v is None for v in data["tasks"]["fashion_mnist"]["targets"]["shift_error"])
    pts = board.points[(board.points["predictor"] == "ph_dim") & (board.points["task"] == "fsdd")]
    assert len(data["scores"]["ph_dim"]["fsdd"]) == len(pts) == 20  # 3 failed, 1 not converged
    assert "sharpness_trace" not in {p for p, t in data["scores"].items() if "newsgroups" in t}
    assert data["stats"]["ph_dim"]["gap"]["fashion_mnist"] == "τ 0.48, Ψ 0.60"
    assert data["defaultAxis"] == "lr"  # every axis varies within every task: the first by name


def test_scatters_are_coloured_by_an_axis_that_varies_within_tasks_by_default():
    meta, tables = fx.make_tables()
    models = tables["models"].copy()
    per_task = {"fashion_mnist": "0.01", "fsdd": "0.1", "newsgroups": "0.3"}  # lr constant within each task
    models["hp"] = [json.dumps({**json.loads(h), "lr": per_task[t]}, sort_keys=True)
                    for h, t in zip(models["hp"], models["task"])]
    data = scatter_data(build_board(meta, {**tables, "models": models}))
    assert data["levels"]["lr"]["values"] == ["0.01", "0.1", "0.3"]
    assert data["defaultAxis"] == "weight_decay"


def test_json_in_the_page_cannot_close_its_script_tag(tmp_path):
    meta, tables = fx.make_tables()
    runs = tables["runs"].copy()
    models = tables["models"].copy()
    models.loc[0, "hp"] = json.dumps({"lr": "</script><script>alert(1)</script>", "weight_decay": "0",
                                      "width": "32"})
    page = render_html(build_board(meta, {**tables, "runs": runs, "models": models,
                                          "points": tables["points"]}))
    data_part = page.split('<script type="application/json" id="board-data">')[1].split("</script>")[0]
    assert "<" not in data_part and ">" not in data_part


# --- figures --------------------------------------------------------------------------------------


def _label_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    # Text's own extent: an Annotation's would include its leader line
    return [Text.get_window_extent(t, renderer) for t in ax.texts], ax.get_window_extent(renderer)


def _overlaps(boxes) -> list[tuple[int, int]]:
    return [(i, j) for i in range(len(boxes)) for j in range(i + 1, len(boxes)) if boxes[i].overlaps(boxes[j])]


def test_cost_figure_numbers_do_not_overlap(board):
    boxes, frame = _label_boxes(cost_figure(board))
    assert len(boxes) == 5  # sharpness_trace has no held-out Psi, hence no official point
    assert _overlaps(boxes) == []
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
    key = [t.get_text() for t in cost_figure(board).axes[1].texts]
    assert key[0].split() == ["1", "seed_oracle", "(noise", "floor)"] and len(key) == 5


def test_cost_figure_numbers_do_not_overlap_in_a_crowd():
    """Twenty predictors at nearly the same cost and Psi (the case the old labels garbled)."""
    meta, tables = fx.make_tables(heldout=False)
    scores, runs, preds = [tables["scores"]], [tables["runs"]], [tables["predictions"]]
    for k in range(20):
        name = f"crowd_{k:02d}"
        s = tables["scores"][tables["scores"]["predictor"] == "ph_dim"].assign(predictor=name)
        s.loc[s["metric"] == "psi", "value"] = 0.40 + 0.004 * k
        scores.append(s)
        runs.append(tables["runs"][tables["runs"]["predictor"] == "ph_dim"].assign(predictor=name))
        p = tables["predictions"][tables["predictions"]["predictor"] == "ph_dim"].assign(predictor=name)
        preds.append(p.assign(seconds=p["seconds"] * (1 + 0.01 * k)))
    crowd = {**tables, "scores": pd.concat(scores, ignore_index=True), "runs": pd.concat(runs, ignore_index=True),
             "predictions": pd.concat(preds, ignore_index=True)}
    fig = cost_figure(build_board(meta, crowd))
    boxes, _ = _label_boxes(fig)
    assert len(boxes) == 26 and _overlaps(boxes) == []
    key = fig.axes[1]
    key_boxes = [t.get_window_extent(fig.canvas.get_renderer()) for t in key.texts]
    assert len(key_boxes) == 26 and _overlaps(key_boxes) == []
    legend = key.get_legend().get_window_extent(fig.canvas.get_renderer())
    assert not any(b.overlaps(legend) for b in key_boxes)


def test_figures_are_written(rendered):
    out, written = rendered
    rel = {str(p.relative_to(out)) for p in written}
    assert {"README.md", "index.html", COST_FIGURE} <= rel
    for task in ("overall", *fx.TASKS):
        assert psi_axes_path(task) in rel
    for p in written:
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert slug("my/pred ictor:v2") == "my-pred-ictor-v2" and detail_id("../evil name") == "p-evil-name"


# --- determinism ----------------------------------------------------------------------------------


def test_rerendering_in_place_is_idempotent_and_removes_stale_files(rendered, tmp_path):
    """``make leaderboard``: the tables in leaderboards/data, CSV and JSON written beside them."""
    first = _board_files(rendered[0])
    assert {"data/scores.csv", "data/scores.json", "data/models.json"} <= set(first)
    again = tmp_path / "leaderboards"
    shutil.copytree(rendered[0], again)
    (again / "README.md").write_text("hand edit")
    (again / "data" / "scores.csv").write_text("hand edit")
    stale = again / "figures" / "scatter" / "ph_dim__fsdd.png"  # the old per-predictor scatters
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    render_leaderboard(again / "data", again)
    assert not stale.exists() and not stale.parent.exists()
    assert _board_files(again) == first


def test_rendering_in_another_process_gives_the_same_bytes(data_dir, rendered, tmp_path):
    """A fresh interpreter with another hash seed (set and dict-of-set orders change with it)."""
    out = tmp_path / "other"
    code = ("import sys; from benchmark.leaderboard import render_leaderboard; "
            "render_leaderboard(sys.argv[1], sys.argv[2])")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "MPLBACKEND": "Agg"}
    subprocess.run([sys.executable, "-c", code, str(data_dir), str(out)], check=True, env=env, cwd=REPO, timeout=300)
    assert _board_files(out) == _board_files(rendered[0])


# --- errors name the file and field ---------------------------------------------------------------


def test_missing_table_is_named(tmp_path):
    for name in ("scores.parquet", "points.parquet", "models.parquet", "board_meta.json"):
        d = fx.write_fixture(tmp_path / name)
        (d / name).unlink()
        with pytest.raises(TableError, match=re.escape(name) + ": missing"):
            load_board(d)


def test_missing_column_and_bad_meta_are_named(tmp_path):
    d = fx.write_fixture(tmp_path / "col")
    pd.read_parquet(d / "runs.parquet").drop(columns=["url"]).to_parquet(d / "runs.parquet")
    with pytest.raises(ValueError, match=r"runs\.parquet: not a runs table: missing column\(s\) \['url'\]"):
        load_board(d)
    d = fx.write_fixture(tmp_path / "meta")
    meta = json.loads((d / "board_meta.json").read_text())
    meta["zoo_size"] = meta.pop("public")
    (d / "board_meta.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="board_meta.json: invalid board metadata: public"):
        load_board(d)


def test_several_versions_of_a_predictor_are_refused(tmp_path):
    meta, tables = fx.make_tables()
    scores = tables["scores"].copy()
    scores.loc[(scores["predictor"] == "ph_dim") & (scores["task"] == "fsdd"), "version"] = "0.9"
    with pytest.raises(ValueError, match=r"\['ph_dim'\] appear with several versions"):
        load_board(fx.write_tables(tmp_path / "v", meta, {**tables, "scores": scores}))
    scores = tables["scores"].copy()
    scores.loc[(scores["predictor"] == "ph_dim") & (scores["split"] == "heldout"), "version"] = "0.9"
    with pytest.raises(ValueError, match=r"\['ph_dim'\] have another version on the held-out zoo"):
        load_board(fx.write_tables(tmp_path / "h", meta, {**tables, "scores": scores}))


# --- the terminal view ----------------------------------------------------------------------------


def _local_run(tmp_path: Path, *, content_hash: str = fx.CONTENT_HASH) -> Path:
    """A local evaluation of one new predictor, ``my_pred``, on the same zoo (or another content)."""
    meta, tables = fx.make_tables(heldout=False)
    mine = {}
    for name, frame in tables.items():
        if name == "models":
            mine[name] = frame
            continue
        rows = frame[frame["predictor"] == "ph_dim"].assign(predictor="my_pred")
        if "version" in rows:
            rows = rows.assign(version="0.1")
        if name == "scores":  # Psi between ph_dim (0.60) and sharpness_trace (0.50) on fashion_mnist
            psi = (rows["metric"] == "psi") & (rows["target"] == "gap")
            rows.loc[psi & (rows["task"] == "fashion_mnist"), ["value", "ci_low", "ci_high"]] = [0.55, 0.41, 0.66]
            rows.loc[psi & (rows["task"] == "overall"), ["value", "ci_low", "ci_high"]] = [0.40, 0.31, 0.49]
        if name == "runs":
            rows = rows.assign(family="mine", reference="Me et al. 2026", url="")
        mine[name] = rows.reset_index(drop=True)
    local = meta.model_copy(update={"public": meta.public.model_copy(update={"content_hash": content_hash})})
    return fx.write_tables(tmp_path, local, mine)


def test_terminal_shows_a_submission_between_its_published_neighbours(tmp_path, data_dir):
    text = render_terminal(_local_run(tmp_path / "res"), highlight=["my_pred"], published=data_dir)
    assert "(with the 6 published predictors of the board" in text
    fashion = text.split("== fashion_mnist")[1].split("\n== ")[0]
    names = [re.match(r"^[* ]\s*\S+\s+(\S+)", line).group(1) for line in fashion.splitlines()[2:] if line.strip()]
    assert names[:4] == ["seed_oracle", "ph_dim", "my_pred", "sharpness_trace"]
    mine = next(line for line in fashion.splitlines() if "my_pred" in line)
    assert mine.startswith("*  3 my_pred") and "0.55 [0.41, 0.66]" in mine
    assert "Ψ held-out" in fashion and "0.58 [0.48, 0.68]" in fashion  # ph_dim's published held-out Psi
    overall = text.split("== overall")[1].split("\n== ")[0]
    names = [re.match(r"^[* ]\s*\S+\s+(\S+)", line).group(1) for line in overall.splitlines()[2:] if line.strip()]
    assert names[:4] == ["seed_oracle", "ph_dim", "my_pred", "sharpness_trace"]
    assert text.rstrip().endswith("* = evaluated in this run")


def test_terminal_keeps_to_local_rows_when_the_zoo_differs(tmp_path, data_dir):
    text = render_terminal(_local_run(tmp_path / "res", content_hash="0" * 64), published=data_dir)
    assert "published predictors" not in text and "ph_dim" not in text and "my_pred" in text
    assert "test error" in render_terminal(tmp_path / "res", target="test_error")
    with pytest.raises(ValueError, match="no scores for target 'nope'"):
        render_terminal(tmp_path / "res", target="nope")


# --- the committed board --------------------------------------------------------------------------


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


def test_render_functions_agree_with_render_leaderboard(board, rendered):
    out = rendered[0]
    assert render_markdown(board) == (out / "README.md").read_text(encoding="utf-8")
    assert render_html(board) == (out / "index.html").read_text(encoding="utf-8")
    assert callable(render_figures)


def test_zoo_size_says_how_many_converged_models_the_scores_rank(board, readme, index_html):
    _, tables = fx.make_tables()
    models = tables["models"]
    for task, group in models.groupby("task"):
        tb = board.task(str(task))
        converged = int((group["status"] == "converged").sum())
        assert (tb.zoo_size, tb.n_converged) == (len(group), converged)
        if converged == len(group):
            assert tb.size_text == f"{len(group)} models"
        else:
            assert tb.size_text == f"{len(group)} models, {converged} converged and scored"
            assert f"Zoo size: {tb.size_text}." in readme and f"Zoo size: {tb.size_text}." in index_html
    assert board.task("overall").n_converged == int((models["status"] == "converged").sum())
    assert board.task("fashion_mnist").n_converged < board.task("fashion_mnist").zoo_size  # model 23
