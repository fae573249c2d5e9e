"""Keeping data-parallel processes' pruning decisions identical (torch.distributed)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def average_over_processes(statistics: dict[str, torch.Tensor], names: list[str]) -> None:
    """Average activity statistics over processes in place, so every rank takes the same decision.

    Every rank has run the same number of steps on equally sized shards (what DDP needs),
    so each holds the same layers and batch counts, and the mean of the per-rank sums over
    the mean batch count is the global batch mean a single process would see.
    """
    world = _world()
    if world == 1:
        return
    for name in names:  # same order on every rank
        stat = statistics.get(name)
        if stat is not None:
            dist.all_reduce(stat)
            stat /= world


def share_rank_zero_decisions(
    names: list[str],
    mask_of: Callable[[str], torch.Tensor],
    set_mask: Callable[[str, torch.Tensor], None],
    counters: dict[str, torch.Tensor],
) -> None:
    """Make rank 0's masks and counters every rank's.

    The decisions are computed from identical all-reduced statistics and weights, so this
    changes nothing unless a collective's float rounding differed between ranks; it
    guarantees the masks can never drift apart.
    """
    if _world() == 1:
        return
    for name in names:  # same order on every rank
        mask = mask_of(name)
        dist.broadcast(mask, src=0)
        dist.broadcast(counters[name], src=0)
        if not torch.equal(mask, mask_of(name)):
            log.warning("layer %s: this rank's pruning decision differed from rank 0's; using rank 0's", name)
            set_mask(name, mask)


def share_rank_zero_floats(values: list[float], device: torch.device) -> list[float]:
    """Rank 0's ``values`` on every rank: timings differ between processes, decisions taken from them must not."""
    if _world() == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()
