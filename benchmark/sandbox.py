"""Isolation of predictor workers: how a worker is launched and what it can see.

A predictor worker sees one model at a time: the parent copies the model's public files into
the worker's private *stage* folder before each job (:class:`ModelStager`); the task's
training pool is the only other zoo data it can read.

With the sandbox (the default) each worker runs inside **bubblewrap** (:class:`BwrapLauncher`):
new user, pid, network, ipc, uts and cgroup namespaces, every capability dropped, no further
user namespaces, a fresh root that holds only

- the system's ``/usr`` (and the ``/bin``, ``/lib*`` links), ``/etc/ld.so.cache``, the CPU
  topology under ``/sys/devices/system/cpu``, a new ``/proc`` (its own processes only) and a
  minimal ``/dev``, all read-only;
- the Python installation, the virtual environment and the project's packages
  (``model_zoo/``, ``predictors/``, ``benchmark/``) read-only at their real paths: never the
  project folder itself, ``zoos/``, ``results/`` or ``leaderboards/``;
- the stage folder at ``/gapbench/stage`` and the task pools at ``/gapbench/stage/data``,
  read-only; each submitted predictor file read-only at ``/gapbench/files/<hash>/<name>``;
- a private, size-capped tmpfs at ``/tmp`` (working directory ``/tmp/work``, ``HOME``).

The bubblewrap options travel through a file descriptor (``--args``), so the sandbox's pid 1
(bubblewrap) shows no host path on its command line, and bubblewrap itself runs with a
scrubbed environment. ``--die-with-parent`` ends the sandbox, whatever it started, with its
parent. With ``sandbox=False`` (``--no-sandbox``, for development, marked on the board) the
worker is a plain process with a scrubbed environment and a private working directory, which
a hostile predictor can escape (it can read any file the user can). See docs/sandbox.md.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from model_zoo import store
from model_zoo.determinism import PINNED_ENV
from model_zoo.executor import Job, WorkerCommand, python_worker_argv
from model_zoo.store import ZooLayout

__all__ = ["BwrapLauncher", "Isolation", "ModelStager", "SandboxUnavailable", "ScrubbedLauncher", "find_bwrap",
           "worker_env"]

BWRAP_MISSING = "bubblewrap is not installed: run scripts/install_bubblewrap.sh, or pass --no-sandbox for development"

# Paths inside the sandbox.
STAGE_INSIDE = "/gapbench/stage"
FILES_INSIDE = "/gapbench/files"
TMP_INSIDE = "/tmp"
WORK_INSIDE = "/tmp/work"
SANDBOX_UID = 65534  # "nobody": the worker is not root inside its user namespace

# The packages of this project a worker imports (bound read-only; the project root never is).
PROJECT_PACKAGES: tuple[str, ...] = ("model_zoo", "predictors", "benchmark")
# Read-only system paths beside /usr (absent ones are skipped).
_SYSTEM_TRY = ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
               "/sys/devices/system/cpu")
_MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

# Environment a predictor worker starts with (nothing else of the parent's environment): the
# training workers' pinned numerics (one thread, ATen AVX2 kernels, MKL CNR; the worker calls
# `pin()` too), so a predictor's number does not depend on the CPU's instruction set.
_WORKER_ENV = {
    **PINNED_ENV,
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",  # a job's output reaches its log before its result
    "MPLBACKEND": "Agg",
}
# Environment of the bubblewrap process itself (its /proc/1/environ is visible inside).
_BWRAP_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot be used on this machine; the message says what to install or do."""


def worker_env(home: Path | str, extra: Mapping[str, str] | None = None, *, tmp: Path | str | None = None
               ) -> dict[str, str]:
    """The scrubbed environment of a predictor worker (``HOME`` = its private folder)."""
    env = dict(_WORKER_ENV, HOME=str(home), TMPDIR=str(tmp if tmp is not None else home))
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class ScrubbedLauncher:
    """``--no-sandbox``: a plain process, scrubbed environment, private cwd. Not a security boundary."""

    extra_env: Mapping[str, str] = field(default_factory=dict)

    def command(self, fd: int, *, cwd: Path, stage: Path) -> WorkerCommand:
        return WorkerCommand(python_worker_argv(fd), worker_env(cwd, self.extra_env), str(cwd), (fd,))

    @property
    def stage_path(self) -> Callable[[Path], str]:
        return str


# ---------------------------------------------------------------------------------------------
# bubblewrap


def find_bwrap() -> str:
    """The ``bwrap`` executable on ``PATH`` (or in /usr/bin); raises SandboxUnavailable without one."""
    found = shutil.which("bwrap") or shutil.which("bwrap", path="/usr/bin:/bin")
    if not found:
        raise SandboxUnavailable(BWRAP_MISSING)
    return found


def inside_file_path(host_path: str) -> str:
    """Where a submitted file appears inside the sandbox: ``/gapbench/files/<hash>/<name>``."""
    digest = hashlib.sha256(str(host_path).encode()).hexdigest()[:16]
    return f"{FILES_INSIDE}/{digest}/{Path(host_path).name}"


def _namespace_options() -> list[str]:
    return ["--unshare-all", "--unshare-user", "--disable-userns", "--uid", str(SANDBOX_UID),
            "--gid", str(SANDBOX_UID), "--cap-drop", "ALL", "--die-with-parent", "--new-session",
            "--hostname", "gapbench"]


def _system_options() -> list[str]:
    """Read-only /usr (with merged-/usr links), loader cache, CPU topology; new /proc and /dev."""
    opts = ["--ro-bind", "/usr", "/usr"]
    for name in _MERGED_USR:
        path = Path("/") / name
        if path.is_symlink():
            opts += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            opts += ["--ro-bind", str(path), str(path)]
    for path in _SYSTEM_TRY:
        opts += ["--ro-bind-try", path, path]
    return opts + ["--proc", "/proc", "--dev", "/dev"]


def _ro_bind(path: Path) -> list[str]:
    """Bind ``path`` read-only at its own path (and at its real path when a link leads there)."""
    real = path.resolve()
    opts = ["--ro-bind", str(real), str(path)]
    if real != path:
        opts += ["--ro-bind", str(real), str(real)]
    return opts


@functools.cache
def python_paths() -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """(Python installation and virtual environment folders, project package folders) to bind."""
    roots: list[Path] = []
    for p in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix,
              Path(os.path.realpath(sys.executable)).parent.parent):
        path = Path(os.path.abspath(p))
        if path == Path("/usr") or Path("/usr") in path.parents or path == Path("/"):
            continue  # already bound with the system
        if not any(path == r or r in path.parents for r in roots):
            roots = [r for r in roots if path not in r.parents] + [path]
    packages = []
    for name in PROJECT_PACKAGES:
        module = importlib.import_module(name)
        packages.append(Path(os.path.abspath(module.__file__)).parent)
    return tuple(sorted(roots)), tuple(packages)


@functools.cache
def _preflight(bwrap: str) -> str | None:
    """None if bubblewrap can create a sandbox here, else one line saying why not (run once)."""
    argv = [bwrap, *_namespace_options(), *_system_options(), "--size", str(2**20), "--tmpfs", TMP_INSIDE,
            "--remount-ro", "/", "--", "/usr/bin/true"]
    try:
        done = subprocess.run(argv, env=_BWRAP_ENV, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    if done.returncode == 0:
        return None
    lines = [ln for ln in done.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    return (lines[-1] if lines else f"exit code {done.returncode}")[:300]


def check_sandbox() -> str:
    """The bwrap path, after checking that it can sandbox a process here; raises SandboxUnavailable."""
    bwrap = find_bwrap()
    problem = _preflight(bwrap)
    if problem:
        raise SandboxUnavailable(f"bubblewrap ({bwrap}) cannot create a sandbox on this machine ({problem}); "
                                 "it needs bubblewrap >= 0.8 and user namespaces (see scripts/install_bubblewrap.sh), "
                                 "or pass --no-sandbox for development")
    return bwrap


@dataclass(frozen=True)
class BwrapLauncher:
    """Starts each worker inside bubblewrap (see the module docstring for what it can see)."""

    bwrap: str
    files: tuple[str, ...] = ()
    data_dir: str | None = None
    tmp_mb: int = 512
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def options(self, stage: Path) -> list[str]:
        """The bubblewrap options (everything before the command) for a worker with this stage."""
        roots, packages = python_paths()
        env = worker_env(WORK_INSIDE, self.extra_env, tmp=TMP_INSIDE)
        env.update(USER="gapbench", LOGNAME="gapbench", PYTHONNOUSERSITE="1",
                   PYTHONPATH=os.pathsep.join(sorted({str(p.parent) for p in packages})))
        opts = _namespace_options() + ["--clearenv"]
        for key, value in sorted(env.items()):
            opts += ["--setenv", key, value]
        opts += _system_options()
        # the private /tmp first: a project or venv that lives under the host's /tmp is bound on top of it
        opts += ["--size", str(int(self.tmp_mb) * 2**20), "--tmpfs", TMP_INSIDE, "--dir", WORK_INSIDE]
        for path in (*roots, *packages):
            opts += _ro_bind(path)
        opts += ["--ro-bind", str(stage), STAGE_INSIDE]
        if self.data_dir is not None:
            opts += ["--ro-bind", str(self.data_dir), f"{STAGE_INSIDE}/data"]
        for host in self.files:
            opts += ["--ro-bind", str(host), inside_file_path(host)]
        return opts + ["--remount-ro", "/", "--chdir", WORK_INSIDE]

    def command(self, fd: int, *, cwd: Path, stage: Path) -> WorkerCommand:
        if self.data_dir is not None:
            (stage / "data").mkdir(exist_ok=True)  # the mount point of the pools (a read-only stage)
        args = cwd.parent / "sandbox.args"  # the worker's host folder: never visible inside
        args.write_bytes(b"".join(a.encode() + b"\0" for a in self.options(stage)))
        args_fd = 3 if fd != 3 else 4
        script = f'f=$1; shift; exec "$0" --args {args_fd} "$@" {args_fd}<"$f"'
        argv = ["/bin/sh", "-c", script, self.bwrap, str(args), *python_worker_argv(fd)]
        return WorkerCommand(argv, dict(_BWRAP_ENV), str(cwd), (fd,))

    @property
    def stage_path(self) -> Callable[[Path], str]:
        return lambda host: STAGE_INSIDE


@dataclass(frozen=True)
class Isolation:
    """How predictor workers are isolated: ``sandbox`` (bubblewrap) or not, and their memory cap.

    ``memory_mb`` caps a worker's address space (set in the worker) and, with a grace, its
    resident memory (watched by the executor); ``tmp_mb`` caps the sandbox's private ``/tmp``.
    """

    sandbox: bool = True
    memory_mb: float | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    tmp_mb: int = 512

    def launcher(self, *, files: tuple[str, ...] = (), data_dir: Path | None = None
                 ) -> BwrapLauncher | ScrubbedLauncher:
        """A launcher whose workers can read ``files`` (submitted predictor files) and ``data_dir``.

        Raises SandboxUnavailable (one line) when the sandbox is asked for and cannot be used.
        """
        if not self.sandbox:
            return ScrubbedLauncher(self.extra_env)
        bwrap = check_sandbox()
        return BwrapLauncher(bwrap, files=tuple(str(Path(f).resolve()) for f in files),
                             data_dir=None if data_dir is None else str(Path(data_dir).resolve()),
                             tmp_mb=self.tmp_mb, extra_env=dict(self.extra_env))

    def file_path(self, host_path: str) -> str:
        """Where a submitted file given to :meth:`launcher` appears inside the worker."""
        if not self.sandbox:
            return host_path
        return inside_file_path(str(Path(host_path).resolve()))


class ModelStager:
    """Fills a worker's stage folder with one model's public files before each job.

    The stage holds ``zoo.json``, a one-row ``manifest.parquet``, ``models/<model_id>/`` (copies,
    never links) and ``data/`` (the task pools: a read-only bind in the sandbox, a symlink
    without it). Whatever the previous job's model was, it is removed first. ``files``: the
    model files to stage (default all of ``store.MODEL_FILES``; a predictor's lane passes
    ``predictors.api.staged_files(requires)``, so a predictor that does not declare the
    trajectory never has it on its disk); the one-row manifest keeps the hashes of those
    files only. The zoo may be a
    local folder or an fsspec URL (model_zoo.store): then the pools are fetched once per machine
    into :attr:`data_dir`, a local folder (checked against the hashes in zoo.json), and each
    model's files are read from the URL.
    """

    def __init__(self, zoo_root: str | os.PathLike[str], *, link_data: bool,
                 files: tuple[str, ...] = store.MODEL_FILES):
        unknown = sorted(set(files) - set(store.MODEL_FILES))
        if unknown or "config.json" not in files:
            raise ValueError(f"ModelStager: files must include config.json and be among {store.MODEL_FILES}, "
                             f"got {files}")
        self.layout = ZooLayout.at(zoo_root)
        self.link_data = link_data
        self.files = tuple(files)
        manifest = store.read_parquet(self.layout.manifest)
        dropped = [f"sha256.{name}" for name in store.MODEL_FILES if name not in self.files]
        self.manifest = manifest.drop(columns=[c for c in dropped if c in manifest.columns])
        self._rows = {mid: i for i, mid in enumerate(self.manifest["model_id"])}
        self._zoo_json = self.layout.zoo_json.read_bytes()
        self._data = json.loads(self._zoo_json).get("data", {})
        self._prepared = not self.layout.remote

    @property
    def data_dir(self) -> Path:
        """The local folder of the task pools: the zoo's own, or (zoo at a URL) this machine's copy."""
        if not self.layout.remote:
            return Path(self.layout.public) / "data"
        digest = hashlib.sha256(json.dumps(self._data, sort_keys=True).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / "gapbench-zoo-data" / digest

    def prepare(self) -> Path:
        """Make :attr:`data_dir` hold the pools (fetched from the URL once per machine); returns it."""
        folder = self.data_dir
        if self._prepared:
            return folder
        for task, files in self._data.items():
            for name, digest in files.items():
                local = folder / task / name
                if local.is_file() and store.sha256_file(local) == digest:
                    continue
                store.atomic_write_bytes(local, store.read_checked(self.layout.data_dir(task) / name, digest))
        self._prepared = True
        return folder

    def __call__(self, job: Job, stage: Path) -> None:
        model_id = job.args["model_id"]
        if model_id not in self._rows:
            raise KeyError(f"model {model_id!r} is not in {self.layout.manifest}")
        if not (stage / "zoo.json").exists():
            (stage / "zoo.json").write_bytes(self._zoo_json)
            data = stage / "data"
            if self.link_data:
                data.symlink_to(self.prepare(), target_is_directory=True)
            else:
                data.mkdir(exist_ok=True)  # the sandbox binds the pools here
        models = stage / "models"
        shutil.rmtree(models, ignore_errors=True)
        target = models / model_id
        target.mkdir(parents=True)
        source = self.layout.model_dir(model_id)
        for name in self.files:
            if self.layout.remote:
                (target / name).write_bytes((source / name).read_bytes())
            else:
                shutil.copyfile(source / name, target / name)
        row = self.manifest.iloc[[self._rows[model_id]]]
        store.atomic_write_parquet(stage / "manifest.parquet", row.reset_index(drop=True))


def python_executable() -> str:
    """The interpreter workers run (this one)."""
    return sys.executable


# ---------------------------------------------------------------------------------------------
# self-check: ``python -m benchmark.sandbox`` starts one sandboxed worker and reports what it sees


def probe_init(*, stage: str) -> str:
    """Worker init of the self-check: the context is the stage path."""
    return stage


def probe_job(stage: str) -> dict[str, object]:
    """Worker job of the self-check: facts about the worker's view (uid, pids, network, folders)."""
    import model_zoo

    def writable(path: Path) -> bool:
        try:
            path.write_text("probe")
            path.unlink()
            return True
        except OSError:
            return False

    status = Path("/proc/self/status").read_text().splitlines()
    cap_eff = int(next(ln.split()[1] for ln in status if ln.startswith("CapEff")), 16)
    net = Path("/proc/net/dev").read_text().splitlines()[2:]
    project = Path(model_zoo.__file__).resolve().parents[1]
    data = Path(stage) / "data"
    return {
        "uid": os.getuid(), "cap_eff": cap_eff,
        "pid1_cmdline": Path("/proc/1/cmdline").read_bytes().decode("utf-8", "replace"),
        "pids": sum(1 for p in Path("/proc").iterdir() if p.name.isdigit()),
        "interfaces": sorted(line.split(":")[0].strip() for line in net),
        "project": sorted(os.listdir(project)), "env": sorted(os.environ),
        "stage_writable": writable(Path(stage) / ".probe"),
        "tasks": sorted(os.listdir(data)) if data.is_dir() else [],
        "cwd": os.getcwd(), "tmp_writable": writable(Path(TMP_INSIDE) / ".probe"),
        "root_writable": writable(Path("/.probe")) or writable(project / ".probe"),
    }


def self_check(data_dir: Path | None = None) -> dict[str, object]:
    """Start one sandboxed worker and return what it sees (raises SandboxUnavailable without a sandbox)."""
    from model_zoo.executor import Lane, LocalExecutor

    lane = Lane("probe", init="benchmark.sandbox:probe_init", launcher=Isolation().launcher(data_dir=data_dir),
                max_workers=1, stage=True)
    (result,) = LocalExecutor(1).run({"probe": lane}, [Job("probe", "probe", "benchmark.sandbox:probe_job",
                                                            timeout=300)])
    if not result.ok:
        raise SandboxUnavailable(f"a sandboxed worker failed: {result.error}")
    return result.value


if __name__ == "__main__":  # pragma: no cover - a manual check
    import json

    facts = self_check()
    sys.stdout.write(json.dumps(facts, indent=1) + "\n")
    leaks = [k for k, bad in (("uid", facts["uid"] == 0), ("cap_eff", facts["cap_eff"] != 0),
                              ("interfaces", facts["interfaces"] != ["lo"]),
                              ("stage_writable", facts["stage_writable"]),
                              ("root_writable", facts["root_writable"])) if bad]
    sys.exit(f"sandbox leaks: {leaks}" if leaks else 0)
