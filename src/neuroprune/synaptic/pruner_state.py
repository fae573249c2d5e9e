"""Whether a saved pruner state fits a pruner: checked whole, before anything is restored.

:meth:`SynapticPruner.load_state_dict <neuroprune.synaptic.pruner.SynapticPruner.load_state_dict>`
restores all of a state or none of it; this is the "none" half: every part is compared
with the pruner's layers, units and targets, and the first mismatch is named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..errors import ModelError
from .latency import LatencyCalibration


def check_pruner_state(
    state: Any,
    *,
    weight_shapes: Mapping[str, Sequence[int]],
    unit_sizes: Mapping[str, Sequence[int]],
    is_timed: bool,
    target_speedup: float | None,
    latency_batch_sizes: Sequence[int],
) -> None:
    """Raise ModelError unless ``state`` can be restored whole into the pruner it describes.

    Args:
        state: what :meth:`SynapticPruner.state_dict` wrote (or anything claiming to be).
        weight_shapes: ``"layer.weight"`` -> shape, for every pruned layer.
        unit_sizes: ``"space.weight"`` -> shape of its unit counters, for every unit space.
        is_timed: the pruner counts in the timed latency model (a latency or speed-up target).
        target_speedup: the pruner's speed-up target, if any.
        latency_batch_sizes: the batch sizes that target holds at.
    """
    if not isinstance(state, dict):
        raise ModelError(f"a pruner state is a dict, got {type(state).__name__}")
    for part in ("masks", "counters"):
        got = state.get(part, {})
        if not isinstance(got, dict) or set(got) != set(weight_shapes):
            names = sorted(set(got) ^ set(weight_shapes)) if isinstance(got, dict) else got
            raise ModelError(f"pruner state {part} name {names} that do not match the model's "
                             f"prunable layers {sorted(weight_shapes)}")
        for key, tensor in got.items():
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != tuple(weight_shapes[key]):
                shape = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
                raise ModelError(f"pruner state {part}[{key!r}] has shape {shape}, "
                                 f"the model's weight has {tuple(weight_shapes[key])}")
    for key, mask in state["masks"].items():
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ModelError(f"pruner state masks[{key!r}] holds values other than 0 and 1")
    units = state.get("unit_counters", {})
    for key, counters in (units.items() if isinstance(units, dict) else [("unit_counters", units)]):
        if key not in unit_sizes or not isinstance(counters, torch.Tensor) \
                or tuple(counters.shape) != tuple(unit_sizes[key]):
            raise ModelError(f"pruner state unit_counters[{key!r}] does not match the model's units")
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ModelError(f"pruner state step must be a whole number >= 0, got {step!r}")
    if "activity" in state:
        _check_activity(state["activity"], weight_shapes)
    history = state.get("history", [])
    if not isinstance(history, list) or not all(isinstance(record, dict) for record in history):
        raise ModelError("pruner state history must be a list of records (dicts)")
    if "latency_costs" in state:
        _check_costs(state["latency_costs"], "latency_costs", weight_shapes, is_timed)
    if "latency_costs_by_batch" in state:
        by_batch = state["latency_costs_by_batch"]
        sizes = {str(size) for size in latency_batch_sizes}
        if target_speedup is not None or not isinstance(by_batch, dict) or set(by_batch) != sizes:
            raise ModelError(f"pruner state latency_costs_by_batch must give the costs at the batch sizes "
                             f"{sorted(latency_batch_sizes)} of this pruner's target_latency")
        for size, costs in by_batch.items():
            _check_costs(costs, f"latency_costs_by_batch[{size!r}]", weight_shapes, is_timed)
    _check_calibration(state, target_speedup, latency_batch_sizes)


def _check_costs(costs: Any, part: str, weight_shapes: Mapping[str, Sequence[int]], is_timed: bool) -> None:
    if not is_timed:
        raise ModelError(f"pruner state has {part}, but this pruner has no target_latency")
    if not isinstance(costs, dict) or set(costs) != set(weight_shapes) or not all(
            isinstance(c, float) and math.isfinite(c) and c >= 0 for c in costs.values()):
        raise ModelError(f"pruner state {part} must give one finite cost >= 0 per prunable layer "
                         f"{sorted(weight_shapes)}")


def _check_activity(activity: Any, weight_shapes: Mapping[str, Sequence[int]]) -> None:
    sums: Any = activity.get("sums") if isinstance(activity, dict) else None
    batches: Any = activity.get("batches") if isinstance(activity, dict) else None
    if not isinstance(sums, dict) or not isinstance(batches, dict) or set(sums) != set(batches) \
            or not set(sums) <= set(weight_shapes) \
            or not all(isinstance(v, torch.Tensor) for v in sums.values()) \
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in batches.values()):
        raise ModelError("pruner state activity does not match the model's prunable layers: it needs "
                         "'sums' (tensors) and 'batches' (whole numbers) for the same layers")


def _check_calibration(state: dict[str, Any], target_speedup: float | None,
                       latency_batch_sizes: Sequence[int]) -> None:
    """A speed-up target's calibration is in the state exactly when the pruner has one, for the same target."""
    if "latency_calibration" not in state:
        if target_speedup is not None:
            raise ModelError("pruner state has no latency calibration, but this pruner has target_speedup: the "
                             "state was saved by a pruner with another target")
        return
    if target_speedup is None:
        raise ModelError("pruner state has a latency calibration, but this pruner has no target_speedup")
    calibration = LatencyCalibration.from_dict(state["latency_calibration"])
    if calibration.speedup != target_speedup or set(calibration.points) != set(latency_batch_sizes):
        raise ModelError(f"pruner state was calibrated for a {calibration.speedup:g}x speed-up at batch sizes "
                         f"{sorted(calibration.points)}; this pruner asks for {target_speedup:g}x at "
                         f"{sorted(latency_batch_sizes)}")
