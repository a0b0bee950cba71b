"""Write the generated blocks of docs/ARCHITECTURE.md (table and axis declarations) from the code.

Usage: ``python scripts/sync_docs.py`` (``--check`` exits 1 when the doc is out of date; the test
suite runs the same comparison).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"


def blocks() -> dict[str, str]:
    """Marker name -> the Markdown the code generates for it."""
    from benchmark.tables import markdown as tables_markdown
    from model_zoo.axes import markdown as axes_markdown

    return {"tables": tables_markdown(), "axes": axes_markdown()}


def render(text: str) -> str:
    """``text`` with every ``<!-- NAME:begin -->...<!-- NAME:end -->`` block regenerated."""
    for name, body in blocks().items():
        pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"{DOC}: no <!-- {name}:begin --> ... <!-- {name}:end --> block")
        text = pattern.sub(lambda m, body=body: m.group(1) + body.rstrip("\n") + "\n" + m.group(2), text)
    return text


def main() -> None:
    text = DOC.read_text()
    new = render(text)
    if "--check" in sys.argv:
        if new != text:
            sys.stderr.write(f"{DOC} is out of date: run python scripts/sync_docs.py\n")
            raise SystemExit(1)
        return
    DOC.write_text(new)


if __name__ == "__main__":
    main()
