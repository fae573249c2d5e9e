"""The one reader for every JSON file neuroprune reads back: bounded, and checked against a schema.

Run folders are copied, edited by hand and damaged on disk, so every file read back
(``config.json``, ``model.json``, ``result.json``, ``candidates.json``, ``export.json``,
benchmark results) may hold anything. :func:`read_json` refuses, each in one line naming
the file: a file over its size cap (before reading it), text that is not UTF-8 or not JSON,
nesting deeper than :data:`MAX_DEPTH`, numbers of more than :data:`MAX_NUMBER_CHARS`
characters (Python's own limit on integer strings would raise mid-parse), and a field whose
type differs from the file's :data:`Schema`.

A schema maps field paths to the JSON types allowed there, e.g.
``{"latency_ms": "object|null", "checks": "array", "checks[]": "object"}``: ``[]`` stands
for every item of an array, ``.`` for a key of an object, ``*`` for every key of an object.
A field that is absent passes; readers decide themselves what a missing field means.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import NeuropruneError

MAX_DEPTH = 64  # our files nest a handful of levels; an architecture a few dozen at most
MAX_NUMBER_CHARS = 400  # digits of one number: far beyond any float, well under Python's 4300-digit limit
DEFAULT_MAX_BYTES = 16 << 20
# a result.json holds per-epoch and per-check records: megabytes for long runs, never hundreds
MAX_RUN_FILE_BYTES = 64 << 20
Schema = Mapping[str, str]
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


class _NumberTooLong(Exception):
    """A number literal longer than :data:`MAX_NUMBER_CHARS` (raised from the parser's hooks)."""


def read_json(
    path: str | Path,
    *,
    what: str = "a neuroprune file",
    max_bytes: int = DEFAULT_MAX_BYTES,
    schema: Schema | None = None,
    root: str = "object",
    error: type[NeuropruneError] = NeuropruneError,
) -> Any:
    """Parse ``path`` within bounds and check it against ``schema``.

    Args:
        path: the file.
        what: what the file should be, for messages ("the run's result.json").
        max_bytes: the largest size accepted; checked before the file is read.
        schema: field path -> allowed types (see the module docstring).
        root: the allowed types of the whole document.
        error: the exception class raised (ConfigError, ModelError, ...).

    Returns:
        The parsed document.

    Raises:
        error: one line naming the file and what is wrong with it (and the field, for a
            wrong type).

    Example:
        >>> result = read_json("run/result.json", schema={"checks": "array"})  # doctest: +SKIP
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"{path} does not exist") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise error(f"{path} is larger than {max_bytes:,} bytes, far more than {what}; it is not a file neuroprune "
                    "wrote, or it is damaged")
    return parse_json(data, str(path), what=what, schema=schema, root=root, error=error)


def parse_json(
    data: bytes,
    source: str,
    *,
    what: str = "a neuroprune file",
    schema: Schema | None = None,
    root: str = "object",
    error: type[NeuropruneError] = NeuropruneError,
) -> Any:
    """:func:`read_json` for bytes already read (a file's embedded header); ``source`` names them in messages."""
    path = source
    try:
        document = json.loads(data.decode("utf-8"), parse_int=_bounded_int, parse_float=_bounded_float)
    except UnicodeDecodeError:
        raise error(f"{path} is not UTF-8 text, so not {what}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); the file is damaged") from None
    except RecursionError:
        raise error(f"{path} is nested too deeply to be {what}") from None
    except (_NumberTooLong, ValueError):
        raise error(f"{path} holds a number of more than {MAX_NUMBER_CHARS} digits; it is not {what}") from None
    if _depth(document) > MAX_DEPTH:
        raise error(f"{path} is nested more than {MAX_DEPTH} levels deep; it is not {what}")
    problem = _check_type(document, root, "the document")
    if problem is None and schema:
        problem = check_schema(document, schema)
    if problem is not None:
        raise error(f"{path}: {problem}; it is not {what}, or it was edited or damaged")
    return document


def check_schema(document: Any, schema: Schema) -> str | None:
    """The first field of ``document`` whose type ``schema`` does not allow, described; None when all fit."""
    for field, allowed in schema.items():
        for where, value in _values_at(document, field):
            problem = _check_type(value, allowed, f"field {where}")
            if problem is not None:
                return problem
    return None


def _values_at(document: Any, field: str) -> list[tuple[str, Any]]:
    """``(printed path, value)`` of every value the schema path ``field`` names in ``document``."""
    found: list[tuple[str, Any]] = [("", document)]
    for part in field.replace("[]", ".[]").split("."):
        if not part:
            continue
        deeper = []
        for where, value in found:
            if part == "[]" and isinstance(value, list):
                deeper += [(f"{where}[{index}]", item) for index, item in enumerate(value)]
            elif part == "*" and isinstance(value, dict):
                deeper += [(f"{where}[{_short(key)}]", item) for key, item in value.items()]
            elif part not in ("[]", "*") and isinstance(value, dict) and part in value:
                deeper.append((f"{where}[{part!r}]" if where else repr(part), value[part]))
        found = deeper
    return found


def _check_type(value: Any, allowed: str, where: str) -> str | None:
    for name in allowed.split("|"):
        if name == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return None
        if name == "integer" and isinstance(value, int) and not isinstance(value, bool):
            return None
        if name in _TYPES and isinstance(value, _TYPES[name]) and not (name != "boolean" and isinstance(value, bool)):
            return None
        if name == "any":
            return None
    return f"{where} must be {' or '.join(allowed.split('|'))}, got {_short(value)}"


def _depth(document: Any) -> int:
    """How deeply arrays and objects nest in ``document`` (iteratively: no recursion limit to hit)."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, (dict, list)):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, level + 1) for item in items)
    return deepest


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberTooLong
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberTooLong
    return float(text)


def _short(value: Any, limit: int = 60) -> str:
    """A one-line rendering of a value from the file, cut to ``limit`` characters."""
    if isinstance(value, dict):
        text = f"an object of {len(value)} field(s)"
    elif isinstance(value, list):
        text = f"an array of {len(value)} item(s)"
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
