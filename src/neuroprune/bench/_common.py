"""What the suites share: the default output folder and the command recorded in their results."""

from __future__ import annotations

from pathlib import Path

# relative to the current folder; the repository's benchmarks/*.py pass their own results/ folder
DEFAULT_OUT = Path("benchmarks/results")


def command(suite: str) -> str:
    """The command that runs ``suite`` from the installed package, as the results record it."""
    return f"python -m neuroprune.bench {suite}"
