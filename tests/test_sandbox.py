"""The sandbox: a submitted predictor cannot see, change or forge what it is scored against.

Every attack in tests/adversarial/ runs through `benchmark.predict` (or the CLI, or the
conformance runner) on the micro zoo, once in the bubblewrap sandbox, where it must end as a
recorded failure or a harmless no-op with every honest prediction intact, and once with
``--no-sandbox``, where it must work (the controls: they show each attack is real, so these
tests can fail). docs/sandbox.md tabulates the outcomes.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from benchmark import conformance_run
from benchmark.cache import PredictionCache
from benchmark.pipeline import evaluate
from benchmark.predict import LOG_FILE_BYTES, PredictReport, predict
from benchmark.sandbox import (
    BWRAP_MISSING,
    FILES_INSIDE,
    STAGE_INSIDE,
    Isolation,
    SandboxUnavailable,
    check_sandbox,
    self_check,
)
from model_zoo.executor import DEFAULT_LOG_BYTES, reap_dead_runs, runs_root
from model_zoo.zoo import Zoo
from predictors import registry
from predictors.registry import PredictorRef

# Under load a worker's start-up (python + torch) takes 10-20 s; the module-scoped runs start ~20.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[1]
ADVERSARIAL = Path(__file__).resolve().parent / "adversarial"
BUDGET = 60.0
MEMORY_MB = 2048.0
MARKER = "gapbench-attack-marker"  # the file write_view.py drops wherever it can write
FORGED = 12345.0
MODES = [pytest.param(True, id="sandbox"), pytest.param(False, id="no-sandbox")]


def isolation(sandbox: bool) -> Isolation:
    return Isolation(sandbox=sandbox, memory_mb=MEMORY_MB)


def attack_file(name: str, folder: Path, **hints) -> Path:
    """A copy of tests/adversarial/<name>.py with its ``HINTS`` (what the attacker knows) filled in."""
    source = (ADVERSARIAL / f"{name}.py").read_text()
    if hints:
        assert "HINTS: dict = {}" in source, name
        source = source.replace("HINTS: dict = {}", f"HINTS: dict = {hints!r}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(source)
    return path


def file_refs(*paths: Path) -> list[PredictorRef]:
    """Refs of attack files, described in this process (they do nothing when imported)."""
    refs = []
    for path in paths:
        metas = [p.meta.model_dump(mode="json") for p in registry.file_predictors(path)]
        refs += registry.file_refs(path, metas)
    return refs


def weight_norm() -> PredictorRef:
    return registry.resolve_names(["weight_norm"])[0]


def scores(frame: pd.DataFrame, predictor: str) -> pd.Series:
    rows = frame[frame.predictor == predictor]
    return rows.set_index("model_id").sort_index()["score"]


def assert_same(got: pd.Series, expected: pd.Series) -> None:
    """Same models, same values, exactly."""
    assert list(got.index) == list(expected.index)
    assert got.tolist() == expected.tolist()


def rows_of(report: PredictReport, predictor: str) -> pd.DataFrame:
    return report.predictions[report.predictions.predictor == predictor].set_index("model_id").sort_index()


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def processes_with(argv: list[str]) -> list[int]:
    """Pids of this machine's processes whose command line is exactly ``argv``."""
    want = b"\0".join(a.encode() for a in argv) + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == want:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_for(condition, seconds: float, step: float = 0.5):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    return condition()


# ---------------------------------------------------------------------------------------------
# fixtures: a clean run, then every attack beside weight_norm, in each mode


@pytest.fixture(scope="module")
def sandbox_available() -> str:
    try:
        return check_sandbox()
    except SandboxUnavailable as exc:
        pytest.fail(f"{exc} (run scripts/install_bubblewrap.sh)")


@pytest.fixture(scope="module")
def answers(micro_zoo) -> pd.DataFrame:
    return pd.read_parquet(micro_zoo / "answers" / "answers.parquet").set_index("model_id").sort_index()


@dataclass
class Clean:
    results: Path
    weight_norm: pd.Series


@pytest.fixture(scope="module")
def clean(micro_zoo, sandbox_available, tmp_path_factory) -> Clean:
    """weight_norm alone, sandboxed, through the whole pipeline: its scores, its cache, its tables."""
    results = tmp_path_factory.mktemp("clean")
    run = evaluate(micro_zoo, [weight_norm()], results_dir=results, budget_seconds=BUDGET,
                   isolation=isolation(True), progress=False)
    clean_scores = scores(run.report.predictions, "weight_norm")
    assert len(clean_scores) == len(Zoo(micro_zoo).model_ids()) and clean_scores.notna().all()
    assert (run.out_dir / "models.parquet").is_file()
    return Clean(results, clean_scores)


MAIN_ATTACKS = ("cwd_answers", "loader_test_data", "results_answers", "leaderboard_answers", "write_view",
                "forge_cache", "patch_other", "recon")


@dataclass
class AttackRun:
    sandbox: bool
    report: PredictReport
    hinted: Path  # the copy of the clean results the attacker was told about
    zoo_changed: list[str]
    markers: list[Path]


@pytest.fixture(scope="module", params=MODES)
def attack_run(request, micro_zoo, clean, tmp_path_factory) -> AttackRun:
    import shutil

    sandbox = request.param
    base = tmp_path_factory.mktemp("sandboxed" if sandbox else "unsandboxed")
    hinted = base / "hinted-results"
    shutil.copytree(clean.results, hinted)
    files = [attack_file(name, base / "attacks", **({"results": [str(hinted)]} if name in ("results_answers",
                                                                                           "forge_cache") else {}))
             for name in MAIN_ATTACKS]
    before = tree_digest(micro_zoo)
    try:
        report = predict(micro_zoo, [*file_refs(*files), weight_norm()], results_dir=base / "results",
                         budget_seconds=BUDGET, isolation=isolation(sandbox), progress=False)
    finally:
        markers = sorted(micro_zoo.rglob(MARKER))
        for marker in markers:  # leave the session's zoo as it was for the other tests
            marker.unlink()
    changed = sorted(k for k, v in tree_digest(micro_zoo).items() if before.get(k) != v)
    assert tree_digest(micro_zoo) == before
    return AttackRun(sandbox, report, hinted, changed, markers)


# ---------------------------------------------------------------------------------------------
# the attacks of the main run


def test_honest_predictions_are_intact(attack_run, clean, micro_zoo):
    """weight_norm computed beside every attack equals the clean run, score for score."""
    got = scores(attack_run.report.predictions, "weight_norm")
    assert_same(got, clean.weight_norm)
    assert (rows_of(attack_run.report, "weight_norm").status == "ok").all()
    assert len(attack_run.report.predictions) == len(Zoo(micro_zoo).model_ids()) * (len(MAIN_ATTACKS) + 1)


def test_answers_beside_the_view(attack_run, answers):
    """cwd_answers: walk up from cwd / the staged view to ``<zoo>/answers/``."""
    rows = rows_of(attack_run.report, "attack_cwd")
    if attack_run.sandbox:
        assert (rows.status == "failed").all() and rows.reason.str.startswith("LookupError").all(), rows.reason.iloc[0]
    else:  # the view's data link leads to the zoo root: every gap read exactly
        assert (rows.status == "ok").all(), rows.reason.iloc[0]
        assert_same(rows.score, answers.gap)


def test_test_data_through_the_loaders(attack_run, answers):
    """loader_test_data: the loader module behind the guarded ``load_task``, on the project's cache."""
    rows = rows_of(attack_run.report, "attack_loader")
    if attack_run.sandbox:
        assert (rows.status == "failed").all()
        assert rows.reason.str.contains("test data unreachable").all(), rows.reason.iloc[0]
    else:  # the true test error, measured on the test set
        assert (rows.status == "ok").all(), rows.reason.iloc[0]
        assert (rows.score - answers.test_error).abs().max() < 1e-9


def test_answers_in_results(attack_run, answers):
    """results_answers: ``<results>/<zoo>/models.parquet`` of an earlier run."""
    rows = rows_of(attack_run.report, "attack_results")
    if attack_run.sandbox:
        assert (rows.status == "failed").all() and rows.reason.str.startswith("LookupError").all(), rows.reason.iloc[0]
    else:
        assert (rows.status == "ok").all(), rows.reason.iloc[0]
        assert_same(rows.score, answers.gap)


def test_published_board(attack_run):
    """leaderboard_answers: the committed ``leaderboards/data/points.parquet`` (the seed oracle's gaps)."""
    rows = rows_of(attack_run.report, "attack_leaderboard")
    if attack_run.sandbox:
        assert (rows.status == "failed").all()
        assert rows.reason.str.startswith("FileNotFoundError").all(), rows.reason.iloc[0]
    else:
        points = pd.read_parquet(REPO / "leaderboards" / "data" / "points.parquet")
        assert (rows.status == "ok").all(), rows.reason.iloc[0]
        assert (rows.score == float(len(points))).all()  # another zoo: it read every row


def test_write_through_the_view(attack_run, micro_zoo):
    """write_view: the staged weights and the task pools are read-only; the zoo never changes."""
    rows = rows_of(attack_run.report, "attack_write")
    assert attack_run.zoo_changed == []
    if attack_run.sandbox:
        assert (rows.status == "failed").all()
        assert rows.reason.str.contains("Read-only file system").all(), rows.reason.iloc[0]
        assert attack_run.markers == []
    else:  # all three writes got through, one of them into the zoo's own data folder
        assert (rows.status == "ok").all() and (rows.score == 3.0).all(), rows.reason.iloc[0]
        assert {m.parent.name for m in attack_run.markers} == {"fashion_mnist", "fsdd", "newsgroups"}
        assert all(m.parent.parent == micro_zoo / "public" / "data" for m in attack_run.markers)


def test_forge_another_predictors_cache(attack_run, micro_zoo, clean):
    """forge_cache: rewrite weight_norm's cache file and its sha256 sidecar."""
    rows = rows_of(attack_run.report, "attack_forge")
    zoo = Zoo(micro_zoo)
    # the hinted results are a copy of the clean run's, made in the sandbox: its cache is the sandboxed one
    frame, problem = PredictionCache(attack_run.hinted, zoo.zoo_id, zoo.content_hash,
                                     sandboxed=True).load(weight_norm(), 0)
    assert problem is None
    if attack_run.sandbox:
        assert (rows.status == "failed").all() and rows.reason.str.startswith("LookupError").all(), rows.reason.iloc[0]
        assert_same(scores(frame, "weight_norm"), clean.weight_norm)
    else:  # the sidecar only catches accidents: a writer recomputes it, and the forgery is loaded
        assert (rows.status == "ok").all(), rows.reason.iloc[0]
        assert (frame.score == FORGED).all() and len(frame) == len(zoo.model_ids())


def test_patch_another_predictor(attack_run, clean):
    """patch_other: in-process patches stay in the attacker's own worker; its source is read-only."""
    rows = rows_of(attack_run.report, "attack_patch")
    assert (rows.status == "ok").all(), rows.reason.iloc[0]
    assert (rows.score == (0.0 if attack_run.sandbox else 1.0)).all()  # 1.0: the source file was writable
    assert_same(scores(attack_run.report.predictions, "weight_norm"), clean.weight_norm)


def test_reconnaissance(attack_run):
    """recon: project folder, other processes, network, environment, /root, privileges, host /tmp, argv."""
    sys.path.insert(0, str(ADVERSARIAL))
    try:
        from recon import CHECKS
    finally:
        sys.path.remove(str(ADVERSARIAL))
    rows = rows_of(attack_run.report, "attack_recon")
    assert (rows.status == "ok").all(), rows.reason.iloc[0]
    found = int(rows.score.iloc[0])
    leaks = [name for i, name in enumerate(CHECKS) if found >> i & 1]
    if attack_run.sandbox:
        assert leaks == [], leaks
    else:
        assert {"project_root", "foreign_process", "host_tmp"} <= set(leaks), leaks


def test_shared_worker_state_is_a_real_attack(micro_zoo, tmp_path):
    """Control for patch_other: in one shared process (the old runner) it forges weight_norm."""
    code = (
        "import sys\n"
        "from predictors import registry\nfrom predictors.api import Subject\nfrom model_zoo.zoo import Zoo\n"
        f"zoo = Zoo({str(micro_zoo)!r}); record = zoo.record(zoo.model_ids()[0])\n"
        f"attack = registry.file_predictors({str(ADVERSARIAL / 'patch_other.py')!r})[0]\n"
        "attack(Subject(record))\n"
        "print(registry.load_all().get('weight_norm')(Subject(record)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert float(out.stdout.strip().splitlines()[-1]) == FORGED


# ---------------------------------------------------------------------------------------------
# budgets, output floods, leftovers


@pytest.mark.parametrize("sandbox", MODES)
def test_budget_is_the_runners_ceiling(sandbox, micro_zoo, tmp_path, request):
    """budget_override: ``budget_seconds=1e9`` and a sleep; the ceiling holds, nothing is left running."""
    if sandbox:
        request.getfixturevalue("sandbox_available")
    ids = Zoo(micro_zoo).model_ids()[:3]
    marker = f"{os.getpid()}.{time.time_ns() % 10**9}"
    path = attack_file("budget_override", tmp_path, sleep_on=[ids[0]], marker=marker)
    (ref,) = file_refs(path)
    assert ref.meta.budget_seconds == 1e9 and ref.budget(2.0) == 2.0
    report = predict(micro_zoo, [ref], results_dir=tmp_path / "results", budget_seconds=2.0, model_ids=ids,
                     isolation=isolation(sandbox), progress=False)
    rows = rows_of(report, "attack_budget")
    assert rows.loc[ids[0], "reason"] == "timeout: exceeded the budget of 2 s"
    assert rows.loc[ids[0], "seconds"] < 6.0
    assert (rows.loc[ids[1:], "status"] == "ok").all()
    left = wait_for(lambda: not processes_with(["sleep", marker]), 5.0)
    survivors = processes_with(["sleep", marker])
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    if sandbox:
        assert left and not survivors, "the sandbox's processes outlived its timeout"
    else:  # control: a detached child escapes the worker's process group without a pid namespace
        assert survivors


@pytest.mark.parametrize("sandbox", MODES)
def test_output_flood_is_captured_and_capped(sandbox, micro_zoo, tmp_path, capfd, request):
    """flood_stdout: 2 x 24 MB of output; captured per job (capped), written capped to ``logs/``."""
    if sandbox:
        request.getfixturevalue("sandbox_available")
    ids = Zoo(micro_zoo).model_ids()[:2]
    path = attack_file("flood_stdout", tmp_path, flood_on=[ids[0]], mb=24)
    report = predict(micro_zoo, [*file_refs(path)], results_dir=tmp_path / "results", budget_seconds=BUDGET,
                     model_ids=ids, isolation=isolation(sandbox), progress=False)
    assert (report.predictions.status == "ok").all()
    log = report.logs[f"attack_flood/{ids[0]}"]
    assert len(log.encode()) < DEFAULT_LOG_BYTES + 200 and "more bytes of output dropped" in log
    written = tmp_path / "results" / Zoo(micro_zoo).zoo_id / "logs" / "attack_flood.log"
    assert written.is_file() and written.stat().st_size <= LOG_FILE_BYTES + 100
    out, err = capfd.readouterr()
    assert len(out) + len(err) < 10_000  # nothing reached the terminal


def test_killed_run_leaves_nothing_after_the_next_run(micro_zoo, tmp_path, sandbox_available, monkeypatch):
    """``kill -9`` of a sandboxed ``gapbench evaluate``: its sandbox dies with it; the next run removes its folders."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    ids = Zoo(micro_zoo).model_ids()
    marker = f"{os.getpid()}.{time.time_ns() % 10**9}"
    path = attack_file("budget_override", tmp_path, sleep_on=ids, marker=marker)
    env = {**os.environ, "TMPDIR": str(tmp)}
    cli = subprocess.Popen([sys.executable, "-m", "benchmark.cli", "evaluate", "--zoo", str(micro_zoo),
                            "--predictor", str(path), "--results", str(tmp_path / "results"), "--no-track",
                            "--budget", "600", "--memory-mb", str(MEMORY_MB)],
                           cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    runs = tmp / f"gapbench-runs-{os.getuid()}"
    try:
        assert wait_for(lambda: processes_with(["sleep", marker]), 300.0), "the attack never started"
        staged = list(runs.glob(f"{cli.pid}-*/worker-*/stage/models/*"))
        assert staged, "no staged model in the run's folder"
    finally:
        cli.kill()  # SIGKILL, the parent only: the sandbox must end by itself
        cli.wait()
        cli.stderr.close()
    assert wait_for(lambda: not processes_with(["sleep", marker]), 10.0), "the sandbox outlived its parent"
    leaked = list(runs.glob(f"{cli.pid}-*"))
    assert leaked  # what a SIGKILL leaves behind ...
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    assert runs_root() == runs
    report = predict(micro_zoo, [weight_norm()], results_dir=tmp_path / "next", budget_seconds=BUDGET,
                     model_ids=ids[:1], isolation=isolation(True), progress=False)
    assert (report.predictions.status == "ok").all()
    assert not any(p.exists() for p in leaked)  # ... the next run removes
    assert [p.name for p in tmp.iterdir()] == [runs.name] and list(runs.iterdir()) == []


def test_unsandboxed_predictions_are_not_reused_by_a_sandboxed_run(micro_zoo, tmp_path, sandbox_available):
    ids = Zoo(micro_zoo).model_ids()[:2]
    refs = file_refs(attack_file("cwd_answers", tmp_path))
    kw = dict(results_dir=tmp_path / "results", budget_seconds=BUDGET, model_ids=ids, progress=False)
    first = predict(micro_zoo, refs, isolation=isolation(False), **kw)
    assert (first.predictions.status == "ok").all()  # the answers, read without the sandbox
    again = predict(micro_zoo, refs, isolation=isolation(True), **kw)
    assert again.computed == len(ids) and (again.predictions.status == "failed").all()


def test_reaping_spares_live_runs(tmp_path):
    """Only folders of dead processes are removed: a live pid with another start time is a dead run."""
    live = tmp_path / f"{os.getpid()}-{Path(f'/proc/{os.getpid()}/stat').read_text().rsplit(')', 1)[1].split()[19]}"
    reused = tmp_path / f"{os.getpid()}-1"
    dead = tmp_path / "999999999-5"
    for folder in (live, reused, dead):
        (folder / "worker-x").mkdir(parents=True)
    assert sorted(reap_dead_runs(tmp_path)) == sorted([reused, dead])
    assert live.is_dir() and not reused.exists() and not dead.exists()


# ---------------------------------------------------------------------------------------------
# end to end through the CLI, and the conformance check at the door


@pytest.mark.parametrize("sandbox", MODES)
def test_cli_run_with_hostile_and_broken_files(sandbox, micro_zoo, clean, answers, tmp_path, request):
    """argv_answers (the parent's ``--zoo``) and a file that fails at import, beside weight_norm, via the CLI."""
    if sandbox:
        request.getfixturevalue("sandbox_available")
    files = [attack_file("argv_answers", tmp_path), attack_file("broken_file", tmp_path)]
    argv = [sys.executable, "-m", "benchmark.cli", "evaluate", "--zoo", str(micro_zoo), "--results",
            str(tmp_path / "results"), "--no-track", "--budget", str(BUDGET), "--memory-mb", str(MEMORY_MB),
            *(a for f in files for a in ("--predictor", str(f))), "--predictor", "weight_norm"]
    out = subprocess.run(argv + ([] if sandbox else ["--no-sandbox"]), cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode in (0, 1), out.stderr[-3000:]
    assert "broken_file.py: ImportError: broken_file.py: this module cannot be imported" in out.stderr  # reported ...
    preds = pd.read_parquet(tmp_path / "results" / Zoo(micro_zoo).zoo_id / "predictions.parquet")
    assert set(preds.predictor) == {"attack_argv", "weight_norm"}
    assert_same(scores(preds, "weight_norm"), clean.weight_norm)
    rows = preds[preds.predictor == "attack_argv"].set_index("model_id").sort_index()
    if sandbox:
        assert (rows.status == "failed").all() and rows.reason.str.startswith("LookupError").all(), rows.reason.iloc[0]
    else:
        assert (rows.status == "ok").all(), rows.reason.iloc[0]
        assert_same(rows.score, answers.gap)
    runs = pd.read_parquet(tmp_path / "results" / Zoo(micro_zoo).zoo_id / "runs.parquet")
    assert set(runs[runs.predictor.isin(["attack_argv", "weight_norm"])].sandboxed) == {sandbox}
    assert out.returncode == 1, "the run went on, but its exit status must say a file was refused"


@pytest.mark.parametrize("sandbox", MODES)
def test_conformance_check_runs_in_the_sandbox(sandbox, micro_zoo, tmp_path, request):
    """``gapbench predictors check``: an answers-reading file fails it in the sandbox (and passes without)."""
    if sandbox:
        request.getfixturevalue("sandbox_available")
    lines: list[str] = []
    ok = conformance_run.check([str(attack_file("cwd_answers", tmp_path))], zoo=str(micro_zoo), budget=BUDGET,
                               isolation=isolation(sandbox), echo=lines.append, warn=lines.append)
    if sandbox:
        assert not ok and any(ln.startswith("FAIL") and "LookupError" in ln for ln in lines), lines
    else:
        assert ok, lines


# ---------------------------------------------------------------------------------------------
# the launcher itself


def test_missing_bubblewrap_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr("shutil.which", lambda name, path=None: None)
    with pytest.raises(SandboxUnavailable) as err:
        Isolation().launcher()
    assert str(err.value) == BWRAP_MISSING
    assert "scripts/install_bubblewrap.sh" in BWRAP_MISSING and "--no-sandbox" in BWRAP_MISSING
    assert Isolation(sandbox=False).launcher().command(3, cwd=tmp_path, stage=tmp_path).argv[0] == sys.executable


def test_a_bubblewrap_that_cannot_sandbox_is_one_clear_line(monkeypatch):
    monkeypatch.setattr("benchmark.sandbox._preflight", lambda bwrap: "bwrap: Unknown option --disable-userns")
    with pytest.raises(SandboxUnavailable, match=r"cannot create a sandbox on this machine \(bwrap: Unknown option "
                                                 r"--disable-userns\); it needs bubblewrap >= 0.8.*--no-sandbox"):
        Isolation().launcher()


def test_launcher_binds_only_what_a_worker_needs(sandbox_available, tmp_path):
    """The bind list: no project root, zoo root, results or board; host paths never on bwrap's argv."""
    iso = Isolation()
    data = tmp_path / "zoo" / "public" / "data"
    data.mkdir(parents=True)
    submitted = tmp_path / "mine.py"
    submitted.write_text("")
    launcher = iso.launcher(files=(str(submitted),), data_dir=data)
    home = tmp_path / "home"
    (home / "cwd").mkdir(parents=True)
    (home / "stage").mkdir()
    cmd = launcher.command(7, cwd=home / "cwd", stage=home / "stage")
    options = (home / "sandbox.args").read_bytes().split(b"\0")[:-1]
    opts = [o.decode() for o in options]
    binds = {(opts[i + 1], opts[i + 2]) for i, o in enumerate(opts) if o in ("--ro-bind", "--bind", "--dev-bind")}
    assert not any(o == "--bind" or o == "--dev-bind" for o in opts)  # everything read-only
    sources = {Path(src) for src, _ in binds}
    zoo = tmp_path / "zoo"
    assert not sources & {REPO, zoo, zoo / "public", zoo / "answers"}
    allowed_in_repo = [REPO / name for name in ("model_zoo", "predictors", "benchmark", ".venv")]
    for src in sources:
        if REPO in src.parents:
            assert any(src == a or a in src.parents for a in allowed_in_repo), src
        assert zoo not in src.parents or src == data.resolve(), src
    assert (str(data.resolve()), f"{STAGE_INSIDE}/data") in binds
    assert (str(home / "stage"), STAGE_INSIDE) in binds
    assert (str(submitted.resolve()), iso.file_path(str(submitted))) in binds
    assert iso.file_path(str(submitted)).startswith(FILES_INSIDE + "/")
    assert {"--unshare-all", "--cap-drop", "--die-with-parent", "--new-session", "--clearenv",
            "--disable-userns"} <= set(opts)
    assert opts[opts.index("--uid") + 1] != "0"
    assert launcher.stage_path(home / "stage") == STAGE_INSIDE
    assert cmd.env == {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    assert str(tmp_path) not in " ".join(cmd.argv[:3]) and str(data) not in " ".join(cmd.argv)


def test_sandboxed_worker_sees_only_its_binds(sandbox_available, micro_zoo, tmp_path):
    """A job in a sandboxed worker: read-only stage, no project root, no network, its own pid 1."""
    seen = self_check(micro_zoo / "public" / "data")
    assert seen["uid"] != 0 and seen["cap_eff"] == 0
    assert seen["pid1_cmdline"].split("\0")[1:3] == ["--args", "3"] and str(micro_zoo) not in seen["pid1_cmdline"]
    assert seen["pids"] <= 3 and seen["interfaces"] == ["lo"]
    assert {"benchmark", "model_zoo", "predictors"} <= set(seen["project"]) <= {"benchmark", "model_zoo", "predictors",
                                                                                ".venv"}
    assert seen["stage_writable"] is False and seen["tasks"] == ["fashion_mnist", "fsdd", "newsgroups"]
    assert seen["cwd"] == "/tmp/work" and seen["tmp_writable"] is True and seen["root_writable"] is False
