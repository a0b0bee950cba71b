"""The CLI end to end on the micro zoo: evaluate, score, leaderboard; and one line per error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.tables import BOARD_TABLES, read_board_meta

GAPBENCH = [sys.executable, "-c", "from benchmark.cli import main; main()"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*GAPBENCH, *args], capture_output=True, text=True, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def evaluated(micro_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    results = tmp_path_factory.mktemp("results")
    out = run("evaluate", "--zoo", str(micro_zoo), "--predictor", "weight_norm", "--predictor", "parameter_count",
              "--no-track", "--results", str(results))
    assert out.returncode == 0, out.stderr[-3000:]
    return micro_zoo, results, out.stdout


def test_evaluate_writes_every_table_and_prints_the_board(evaluated):
    zoo, results, stdout = evaluated
    (table_dir,) = [p for p in results.iterdir() if p.is_dir()]
    for table in BOARD_TABLES:
        frame = table.read(table_dir / table.file)
        assert len(frame), table.name
    meta = read_board_meta(table_dir / "board_meta.json")
    assert meta.public.zoo_id == table_dir.name and len(meta.public.content_hash) == 64
    assert "weight_norm" in stdout and "parameter_count" in stdout and "seed_oracle" in stdout
    assert "predictions: 56 computed, 0 from the cache" in stdout
    assert (table_dir / "board" / "index.html").is_file()


def test_second_evaluate_is_served_by_the_cache(evaluated):
    zoo, results, _ = evaluated
    out = run("evaluate", "--zoo", str(zoo), "--predictor", "weight_norm", "--no-track", "--results", str(results))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "predictions: 0 computed, 28 from the cache" in out.stdout


def test_score_and_leaderboard_stages_alone(evaluated, tmp_path):
    zoo, results, _ = evaluated
    out = run("score", "--zoo", str(zoo), "--results", str(results))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "parameter_count" in out.stdout
    (table_dir,) = [p for p in results.iterdir() if p.is_dir()]
    first = run("leaderboard", "--data", str(table_dir), "--out", str(tmp_path / "a"))
    second = run("leaderboard", "--data", str(table_dir), "--out", str(tmp_path / "b"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files_a and files_a == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*")
                                         if p.is_file())
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def _one_line_error(out: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert errors, out.stderr
    return errors[0]


def test_errors_are_one_line(tmp_path, micro_zoo):
    missing = run("evaluate", "--zoo", str(tmp_path / "nowhere"), "--no-track")
    assert missing.returncode == 2 and "no built zoo at" in _one_line_error(missing)
    typo = run("evaluate", "--zoo", str(micro_zoo), "--predictor", "weigth_norm", "--no-track",
               "--results", str(tmp_path / "r"))
    assert typo.returncode == 1 and "did you mean 'weight_norm'" in _one_line_error(typo)
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "bad"\nseeds = [true]\n[[experiments]]\ntask = "fsdd"\narchitecture = "m5"\n')
    bad_spec = run("zoo", "build", str(spec), "--root", str(tmp_path / "z"))
    assert bad_spec.returncode == 2 and "bad.toml" in _one_line_error(bad_spec)


def test_a_broken_predictor_file_fails_alone(tmp_path, micro_zoo):
    broken = tmp_path / "broken.py"
    broken.write_text("def oops(:\n")
    out = run("evaluate", "--zoo", str(micro_zoo), "--predictor", str(broken), "--predictor", "parameter_count",
              "--no-track", "--results", str(tmp_path / "r"))
    assert out.returncode == 1  # the run went on, and says something failed
    assert "broken.py" in _one_line_error(out) and "SyntaxError" in out.stderr
    assert "parameter_count" in out.stdout
