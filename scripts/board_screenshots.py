"""Screenshots of the published board (leaderboards/index.html) at desktop and phone width.

Writes docs/img/board-desktop.png (1400 px) and docs/img/board-420px.png with the headless
Chromium driver of tests/test_leaderboard_browser.py. Run from the repository root:
``.venv/bin/python scripts/board_screenshots.py``.
"""

import base64
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import test_leaderboard_browser as browser_test  # noqa: E402


def main() -> None:
    """Open the board at each width and save a screenshot of its top."""
    chrome = browser_test.Chromium(browser_test.find_chromium(), Path(tempfile.mkdtemp()))
    try:
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            chrome.send(domain)
        for name, width, height in (("board-desktop.png", 1400, 1000), ("board-420px.png", 420, 900)):
            page = browser_test.open_board(chrome, REPO / "leaderboards", width=width, height=height)
            page.evaluate("window.scrollTo(0, 0)")
            shot = base64.b64decode(page.send("Page.captureScreenshot", {"format": "png"})["data"])
            (REPO / "docs" / "img" / name).write_bytes(shot)
            errors = page.console_errors()
            if errors:
                raise SystemExit(f"console errors on the board: {errors}")
    finally:
        chrome.close()


if __name__ == "__main__":
    main()
