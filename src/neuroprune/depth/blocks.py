"""Cut-point discovery on the model's traced graph: its units, probed for shapes, and every cut.

:class:`~neuroprune.structure.regions.RegionGraph` traces the model with torch.fx, finds the
main path (the values every computation flows through) and groups it into *units*: single
layers (conv, batch norm, ReLU, pool, ...) or whole blocks (a residual block, a transformer
block, the skip-connected middle of a U-Net). Each unit is a single-entry single-exit region
of the graph, so any run of consecutive units can be cut out and replaced by one bridge.
One forward pass with an example input records each unit's input and output shape.

Boundaries lie in front of every conv, block, norm, global pool and flatten whose predecessor ends a layer
(an activation, a pool or a block), so a conv is never split from its batch norm and ReLU.
A cut ``(origin, destination)`` joins two boundaries: the units after ``origin`` and before
``destination`` are removed, and a :class:`~neuroprune.depth.translator.Translator` maps
the origin's output shape to the destination's input shape (or ``nn.Identity`` where the
shapes match, the only bridge for values that are not feature maps, such as tokens).
Nothing here is per-model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from ..structure.regions import RegionGraph
from .translator import describe_translator


@dataclass(frozen=True)
class Unit:
    """One unit of the main path: a layer or block, with its shapes for one sample.

    Attributes:
        name: dotted module path, e.g. ``features.7``, ``layer2.0``, ``blocks.3``; or the traced
            node's name for a function called in the model's own forward (``cat``, ``add``).
        kind: ``conv``, ``norm``, ``act``, ``pool``, ``global_pool``, ``block``, ``linear``,
            ``flatten``, ``pad`` or ``other`` (see :class:`~neuroprune.structure.regions.Segment`).
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
        in_shape: (C_A, H_A, W_A), the origin's output (or another shape, e.g. tokens (T, D)).
        out_shape: (C_B, H_B, W_B), the destination's input.
        params_removed: parameters of the removed units.
        macs_removed: MACs per sample of the removed units.
        translator: what the 1x1 translator would be, e.g. ``maxpool 2x2 -> conv1x1 64->128 -> relu``,
            or ``none (identity only)`` where the values are not feature maps.
        translator_params: its parameters (C_A * C_B + C_B; 0 without a translator).
        translator_macs: its MACs per sample.
    """

    origin: str
    destination: str
    removed: tuple[str, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
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
    def is_translatable(self) -> bool:
        """True when a Translator can bridge the cut: feature maps (C, H, W) on both sides."""
        return len(self.in_shape) == 3 and len(self.out_shape) == 3

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


def probe(model: nn.Module, example_inputs: torch.Tensor) -> list[Unit]:
    """Trace ``model``, run it once on ``example_inputs`` and describe every unit of its main path.

    Raises:
        ModelError: the model cannot be traced with torch.fx (the module is named).
    """
    return units_of(RegionGraph(model, example_inputs))


def units_of(regions: RegionGraph) -> list[Unit]:
    """The units of an analysed graph, in forward order."""
    return [Unit(s.name, s.kind, s.in_shape, s.out_shape, s.params, s.macs) for s in regions.segments]


def boundaries(units: list[Unit]) -> list[int]:
    """Indices ``i`` such that a cut may join the network between ``units[i-1]`` and ``units[i]``."""
    found = []
    for i in range(1, len(units)):
        before, after = units[i - 1], units[i]
        # a norm after an activation, pool or block starts a layer (a pre-norm transformer's head);
        # after a conv it belongs to the conv, and the origin rule below keeps them together
        is_layer_start = after.kind in ("conv", "block", "global_pool", "flatten", "pad", "norm")
        if before.kind in ("act", "pool", "block", "other") and is_layer_start and before.out_shape:
            found.append(i)
    return found


def find_spans(units: list[Unit]) -> list[BlockSpan]:
    """Every valid cut between two boundaries that removes at least one layer with parameters.

    A cut is valid when a bridge can produce the destination's input: ``nn.Identity`` where
    the shapes match, else a translator, for which both sides must be feature maps and the
    origin's map at least as large as the destination's (translators pool, never upsample).
    """
    spans = []
    points = boundaries(units)
    for a, start in enumerate(points):
        for end in points[a + 1:]:
            removed = units[start:end]
            origin, destination = units[start - 1], units[end]
            span = _span(origin, destination, removed)
            if span is not None:
                spans.append(span)
    return spans


def _span(origin: Unit, destination: Unit, removed: list[Unit]) -> BlockSpan | None:
    a, b = origin.out_shape, destination.in_shape
    if not any(u.params for u in removed):
        return None
    is_map = len(a) == 3 and len(b) == 3
    if not is_map and a != b:
        return None
    if is_map and (a[1] < b[1] or a[2] < b[2]):
        return None
    return BlockSpan(
        origin=origin.name, destination=destination.name, removed=tuple(u.name for u in removed),
        in_shape=a, out_shape=b, params_removed=sum(u.params for u in removed),
        macs_removed=sum(u.macs for u in removed),
        translator=describe_translator(a, b) if is_map else "none (identity only)",
        translator_params=a[0] * b[0] + b[0] if is_map else 0,
        translator_macs=a[0] * b[0] * b[1] * b[2] if is_map else 0,
    )
