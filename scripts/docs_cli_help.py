"""MkDocs hook: ``<!-- neuroprune-help COMMAND ... -->`` becomes that command's ``--help`` text.

The command line reference then lists every option as the installed CLI has it, so the page
cannot drift from the code. Used by ``mkdocs.yml`` (``hooks:``).
"""

from __future__ import annotations

import re
from typing import Any

_MARKER = re.compile(r"^<!-- neuroprune-help ([\w -]*?) -->$", flags=re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace every marker of the page with a fenced block of the command's help."""
    if not _MARKER.search(markdown):
        return markdown
    from click.testing import CliRunner

    from neuroprune.cli import main

    def help_text(match: re.Match[str]) -> str:
        args = [*match.group(1).split(), "--help"]
        result = CliRunner().invoke(main, args, terminal_width=100, prog_name="neuroprune")
        if result.exit_code != 0:
            raise RuntimeError(f"`neuroprune {' '.join(args)}` failed: {result.output}")
        return "```text\n" + result.output.rstrip() + "\n```"

    return _MARKER.sub(help_text, markdown)
