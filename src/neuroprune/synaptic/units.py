"""Units (neurons, channels) and the connections that enter and leave them.

A unit is one channel of a channel space (:mod:`neuroprune.structure.channels`): in a
chain, one neuron of a layer; in a residual network, one channel shared by every block of a
stage. Removing it removes its row of every layer that writes the space (what enters it),
its columns of every layer that reads the space (what leaves it; for a Linear after a
Flatten of conv features, all H*W columns of the channel), and its row of every depthwise
convolution inside the space. :class:`UnitGroup` gives per-unit views of masks and
activities in those terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ModelError
from ..masks import Prunable
from ..structure import trace_channels
from ..structure.traits import is_depthwise


@dataclass(frozen=True)
class UnitGroup:
    """The units of one channel space, by the pruned layers' names.

    Attributes:
        name: the first layer that writes the space (names its counters in checkpoints).
        size: number of units.
        writers: layers whose rows make the units.
        readers: layers that read the units through their columns.
        depthwise: depthwise convolutions inside the space (one row per unit).
    """

    name: str
    size: int
    writers: tuple[str, ...]
    readers: tuple[str, ...]
    depthwise: tuple[str, ...]

    def kept_at_least(self, max_unit_ratio: float) -> int:
        """Units that stay when at most ``max_unit_ratio`` of the space may go (always at least one)."""
        return max(1, math.ceil(self.size * (1 - max_unit_ratio) - 1e-9))

    def _outgoing(self, tensor: torch.Tensor) -> torch.Tensor:
        """View of a reader-shaped tensor as (out, units, taps)."""
        return tensor.reshape(tensor.shape[0], self.size, -1)

    def live(self, masks: dict[str, torch.Tensor]) -> torch.Tensor:
        """(units,) bool: a unit is live while a connection enters it and one leaves it."""
        has_in = torch.stack([masks[w].reshape(self.size, -1).bool().any(dim=1) for w in self.writers]).any(dim=0)
        has_out = torch.stack([self._outgoing(masks[r]).bool().any(dim=2).any(dim=0) for r in self.readers]).any(dim=0)
        return has_in & has_out

    def activity(self, activity: dict[str, torch.Tensor]) -> torch.Tensor:
        """(units,): summed activity of the connections leaving each unit (its downstream signal)."""
        return torch.stack([self._outgoing(activity[r]).sum(dim=(0, 2)) for r in self.readers]).sum(dim=0)

    def costs(self, masks: dict[str, torch.Tensor], per_weight: dict[str, int] | None = None) -> torch.Tensor:
        """(units,): live connections removing each unit removes.

        With ``per_weight`` (layer name -> MACs per sample of one of its weights, see
        :func:`~neuroprune.synaptic.compute.positions_per_weight`): the MACs per sample it saves.
        """
        def weight(name: str) -> int:
            return 1 if per_weight is None else per_weight[name]

        rows = [masks[w].reshape(self.size, -1).sum(dim=1) * weight(w) for w in (*self.writers, *self.depthwise)]
        columns = [self._outgoing(masks[r]).sum(dim=(0, 2)) * weight(r) for r in self.readers]
        return torch.stack(rows + columns).sum(dim=0)

    def remove(self, removed: torch.Tensor, masks: dict[str, torch.Tensor]) -> None:
        """Zero the ``removed`` (units,) units' rows and columns in ``masks`` (in place of the dict)."""
        keep = (~removed).to(masks[self.writers[0]].dtype)
        for name in (*self.writers, *self.depthwise):
            mask = masks[name]
            masks[name] = mask * keep.view(self.size, *([1] * (mask.dim() - 1)))
        for name in self.readers:
            mask = masks[name]
            masks[name] = (self._outgoing(mask) * keep.view(1, self.size, 1)).reshape(mask.shape)


def find_unit_groups(model: nn.Module, layers: dict[str, Prunable]) -> list[UnitGroup]:
    """The unit groups of ``model`` whose every member layer is pruned.

    Channels of the model's input and output, and channels that meet an operation the
    structural model does not follow (see :mod:`neuroprune.structure.channels`), are never
    units.

    Raises:
        ModelError: the model cannot be traced, or no space has all its layers pruned.
    """
    try:
        channel_map = trace_channels(model)
    except ModelError as exc:
        raise ModelError(f"unit granularity needs the model's structure: {exc}") from None
    by_module = {id(module): name for name, module in layers.items()}

    def pruned(path: str) -> str | None:
        return by_module.get(id(channel_map.modules[path]))

    groups = []
    for space in channel_map.spaces:
        if space.fixed or not space.writers or not space.readers or not space.size:
            continue
        writers = [pruned(p) for p in space.writers]
        readers = [pruned(r.module) for r in space.readers]
        depthwise = [pruned(p) for p, _ in space.channelwise if is_depthwise(channel_map.modules[p])]
        if None in writers + readers + depthwise:
            continue  # a layer of the space is not pruned: its units stay
        groups.append(UnitGroup(writers[0], space.size, tuple(writers), tuple(readers),  # type: ignore[arg-type]
                                tuple(depthwise)))  # type: ignore[arg-type]
    if not groups:
        raise ModelError("unit granularity found no unit whose layers are all pruned; leave layers= unset, "
                         "or use granularity='connection'")
    return groups
