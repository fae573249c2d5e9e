"""What the suites share: the default output folder and the command recorded in their results."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

# relative to the current folder; the repository's benchmarks/*.py pass their own results/ folder
DEFAULT_OUT = Path("benchmarks/results")


def command(suite: str) -> str:
    """The command that runs ``suite`` from the installed package, as the results record it."""
    return f"python -m neuroprune.bench {suite}"


@contextlib.contextmanager
def waiting_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path``, waiting while another process holds it."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
