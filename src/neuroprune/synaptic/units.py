"""Units (Linear neurons, Conv2d channels) and the connections that enter and leave them.

Removing unit u of a layer removes its row of that layer's weight (what enters it) and
its columns of the next layer's weight (what leaves it; for a Linear layer after a
Flatten of conv features, all H*W columns of channel u). This module finds those pairs in
a sequential chain, the structure compaction understands, and gives per-unit views.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ModelError
from .compact import _flatten
from .masks import Prunable


@dataclass(frozen=True)
class UnitLink:
    """Layer ``producer``'s output units feed layer ``consumer`` (names as in the model)."""

    producer: str
    consumer: str

    def outgoing(self, consumer_tensor: torch.Tensor, units: int) -> torch.Tensor:
        """View of a consumer-shaped tensor as (out, units, taps): what each unit feeds."""
        return consumer_tensor.reshape(consumer_tensor.shape[0], units, -1)


def find_unit_links(model: nn.Module, layers: dict[str, Prunable]) -> list[UnitLink]:
    """The producer -> consumer pairs of consecutive pruned layers in a sequential chain.

    The last layer's units are the model's outputs and are never removed.

    Raises:
        ModelError: the model is not a chain that compaction supports, or a layer between
            two pruned layers is not one of ``layers``.
    """
    try:
        chain = _flatten(model)
    except ModelError as exc:
        raise ModelError(f"unit granularity needs a sequential model compaction understands: {exc}") from None
    by_module = {id(module): name for name, module in layers.items()}
    ordered = [by_module.get(id(module)) for _, module in chain if isinstance(module, (nn.Linear, nn.Conv2d))]
    if None in ordered:
        raise ModelError("unit granularity needs every Linear and Conv2d layer of the chain to be pruned; "
                         "leave layers= unset")
    links = []
    for producer, consumer in zip(ordered, ordered[1:]):
        assert producer is not None and consumer is not None  # checked above
        units = layers[producer].weight.shape[0]
        fan_in = layers[consumer].weight[0].numel()
        if fan_in % units:
            raise ModelError(f"layer {consumer!r} has {fan_in} inputs per unit, not a multiple of the "
                             f"{units} units of {producer!r}: unit granularity cannot pair them")
        links.append(UnitLink(producer, consumer))
    return links


def unit_live(link: UnitLink, producer_mask: torch.Tensor, consumer_mask: torch.Tensor) -> torch.Tensor:
    """(units,) bool: a unit is live while a connection enters it and one leaves it."""
    units = producer_mask.shape[0]
    has_in = producer_mask.reshape(units, -1).any(dim=1)
    has_out = link.outgoing(consumer_mask, units).bool().any(dim=2).any(dim=0)
    return has_in & has_out


def unit_activity(link: UnitLink, consumer_activity: torch.Tensor, units: int) -> torch.Tensor:
    """(units,): the summed activity of the connections leaving each unit (its downstream signal)."""
    return link.outgoing(consumer_activity, units).sum(dim=(0, 2))


def unit_costs(link: UnitLink, producer_mask: torch.Tensor, consumer_mask: torch.Tensor) -> torch.Tensor:
    """(units,): live connections that removing each unit removes (its row and its columns)."""
    units = producer_mask.shape[0]
    return producer_mask.reshape(units, -1).sum(dim=1) + link.outgoing(consumer_mask, units).sum(dim=(0, 2))


def remove_units(
    link: UnitLink, removed: torch.Tensor, producer_mask: torch.Tensor, consumer_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """New (producer, consumer) masks without the ``removed`` (units,) units' rows and columns."""
    units = producer_mask.shape[0]
    keep = (~removed).to(producer_mask.dtype)
    producer = producer_mask * keep.view(units, *([1] * (producer_mask.dim() - 1)))
    consumer = (link.outgoing(consumer_mask, units) * keep.view(1, units, 1)).reshape(consumer_mask.shape)
    return producer, consumer
