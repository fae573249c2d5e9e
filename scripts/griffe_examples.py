"""Griffe extension for the docs build: our docstrings' ``Example:`` sections are doctests.

Google style names the section ``Examples:``; the singular would otherwise render as an
admonition whose ``>>>`` lines read as nested quotes and whose ``[...]`` as broken links.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_SINGULAR = re.compile(r"^(\s*)Example:\s*$", flags=re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` to ``Examples:`` in every docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _SINGULAR.sub(r"\1Examples:", obj.docstring.value)
