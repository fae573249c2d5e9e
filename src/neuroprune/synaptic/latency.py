"""From a wanted speed-up to a share of the layers' time: the latency model, checked on whole networks.

The per-layer latency model (:func:`~neuroprune.synaptic.compute.time_per_weight`) says
which weights take the time, but not how much of the *network's* time pruning can buy:
batch norm, activations, additions and the per-call cost of every module do not shrink in
step with the layers' weights. On small inputs at batch 1 they are most of it: ResNet-20
on 8x8 images with a quarter of its layers' modelled time left ran 1.38x faster, not 4x.

So a speed-up target is calibrated before training. Every unit space is thinned alike
(the same share of its units kept), the thinned network is compacted and timed against
the dense one, interleaved, at each batch size; that gives points (share of the layers'
modelled time left, share of the network's measured time left). Between points the
measured time is interpolated linearly; the next thinning is aimed at the share the
points say meets the target (a secant step), until the last timed network lands there.
The layer share that meets the target at every batch size is what the pruner's schedule
counts down to. Pruning does not thin every space alike, so the final network's speed-up
can still differ; the run's own interleaved timing (``speedup_target`` in ``result.json``)
is the judge.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelError
from ..metrics import compare_latency
from ..structure import compact
from .compute import LATENCY_SCALE
from .units import UnitGroup

# time share of a network (dense, thinned, batch) -> thinned time / dense time
TimeShare = Callable[[nn.Module, nn.Module, torch.Tensor], float]

CLOSE_ENOUGH = 0.02  # a timed network within this layer share of the aimed one ends the search


def measured_time_share(dense: nn.Module, thinned: nn.Module, batch: torch.Tensor) -> float:
    """The thinned network's time over the dense one's: interleaved rounds, median of per-round ratios."""
    timed = compare_latency({"dense": dense, "thinned": thinned}, batch, rounds=7, repeats=30, warmup=3,
                            max_seconds=1.0)
    return 1.0 / timed.speedup["thinned"]


def time_shares(dense: nn.Module, pruned: nn.Module, example_inputs: torch.Tensor,
                batch_sizes: Sequence[int]) -> dict[int, float]:
    """Batch size -> ``pruned``'s time over ``dense``'s (:func:`measured_time_share`), on the first example repeated."""
    with torch.no_grad():
        return {size: measured_time_share(dense, pruned, _repeated(example_inputs, size)) for size in batch_sizes}


def _repeated(example_inputs: torch.Tensor, size: int) -> torch.Tensor:
    return example_inputs[:1].repeat(size, *([1] * (example_inputs.dim() - 1)))


@dataclass(frozen=True)
class LatencyCalibration:
    """Measured time against modelled layer time, per batch size, and the layer share a speed-up needs.

    Attributes:
        speedup: the wanted speed-up.
        points: batch size -> ``(layer share, time share)`` pairs of thinned networks, ``(1, 1)``
            (dense) first.
        layer_share: the share of the dense layers' modelled time to keep.
        pruned: batch size -> ``(layer share, time share)`` of the pruned network itself, timed
            during pruning (see :meth:`retimed`), oldest first.
    """

    speedup: float
    points: dict[int, list[tuple[float, float]]]
    layer_share: float
    pruned: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

    def predicted_speedups(self) -> dict[int, float]:
        """Speed-up per batch size at :attr:`layer_share`, read off the measured points."""
        return {size: 1.0 / _time_share_at(points, self.layer_share) for size, points in self.points.items()}

    def retimed(self, layer_share: float, time_shares: Mapping[int, float]) -> LatencyCalibration:
        """This calibration corrected by the pruned network's own time shares at ``layer_share``.

        Pruning does not thin every space alike, so the network it leaves can be slower (or
        faster) at a layer share than the thinned one was. The difference, per batch size, is
        taken to hold near the target too: the new layer share is where the thinned networks'
        curve, shifted by it, meets the target at every batch size (at most down to the
        thinnest network timed: what was not timed is not promised).
        """
        pruned = {size: [*self.pruned.get(size, []), (layer_share, float(time_shares[size]))] for size in self.points}
        wanted = 1.0 / self.speedup
        needed = []
        for size, points in self.points.items():
            offset = float(time_shares[size]) - _time_share_at(points, layer_share)
            share = _layer_share_for({size: points}, wanted - offset)
            needed.append(share if share is not None else min(m for m, _ in points))
        return replace(self, pruned=pruned, layer_share=min(needed))

    def to_dict(self) -> dict[str, Any]:
        """JSON- and checkpoint-friendly form (see :meth:`from_dict`)."""
        return {"speedup": self.speedup, "layer_share": self.layer_share,
                "points": {str(size): [list(p) for p in points] for size, points in self.points.items()},
                "pruned": {str(size): [list(p) for p in points] for size, points in self.pruned.items()}}

    @classmethod
    def from_dict(cls, data: Any) -> LatencyCalibration:
        """The calibration :meth:`to_dict` wrote.

        Raises:
            ModelError: a part is missing, not a number, or out of range.
        """
        try:
            points, pruned = ({int(size): [(float(m), float(t)) for m, t in pairs] for size, pairs in part.items()}
                              for part in (data["points"], data.get("pruned", {})))
            calibration = cls(float(data["speedup"]), points, float(data["layer_share"]), pruned)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelError(f"a latency calibration needs speedup, layer_share and points per batch size ({exc})") \
                from None
        pairs = [pair for part in (points, pruned) for p in part.values() for pair in p]
        values = [calibration.speedup, calibration.layer_share, *(v for pair in pairs for v in pair)]
        if not points or not set(pruned) <= set(points) or not all(math.isfinite(v) and v >= 0 for v in values) \
                or not 0 < calibration.layer_share <= 1:
            raise ModelError("a latency calibration holds a point or share out of range")
        return calibration


def calibrate_speedup(
    model: nn.Module,
    groups: Sequence[UnitGroup],
    costs: Mapping[str, float],
    layers: Mapping[str, nn.Module],
    example_inputs: torch.Tensor,
    speedup: float,
    batch_sizes: Sequence[int] = (1, 64),
    *,
    time_share: TimeShare | None = None,
    max_timings: int = 5,
    max_unit_ratio: float = 1.0,
) -> LatencyCalibration:
    """The share of the dense layers' modelled time to keep so that ``model`` runs ``speedup`` times faster.

    Args:
        model: the dense network (copied, never changed).
        groups: its unit spaces (what thinning removes).
        costs: layer name -> modelled cost of one weight (``time_per_weight``).
        layers: layer name -> Linear/Conv2d module of ``model``.
        example_inputs: one input batch, repeated to each batch size.
        speedup: the wanted speed-up (> 1), at every batch size in ``batch_sizes``.
        batch_sizes: where the speed-up must hold.
        time_share: how a thinned network's time is measured relative to the dense one's
            (default :func:`measured_time_share`).
        max_timings: thinned networks timed at most.
        max_unit_ratio: the pruner's cap: no thinned network loses more than this share of a
            space's units, so the calibration never counts on speed the pruner may not take.

    Raises:
        ConfigError: even the thinnest network (one unit left per space, or what the cap
            leaves) is not ``speedup`` times faster at some batch size; the message gives
            what it reaches.
    """
    wanted = 1.0 / speedup
    time_share = time_share or measured_time_share
    batches = {size: _repeated(example_inputs, size) for size in batch_sizes}
    points: dict[int, list[tuple[float, float]]] = {size: [(1.0, 1.0)] for size in batch_sizes}
    dense = copy.deepcopy(model).eval()

    def time_thinned(keep: float) -> float:
        thinned, share = _thinned(model, groups, costs, layers, keep, max_unit_ratio)
        for size, batch in batches.items():
            with torch.no_grad():
                points[size].append((share, time_share(dense, thinned, batch)))
            points[size].sort(reverse=True)
        return share

    aimed = _layer_share_for(points, wanted)
    timed_share = time_thinned(_keep_for(groups, costs, layers, aimed if aimed is not None else wanted,
                                         max_unit_ratio))
    for _ in range(max_timings - 1):
        aimed = _layer_share_for(points, wanted)
        if aimed is None:  # not reached by the points: is it reachable at all?
            thinnest = min(p[0] for p in points[batch_sizes[0]])
            floor = _thinnest_share(groups, costs, layers, max_unit_ratio)
            if thinnest <= floor + 1e-9:
                break
            timed_share = time_thinned(0.0)
            continue
        if abs(aimed - timed_share) <= CLOSE_ENOUGH:
            break
        timed_share = time_thinned(_keep_for(groups, costs, layers, aimed, max_unit_ratio))
    aimed = _layer_share_for(points, wanted)
    if aimed is None:
        reached = {size: 1.0 / _monotone(pairs)[-1][1] for size, pairs in points.items()}
        said = ", ".join(f"{value:.2f}x at batch {size}" for size, value in reached.items())
        thinned = "with every unit space thinned" if max_unit_ratio >= 1 else \
            f"with {max_unit_ratio:.0%} of every unit space's units removed (max_unit_ratio)"
        raise ConfigError(f"target_speedup {speedup:g} is out of reach for this model and input size: {thinned} the "
                          f"network runs at most {said} faster (batch norm, activations and each module's call cost "
                          f"do not shrink with its weights); ask for less, or only for a batch size where it is "
                          f"reachable (--speedup-batch, latency_batch_sizes=)")
    return LatencyCalibration(speedup, {size: list(pairs) for size, pairs in points.items()}, aimed)


def _monotone(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points (sorted by layer share, descending) with time shares made non-increasing.

    A thinner network is not slower, so a point timed slower than a wider one is timing
    noise: adjacent violators are pooled to their mean (isotonic regression); the dense
    point stays at 1, where it is by definition.
    """
    blocks: list[list[float]] = []  # [weighted sum of times, sum of weights, points pooled]
    for index, (_, time_share) in enumerate(points):
        weight = 1e6 if index == 0 else 1.0
        blocks.append([time_share * weight, weight, 1])
        while len(blocks) > 1 and blocks[-1][0] / blocks[-1][1] > blocks[-2][0] / blocks[-2][1]:
            total, weight, count = blocks.pop()
            blocks[-1] = [blocks[-1][0] + total, blocks[-1][1] + weight, blocks[-1][2] + count]
    times = [block[0] / block[1] for block in blocks for _ in range(int(block[2]))]
    return [(share, time_share) for (share, _), time_share in zip(points, times, strict=True)]


def _time_share_at(points: Sequence[tuple[float, float]], layer_share: float) -> float:
    """Measured time share at ``layer_share``: linear between the nearest points (sorted by share, descending)."""
    points = _monotone(points)
    for (m_high, t_high), (m_low, t_low) in zip(points, points[1:], strict=False):
        if m_low <= layer_share <= m_high:
            if m_high == m_low:
                return min(t_high, t_low)
            return t_low + (t_high - t_low) * (layer_share - m_low) / (m_high - m_low)
    return points[-1][1] if layer_share < points[-1][0] else points[0][1]


def _layer_share_for(points: Mapping[int, Sequence[tuple[float, float]]], wanted: float) -> float | None:
    """The largest layer share whose interpolated time share is at most ``wanted`` at every batch size.

    None where no measured point is that fast at some batch size (below the thinnest point
    nothing is extrapolated: what was not timed is not promised).
    """
    shares = []
    for measured in points.values():
        pairs = _monotone(measured)
        found = None
        for (m_high, t_high), (m_low, t_low) in zip(pairs, pairs[1:], strict=False):
            if t_low <= wanted:  # the crossing lies in this segment
                found = m_low if t_high == t_low else m_low + (m_high - m_low) * (wanted - t_low) / (t_high - t_low)
                found = min(max(found, m_low), m_high)
                break
        if found is None:
            return None
        shares.append(found)
    return min(shares)


def _masks_keeping(groups: Sequence[UnitGroup], layers: Mapping[str, nn.Module], keep: float,
                   max_unit_ratio: float) -> dict[str, torch.Tensor]:
    """Masks that keep the first ``keep`` share of every unit space's units (at least what the cap leaves)."""
    masks = {name: torch.ones(module.weight.shape) for name, module in layers.items()}
    for group in groups:
        kept = max(group.kept_at_least(max_unit_ratio), round(keep * group.size))
        removed = torch.arange(group.size) >= kept
        group.remove(removed, masks)
    return masks


def _layer_share(masks: Mapping[str, torch.Tensor], costs: Mapping[str, float]) -> float:
    return sum(float(mask.sum()) * costs[name] for name, mask in masks.items()) / LATENCY_SCALE


def _thinnest_share(groups: Sequence[UnitGroup], costs: Mapping[str, float], layers: Mapping[str, nn.Module],
                    max_unit_ratio: float) -> float:
    return _layer_share(_masks_keeping(groups, layers, 0.0, max_unit_ratio), costs)


def _keep_for(groups: Sequence[UnitGroup], costs: Mapping[str, float], layers: Mapping[str, nn.Module],
              layer_share: float, max_unit_ratio: float) -> float:
    """The share of units to keep in every space so the layers' modelled time is about ``layer_share`` (bisection)."""
    low, high = 0.0, 1.0
    for _ in range(20):
        middle = (low + high) / 2
        if _layer_share(_masks_keeping(groups, layers, middle, max_unit_ratio), costs) > layer_share:
            high = middle
        else:
            low = middle
    return high


def _thinned(model: nn.Module, groups: Sequence[UnitGroup], costs: Mapping[str, float],
             layers: Mapping[str, nn.Module], keep: float, max_unit_ratio: float) -> tuple[nn.Module, float]:
    """The compacted copy of ``model`` with ``keep`` of every space's units, and its layers' modelled share."""
    masks = _masks_keeping(groups, layers, keep, max_unit_ratio)
    names = {id(module): name for name, module in layers.items()}
    copied = copy.deepcopy(model).eval()
    copies = {names[id(original)]: twin for original, twin in zip(model.modules(), copied.modules(), strict=True)
              if id(original) in names}
    with torch.no_grad():
        for name, module in copies.items():
            module.weight.mul_(masks[name].to(module.weight.device, module.weight.dtype))
    return compact(copied).eval(), _layer_share(masks, costs)
