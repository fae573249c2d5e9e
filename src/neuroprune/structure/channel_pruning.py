"""Channel (width) pruning on the structural model: the weakest channels of every space, then compaction.

Each removable channel space (:mod:`.channels`) loses ``ratio`` of its channels, the ones
whose rows in the layers that write the space have the smallest L2 norm (all writers
together: a residual stage's channels are ranked once for every block that shares them).
A removed channel's rows, biases and the readers' columns are zeroed, and :func:`.compact.compact`
turns the result into smaller dense layers. Spaces compaction keeps whole (the model's
input and output, concatenations, LayerNorm, ...) keep every channel.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from ..errors import ConfigError
from .channels import trace_channels
from .compact import compact

log = logging.getLogger(__name__)


def prune_channels(model: nn.Module, ratio: float) -> nn.Module:
    """A narrower copy of ``model`` with ``ratio`` of the channels of every removable space gone.

    Args:
        model: any model torch.fx can trace (a depth-cut GraphModule included).
        ratio: share of each space's channels to remove, in [0, 1); every space keeps at
            least one channel.

    Returns:
        The compacted model; ``model`` is untouched. Fine-tune it afterwards.

    Raises:
        ConfigError: ``ratio`` is out of range.
        ModelError: the model cannot be traced (the module is named).

    Example:
        >>> narrow = prune_channels(small, ratio=0.3)
    """
    if not 0 <= ratio < 1:
        raise ConfigError(f"the channel pruning ratio must be in [0, 1), got {ratio}")
    pruned = copy.deepcopy(model)
    channel_map = trace_channels(pruned)
    removed = 0
    with torch.no_grad():
        for space in channel_map.spaces:
            size = int(space.size or 0)
            count = min(int(ratio * size), size - 1)
            if space.fixed is not None or not space.writers or count <= 0:
                continue
            writers = [channel_map.modules[path] for path in space.writers]
            # rows of every writer: (size, fan_in) each; squared norms summed over the writers
            strength = sum(w.weight.flatten(1).pow(2).sum(dim=1) for w in writers)
            drop = torch.argsort(strength)[:count]
            for writer in writers:
                writer.weight[drop] = 0
                if writer.bias is not None:
                    writer.bias[drop] = 0
            for reader in space.readers:
                weight = channel_map.modules[reader.module].weight
                weight.view(weight.shape[0], size, -1)[:, drop] = 0  # (out, channels, taps)
            removed += count
    log.info("channel pruning at ratio %.2f: %d channels zeroed before compaction", ratio, removed)
    return compact(pruned)
