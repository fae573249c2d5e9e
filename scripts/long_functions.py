"""List the functions longer than a limit (default 80 lines), longest first.

A function's length runs from its ``def`` line to its last line (decorators excluded,
the docstring included); ``code`` is that length without the docstring.

Usage: ``python scripts/long_functions.py [--limit N] [FOLDER ...]`` (default folder: src).
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path


def long_functions(folders: list[Path], limit: int) -> list[tuple[int, int, str, str]]:
    """``(length, code length, "path:line", name)`` of every function over ``limit`` lines."""
    found = []
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                if length <= limit:
                    continue
                first = node.body[0]
                is_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str)
                docstring = first.end_lineno - first.lineno + 1 if is_docstring else 0  # type: ignore[operator]
                found.append((length, length - docstring, f"{path}:{node.lineno}", node.name))
    return sorted(found, reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=[Path("src")])
    parser.add_argument("--limit", type=int, default=80)
    args = parser.parse_args()
    for length, code, where, name in long_functions(args.folders, args.limit):
        print(f"{length:5d} lines ({code:3d} code)  {where}  {name}")


if __name__ == "__main__":
    main()
