"""DepthPruner: finds a model's cuts and turns a chosen one into a DepthPlan; ``plan.apply()`` cuts."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .blocks import BlockSpan, Unit, find_spans, probe
from .surgery import cut_model
from .translator import Translator, describe_translator

log = logging.getLogger(__name__)
_SHOWN_CUTS = 40


@dataclass(frozen=True)
class DepthPlan:
    """One cut of one model, with the bridge that will replace it.

    Attributes:
        model: the intact model (never modified).
        span: the cut.
        bridge: ``"translator"`` (pool + conv + ReLU) or ``"identity"`` (no module; shapes must match).
        kernel_size: translator conv kernel, 1 or 3.
        use_batchnorm: batch norm after the translator conv.
    """

    model: nn.Module
    span: BlockSpan
    bridge: str = "translator"
    kernel_size: int = 1
    use_batchnorm: bool = False

    def apply(self) -> nn.Module:
        """A new model with the span removed and the bridge inserted; ``self.model`` is untouched.

        Example:
            >>> small = DepthPruner(model, example_inputs=x).plan(cut="features.13:features.34").apply()
        """
        bridge = None
        if self.bridge == "translator":
            bridge = Translator(self.span.in_shape, self.span.out_shape, self.kernel_size, self.use_batchnorm)
        log.info("cutting %s (%d units) with %s", self.span.cut, len(self.span.removed), self.bridge)
        return cut_model(self.model, self.span, bridge)

    def __str__(self) -> str:
        span = self.span
        bridge = "nn.Identity" if self.bridge == "identity" else describe_translator(
            span.in_shape, span.out_shape, self.kernel_size, self.use_batchnorm)
        return (f"cut {span.cut}: remove {len(span.removed)} units ({span.params_removed:,} params, "
                f"{span.macs_removed:,} MACs), {tuple(span.in_shape)} -> {tuple(span.out_shape)} via {bridge}")


class DepthPruner:
    """Lists the cuts of a model made of sequential stages and blocks, and plans one.

    Args:
        model: the trained model (nested ``nn.Sequential`` of layers and blocks).
        example_inputs: one batch of inputs; shapes are probed with its first sample.

    Example:
        >>> pruner = DepthPruner(model, example_inputs=torch.randn(1, 3, 32, 32))
        >>> [s.cut for s in pruner.candidates()][:2]
        ['features.2:features.7', 'features.2:features.10']
        >>> small = pruner.plan(cut=("features.13", "features.34")).apply()
    """

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor) -> None:
        self.model = model
        self.example_inputs = example_inputs
        self.units: list[Unit] = probe(model, example_inputs)
        self.spans: list[BlockSpan] = find_spans(self.units)
        if not self.spans:
            raise ConfigError("this model has no valid cut: it needs at least two layer or block boundaries")

    def candidates(self) -> list[BlockSpan]:
        """Every valid cut, ordered by origin then destination."""
        return list(self.spans)

    def span(self, cut: tuple[str, str] | str) -> BlockSpan:
        """The candidate for ``cut`` (``(origin, destination)`` or ``"origin:destination"``).

        Raises:
            ConfigError: unknown names, a destination at or before the origin, a cut that removes
                nothing, or one no translator can bridge; the message lists the valid cuts.
        """
        origin, destination = _split(cut)
        for span in self.spans:
            if span.origin == origin and span.destination == destination:
                return span
        raise ConfigError(self._explain(origin, destination) + "; " + self._valid_cuts())

    def plan(
        self, cut: tuple[str, str] | str, *, bridge: str = "translator", kernel_size: int = 1, use_batchnorm: bool = False
    ) -> DepthPlan:
        """Plan a cut; ``plan.apply()`` makes the pruned model.

        Args:
            cut: ``(origin, destination)`` or ``"origin:destination"``.
            bridge: ``"translator"`` or ``"identity"`` (only where the shapes on both sides match).
            kernel_size: translator conv kernel (1 as the authors, or 3).
            use_batchnorm: add batch norm after the translator conv.

        Raises:
            ConfigError: the cut is not valid (see :meth:`span`), or identity cannot bridge it.
        """
        span = self.span(cut)
        if bridge not in ("translator", "identity"):
            raise ConfigError(f"bridge must be 'translator' or 'identity', got {bridge!r}")
        if bridge == "identity" and not span.is_identity_possible:
            raise ConfigError(f"nn.Identity cannot bridge {span.cut}: shapes {span.in_shape} -> {span.out_shape} differ; "
                              "use a translator")
        if kernel_size not in (1, 3):
            raise ConfigError(f"translator kernel_size must be 1 or 3, got {kernel_size}")
        return DepthPlan(self.model, span, bridge, kernel_size, use_batchnorm)

    def _explain(self, origin: str, destination: str) -> str:
        names = [u.name for u in self.units]
        for label, name in (("origin", origin), ("destination", destination)):
            if name not in names:
                return f"unknown {label} layer {name!r}"
        a, b = names.index(origin), names.index(destination)
        if b <= a:
            return f"destination {destination!r} does not come after origin {origin!r}"
        if b == a + 1:
            return f"cut {origin}:{destination} removes nothing (the two layers are adjacent)"
        origins = {s.origin for s in self.spans}
        destinations = {s.destination for s in self.spans}
        if origin not in origins:
            return f"{origin!r} is not a valid origin (cuts start after an activation, pool or block)"
        if destination not in destinations:
            return f"{destination!r} is not a valid destination (cuts end in front of a conv, block, global pool or flatten)"
        return f"cut {origin}:{destination} cannot be bridged (it removes no parameters, or would need upsampling)"

    def _valid_cuts(self) -> str:
        origins = sorted({s.origin for s in self.spans}, key=self._position)
        destinations = sorted({s.destination for s in self.spans}, key=self._position)
        shown = ", ".join(s.cut for s in self.spans[:_SHOWN_CUTS])
        more = f" and {len(self.spans) - _SHOWN_CUTS} more" if len(self.spans) > _SHOWN_CUTS else ""
        return (f"valid origins: {', '.join(origins)}; valid destinations: {', '.join(destinations)}; "
                f"valid cuts: {shown}{more} (all: `neuroprune depth candidates`)")

    def _position(self, name: str) -> int:
        return next(i for i, u in enumerate(self.units) if u.name == name)


def _split(cut: tuple[str, str] | str) -> tuple[str, str]:
    if isinstance(cut, str):
        origin, sep, destination = cut.partition(":")
        if not sep or not origin or not destination:
            raise ConfigError(f"a cut is written ORIGIN:DESTINATION (e.g. features.13:features.34), got {cut!r}")
        return origin.strip(), destination.strip()
    if len(cut) != 2:
        raise ConfigError(f"a cut is a pair (origin, destination), got {cut!r}")
    return str(cut[0]), str(cut[1])
