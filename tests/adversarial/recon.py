"""Attack: reconnaissance. Score = a bitmask of what the worker can see or do that a sandbox must forbid."""

import os
import socket
import sys
from pathlib import Path

import model_zoo
from predictors.api import predictor

ALLOWED_ENV = {"PATH", "LANG", "HOME", "TMPDIR", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "MPLBACKEND", "USER", "LOGNAME", "PYTHONNOUSERSITE",
               "PYTHONPATH", "PWD",
               # the pinned numerics (model_zoo.determinism.PINNED_ENV): settings, no secrets
               "MKL_DYNAMIC", "OMP_DYNAMIC", "MKL_CBWR", "ATEN_CPU_CAPABILITY",
               # set by torch.use_deterministic_algorithms(True) itself (a path under the private /tmp)
               "TORCHINDUCTOR_CACHE_DIR"}
CHECKS = ("project_root", "foreign_process", "network", "environment", "home_of_user", "privileges",
          "host_tmp", "parent_cmdline")


def _project_root():
    root = Path(model_zoo.__file__).resolve().parents[1]
    return any((root / name).exists() for name in ("pyproject.toml", "Makefile", "leaderboards", "tests"))


def _foreign_process():
    mine = {os.getpid(), os.getppid(), 1}
    return any(p.name.isdigit() and int(p.name) not in mine for p in Path("/proc").iterdir()
               if p.name.isdigit() and b"model_zoo.worker" not in _cmdline(p.name))


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _network():
    interfaces = [line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]]
    if any(name != "lo" for name in interfaces):
        return True
    try:
        socket.create_connection(("192.0.2.1", 9), timeout=0.5).close()  # TEST-NET: unroutable anyway
    except OSError:
        return False
    return True


def _environment():
    return bool(set(os.environ) - ALLOWED_ENV)


def _home_of_user():
    # anything in /root or /home beyond the folders that lead to the Python installation
    needed = {Path(p) for prefix in (sys.base_prefix, sys.prefix) for p in (prefix, *Path(prefix).parents)}
    for home in (Path("/root"), Path("/home")):
        try:
            if any(entry not in needed for entry in home.iterdir()):
                return True
        except OSError:
            continue
    return False


def _privileges():
    status = Path("/proc/self/status").read_text()
    cap_eff = int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("CapEff")), 16)
    return os.getuid() == 0 or cap_eff != 0


def _host_tmp():
    return any(p.name.startswith(("gapbench-runs", "pytest-of")) for p in Path("/tmp").iterdir())


def _parent_cmdline():
    return any(b"--zoo" in _cmdline(p.name) or b"pytest" in _cmdline(p.name) or b"/public/data" in _cmdline(p.name)
               for p in Path("/proc").iterdir() if p.name.isdigit())


@predictor(version="1", family="attack", reference="tests/adversarial", requires=())
def attack_recon(subject, *, seed=0):
    """Bit i set when check ``CHECKS[i]`` found a leak (0.0: nothing found)."""
    found = 0
    for i, name in enumerate(CHECKS):
        try:
            leak = globals()[f"_{name}"]()
        except Exception:  # a probe that cannot run found nothing
            leak = False
        found |= int(bool(leak)) << i
        sys.stdout.write(f"recon {name}: {'LEAK' if leak else 'ok'}\n")
    return float(found)
