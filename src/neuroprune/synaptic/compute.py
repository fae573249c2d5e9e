"""What a pruned weight costs in compute: MACs per weight from one shape probe, and a MACs budget.

Under the counting rule of :mod:`neuroprune.metrics.macs`, every weight of a Linear or
Conv2d layer is used once per output position of its layer (H_out * W_out for a
convolution, one per row for a Linear), so a layer's MACs per sample are::

    MACs = live weights * positions            positions = output.numel() / (batch * out_channels)

One forward pass of an example input gives every layer's ``positions``; from then on the
MACs of the masked network (and what removing a unit saves) are sums over masks, with no
further forward pass. A channel at 28x28 costs 49 times what the same channel costs at
4x4: weighing a unit's activity by what its removal saves sends pruning where the compute is.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import ConfigError
from ..metrics._forward import batch_size_of, eval_mode


def positions_per_weight(layers: Mapping[str, nn.Module], model: nn.Module, example_inputs: torch.Tensor) -> dict[str, int]:
    """MACs per sample that one weight of each layer costs: its layer's output positions.

    Runs ``model`` once on ``example_inputs`` (eval mode, no gradients; training flags are
    restored) with a forward hook on each of ``layers``.

    Args:
        layers: name -> Linear/Conv2d module of ``model``.
        model: the network.
        example_inputs: one batch, batch dimension first.

    Returns:
        name -> output positions per sample (1 for a Linear on flat features).

    Raises:
        ConfigError: a layer did not run in the forward pass (its cost is unknown).

    Example:
        >>> conv = nn.Conv2d(1, 4, 3, padding=1)
        >>> positions_per_weight({"conv": conv}, conv, torch.randn(2, 1, 8, 8))
        {'conv': 64}
    """
    batch = batch_size_of(example_inputs)
    found: dict[str, int] = {}
    handles: list[RemovableHandle] = []

    def hook(name: str, module: nn.Module):  # noqa: ANN202 - a forward hook
        def record(_: nn.Module, __: object, output: torch.Tensor) -> None:
            # output: Linear (batch, ..., out), ConvNd (batch, out, *spatial)
            found[name] = found.get(name, 0) + output.numel() // (batch * module.weight.shape[0])
        return record

    try:
        for name, module in layers.items():
            handles.append(module.register_forward_hook(hook(name, module)))
        with eval_mode(model), torch.no_grad():
            model(example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    missing = sorted(set(layers) - set(found))
    if missing:
        raise ConfigError(f"layers {missing} did not run on the example input, so their compute is unknown")
    return found


class ComputeBudget:
    """MACs of the masked network, by layer, from masks and each layer's positions per weight.

    Args:
        positions: name -> MACs per sample of one weight (see :func:`positions_per_weight`).
        shapes: name -> the layer's weight shape (the dense network's MACs follow).

    Example:
        >>> budget = ComputeBudget({"fc": 1}, {"fc": (4, 8)})
        >>> budget.total, budget.live({"fc": torch.ones(4, 8)})
        (32, 32)
    """

    def __init__(self, positions: Mapping[str, int], shapes: Mapping[str, tuple[int, ...]]) -> None:
        if set(positions) != set(shapes):
            raise ConfigError("a compute budget needs the positions of every pruned layer")
        self.positions = dict(positions)
        self.total = sum(self.positions[n] * int(torch.Size(s).numel()) for n, s in shapes.items())

    def live(self, masks: Mapping[str, torch.Tensor]) -> int:
        """MACs per sample of the live weights in ``masks`` (those of a compacted network, with units)."""
        return sum(int(mask.sum()) * self.positions[name] for name, mask in masks.items())

    def fraction(self, masks: Mapping[str, torch.Tensor]) -> float:
        """Live MACs as a share of the dense network's."""
        return self.live(masks) / self.total if self.total else 1.0


def unit_scores(activity: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
    """(units,): activity per unit of compute its removal saves; lower goes first.

    Two equally active units at different resolutions: the one whose removal saves more
    MACs (the high-resolution one) scores lower and goes first.

    Example:
        >>> unit_scores(torch.tensor([1.0, 1.0]), torch.tensor([2880.0, 180.0])).argmin().item()
        0
    """
    return activity / saved.clamp_min(1)
