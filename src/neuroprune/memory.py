"""Sizes declared by a file, checked against the memory this process can use before anything is allocated.

A ``model.json`` and a safetensors header can consistently declare a model of many
gigabytes in a file of a few kilobytes (a sparse file). Loading it would build the model,
read the tensors and copy them, several times the declared size, before anything noticed.
:func:`check_fits` refuses such a size up front, in one line.
"""

from __future__ import annotations

import os
import resource

from .errors import ModelError

# loading holds the model built from the description, the tensors read and a copy on the way
LOAD_FACTOR = 3


def memory_budget() -> int:
    """Bytes this process can still allocate: the smaller of the memory available on the machine
    and the headroom under its address-space limit (``ulimit -v``)."""
    budgets = [_available_memory()]
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        budgets.append(max(0, soft - _address_space_in_use()))
    return min(budgets)


def check_fits(declared_bytes: int, what: str, *, factor: int = LOAD_FACTOR) -> None:
    """Refuse loading ``what``, which declares ``declared_bytes``, when ``factor`` times that exceeds the budget.

    Raises:
        ModelError: naming ``what``, the declared size and the memory there is.
    """
    budget = memory_budget()
    if declared_bytes * factor > budget:
        raise ModelError(f"{what} declares {_gb(declared_bytes)} of tensors; loading it needs about "
                         f"{_gb(declared_bytes * factor)}, more than this process can use ({_gb(budget)}): it is "
                         "damaged, not a file neuroprune wrote, or needs a machine with more memory")


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 1 << 62  # unknown: no limit of our own


def _address_space_in_use() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _gb(size: int) -> str:
    return f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"
