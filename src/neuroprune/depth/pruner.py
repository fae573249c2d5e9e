"""DepthPruner: finds a model's cuts and turns a chosen one into a DepthPlan; ``plan.apply()`` cuts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..structure.regions import RegionGraph
from .blocks import BlockSpan, Unit, find_spans, units_of
from .surgery import cut_model
from .translator import Translator, describe_translator

log = logging.getLogger(__name__)
_SHOWN_CUTS = 40
# one cut as (origin, destination) or "origin:destination"; several as "a:b,c:d" or a list
CutSpec = str | tuple[str, str] | Sequence[str | tuple[str, str]]


@dataclass(frozen=True)
class DepthPlan:
    """One or several cuts of one model, with the bridge that will replace each.

    Several cuts are several injuries at once: e.g. residual blocks dropped in every stage.

    Attributes:
        model: the intact model (never modified).
        spans: the cuts, in network order; they never overlap.
        bridges: per cut, ``"translator"`` (pool + conv + ReLU) or ``"identity"`` (no module;
            shapes must match).
        kernel_size: translator conv kernel, 1 or 3.
        use_batchnorm: batch norm after the translator conv.
    """

    model: nn.Module
    spans: tuple[BlockSpan, ...]
    bridges: tuple[str, ...]
    kernel_size: int = 1
    use_batchnorm: bool = False

    @property
    def span(self) -> BlockSpan:
        """The cut of a one-cut plan.

        Raises:
            ConfigError: the plan has several cuts (use ``spans``).
        """
        if len(self.spans) != 1:
            raise ConfigError(f"this plan has {len(self.spans)} cuts ({self.cut}); use plan.spans")
        return self.spans[0]

    @property
    def bridge(self) -> str:
        """The bridge of every cut when they share one, else ``"mixed"``."""
        return self.bridges[0] if len(set(self.bridges)) == 1 else "mixed"

    @property
    def cut(self) -> str:
        """The cuts as the CLI accepts them: ``origin:destination[,origin:destination...]``."""
        return ",".join(span.cut for span in self.spans)

    def apply(self) -> nn.Module:
        """A new model with the spans removed and the bridges inserted; ``self.model`` is untouched.

        Example:
            >>> small = DepthPruner(model, example_inputs=x).plan(cut="features.13:features.34").apply()
        """
        bridges = [Translator(span.in_shape, span.out_shape, self.kernel_size, self.use_batchnorm)  # type: ignore[arg-type]
                   if kind == "translator" else None for span, kind in zip(self.spans, self.bridges, strict=True)]
        for span, kind in zip(self.spans, self.bridges, strict=True):
            log.info("cutting %s (%d units) with %s", span.cut, len(span.removed), kind)
        return cut_model(self.model, self.spans, bridges)

    def __str__(self) -> str:
        parts = []
        for span, kind in zip(self.spans, self.bridges, strict=True):
            bridge = "nn.Identity" if kind == "identity" else describe_translator(
                span.in_shape, span.out_shape, self.kernel_size, self.use_batchnorm)
            parts.append(f"cut {span.cut}: remove {len(span.removed)} units ({span.params_removed:,} params, "
                         f"{span.macs_removed:,} MACs), {tuple(span.in_shape)} -> {tuple(span.out_shape)} via {bridge}")
        return "; ".join(parts)


class DepthPruner:
    """Lists the cuts of a model, read from its traced graph, and plans one.

    Args:
        model: the trained model; any torch.fx-traceable model (stages of Sequentials,
            residual blocks, a ModuleList looped over in ``forward``, skips by concatenation).
        example_inputs: one batch of inputs; shapes are probed with its first sample.

    Attributes:
        regions: the traced graph's main path and units
            (:class:`~neuroprune.structure.regions.RegionGraph`).
        units: the units, in forward order.

    Example:
        >>> pruner = DepthPruner(model, example_inputs=torch.randn(1, 3, 32, 32))
        >>> [s.cut for s in pruner.candidates()][:2]
        ['features.2:features.7', 'features.2:features.10']
        >>> small = pruner.plan(cut=("features.13", "features.34")).apply()
    """

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor) -> None:
        self.model = model
        self.example_inputs = example_inputs
        self.regions = RegionGraph(model, example_inputs)
        self.units: list[Unit] = units_of(self.regions)
        self.spans: list[BlockSpan] = find_spans(self.units)
        if not self.spans:
            raise ConfigError(f"{type(model).__name__} has no valid cut: its main path needs at least two layer or "
                              "block boundaries with a removable unit between them")

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
        self, cut: CutSpec, *, bridge: str = "translator", kernel_size: int = 1, use_batchnorm: bool = False
    ) -> DepthPlan:
        """Plan one cut or several; ``plan.apply()`` makes the pruned model.

        Args:
            cut: ``(origin, destination)``, ``"origin:destination"``, several of them joined by
                commas (``"a:b,c:d"``) or a list of them. Several cuts may not overlap.
            bridge: ``"translator"`` (feature maps only), ``"identity"`` (only where the shapes on
                both sides match) or ``"auto"`` (identity where the shapes match, a translator elsewhere).
            kernel_size: translator conv kernel (1 as the authors, or 3).
            use_batchnorm: add batch norm after the translator conv.

        Raises:
            ConfigError: a cut is not valid (see :meth:`span`), cuts overlap, or identity cannot
                bridge a cut.
        """
        if bridge not in ("translator", "identity", "auto"):
            raise ConfigError(f"bridge must be 'translator', 'identity' or 'auto', got {bridge!r}")
        if kernel_size not in (1, 3):
            raise ConfigError(f"translator kernel_size must be 1 or 3, got {kernel_size}")
        spans = sorted((self.span(one) for one in _split_many(cut)), key=lambda s: self._position(s.origin))
        for earlier, later in zip(spans, spans[1:], strict=False):
            if self._position(later.origin) < self._position(earlier.destination):
                raise ConfigError(f"cuts {earlier.cut} and {later.cut} overlap: a cut must start at or after the "
                                  "destination of the cut before it")
        bridges = []
        for span in spans:
            if bridge == "identity" and not span.is_identity_possible:
                raise ConfigError(f"nn.Identity cannot bridge {span.cut}: shapes {span.in_shape} -> {span.out_shape} "
                                  "differ; use a translator (or bridge 'auto')")
            if bridge == "translator" and not span.is_translatable:
                raise ConfigError(f"a translator bridges feature maps (C, H, W), but cut {span.cut} carries values of "
                                  f"shape {span.in_shape}; bridge it with 'identity' or 'auto'")
            identity = bridge == "identity" or (bridge == "auto" and span.is_identity_possible)
            bridges.append("identity" if identity else "translator")
        return DepthPlan(self.model, tuple(spans), tuple(bridges), kernel_size, use_batchnorm)

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
            return (f"{destination!r} is not a valid destination "
                    f"(cuts end in front of a conv, block, global pool or flatten)")
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


def _split_many(cut: CutSpec) -> list[tuple[str, str] | str]:
    """The single cuts of ``"a:b,c:d"``, a list of cuts, or one cut."""
    if isinstance(cut, str):
        parts = [part for part in cut.split(",") if part.strip()]
        if not parts:
            raise ConfigError(f"a cut is written ORIGIN:DESTINATION (e.g. features.13:features.34), got {cut!r}")
        return list(parts)
    if isinstance(cut, tuple) and len(cut) == 2 and isinstance(cut[0], str) and isinstance(cut[1], str) \
            and ":" not in cut[0]:
        return [(cut[0], cut[1])]
    return list(cut)


def _split(cut: tuple[str, str] | str) -> tuple[str, str]:
    if isinstance(cut, str):
        origin, sep, destination = cut.partition(":")
        if not sep or not origin or not destination:
            raise ConfigError(f"a cut is written ORIGIN:DESTINATION (e.g. features.13:features.34), got {cut!r}")
        return origin.strip(), destination.strip()
    if len(cut) != 2:
        raise ConfigError(f"a cut is a pair (origin, destination), got {cut!r}")
    return str(cut[0]), str(cut[1])
