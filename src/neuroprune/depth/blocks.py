"""Cut-point discovery: the model's chain of layers and blocks, probed for shapes, and every cut.

A model made of (nested) ``nn.Sequential`` stages is a chain of *units*: the children of
those Sequentials that are not Sequentials themselves - single layers (conv, batch norm,
ReLU, pool, ...) or whole blocks (a residual block, any other module with parameters).
One forward pass with an example input records each unit's input and output shape.

Boundaries lie in front of every conv, block, global pool and flatten whose predecessor ends a layer
(an activation, a pool or a block), so a conv is never split from its batch norm and ReLU.
A cut ``(origin, destination)`` joins two boundaries: the units after ``origin`` and before
``destination`` are removed, and a :class:`~neuroprune.depth.translator.Translator` maps
the origin's output shape to the destination's input shape. Nothing here is per-model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..metrics import count_macs, count_params
from ..structure.traits import has_role
from .translator import describe_translator

# adaptive pools here are global: the chains they end reduce every map to a fixed size
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class Unit:
    """One link of the chain: a layer or block, with its shapes for one sample.

    Attributes:
        name: dotted module path, e.g. ``features.7`` or ``layer2.0``.
        kind: ``conv``, ``norm``, ``act``, ``pool``, ``global_pool``, ``block``, ``linear``,
            ``flatten`` or ``other``.
        in_shape: input shape without the batch dimension.
        out_shape: output shape without the batch dimension.
        params: parameters of the unit.
        macs: multiply-accumulates per sample of the unit.
    """

    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass(frozen=True)
class BlockSpan:
    """A valid cut: the span of units between ``origin`` and ``destination``.

    Attributes:
        origin: the unit whose output feeds the translator (A).
        destination: the unit whose input the translator produces (B).
        removed: names of the removed units, in order.
        in_shape: (C_A, H_A, W_A), the origin's output.
        out_shape: (C_B, H_B, W_B), the destination's input.
        params_removed: parameters of the removed units.
        macs_removed: MACs per sample of the removed units.
        translator: what the 1x1 translator would be, e.g. ``maxpool 2x2 -> conv1x1 64->128 -> relu``.
        translator_params: its parameters (C_A * C_B + C_B).
        translator_macs: its MACs per sample.
    """

    origin: str
    destination: str
    removed: tuple[str, ...]
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    params_removed: int
    macs_removed: int
    translator: str
    translator_params: int
    translator_macs: int

    @property
    def cut(self) -> str:
        """``origin:destination``, the form the CLI accepts."""
        return f"{self.origin}:{self.destination}"

    @property
    def is_identity_possible(self) -> bool:
        """True when the shapes on both sides match, so ``nn.Identity`` could bridge the cut."""
        return self.in_shape == self.out_shape

    @property
    def crosses_stages(self) -> bool:
        """True when channels or resolution change across the cut."""
        return self.in_shape != self.out_shape

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields plus ``cut`` and ``crosses_stages``."""
        row = asdict(self)
        row.update(cut=self.cut, removed=list(self.removed), in_shape=list(self.in_shape),
                   out_shape=list(self.out_shape), crosses_stages=self.crosses_stages)
        return row


def chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's units in execution order (depth-first through nested Sequentials).

    Raises:
        ModelError: the model is not an ``nn.Sequential`` of stages and blocks.
    """
    if not isinstance(model, nn.Sequential):
        raise ModelError(
            f"depth pruning needs a model built from nn.Sequential stages and blocks, got {type(model).__name__}; "
            "wrap the layers of its forward pass in nn.Sequential"
        )
    units: list[tuple[str, nn.Module]] = []

    def walk(prefix: str, module: nn.Sequential) -> None:
        for name, child in module.named_children():
            path = f"{prefix}{name}"
            if isinstance(child, nn.Sequential):
                walk(f"{path}.", child)
            else:
                units.append((path, child))

    walk("", model)
    return units


def probe(model: nn.Module, example_inputs: torch.Tensor) -> list[Unit]:
    """Run ``model`` once on ``example_inputs`` and describe every unit of its chain."""
    modules = chain(model)
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, tuple[int, ...]] = {}
    handles = []

    def remember(name: str) -> tuple[Any, Any]:
        def before(_: nn.Module, args: tuple[Any, ...]) -> None:
            inputs[name] = args[0][:1].detach().clone()  # clone: in-place ReLUs overwrite their input

        def after(_: nn.Module, __: Any, out: torch.Tensor) -> None:
            outputs[name] = tuple(out.shape[1:])

        return before, after

    was_training = model.training
    try:
        for name, module in modules:
            before, after = remember(name)
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
        model.eval()
        with torch.no_grad():
            model(example_inputs[:1])
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [
        Unit(name, _kind(module), tuple(inputs[name].shape[1:]), outputs[name], count_params(module),
             count_macs(module, inputs[name]) if isinstance(inputs[name], torch.Tensor) else 0)
        for name, module in modules
    ]


def boundaries(units: list[Unit]) -> list[int]:
    """Indices ``i`` such that a cut may join the network between ``units[i-1]`` and ``units[i]``."""
    found = []
    for i in range(1, len(units)):
        before, after = units[i - 1], units[i]
        is_layer_start = after.kind in ("conv", "block", "global_pool", "flatten", "pad")
        if before.kind in ("act", "pool", "block", "other") and is_layer_start and len(before.out_shape) == 3 \
                and len(after.in_shape) == 3:
            found.append(i)
    return found


def find_spans(units: list[Unit]) -> list[BlockSpan]:
    """Every valid cut between two boundaries that removes at least one layer with parameters.

    A cut is valid when the translator can produce the destination's input: the origin's map
    must be at least as large as the destination's (translators pool, never upsample).
    """
    spans = []
    points = boundaries(units)
    for a, start in enumerate(points):
        for end in points[a + 1:]:
            removed = units[start:end]
            origin, destination = units[start - 1], units[end]
            c_a, h_a, w_a = origin.out_shape
            c_b, h_b, w_b = destination.in_shape
            if not any(u.params for u in removed) or h_a < h_b or w_a < w_b:
                continue
            spans.append(BlockSpan(
                origin=origin.name, destination=destination.name, removed=tuple(u.name for u in removed),
                in_shape=(c_a, h_a, w_a), out_shape=(c_b, h_b, w_b),
                params_removed=sum(u.params for u in removed), macs_removed=sum(u.macs for u in removed),
                translator=describe_translator((c_a, h_a, w_a), (c_b, h_b, w_b)), translator_params=c_a * c_b + c_b, translator_macs=c_a * c_b * h_b * w_b,
            ))
    return spans


def _kind(module: nn.Module) -> str:
    if isinstance(module, nn.Conv2d):
        return "conv"
    if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)):
        return "norm"
    if has_role(module, "activation"):
        return "act"
    if has_role(module, "pad", "resample"):  # part of the layer after it, not a place to cut
        return "pad"
    if isinstance(module, _GLOBAL_POOLS):
        return "global_pool"
    if has_role(module, "pool"):
        return "pool"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Flatten):
        return "flatten"
    return "block" if any(True for _ in module.parameters()) else "other"

