"""Attack: read the answers through the parent's command line (``/proc/<ppid>/cmdline`` names ``--zoo DIR``)."""

import os
from pathlib import Path

import pandas as pd

from predictors.api import predictor


def _ancestors():
    pid = os.getppid()
    while pid > 0:
        yield pid
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return
        pid = int(stat.rsplit(")", 1)[1].split()[1])


def _zoo_args(pid):
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return
    for flag, value in zip(argv, argv[1:]):
        if flag == b"--zoo":
            yield cwd / value.decode()


@predictor(version="1", family="attack", reference="tests/adversarial", requires=())
def attack_argv(subject, *, seed=0):
    """The true gap, found through the zoo folder the parent's argv names."""
    for pid in _ancestors():
        for zoo in _zoo_args(pid):
            for root in (zoo, zoo.parent):
                table = root / "answers" / "answers.parquet"
                if table.is_file():
                    answers = pd.read_parquet(table)
                    return float(answers.loc[answers.model_id == subject.model_id, "gap"].iloc[0])
    raise LookupError(f"no --zoo in the command line of any ancestor ({list(_ancestors())})")
