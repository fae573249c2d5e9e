"""What a pruned weight costs: MACs (from one shape probe) or measured time per weight, and a budget of it.

Under the counting rule of :mod:`neuroprune.metrics.macs`, every weight of a Linear or
Conv2d layer is used once per output position of its layer (H_out * W_out for a
convolution, one per row for a Linear), so a layer's MACs per sample are::

    MACs = live weights * positions            positions = output.numel() / (batch * out_channels)

One forward pass of an example input gives every layer's ``positions``; from then on the
MACs of the masked network (and what removing a unit saves) are sums over masks, with no
further forward pass. A channel at 28x28 costs 49 times what the same channel costs at
4x4: weighing a unit's activity by what its removal saves sends pruning where the compute is.

MACs are not time on a CPU at batch 1: a convolution at 2x2 costs about what its weights
cost to read, and 1x1-pixel work is dominated by that. :func:`time_per_weight_by_batch` times
each layer alone at batch 1 and 64 and gives a linear latency model per batch size instead;
a latency target (``target_latency``) must hold at each (:class:`LatencyBudget`), and a
speed-up target counts in their average (:func:`time_per_weight`), calibrated on the whole
network (:mod:`neuroprune.synaptic.latency`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import ConfigError
from ..metrics._forward import batch_size_of, eval_mode


def positions_per_weight(
    layers: Mapping[str, nn.Module], model: nn.Module, example_inputs: torch.Tensor
) -> dict[str, int]:
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

    def hook(name: str, module: nn.Module):
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


LATENCY_SCALE = 1_000_000  # a latency budget's total: the dense layers' time, in millionths


def time_per_weight(layers: Mapping[str, nn.Module], model: nn.Module, example_inputs: torch.Tensor,
                    batch_sizes: tuple[int, ...] = (1, 64), repeats: int = 10) -> dict[str, float]:
    """Measured time per weight of each layer, batch sizes counted alike: a linear latency model.

    The costs of :func:`time_per_weight_by_batch`, averaged over batch sizes, so batch 1
    (where a convolution at 2x2 costs about what its weights cost to read) and batch 64
    (where it costs its MACs) count alike. The costs of all weights sum to
    :data:`LATENCY_SCALE`.

    Returns:
        name -> cost of one weight (latency-budget units per weight).
    """
    by_batch = time_per_weight_by_batch(layers, model, example_inputs, batch_sizes, repeats)
    return {name: sum(costs[name] for costs in by_batch.values()) / len(by_batch) for name in layers}


def time_per_weight_by_batch(layers: Mapping[str, nn.Module], model: nn.Module, example_inputs: torch.Tensor,
                             batch_sizes: tuple[int, ...] = (1, 64),
                             repeats: int = 10) -> dict[int, dict[str, float]]:
    """Measured time per weight of each layer at each batch size, timed once before pruning.

    Each layer is timed alone on the input it sees in the model (captured by a forward
    hook); a layer's time is taken as its share of all the layers' time at that batch size.
    Divided by the layer's weights, that is what one live weight costs; at each batch size
    the costs of all weights sum to :data:`LATENCY_SCALE`.

    Args:
        layers: name -> Linear/Conv2d module of ``model``.
        model: the network (run in eval mode, without gradients; flags are restored).
        example_inputs: one input batch; it is repeated to each batch size.
        batch_sizes: the batch sizes to time at.
        repeats: timed calls per layer and batch size (the median counts).

    Returns:
        batch size -> name -> cost of one weight.
    """
    by_batch: dict[int, dict[str, float]] = {}
    for size in batch_sizes:
        batch = example_inputs[:1].repeat(size, *([1] * (example_inputs.dim() - 1)))
        inputs: dict[str, torch.Tensor] = {}
        handles = [module.register_forward_hook(_keep_input(name, inputs)) for name, module in layers.items()]
        try:
            with eval_mode(model), torch.no_grad():
                model(batch)
        finally:
            for handle in handles:
                handle.remove()
        seconds = {name: _median_seconds(module, inputs[name], repeats) for name, module in layers.items()}
        total = sum(seconds.values()) or 1.0
        by_batch[size] = {name: LATENCY_SCALE * seconds[name] / total / layers[name].weight.numel()
                          for name in layers}
    return by_batch


def _keep_input(name: str, store: dict[str, torch.Tensor]) -> Callable[..., None]:
    """A forward hook that keeps the layer's first input (and returns None: the output stays)."""
    def hook(_: nn.Module, args: tuple[torch.Tensor, ...], __: torch.Tensor) -> None:
        store.setdefault(name, args[0])
    return hook


def _median_seconds(module: nn.Module, x: torch.Tensor, repeats: int) -> float:
    with eval_mode(module), torch.no_grad():
        for _ in range(2):
            module(x)
        times = []
        for _ in range(repeats):
            _synchronize(x)
            started = time.perf_counter()
            module(x)
            _synchronize(x)  # a GPU runs asynchronously: wait for the layer, not for its launch
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def _synchronize(x: torch.Tensor) -> None:
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


class ComputeBudget:
    """MACs of the masked network, by layer, from masks and each layer's positions per weight.

    Args:
        positions: name -> MACs per sample of one weight (see :func:`positions_per_weight`), or any
            other cost of one weight (:func:`time_per_weight`).
        shapes: name -> the layer's weight shape (the dense network's MACs follow).

    Example:
        >>> budget = ComputeBudget({"fc": 1}, {"fc": (4, 8)})
        >>> budget.total, budget.live({"fc": torch.ones(4, 8)})
        (32, 32)
    """

    def __init__(self, positions: Mapping[str, float], shapes: Mapping[str, tuple[int, ...]]) -> None:
        if set(positions) != set(shapes):
            raise ConfigError("a compute budget needs the positions of every pruned layer")
        self.positions = dict(positions)
        self.total = sum(self.positions[n] * int(torch.Size(s).numel()) for n, s in shapes.items())

    def live(self, masks: Mapping[str, torch.Tensor]) -> float:
        """MACs per sample of the live weights in ``masks`` (those of a compacted network, with units)."""
        return sum(int(mask.sum()) * self.positions[name] for name, mask in masks.items())

    def fraction(self, masks: Mapping[str, torch.Tensor]) -> float:
        """Live MACs as a share of the dense network's."""
        return self.live(masks) / self.total if self.total else 1.0

    def bind(self, masks: Mapping[str, torch.Tensor]) -> None:
        """Nothing to choose: one cost model (see :meth:`LatencyBudget.bind`)."""


class LatencyBudget:
    """The layers' modelled time at several batch sizes; a share must hold at every one of them.

    Averaged over batch sizes, a latency share can be met at one batch size alone: on 8x8
    images ResNet-20's first stages take most of the time at batch 64 and little at batch 1,
    where the last stage's weights take it, and pruning only the first stages to half of the
    averaged time left batch 1 no faster (0.97x). Here the share left is the largest over the
    batch sizes, and a check counts (its quota, what a unit's removal saves) in the cost
    model of the batch size furthest from the target, the *binding* one (see :meth:`bind`).

    Args:
        costs_by_batch: batch size -> name -> cost of one weight (:func:`time_per_weight_by_batch`).
        shapes: name -> the layer's weight shape.

    Example:
        >>> budget = LatencyBudget({1: {"a": 1.0, "b": 3.0}, 64: {"a": 3.0, "b": 1.0}}, {"a": (2,), "b": (2,)})
        >>> masks = {"a": torch.tensor([1.0, 1.0]), "b": torch.tensor([1.0, 0.0])}
        >>> budget.fractions(masks), budget.fraction(masks)
        ({1: 0.625, 64: 0.875}, 0.875)
        >>> budget.bind(masks)
        64
    """

    def __init__(self, costs_by_batch: Mapping[int, Mapping[str, float]],
                 shapes: Mapping[str, tuple[int, ...]]) -> None:
        if not costs_by_batch:
            raise ConfigError("a latency budget needs the costs of at least one batch size")
        self.by_batch = {int(size): ComputeBudget(costs, shapes) for size, costs in costs_by_batch.items()}
        self.binding = next(iter(self.by_batch))

    @property
    def positions(self) -> dict[str, float]:
        """The binding batch size's cost of one weight, per layer."""
        return self.by_batch[self.binding].positions

    @property
    def total(self) -> float:
        return self.by_batch[self.binding].total

    def live(self, masks: Mapping[str, torch.Tensor]) -> float:
        """The live weights' modelled time at the binding batch size."""
        return self.by_batch[self.binding].live(masks)

    def fractions(self, masks: Mapping[str, torch.Tensor]) -> dict[int, float]:
        """Batch size -> share of the dense layers' modelled time left."""
        return {size: budget.fraction(masks) for size, budget in self.by_batch.items()}

    def fraction(self, masks: Mapping[str, torch.Tensor]) -> float:
        """The largest share left over the batch sizes: the target holds where this does."""
        return max(self.fractions(masks).values())

    def bind(self, masks: Mapping[str, torch.Tensor]) -> int:
        """Count in the cost model of the batch size with the largest share left in ``masks``; return it."""
        shares = self.fractions(masks)
        self.binding = max(shares, key=shares.__getitem__)
        return self.binding

    def costs_by_batch(self) -> dict[int, dict[str, float]]:
        return {size: dict(budget.positions) for size, budget in self.by_batch.items()}


def unit_scores(activity: torch.Tensor, saved: torch.Tensor) -> torch.Tensor:
    """(units,): activity per unit of compute its removal saves; lower goes first.

    Two equally active units at different resolutions: the one whose removal saves more
    MACs (the high-resolution one) scores lower and goes first.

    Example:
        >>> unit_scores(torch.tensor([1.0, 1.0]), torch.tensor([2880.0, 180.0])).argmin().item()
        0
    """
    return activity / saved.clamp_min(1)
