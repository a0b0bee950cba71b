"""The rendered index.html in a real browser: headless Chromium, offline, from file://.

Sorting and ranks, the filter, the target switch, the detail panel's scatters coloured by a chosen
hyperparameter, and the layout at desktop (1400 px: nothing cut off) and phone (420 px: the name
column stays in view) widths; screenshots of both are saved under build/screenshots/.

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
from benchmark.metrics.catalog import METRICS  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "build" / "screenshots"
"""Where the desktop (1400 px), phone (420 px) and detail-panel screenshots are saved."""
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
def board(board_dir):
    return load_board(board_dir / "data")


@pytest.fixture(scope="module")
def browser(chromium_binary, tmp_path_factory):
    chrome = Chromium(chromium_binary, tmp_path_factory.mktemp("chromium-profile"))
    try:
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            chrome.send(domain)
        yield chrome
    finally:
        chrome.close()


def open_board(browser: Chromium, board_dir: Path, width: int = 1360, height: int = 1000) -> Chromium:
    """Load index.html afresh (unsorted, unfiltered) at a viewport ``width`` CSS pixels wide."""
    browser.send("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    browser.send("Page.navigate", {"url": (board_dir / "index.html").as_uri()})
    browser.wait_event("Page.loadEventFired")
    return browser


@pytest.fixture()
def page(browser, board_dir):
    return open_board(browser, board_dir)


def _js(value: str) -> str:
    return json.dumps(value)


def _rows(page: Chromium, task: str, target: str = "gap", *, visible: bool = False) -> list[str]:
    only = ".filter(r => !r.hidden)" if visible else ""
    return page.evaluate(f"Array.from(document.querySelectorAll('#{table_id(task, target)} tbody tr')){only}"
                         ".map(r => r.dataset.predictor)")


def _ranks(page: Chromium, task: str, target: str = "gap") -> list[str]:
    return page.evaluate(f"Array.from(document.querySelectorAll('#{table_id(task, target)} tbody tr'))"
                         ".map(r => r.cells[0].textContent)")


def _header(task: str, label: str, target: str = "gap") -> str:
    return f'#{table_id(task, target)} thead th[data-label="{label}"]'


def _expected(board, task: str, key, descending: bool) -> list[str]:
    """Python's stable order of the task's rows (board order) by ``key(row)``, missing values last."""
    rows = board.task(task).rows
    present = [r for r in rows if not math.isnan(key(r))]
    missing = [r for r in rows if math.isnan(key(r))]
    present = sorted(present, key=key, reverse=descending)
    return [r.predictor for r in present + missing]


def _competition_ranks(board, task: str, order: list[str], key) -> list[str]:
    out, rank, prev = [], 0, None
    for i, name in enumerate(order):
        value = key(board.task(task).row(name))
        if math.isnan(value):
            out.append("—")
            continue
        if i == 0 or value != prev:
            rank, prev = i + 1, value
        out.append(str(rank))
    return out


def _set(page: Chromium, selector: str, value: str) -> None:
    """Set an input's or select's value as a user would, firing its input and change events."""
    page.evaluate(f"(() => {{ const el = document.querySelector({_js(selector)}); el.value = {_js(value)};"
                  " el.dispatchEvent(new Event('input', {bubbles: true}));"
                  " el.dispatchEvent(new Event('change', {bubbles: true})); })()")


def _visible(page: Chromium, selector: str) -> bool:
    return page.evaluate(f"(() => {{ const el = document.querySelector({_js(selector)});"
                         " return !!el && el.offsetParent !== null; })()")


def _screenshot(page: Chromium, name: str) -> bytes:
    shot = base64.b64decode(page.send("Page.captureScreenshot", {"format": "png"})["data"])
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / name).write_bytes(shot)
    return shot


# --- order, sorting and ranks ---------------------------------------------------------------------


def test_initial_order_and_ranks_are_the_official_ranking(page, board):
    for tb in board.tasks:
        assert _rows(page, tb.task) == [r.predictor for r in tb.rows]
        assert _ranks(page, tb.task) == [str(r.rank) if r.rank is not None else "—" for r in tb.rows]


def test_numeric_header_sorts_toggles_and_renumbers_the_ranks(page, board):
    task = "newsgroups"  # sharpness_trace has no scores here: it must stay last both ways
    tau = lambda r: r.cell("kendall_tau").value  # noqa: E731
    label = METRICS["kendall_tau"].short
    page.click(_header(task, label))
    first = _rows(page, task)
    assert first == _expected(board, task, tau, descending=True)
    assert _ranks(page, task) == _competition_ranks(board, task, first, tau)
    page.click(_header(task, label))
    second = _rows(page, task)
    assert second == _expected(board, task, tau, descending=False)
    assert second[-1] == "sharpness_trace" and first[-1] == "sharpness_trace"
    assert _ranks(page, task) == ["1", "2", "3", "4", "5", "—"]
    assert page.evaluate(f"document.querySelector({_js(_header(task, label))}).getAttribute('aria-sort')") \
        == "ascending"
    rank_by = f"#{table_id(task)}"
    assert page.evaluate(f"document.querySelector('{rank_by}').closest('section').querySelector('.rank-by')"
                         ".textContent") == label


def test_ties_share_a_rank_after_sorting(page, board):
    psi = lambda r: r.cell("psi").value  # noqa: E731
    page.click(_header("overall", f"{METRICS['psi'].short} public"))
    order = _rows(page, "overall")
    assert order == _expected(board, "overall", psi, descending=True)
    assert _ranks(page, "overall") == ["1", "2", "3", "3", "5", "6"]  # sharpness_trace and weight_norm: 0.35


def test_cost_column_sorts_cheapest_first(page, board):
    before = _rows(page, "overall")
    page.click(_header("overall", METRICS["seconds_per_model"].short))
    after = _rows(page, "overall")
    assert after == _expected(board, "overall", lambda r: r.seconds_per_model, descending=False)
    assert after != before and _ranks(page, "overall") == ["1", "2", "3", "4", "5", "6"]


def test_text_header_sorts_by_name_and_keeps_the_ranks(page, board):
    task = "fashion_mnist"
    ranks = dict(zip(_rows(page, task), _ranks(page, task)))
    page.click(f"#{table_id(task)} thead th.name")
    assert _rows(page, task) == sorted(r.predictor for r in board.task(task).rows)
    page.click(f"#{table_id(task)} thead th.name")
    order = _rows(page, task)
    assert order == sorted((r.predictor for r in board.task(task).rows), reverse=True)
    assert dict(zip(order, _ranks(page, task))) == ranks


# --- filter and target switch ---------------------------------------------------------------------


def test_filter_by_name_family_and_kind(page, board):
    _set(page, "#filter-name", "PH")
    for tb in board.tasks:
        assert _rows(page, tb.task, visible=True) == ["ph_dim"]
    assert page.evaluate("document.getElementById('filter-count').textContent") == "1 of 6 predictors shown"
    assert page.evaluate("Array.from(document.querySelectorAll('#predictors-table tbody tr'))"
                         ".filter(r => !r.hidden).map(r => r.dataset.predictor)") == ["ph_dim"]
    _set(page, "#filter-name", "")
    _set(page, "#filter-kind", "baseline")
    assert _rows(page, "overall", visible=True) == [r.predictor for r in board.task("overall").rows
                                                   if r.kind == "baseline"]
    _set(page, "#filter-family", "norms")
    assert _rows(page, "fsdd", visible=True) == ["weight_norm"]
    _set(page, "#filter-kind", "predictor")
    assert _rows(page, "fsdd", visible=True) == []
    _set(page, "#filter-kind", "")
    _set(page, "#filter-family", "")
    assert _rows(page, "fsdd", visible=True) == [r.predictor for r in board.task("fsdd").rows]
    assert page.evaluate("document.getElementById('filter-count').textContent") == ""


def test_target_switch_shows_the_other_targets_tables(page, board):
    assert _visible(page, f"#{table_id('overall')}") and not _visible(page, f"#{table_id('overall', 'test_error')}")
    page.click('input[name="target"][value="test_error"]')
    assert not _visible(page, f"#{table_id('overall')}") and _visible(page, f"#{table_id('overall', 'test_error')}")
    assert _rows(page, "overall", "test_error") == [r.predictor for r in board.task("overall", "test_error").rows]
    page.click('input[name="target"][value="shift_error"]')
    shown = page.evaluate("Array.from(document.querySelectorAll('table.board')).filter(t => t.offsetParent)"
                          ".map(t => t.id)")
    assert shown == [table_id("fsdd", "shift_error")]


# --- detail panel and scatter plots ---------------------------------------------------------------


def _plots(page: Chromium, predictor: str) -> list[dict]:
    return page.evaluate(
        f"Array.from(document.querySelectorAll('#{detail_id(predictor)} svg.scatter')).map(s => ({{"
        " task: s.dataset.task, target: s.dataset.target, colour: s.dataset.colour,"
        " fills: Array.from(s.querySelectorAll('circle:not(.legend-dot)')).map(c => c.getAttribute('fill')),"
        " levels: Array.from(s.querySelectorAll('circle:not(.legend-dot)')).map(c => c.dataset.level)}))")


def test_row_click_opens_detail_with_scatters_coloured_by_a_hyperparameter(page, board):
    target = detail_id("ph_dim")
    assert page.evaluate(f"getComputedStyle(document.getElementById('{target}')).display") == "none"
    page.click(f'#{table_id("fsdd")} tbody tr[data-predictor="ph_dim"] td:nth-child(4)')
    assert page.evaluate(f"getComputedStyle(document.getElementById('{target}')).display") == "block"
    plots = {p["task"]: p for p in _plots(page, "ph_dim")}
    points = board.points[board.points["predictor"] == "ph_dim"]
    assert sorted(plots) == sorted(points["task"].unique())
    for task, plot in plots.items():
        mine = points[points["task"] == task]
        assert plot["target"] == "gap" and plot["colour"] == "lr"
        assert len(plot["fills"]) == len(mine)
        lrs = sorted(json.loads(h)["lr"] for h in mine["hp"])
        # one colour per learning rate, each point coloured by its own model's lr
        assert len(set(plot["fills"])) == len(set(lrs)) == 2
        levels = ["0.01", "0.1"]
        assert sorted(levels[int(v)] for v in plot["levels"]) == lrs
    _set(page, "#colour-by", "width")
    assert {p["colour"] for p in _plots(page, "ph_dim")} == {"width"}
    page.click('input[name="target"][value="shift_error"]')
    plots = {p["task"]: p for p in _plots(page, "ph_dim")}
    assert {t: p["target"] for t, p in plots.items()} == {t: "shift_error" for t in plots}
    assert len(plots["fsdd"]["fills"]) == len(points[points["task"] == "fsdd"])
    assert plots["fashion_mnist"]["fills"] == []  # no shift set outside audio
    page.click('input[name="target"][value="gap"]')
    page.evaluate(f"document.querySelector('#{target} .plots').scrollIntoView({{block: 'center'}})")
    _screenshot(page, "leaderboard_detail.png")


# --- layout at desktop and phone widths -----------------------------------------------------------


def test_desktop_width_cuts_nothing_off(browser, board_dir):
    page = open_board(browser, board_dir, width=1400)
    for target in ("gap", "test_error", "shift_error"):
        page.click(f'input[name="target"][value="{target}"]')
        widths = page.evaluate(
            "Array.from(document.querySelectorAll('table.board')).filter(t => t.offsetParent).map(t => "
            "[t.id, t.parentNode.scrollWidth, t.parentNode.clientWidth, t.getBoundingClientRect().right])")
        assert widths
        for table, scroll, client, right in widths:
            assert scroll <= client and right <= 1400, (table, scroll, client, right)
    page.click('input[name="target"][value="gap"]')
    last = page.evaluate(f"document.querySelector('#{table_id('overall')} thead th:last-child')"
                         ".getBoundingClientRect().right")
    assert last <= 1400
    assert page.evaluate("document.documentElement.scrollWidth") <= 1400
    page.evaluate("window.scrollTo(0, 0)")
    _screenshot(page, "leaderboard_desktop.png")
    assert page.console_errors() == []


def test_phone_width_keeps_the_name_column_in_view(browser, board_dir):
    page = open_board(browser, board_dir, width=420, height=900)
    assert page.evaluate("document.documentElement.scrollWidth") <= 420  # the page itself never scrolls sideways
    result = page.evaluate(
        f"(() => {{ const table = document.getElementById('{table_id('overall')}');"
        " const wrap = table.parentNode; wrap.scrollLeft = wrap.scrollWidth;"
        " return Array.from(table.tBodies[0].rows).map(row => {"
        "   window.scrollTo(0, row.getBoundingClientRect().top + window.scrollY - 300);"
        "   const cell = row.cells[1], r = cell.getBoundingClientRect();"
        "   const hit = document.elementFromPoint(r.left + 6, r.top + 6);"
        "   return [row.dataset.predictor, wrap.scrollLeft, r.left, r.right, cell.contains(hit)]; }); })()")
    for name, scrolled, left, right, on_top in result:
        assert scrolled > 0, "the table should scroll sideways at 420 px"
        assert 0 <= left and right <= 420 and on_top, (name, left, right, on_top)
    page.evaluate(f"document.getElementById('{table_id('overall')}').parentNode.scrollLeft = 120")
    page.evaluate(f"document.getElementById('{table_id('overall')}').closest('section').scrollIntoView()")
    _screenshot(page, "leaderboard_phone.png")  # scrolled sideways a little: the name column stays
    assert page.console_errors() == []


def test_links_and_downloads_are_in_the_page(page):
    refs = page.evaluate("Array.from(document.querySelectorAll('#predictors-table a[href^=\"https://\"]'))"
                         ".map(a => [a.textContent, a.getAttribute('href')])")
    assert ["Birdal et al. 2021", "https://arxiv.org/abs/2111.13171"] in refs
    assert not page.evaluate("Array.from(document.querySelectorAll('a')).some(a => "
                             "a.getAttribute('href').startsWith('javascript'))")
    for name in ("scores", "runs", "points", "models", "predictions"):
        for ext in ("csv", "json", "parquet"):
            assert page.evaluate(f"!!document.querySelector('#data a[href=\"data/{name}.{ext}\"]')")
    assert "@misc{gapbench" in page.evaluate("document.getElementById('bibtex').textContent")


def test_no_console_errors_and_images_load(page):
    loaded = page.evaluate(
        "new Promise(done => { const imgs = Array.from(document.querySelectorAll('#figures img'));"
        " imgs.forEach(i => i.loading = 'eager'); const t0 = Date.now(); (function check() {"
        "  if (imgs.every(i => i.complete) || Date.now() - t0 > 10000)"
        "    done(imgs.map(i => [i.getAttribute('src'), i.naturalWidth]));"
        "  else setTimeout(check, 50); })(); })")
    assert len(loaded) == 5 and all(width > 0 for _, width in loaded), loaded
    assert page.console_errors() == []
