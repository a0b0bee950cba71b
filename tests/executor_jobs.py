"""Job functions for tests/test_executor.py (imported by worker processes via PYTHONPATH)."""

from __future__ import annotations

import os
import sys
import time


def init(*, tag: str = "", fail: bool = False, stage: str | None = None) -> dict:
    if fail:
        raise RuntimeError(f"init of {tag} refused")
    return {"tag": tag, "pid": os.getpid(), "stage": stage}


def echo(ctx: dict, *, x: float) -> dict:
    return {"tag": ctx["tag"], "x": x, "pid": ctx["pid"]}


def read_stage(ctx: dict, *, name: str) -> str:
    with open(os.path.join(ctx["stage"], name)) as f:
        return f.read()


def nap(ctx: dict, *, seconds: float) -> int:
    time.sleep(seconds)
    return ctx["pid"]


def boom(ctx: dict) -> None:
    raise ValueError("boom")


def sleep(ctx: dict, *, seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def die(ctx: dict) -> None:
    os._exit(7)


def flood(ctx: dict, *, mb: int) -> int:
    block = "x" * (1 << 20)
    for _ in range(mb):
        sys.stdout.write(block)
    sys.stdout.flush()
    return mb


def not_json(ctx: dict) -> object:
    return object()


def allocate(ctx: dict, *, mb: int) -> int:
    data = bytearray(mb << 20)
    for i in range(0, len(data), 4096):
        data[i] = 1
    time.sleep(5)
    return len(data)
