"""A worker process of `model_zoo.executor`: ``python -m model_zoo.worker --fd N``.

It reads length-prefixed JSON messages from the socket ``N``: first ``{"init": "module:function"
| null, "args": {...}}``, answered ``{"ready": true}`` or ``{"ready": false, "error": ...}``;
then one job at a time, ``{"fn": "module:function", "args": {...}}``, answered ``{"ok": true,
"value": ..., "seconds": ...}`` or ``{"ok": false, "error": "<one line>", "traceback": ...}``.
The init function's return value (the *context*) is passed to every job function as its first
argument. JSON only, both ways: nothing a worker sends is ever unpickled by the parent.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

MAX_MESSAGE_BYTES = 1 << 20
_HEADER = struct.Struct(">I")


class ProtocolError(RuntimeError):
    """A message on the worker socket is malformed, too large, or the peer closed it."""


def send_message(sock: socket.socket, obj: Any) -> None:
    """Send one JSON message (4-byte big-endian length, then UTF-8 JSON)."""
    data = json.dumps(obj, allow_nan=True, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = sock.recv(n - got)
        if not chunk:
            raise ProtocolError("the peer closed the connection")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> Any:
    """Receive one JSON message; raises ProtocolError on EOF, oversize or invalid JSON."""
    (length,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if length > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {length} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        return json.loads(_recv_exact(sock, length))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"invalid JSON message ({exc})") from None


def resolve(name: str) -> Callable[..., Any]:
    """The function named ``module:function``."""
    module, _, attr = name.partition(":")
    if not module or not attr:
        raise ValueError(f"expected 'module:function', got {name!r}")
    return getattr(importlib.import_module(module), attr)


def one_line(exc: BaseException) -> str:
    """``Type: message at file:line`` of an exception (where it was raised), at most 500 chars."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(tb[-1].filename).name}:{tb[-1].lineno}" if tb else ""
    text = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return (text + where)[:500]


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def serve(sock: socket.socket) -> None:
    """The worker loop: init, then jobs until the parent sends null or closes the socket."""
    hello = recv_message(sock)
    try:
        init = hello.get("init")
        context = resolve(init)(**hello.get("args", {})) if init else None
    except BaseException as exc:  # a failing init fails this lane's jobs, reported to the parent
        send_message(sock, {"ready": False, "error": one_line(exc), "traceback": traceback.format_exc()[-4000:]})
        return
    send_message(sock, {"ready": True, "pid": os.getpid()})
    while True:
        try:
            job = recv_message(sock)
        except ProtocolError:
            return
        if job is None:
            return
        start = time.perf_counter()
        try:
            value = resolve(job["fn"])(context, **job.get("args", {}))
            reply = {"ok": True, "value": value, "seconds": time.perf_counter() - start}
            payload = json.dumps(reply)  # a value that is not JSON fails this job, not the worker
            del payload
        except BaseException as exc:  # anything a job raises is its failure, reported as one line
            reply = {"ok": False, "error": one_line(exc), "traceback": traceback.format_exc()[-4000:],
                     "seconds": time.perf_counter() - start}
        send_message(sock, reply)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--fd":
        raise SystemExit("usage: python -m model_zoo.worker --fd N")
    _die_with_parent()
    sock = socket.socket(fileno=int(args[1]))
    try:
        serve(sock)
    finally:
        sock.close()


if __name__ == "__main__":
    main()
