"""``python -m neuroprune.bench SUITE [options]``: run one benchmark suite (``SUITE --help``: its options)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import SUITES, run


def usage() -> str:
    """The help text: how to call, and the suites."""
    width = max(map(len, SUITES))
    lines = ["usage: python -m neuroprune.bench SUITE [options]", "",
             "Run one of neuroprune's benchmark suites; `SUITE --help` lists its options.", "", "suites:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in SUITES.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``argv`` (default: this process's arguments) to the suite it names."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    return run(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
