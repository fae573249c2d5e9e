"""Torch-Pruning as a benchmark peer: channel pruning to a MAC target or to a measured latency.

Torch-Pruning (the ``bench`` extra: ``pip install "neuroprune[bench]"``) removes whole channels
by L2 weight magnitude and fixes every dependent layer with its own dependency graph. The
library does not use it (its channel pruning is :mod:`neuroprune.structure.channel_pruning`,
on the structural model compaction reads); the depth and units suites compare against it.
Importing this module does not import Torch-Pruning: :func:`require_torch_pruning` does, when
a suite first needs it.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from neuroprune.errors import ConfigError, NeuropruneError
from neuroprune.metrics import compare_latency, count_macs

log = logging.getLogger(__name__)


INSTALL_HINT = 'pip install "neuroprune[bench]"'


def require_torch_pruning() -> Any:
    """The ``torch_pruning`` module, imported now.

    Raises:
        NeuropruneError: it is not installed; the one-line message says how to install it.
    """
    try:
        import torch_pruning
    except ImportError:
        raise NeuropruneError(
            f"this benchmark compares with Torch-Pruning, which is not installed: {INSTALL_HINT} "
            "(with your torch version pinned in the same command, e.g. pip install torch==2.13.0 "
            '"neuroprune[bench]")'
        ) from None
    return torch_pruning


def prune_channels(model: nn.Module, example_inputs: torch.Tensor, ratio: float) -> nn.Module:
    """A copy of ``model`` with ``ratio`` of the channels of every prunable layer removed.

    Channels are ranked by L2 magnitude, layer by layer (uniform ratio); the final
    classifier keeps its outputs. ``model`` is left untouched.

    Args:
        model: the (trained) model.
        example_inputs: one input batch, used to trace the dependencies between layers.
        ratio: share of channels to remove, in [0, 1).

    Returns:
        The narrower model; fine-tune it afterwards.

    Raises:
        ConfigError: ``ratio`` is out of range.
        NeuropruneError: Torch-Pruning is not installed.

    Example:
        >>> narrow = prune_channels(small, torch.randn(1, 1, 32, 32), ratio=0.3)
    """
    if not 0 <= ratio < 1:
        raise ConfigError(f"the channel pruning ratio must be in [0, 1), got {ratio}")
    tp = require_torch_pruning()
    pruned = copy.deepcopy(model).eval()
    if ratio == 0:
        return pruned
    head = [m for m in pruned.modules() if isinstance(m, nn.Linear)][-1:]
    pruner = tp.pruner.MagnitudePruner(
        pruned, example_inputs[:1], importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=ratio,
        ignored_layers=head,
    )
    pruner.step()
    log.info("channel pruning at ratio %.2f: %d -> %d MACs", ratio, count_macs(model, example_inputs[:1]),
             count_macs(pruned, example_inputs[:1]))
    return pruned


def prune_channels_to_macs(
    model: nn.Module, example_inputs: torch.Tensor, target_macs: int, steps: int = 8, max_ratio: float = 0.9
) -> tuple[nn.Module, float]:
    """Channel-prune ``model`` to about ``target_macs`` MACs per sample by bisecting the ratio.

    Rounding to whole channels makes MACs only roughly monotone in the ratio, so every tried
    ratio is kept and the one closest to the target wins.

    Returns:
        ``(pruned model, ratio used)``.
    """
    low, high = 0.0, max_ratio
    tried: list[tuple[int, float, nn.Module]] = []
    for _ in range(steps):
        ratio = (low + high) / 2
        candidate = prune_channels(model, example_inputs, ratio)
        macs = count_macs(candidate, example_inputs[:1])
        tried.append((abs(macs - target_macs), ratio, candidate))
        if macs >= target_macs:
            low = ratio
        else:
            high = ratio
    _, ratio, best = min(tried, key=lambda t: t[0])
    return best, ratio


def prune_channels_to_latency(
    model: nn.Module, example_inputs: torch.Tensor, reference: nn.Module, steps: int = 6, max_ratio: float = 0.9,
    rounds: int = 3, repeats: int = 20,
) -> tuple[nn.Module, float, float]:
    """Channel-prune ``model`` until it runs as fast as ``reference`` on ``example_inputs``, by bisection.

    Each tried ratio is timed against ``reference`` in interleaved rounds
    (:func:`~neuroprune.metrics.compare_latency`), so the comparison is "equal measured
    latency" in this process, not equal MACs. The closest ratio wins.

    Returns:
        ``(pruned model, ratio used, its speed relative to reference)`` (1.0: equally fast).
    """
    low, high = 0.0, max_ratio
    tried: list[tuple[float, float, float, nn.Module]] = []
    for _ in range(steps):
        ratio = (low + high) / 2
        candidate = prune_channels(model, example_inputs, ratio)
        timed = compare_latency({"reference": reference, "candidate": candidate}, example_inputs, rounds=rounds,
                                repeats=repeats)
        relative = timed.speedup["candidate"]  # > 1: faster than the reference
        tried.append((abs(relative - 1.0), ratio, relative, candidate))
        if relative < 1.0:
            low = ratio
        else:
            high = ratio
    _, ratio, relative, best = min(tried, key=lambda t: t[0])
    return best, ratio, relative
