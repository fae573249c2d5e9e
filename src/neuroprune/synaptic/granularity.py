"""Which granularity ``"auto"`` means for a model: what pruning makes *this* network faster.

Single connections make no dense layer smaller; only whole units (neurons, channels) do.

* A compute target (``target_macs``) is met by removing units: ``unit``.
* A network with convolutions spends its compute there, and a channel survives while one of
  its connections does: connection pruning of ResNet-20 removed 54% of the connections and
  left a compacted model exactly as large and as fast as the dense one. ``unit``.
* A Linear-only network (an MLP) loses whole neurons as well as single connections (``both``):
  at 90% of connections pruned on MNIST it kept 98.28% (dense 98.50%) with 124,164 of 266,610
  parameters left (``benchmarks/results/synaptic_mlp_both_mnist.md``), where unit granularity
  alone kept 98.09% at 80% (``benchmarks/results/synaptic_units.md``).
* A model whose channels cannot be traced (or have no unit whose layers are all pruned)
  falls back to ``connection``.

Without any target, unit pruning by the rule alone removed nothing from ResNet-20 (digits,
8 epochs: no unit stayed weak for ``patience`` checks in a row), so a run that picks ``unit``
for a network with convolutions and is given no target gets :data:`DEFAULT_TARGET_LATENCY`:
half of the dense layers' time at batch 1 and at batch 64 alike, in the latency model timed at
both (:class:`~neuroprune.synaptic.compute.LatencyBudget`; a MACs target alone made ResNet-20
on 8x8 digits faster at batch 64 but not at batch 1, where the last stage's weights, not its
MACs, take the time). Where the network's time at batch 1 is its modules' calls rather than
its layers' work (ResNet-20 on 8x8 digits: 0.98-1.04x), that buys little there; a measured
goal is ``target_speedup``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ModelError
from .units import find_unit_groups

AUTO = "auto"
DEFAULT_TARGET_LATENCY = 0.5  # share of the dense layers' time left when auto picks units without a target


def resolve_granularity(
    model: nn.Module, requested: str, *, has_compute_target: bool, has_units: bool
) -> tuple[str, str]:
    """The granularity to prune ``model`` at, and why, for a requested one that may be ``"auto"``.

    Args:
        model: the network.
        requested: ``"auto"``, ``"connection"``, ``"unit"`` or ``"both"``.
        has_compute_target: a MACs (or speed-up) target is set.
        has_units: the model has units whose layers are all pruned (see ``find_unit_groups``).

    Returns:
        ``(granularity, reason)``; the reason is one sentence, recorded in results.

    Example:
        >>> resolve_granularity(nn.Linear(4, 2), "unit", has_compute_target=False, has_units=True)
        ('unit', 'given')
    """
    if requested != AUTO:
        return requested, "given"
    if not has_units:
        return "connection", "auto: the model has no removable unit (untraceable, or none whose layers are all pruned)"
    if has_compute_target:
        return "unit", "auto: a compute target is met by removing whole units"
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return "unit", ("auto: the compute is in convolutions, and only whole channels removed make them faster "
                        "(connection pruning leaves every channel in place)")
    return "both", "auto: a Linear-only network loses whole neurons as well as single connections"


def default_target(model: nn.Module, requested: str, *, has_target: bool) -> dict[str, float]:
    """``{"target_latency": 0.5}`` where ``auto`` prunes units of a network with convolutions and no target is set.

    Example:
        >>> default_target(nn.Conv2d(1, 4, 3), "auto", has_target=False)
        {'target_latency': 0.5}
    """
    if requested != AUTO or has_target or not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        return {}
    return {"target_latency": DEFAULT_TARGET_LATENCY}


def choose_granularity(model: nn.Module, layers: dict[str, Any], granularity: str,
                       compute_target: float | None) -> tuple[str, str]:
    """The granularity to prune ``model``'s ``layers`` at (``auto`` resolved by :func:`resolve_granularity`) and why."""
    if granularity != AUTO:
        return granularity, "given"
    try:
        has_units = bool(find_unit_groups(model, layers))
    except ModelError:
        has_units = False
    return resolve_granularity(model, granularity, has_compute_target=compute_target is not None, has_units=has_units)
