"""``page_problems``: what would make a written report page broken or not self-contained.

Checked: every ``src``/``href`` is a relative path to a file that exists inside the report
folder; nothing is loaded from the network (no URL, no protocol-relative address, no
``url(...)`` in the style sheet pointing elsewhere); no scripts; every image is a PNG
that opens (its signature is checked, not just its name).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Links(HTMLParser):
    """Collects (tag, attribute, value) for every src/href, and the tags seen."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in ("src", "href", "srcset", "poster", "data") and value is not None:
                self.links.append((tag, name, value))
            if name == "style" and value:
                self.style += value

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False if tag == "style" else self._in_style

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def page_problems(html_path: str | Path) -> list[str]:
    """Every problem found in the page at ``html_path``; an empty list means it is sound.

    Args:
        html_path: an ``index.html`` written by a report.

    Returns:
        One sentence per problem, naming the offending address or file.

    Example:
        >>> page_problems("report/index.html")  # doctest: +SKIP
        []
    """
    html_path = Path(html_path)
    if not html_path.is_file():
        return [f"{html_path} does not exist"]
    folder = html_path.parent.resolve()
    parser = _Links()
    parser.feed(html_path.read_text(encoding="utf-8"))
    problems = []
    if "script" in parser.tags:
        problems.append("the page contains a <script>")
    for address in re.findall(r"url\(\s*['\"]?([^'\")]+)", parser.style):
        problems.append(f"the style sheet loads {address}")
    for tag, attribute, value in parser.links:
        parts = urlsplit(value)
        if parts.scheme or parts.netloc or value.startswith("//"):
            problems.append(f"<{tag} {attribute}> points outside the report: {value}")
            continue
        if not parts.path:  # a same-page anchor such as "#claims"
            continue
        target = (folder / unquote(parts.path)).resolve()
        if not target.is_relative_to(folder):
            problems.append(f"<{tag} {attribute}> leaves the report folder: {value}")
        elif not target.is_file():
            problems.append(f"<{tag} {attribute}> points to a missing file: {value}")
        elif tag == "img" and target.read_bytes()[:8] != _PNG_SIGNATURE:
            problems.append(f"<img src> is not a PNG file: {value}")
    return problems
