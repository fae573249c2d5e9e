"""The benchmark suites, run as ``python -m neuroprune.bench SUITE [options]``.

Each suite is a module of this package with ``main(argv)``:

- ``synaptic``: synaptic pruning vs dense training and gradual magnitude pruning
  (``neuroprune reproduce zhao2021`` runs it);
- ``depth``: depth pruning vs identity replacement and Torch-Pruning at equal latency
  (``neuroprune reproduce camacho2022`` runs it);
- ``units``: MAC- or latency-aware synaptic unit pruning vs Torch-Pruning's gradual channel pruning;
- ``speed``: CPU inference speed of dense, compacted and sparse (CSR) models.

``depth`` and ``units`` compare with Torch-Pruning, the ``bench`` extra
(``pip install "neuroprune[bench]"``); nothing imports it before a suite needs it. The
repository's ``benchmarks/SUITE.py`` scripts run the same suites, writing into
``benchmarks/results/`` by default.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path

from ..errors import NeuropruneError

#: suite name -> one line on what it measures
SUITES: dict[str, str] = {
    "synaptic": "synaptic pruning vs dense training and gradual magnitude pruning (reproduce zhao2021)",
    "depth": "depth pruning vs identity replacement and Torch-Pruning at equal latency (reproduce camacho2022)",
    "units": "MAC- or latency-aware synaptic unit pruning vs Torch-Pruning's gradual channel pruning",
    "speed": "CPU inference speed: dense vs compacted vs sparse (CSR) execution",
}


def run(suite: str, argv: Sequence[str] | None = None, *, prog: str | None = None, out: Path | None = None) -> int:
    """Run ``suite``'s ``main`` and return an exit status.

    Args:
        suite: one of :data:`SUITES`.
        argv: the suite's command-line arguments (default: this process's, after the script).
        prog: the command the suite's help and results name (default
            ``python -m neuroprune.bench SUITE``).
        out: the default of the suite's ``--out`` (default ``benchmarks/results`` under the
            current folder).

    Returns:
        0 on success; 2 after a :class:`~neuroprune.errors.NeuropruneError` (a missing
        Torch-Pruning, data set or file), printed as one line on stderr.
    """
    if suite not in SUITES:
        print(f"error: unknown suite {suite!r}; choose one of: {', '.join(SUITES)}", file=sys.stderr)
        return 2
    main = import_module(f"{__name__}.{suite}").main
    try:
        main(argv, prog=prog, out=out)
    except NeuropruneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
