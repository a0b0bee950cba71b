"""The rendered index.html in a real browser: headless Chromium, offline, from file://.

Chromium is driven over the Chrome DevTools Protocol through ``--remote-debugging-pipe``
(NUL-separated JSON on file descriptors 3 and 4): no port, no websocket library, no driver
binary whose version must match. Install Chromium with ``scripts/install_chromium.sh``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import math
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from leaderboard_fixtures import write_fixture  # noqa: E402

from benchmark.leaderboard import load_board, render_leaderboard  # noqa: E402
from benchmark.leaderboard.html import detail_id, table_id  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT_COPY = REPO / "build" / "screenshots" / "leaderboard.png"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    """The Chromium binary: env GAPBENCH_CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    explicit = os.environ.get("GAPBENCH_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class CDPError(RuntimeError):
    """A DevTools command answered with an error, or no answer came in time."""


class Chromium:
    """A headless Chromium with one page, spoken to over the DevTools pipe."""

    def __init__(self, binary: str, user_data_dir: Path) -> None:
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()
        # Move the child's ends above fd 10 so that dup2 onto 3 and 4 cannot clobber them.
        child_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        child_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        for fd in (to_chrome_r, from_chrome_w):
            os.close(fd)

        def wire_pipes() -> None:
            os.dup2(child_r, 3)
            os.dup2(child_w, 4)

        cmd = [binary, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"]
        self.proc = subprocess.Popen(
            cmd, preexec_fn=wire_pipes, pass_fds=(3, 4), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        os.close(child_r)
        os.close(child_w)
        self._out = os.fdopen(to_chrome_w, "wb", buffering=0)
        self._in = from_chrome_r
        self._next_id = 0
        self._answers: dict[int, dict] = {}
        self._messages: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session = self._attach()

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._in, 1 << 16)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                self._messages.put(json.loads(raw))
        self._messages.put(None)

    def _pump(self, deadline: float) -> None:
        timeout = max(0.0, deadline - time.monotonic())
        msg = self._messages.get(timeout=timeout)
        if msg is None:
            err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.poll() is not None else ""
            raise CDPError(f"Chromium closed the DevTools pipe. stderr tail:\n{err}")
        if "id" in msg:
            self._answers[msg["id"]] = msg
        else:
            self.events.append(msg)

    def send(self, method: str, params: dict | None = None, *, session: bool = True,
             timeout: float = 30.0) -> dict:
        """Send one command and wait for its answer's ``result``."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session and getattr(self, "session", None):
            msg["sessionId"] = self.session
        self._out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while self._next_id not in self._answers:
            try:
                self._pump(deadline)
            except queue.Empty:
                raise CDPError(f"no answer to {method} within {timeout} s") from None
        answer = self._answers.pop(self._next_id)
        if "error" in answer:
            raise CDPError(f"{method} failed: {answer['error']}")
        return answer.get("result", {})

    def wait_event(self, method: str, timeout: float = 30.0) -> dict:
        """Wait for the first event ``method`` not yet consumed."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if ev.get("method") == method and not ev.get("_consumed"):
                    ev["_consumed"] = True
                    return ev
            seen = len(self.events)
            try:
                self._pump(deadline)
            except queue.Empty:
                raise CDPError(f"no {method} event within {timeout} s") from None

    def _attach(self) -> str:
        deadline = time.monotonic() + 30
        while True:
            targets = self.send("Target.getTargets", session=False)["targetInfos"]
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                break
            if time.monotonic() > deadline:
                raise CDPError(f"Chromium opened no page target: {targets}")
            time.sleep(0.1)
        result = self.send("Target.attachToTarget",
                           {"targetId": pages[0]["targetId"], "flatten": True}, session=False)
        return result["sessionId"]

    def evaluate(self, expression: str):
        """Evaluate JavaScript in the page and return its JSON value."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise CDPError(f"JavaScript error evaluating {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press + release) at the centre of the element ``selector``."""
        box = self.evaluate(
            f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
            " if (!el) return null; el.scrollIntoView({block: 'center'});"
            " const r = el.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        if box is None:
            raise CDPError(f"no element matches {selector!r}")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": box["x"], "y": box["y"],
                                                   "button": "left", "clickCount": 1})

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far."""
        errors = []
        for ev in self.events:
            method, params = ev.get("method"), ev.get("params", {})
            if method == "Runtime.exceptionThrown":
                errors.append(f"exception: {params['exceptionDetails']}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                entry = params["entry"]
                errors.append(f"log: {entry.get('text')} {entry.get('url', '')}")
        return errors

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False, timeout=5)
        except (CDPError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._out.close()


@pytest.fixture(scope="module")
def chromium_binary() -> str:
    binary = find_chromium()
    if binary is None:
        reason = ("headless Chromium not found (looked for env GAPBENCH_CHROMIUM and "
                  f"{', '.join(CHROMIUM_NAMES)} on PATH); install it with scripts/install_chromium.sh")
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set, so the browser test must run)")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory) -> Path:
    data = write_fixture(tmp_path_factory.mktemp("data"))
    out = tmp_path_factory.mktemp("board")
    render_leaderboard(data, out)
    return out


@pytest.fixture(scope="module")
def page(chromium_binary, board_dir, tmp_path_factory):
    browser = Chromium(chromium_binary, tmp_path_factory.mktemp("chromium-profile"))
    try:
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            browser.send(domain)
        browser.send("Emulation.setDeviceMetricsOverride",
                     {"width": 1360, "height": 1000, "deviceScaleFactor": 1, "mobile": False})
        browser.send("Page.navigate", {"url": (board_dir / "index.html").as_uri()})
        browser.wait_event("Page.loadEventFired")
        yield browser
    finally:
        browser.close()


def _order(page: Chromium, task: str) -> list[str]:
    return page.evaluate(
        f"Array.from(document.querySelectorAll('#{table_id(task)} tbody tr'))"
        ".map(r => r.dataset.predictor)"
    )


def _header(task: str, metric: str) -> str:
    return f'#{table_id(task)} thead th[data-metric="{metric}"]'


def _expected(board, task: str, key, descending: bool) -> list[str]:
    """Python's order of the task's rows by ``key(row)``, missing values last."""
    rows = board.task(task).rows
    present = [r for r in rows if not math.isnan(key(r))]
    missing = [r for r in rows if math.isnan(key(r))]
    present = sorted(present, key=key, reverse=descending)
    return [r.predictor for r in present + missing]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    return load_board(write_fixture(tmp_path_factory.mktemp("data-py")))


def test_initial_order_is_by_psi(page, board):
    for tb in board.tasks:
        assert _order(page, tb.task) == [r.predictor for r in tb.rows]


def test_click_numeric_header_sorts_and_toggles_with_missing_last(page, board):
    task = "newsgroups"  # sharpness_trace has no scores here: it must stay last both ways
    tau = lambda r: r.cell("kendall_tau").value  # noqa: E731
    before = _order(page, task)
    page.click(_header(task, "kendall_tau"))
    first = _order(page, task)
    assert first == _expected(board, task, tau, descending=True)
    page.click(_header(task, "kendall_tau"))
    second = _order(page, task)
    assert second == _expected(board, task, tau, descending=False)
    assert second[-1] == "sharpness_trace" and first[-1] == "sharpness_trace"
    assert second != before
    assert page.evaluate(f"document.querySelector('{_header(task, 'kendall_tau')}')"
                         ".getAttribute('aria-sort')") == "ascending"


def test_cost_column_sorts_cheapest_first(page, board):
    task = "overall"
    before = _order(page, task)
    page.click(_header(task, "seconds_per_model"))  # lower is better: ascending first
    after = _order(page, task)
    assert after == _expected(board, task, lambda r: r.seconds_per_model, descending=False)
    assert after != before


def test_text_header_sorts_by_name(page, board):
    task = "fashion_mnist"
    page.click(f"#{table_id(task)} thead th:nth-child(2)")
    assert _order(page, task) == sorted(r.predictor for r in board.task(task).rows)
    page.click(f"#{table_id(task)} thead th:nth-child(2)")
    assert _order(page, task) == sorted((r.predictor for r in board.task(task).rows), reverse=True)


def test_row_click_opens_detail_with_loaded_plots(page, board_dir, tmp_path):
    target = detail_id("ph_dim")
    assert page.evaluate(f"getComputedStyle(document.getElementById('{target}')).display") == "none"
    page.click(f'#{table_id("fsdd")} tbody tr[data-predictor="ph_dim"] td:nth-child(3)')
    assert page.evaluate(f"getComputedStyle(document.getElementById('{target}')).display") == "block"
    loaded = page.evaluate(
        f"new Promise(done => {{ const imgs = Array.from(document.querySelectorAll('#{target} img'));"
        " const t0 = Date.now(); (function check() {"
        "  if (imgs.every(i => i.complete) || Date.now() - t0 > 10000)"
        "    done(imgs.map(i => [i.getAttribute('src'), i.naturalWidth]));"
        "  else setTimeout(check, 50); })(); })"
    )
    assert len(loaded) == 3, loaded
    assert all(width > 0 for _, width in loaded), f"plots failed to load: {loaded}"
    shot = page.send("Page.captureScreenshot", {"format": "png"})
    (tmp_path / "leaderboard_detail.png").write_bytes(base64.b64decode(shot["data"]))
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT_COPY.with_name("leaderboard_detail.png").write_bytes(base64.b64decode(shot["data"]))


def test_screenshot_and_no_console_errors(page, board_dir, tmp_path):
    page.send("Page.navigate", {"url": (board_dir / "index.html").as_uri()})  # fresh, unsorted
    page.wait_event("Page.loadEventFired")
    shot = base64.b64decode(page.send("Page.captureScreenshot", {"format": "png"})["data"])
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "leaderboard.png").write_bytes(shot)
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT_COPY.write_bytes(shot)
    assert page.console_errors() == []
