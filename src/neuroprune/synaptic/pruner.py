"""SynapticPruner: activity tracking, the low-activity rule and the check schedule, glued.

Typical use::

    pruner = SynapticPruner(model, target_sparsity=0.9, total_steps=len(loader) * epochs, optimizer=opt)
    for x, y in loader:
        train_step(model, x, y)
        pruner.step()
    small = pruner.compact()
"""

from __future__ import annotations

import copy
import logging
import math
import warnings
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from ..masks import MaskedWeights, MaskViews, prunable_layers
from ..sparsity_schedule import PolynomialSparsity
from ..structure import compact
from ._sync import average_over_processes, share_rank_zero_decisions, share_rank_zero_floats
from .compute import (
    ComputeBudget,
    LatencyBudget,
    positions_per_weight,
    time_per_weight,
    time_per_weight_by_batch,
    unit_scores,
)
from .criteria import Criterion
from .folding import fold_into_bias
from .granularity import choose_granularity
from .latency import LatencyCalibration, calibrate_speedup, time_shares
from .options import check_counts, check_targets, checked_criterion, checked_unit_ratio
from .pruner_state import check_pruner_state
from .rules import LowActivityRule
from .schedule import AUTO, CheckSchedule, resolve_schedule
from .selection import select_weakest
from .tracker import ActivityTracker
from .units import UnitGroup, find_unit_groups

# progress of the sparsity schedule at which a speed-up target is re-timed on the pruned network itself
# (the cubic schedule has done 66%, 88% and 97% of its pruning by then, and checks are left to correct)
RETIME_AT = (0.3, 0.5, 0.7)

log = logging.getLogger(__name__)


class SynapticPruner(MaskViews):
    """Prunes connections (or whole units) that stay weakly active for ``patience`` consecutive checks.

    Masks are attached to every Linear and Conv2d weight (or the ``layers`` named) when
    the pruner is created. Call :meth:`step` after every optimizer step; it runs a check
    when the schedule says so. Pruning is permanent: a pruned weight is zero in the
    forward pass, gets a zero gradient, and its optimizer state (momentum, Adam moments)
    is zeroed, so neither momentum nor weight decay can revive it.

    Two ways to decide how much goes:

    * without ``target_sparsity``, every connection weak at ``patience`` consecutive checks
      goes (at most ``max_fraction_per_check`` of a layer per check): the network decides
      how small it gets;
    * with ``target_sparsity``, a cubic schedule (Zhu & Gupta 2017) sets how many
      connections are gone at each check, from 0 after warm-up to the target at
      ``stop_step``; the rule decides which: connections weak at ``patience`` consecutive
      checks first, weakest first (activity relative to the layer's mean, so layers compare
      on one scale), then the weakest others if the quota is not filled.

    Args:
        model: the network to prune (masks are attached in place).
        criterion: activity measure, one of ``deviation`` (default), ``contribution``,
            ``presynaptic``, ``hebbian``, ``magnitude``, ``normalised``, or a
            :class:`~neuroprune.synaptic.criteria.Criterion`; see :mod:`neuroprune.synaptic.criteria`.
        alpha: relative threshold: weak means below ``alpha`` x the layer's mean activity.
        patience: consecutive weak checks before a connection is pruned.
        check_every: optimizer steps between checks, or ``"auto"`` (1% of training).
        warmup_steps: optimizer steps before activity starts to count, or ``"auto"`` (5%).
        stop_step: no checks after this step; ``"auto"`` (60% of training) or None (never stop).
        min_fan_in: every unit keeps at least this many live inputs.
        max_fraction_per_check: at most this share of a layer's live connections (or units)
            per check (default 0.1); only without ``target_sparsity``, whose schedule sets
            the pace instead.
        max_unit_ratio: at most this share of any channel space's units is removed (unit and
            both granularities; Torch-Pruning's ``max_pruning_ratio``). 1.0: a space may
            shrink to its strongest unit. A lower cap keeps expensive spaces (a residual
            stream read by every block of a stage) from being emptied first under a compute
            target, where what a unit's removal saves weighs most. The cap holds even where
            the compute target then stays out of reach.
        target_sparsity: share of all tracked connections pruned at ``stop_step``.
        target_macs: share of the dense network's MACs per sample left at ``stop_step``
            (unit granularity; needs ``example_inputs``). The cubic schedule then counts MACs,
            and a unit's activity is weighed by the MACs its removal saves, so pruning goes
            where the compute is. Exclusive with ``target_sparsity``.
        target_latency: as ``target_macs``, counted in a linear latency model instead of MACs:
            every layer is timed alone at each of ``latency_batch_sizes`` when the pruner is
            created (:func:`~neuroprune.synaptic.compute.time_per_weight_by_batch`); what a
            unit's removal saves is its weights' share of that time. The share of the dense
            layers' time left, at every one of those batch sizes
            (:class:`~neuroprune.synaptic.compute.LatencyBudget`).
        target_speedup: the whole network ``target_speedup`` times faster at every batch size in
            ``latency_batch_sizes``: counted in the same latency model, whose layer share is
            calibrated first on thinned copies of the network, timed against the dense one
            (:mod:`neuroprune.synaptic.latency`; the result is in ``latency_calibration``).
            ConfigError if even the thinnest copy is not that fast.
        latency_batch_sizes: the batch sizes ``target_latency`` or ``target_speedup`` must hold at.
        example_inputs: one input batch; a shape probe gives each layer's MACs per weight.
        granularity: ``connection`` (default), ``unit`` (whole Linear neurons / Conv2d
            channels whose downstream activity stays weak go, with every connection entering
            and leaving them: the compacted model is then small and dense), ``both``, or
            ``auto`` (see :mod:`neuroprune.synaptic.granularity`; the choice and its reason
            are in ``granularity`` and ``granularity_reason``).
        fold_bias: when a connection goes, add its mean contribution ``W[j, i] * mean x_i``
            to unit j's bias (default: on for ``deviation``; possible for criteria that track
            the signed mean input, ``deviation`` and ``normalised``).
        sample_every: gather activity on every n-th training step only (1: every step).
            The activity between checks is then a sample mean; the tracking cost drops n-fold.
        total_steps: optimizer steps in the whole training run; needed for ``"auto"`` values
            when the pruner is not driven by :func:`neuroprune.fit` (which tells it).
        layers: names of the Linear/Conv2d modules to prune (default: all of them).
        optimizer: the optimizer whose steps keep pruned weights at zero; may be set later.

    Example:
        >>> model = create_model("mlp", image_size=8)
        >>> pruner = SynapticPruner(model, patience=2, check_every=10, warmup_steps=0, stop_step=None)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        criterion: str | Criterion = "deviation",
        alpha: float = 0.5,
        patience: int = 3,
        check_every: int | str = AUTO,
        warmup_steps: int | str = AUTO,
        stop_step: int | str | None = AUTO,
        min_fan_in: int = 1,
        max_fraction_per_check: float | None = None,
        max_unit_ratio: float = 1.0,
        target_sparsity: float | None = None,
        target_macs: float | None = None,
        target_latency: float | None = None,
        target_speedup: float | None = None,
        latency_batch_sizes: tuple[int, ...] = (1, 64),
        example_inputs: torch.Tensor | None = None,
        granularity: str = "connection",
        fold_bias: bool | None = None,
        sample_every: int = 1,
        total_steps: int | None = None,
        layers: Iterable[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        scorer = checked_criterion(criterion, fold_bias)
        compute_target = check_targets(granularity, target_sparsity, target_macs, target_latency, target_speedup,
                                       latency_batch_sizes, max_fraction_per_check, example_inputs)
        check_counts(sample_every, total_steps)
        self.max_unit_ratio = checked_unit_ratio(max_unit_ratio)
        fraction = 0.1 if max_fraction_per_check is None else max_fraction_per_check
        self.rule = LowActivityRule(alpha, patience, min_fan_in, fraction)
        self.unit_rule = LowActivityRule(alpha, patience, 0, fraction)
        self._requested = (check_every, warmup_steps, stop_step)
        self.schedule: CheckSchedule | None = None
        self._planned_steps: int | None = None
        self.sparsity_schedule: PolynomialSparsity | None = None
        self.criterion = scorer.name
        self.fold_bias = scorer.name == "deviation" if fold_bias is None else fold_bias
        self.target_sparsity = target_sparsity
        self.target_macs = target_macs
        self.target_latency = target_latency
        self.target_speedup = target_speedup
        self.latency_batch_sizes = tuple(latency_batch_sizes)
        self.latency_calibration: LatencyCalibration | None = None
        self._latency_reference: tuple[nn.Module, torch.Tensor] | None = None
        self.compute_target = compute_target
        self.sample_every = sample_every
        self.model = model
        self.layers = prunable_layers(model, layers)
        self.granularity, self.granularity_reason = choose_granularity(model, self.layers, granularity, compute_target)
        self.unit_groups: list[UnitGroup] = (find_unit_groups(model, self.layers)
                                             if self.granularity != "connection" else [])
        if compute_target is not None and self.granularity != "unit":
            raise ConfigError(f"a compute target removes whole units: use granularity 'unit' or 'auto', not "
                              f"{self.granularity!r}")
        # compute: what the target and the unit scores count (MACs or timed latency); macs: MACs, reported
        self.compute: ComputeBudget | LatencyBudget | None = None
        self.macs: ComputeBudget | None = None
        if compute_target is not None:
            assert example_inputs is not None  # checked above
            self._set_up_compute(example_inputs)
        self.masks = MaskedWeights(self.layers, optimizer)
        self.counters = {
            name: torch.zeros(m.weight.shape, dtype=torch.int32, device=m.weight.device)
            for name, m in self.layers.items()
        }
        self.unit_counters = {
            group.name: torch.zeros(group.size, dtype=torch.int32, device=self.layers[group.name].weight.device)
            for group in self.unit_groups
        }
        scorer.prepare(model, self.layers)
        self.tracker = ActivityTracker(self.layers, scorer)
        self.tracker.is_active = False  # until the schedule is known
        self.step_count = 0
        self.history: list[dict[str, Any]] = []
        if total_steps is not None or check_every != AUTO:
            self.plan(total_steps)

    def plan(self, total_steps: int | None) -> None:
        """Fix the check schedule (and sparsity schedule) for a run of ``total_steps`` steps.

        Called by the constructor when it can, and by :func:`neuroprune.fit` at the start of
        training. Warns when the schedule can never prune anything.

        Raises:
            ConfigError: ``"auto"`` values without ``total_steps``, or ``sample_every``
                larger than the check interval (checks would judge no activity).
        """
        schedule = resolve_schedule(*self._requested, total_steps)
        if self.target_speedup is not None and self.latency_calibration is None:
            self._calibrate()
        self._planned_steps = total_steps
        if self.sample_every > schedule.check_every:
            raise ConfigError(
                f"sample_every ({self.sample_every}) is larger than check_every ({schedule.check_every}): some checks "
                "would judge no activity at all; lower sample_every"
            )
        self.schedule = schedule
        if self._final_fraction is not None:
            self.sparsity_schedule = self._sparsity_schedule(schedule, total_steps)
        if total_steps is not None:
            checks = len(schedule.check_steps(total_steps))
            # with a target the schedule's quota prunes at any check; without one a connection
            # must first be weak at `patience` consecutive checks
            if checks < (1 if self._final_fraction is not None else self.rule.patience):
                message = (
                    f"this run has {checks} pruning check(s) in {total_steps} steps (check_every "
                    f"{schedule.check_every}, warmup {schedule.warmup_steps}, stop {schedule.stop_step}) but a "
                    f"connection must be weak at {self.rule.patience} consecutive checks to go: nothing can be "
                    "pruned; use check_every='auto' or a smaller check_every or patience"
                )
                warnings.warn(message, stacklevel=2)
        self._update_tracking()

    def _set_up_compute(self, example_inputs: torch.Tensor) -> None:
        """What a weight costs (MACs, or time per weight with a latency or speed-up target), before masks attach."""
        shapes = {n: tuple(m.weight.shape) for n, m in self.layers.items()}
        self.macs = ComputeBudget(positions_per_weight(self.layers, self.model, example_inputs), shapes)
        self.compute = self.macs
        if self.target_speedup is not None:
            # one averaged model: the calibration measures the whole network at every batch size
            self.compute = ComputeBudget(time_per_weight(self.layers, self.model, example_inputs), shapes)
        elif self.target_latency is not None:
            self.compute = LatencyBudget(time_per_weight_by_batch(self.layers, self.model, example_inputs,
                                                                  self.latency_batch_sizes), shapes)
        if self.target_speedup is not None:
            # the dense network, kept to calibrate against (when planned) and to time the pruned one against
            self._latency_reference = (copy.deepcopy(self.model).eval(), example_inputs[:1].detach().clone())

    def _calibrate(self) -> None:
        """Find the layer share that makes the network ``target_speedup`` times faster, and count down to it.

        Done when the schedule is planned, not when the pruner is created, so a pruner whose
        state is loaded first (a resumed run) counts with the saved calibration and times nothing.
        """
        assert self.compute is not None and self.target_speedup is not None and self._latency_reference is not None
        dense, example = self._latency_reference
        # timed on each process alike, decided on rank 0's timing (the processes' quotas must agree)
        names = list(self.compute.positions)
        costs = share_rank_zero_floats([self.compute.positions[n] for n in names], example.device)
        self.compute.positions = dict(zip(names, costs, strict=True))
        calibration = calibrate_speedup(dense, self.unit_groups, self.compute.positions,
                                        prunable_layers(dense, self.layers), example, self.target_speedup,
                                        self.latency_batch_sizes, max_unit_ratio=self.max_unit_ratio)
        [share] = share_rank_zero_floats([calibration.layer_share], example.device)
        self._use_calibration(replace(calibration, layer_share=share))

    def _retime_if_due(self) -> dict[str, Any] | None:
        """Time the pruned network itself at :data:`RETIME_AT` and correct the speed-up target's layer share.

        Returns what was timed and decided (for the check's record), or None when no timing was due.
        """
        calibration, schedule = self.latency_calibration, self.sparsity_schedule
        if calibration is None or schedule is None or self._latency_reference is None or self.compute is None:
            return None
        done = len(next(iter(calibration.pruned.values()), []))
        progress = (self.step_count - schedule.begin_step) / (schedule.end_step - schedule.begin_step)
        if done >= len(RETIME_AT) or progress < RETIME_AT[done]:
            return None
        dense, example = self._latency_reference
        sizes = list(calibration.points)
        measured = time_shares(dense, compact(self.model).eval(), example, sizes)
        agreed = share_rank_zero_floats([measured[size] for size in sizes], example.device)
        shares = dict(zip(sizes, agreed, strict=True))
        layer_share = self.compute.fraction({name: self.mask(name) for name in self.layers})
        self._use_calibration(calibration.retimed(layer_share, shares))
        assert self.schedule is not None  # a sparsity schedule is planned with it
        self.sparsity_schedule = self._sparsity_schedule(self.schedule, self._planned_steps)
        return {"layer_share": layer_share, "time_shares": {str(size): share for size, share in shares.items()},
                "new_layer_share": self.compute_target}

    def _use_calibration(self, calibration: LatencyCalibration) -> None:
        self.latency_calibration = calibration
        self.target_latency = self.compute_target = calibration.layer_share
        log.info("target_speedup %g: keep %.3f of the layers' modelled time (timed: %s)", calibration.speedup,
                 calibration.layer_share, calibration.predicted_speedups())

    @property
    def _final_fraction(self) -> float | None:
        """What the cubic schedule raises to: the share of connections (or of dense MACs) pruned."""
        return 1.0 - self.compute_target if self.compute_target is not None else self.target_sparsity

    def _sparsity_schedule(self, schedule: CheckSchedule, total_steps: int | None) -> PolynomialSparsity:
        assert self._final_fraction is not None  # only called with a target
        end = schedule.stop_step if schedule.stop_step is not None else total_steps
        if end is None:
            raise ConfigError("target_sparsity needs to know when pruning ends: give stop_step or total_steps")
        # the target is met at the last check at or before the end, not between two checks
        checks = (end - schedule.warmup_steps) // schedule.check_every
        last_check = schedule.warmup_steps + schedule.check_every * checks
        if last_check <= schedule.warmup_steps:
            raise ConfigError(
                f"no check falls between warmup_steps ({schedule.warmup_steps}) and the end of pruning ({end}) with "
                f"check_every {schedule.check_every}: the target sparsity cannot be reached; check more often"
            )
        return PolynomialSparsity(self._final_fraction, schedule.warmup_steps, last_check)

    # ---- the training-time API ------------------------------------------------------------

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The optimizer whose steps keep pruned weights at zero."""
        return self.masks.optimizer

    @optimizer.setter
    def optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.masks.attach_optimizer(optimizer)

    def step(self) -> bool:
        """Advance one optimizer step; run a check if one is due. Returns True if it checked."""
        if self.schedule is None:
            self.plan(None)  # raises: "auto" values need the length of training
        assert self.schedule is not None
        self.step_count += 1
        if self.masks.optimizer is None:
            self.masks.enforce()  # no optimizer hooks: at least keep the forward pass exact
        checked = False
        if self.schedule.is_check(self.step_count) and not self.is_target_reached:
            self._check()
            checked = True
        self._update_tracking()
        return checked

    def _update_tracking(self) -> None:
        """Switch the activity hooks on only for steps whose activity can still count."""
        upcoming = self.step_count + 1
        if self.schedule is None:
            self.tracker.is_active = False
            return
        self.tracker.is_active = (
            self.schedule.collects(upcoming) and upcoming % self.sample_every == 0 and not self.is_target_reached
        )

    @torch.no_grad()
    def _check(self) -> None:
        self._all_reduce_statistics()
        activity = self.tracker.activity()
        before = {name: self.mask(name) for name in activity}
        new_masks = dict(before)
        for name in activity:
            self.counters[name] = self.rule.count(activity[name].to(before[name].device), self.counters[name],
                                                  before[name])
        if self.compute is not None:
            self.compute.bind(new_masks)  # count this check in the batch size furthest from the target
        if self.unit_groups:
            self._judge_units(activity, new_masks)
        if self.granularity != "unit":
            self._judge_connections(activity, new_masks)
        if self.fold_bias:
            fold_into_bias(self.layers, self.tracker.input_means(), before, new_masks)
        per_layer: dict[str, dict[str, int]] = {}
        record: dict[str, Any] = {"step": self.step_count, "layers": per_layer}
        for name, mask in new_masks.items():
            removed = before[name].bool() & ~mask.bool()
            self.counters[name] = torch.where(removed | ~mask.bool(), torch.zeros_like(self.counters[name]),
                                              self.counters[name])
            self._set_mask(name, mask)
            per_layer[name] = {
                "live": int(mask.sum()),
                "pruned_now": int(removed.sum()),
                "dead_units": int((mask.flatten(1).sum(dim=1) == 0).sum()),
            }
        self._broadcast_decisions()
        record["pruned_fraction"] = self.sparsity()
        if self.compute is not None and self.macs is not None:
            record["macs_fraction"] = self.macs.fraction(new_masks)
            record["compute_fraction"] = self.compute.fraction(new_masks)
            if isinstance(self.compute, LatencyBudget):
                record["compute_fractions"] = {str(size): share
                                               for size, share in self.compute.fractions(new_masks).items()}
        if self.sparsity_schedule is not None:
            record["scheduled_fraction"] = self.sparsity_schedule.at(self.step_count)
        self.history.append(record)
        self.tracker.reset()
        retimed = self._retime_if_due()
        if retimed is not None:
            record["retimed"] = retimed
        log.debug("check at step %d: %.1f%% pruned", self.step_count, 100 * record["pruned_fraction"])

    def _quota(self, masks: dict[str, torch.Tensor]) -> int:
        """Connections (MACs per sample, with a compute target) still to prune now to meet the schedule."""
        assert self.sparsity_schedule is not None
        if self.compute is not None:
            live = self.compute.live({name: masks[name] if name in masks else self.mask(name) for name in self.layers})
            return round(self.sparsity_schedule.at(self.step_count) * self.compute.total) - (self.compute.total - live)
        pruned = self.num_connections - sum(
            int(masks[name].sum()) if name in masks else self.masks.live(name) for name in self.layers
        )
        return round(self.sparsity_schedule.at(self.step_count) * self.num_connections) - pruned

    def _judge_connections(self, activity: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
        """Prune connections in ``masks`` (in place): by the rule alone, or to the schedule's quota."""
        if self.sparsity_schedule is None:
            for name in activity:
                live = masks[name].bool()
                chosen = self.rule.candidates(self.counters[name], masks[name])
                chosen = self.rule.limit_per_layer(chosen, activity[name], live)
                chosen = self.rule.keep_min_fan_in(chosen, activity[name], live)
                masks[name] = masks[name] * ~chosen
            return
        # one global ranking by raw activity, not by each connection's share of its unit's
        # input or by activity relative to the layer's mean: those spread pruning evenly over
        # the layers, which empties the small output layer (the comparison is described in
        # docs/synaptic.md)
        scores = activity
        eligible = {name: masks[name].bool() for name in activity}
        while True:  # min_fan_in may turn some picks down: fill from the rest until none is left
            quota = self._quota(masks)
            if quota <= 0 or not any(bool(e.any()) for e in eligible.values()):
                return
            preferred = {name: self.rule.candidates(self.counters[name], masks[name]) for name in activity}
            picked = select_weakest(scores, eligible, preferred, quota)
            for name, chosen in picked.items():
                allowed = self.rule.keep_min_fan_in(chosen, activity[name], masks[name].bool())
                eligible[name] &= ~chosen  # a pick turned down is not offered again
                masks[name] = masks[name] * ~allowed

    def _judge_units(self, activity: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]) -> None:
        """Remove whole units in ``masks`` (in place) whose downstream activity stays weak."""
        groups = [g for g in self.unit_groups if all(r in activity for r in g.readers)]
        scores, eligible, preferred, costs = {}, {}, {}, {}
        for group in groups:
            live = group.live(masks)
            score = group.activity(activity).to(live.device)
            counters = self.unit_rule.count(score, self.unit_counters[group.name], live.float())
            self.unit_counters[group.name] = counters
            # what the unit's removal saves, in the quota's own terms: connections, or MACs per
            # sample with a compute target (a channel at full resolution saves more than one
            # after downsampling, so equally active, it goes first)
            costs[group.name] = group.costs(masks, self.compute.positions if self.compute else None)
            # downstream activity per connection the unit's removal takes away: the quota is
            # counted in connections, so a wide unit that carries little goes first
            if self.target_latency is not None:
                # with a latency target, activity relative to the space's live mean: a unit of a wide
                # last stage sums more outgoing connections than one inside a block, so raw activity
                # keeps the last stage whole, though at batch 1 its weights take the time
                score = score / score[live].mean().clamp_min(1e-12) if bool(live.any()) else score
            scores[group.name] = unit_scores(score, costs[group.name])
            eligible[group.name] = live.clone() if self._room(group, live) > 0 else torch.zeros_like(live)
            if int(live.sum()) > 0:  # a space keeps its strongest unit, or the network is cut in two
                eligible[group.name][torch.where(live, score, torch.full_like(score, -1.0)).argmax()] = False
            preferred[group.name] = self.unit_rule.candidates(counters, live.float())
        if self.sparsity_schedule is None:
            picked = {}
            for group in groups:
                chosen = preferred[group.name] & eligible[group.name]
                picked[group.name] = self.unit_rule.limit_per_layer(chosen, scores[group.name], eligible[group.name])
        else:
            picked = select_weakest(scores, eligible, preferred, self._quota(masks), costs,
                                    is_preferred_only=self.granularity == "both")
        for group in groups:
            removed = self._capped(picked[group.name], scores[group.name], group, masks)
            if removed.any():
                group.remove(removed, masks)
                self.unit_counters[group.name] = torch.where(
                    removed, torch.zeros_like(self.unit_counters[group.name]), self.unit_counters[group.name]
                )

    def _room(self, group: UnitGroup, live: torch.Tensor) -> int:
        """Units of ``group`` that may still go under ``max_unit_ratio``."""
        return max(int(live.sum()) - group.kept_at_least(self.max_unit_ratio), 0)

    def _capped(self, picked: torch.Tensor, scores: torch.Tensor, group: UnitGroup,
                masks: dict[str, torch.Tensor]) -> torch.Tensor:
        """``picked`` less its strongest units where it would remove more than ``max_unit_ratio`` of the space."""
        room = self._room(group, group.live(masks))
        if int(picked.sum()) <= room:
            return picked
        weakest = torch.where(picked, scores, torch.full_like(scores, math.inf)).argsort()[:room]
        capped = torch.zeros_like(picked)
        capped[weakest] = True
        return capped

    def _all_reduce_statistics(self) -> None:
        average_over_processes(self.tracker.statistics(), list(self.layers))

    def synchronize_statistics(self) -> None:
        """Average the activity gathered since the last check over processes, now.

        Collective: every rank calls it. Averaging is linear, so doing it before the check
        changes nothing but float rounding; a checkpoint written by rank 0 then carries the
        activity of all ranks.
        """
        self._all_reduce_statistics()

    def _broadcast_decisions(self) -> None:
        """Make rank 0's masks and counters every rank's (see :func:`share_rank_zero_decisions`)."""
        share_rank_zero_decisions(list(self.layers), self.mask, self._set_mask, self.counters)

    def _set_mask(self, name: str, mask: torch.Tensor) -> None:
        self.masks.set(name, mask)

    # ---- what the pruner knows (mask(), sparsity(), layer_summary() come from MaskViews) --

    @property
    def is_target_reached(self) -> bool:
        """True once ``target_sparsity`` (or ``target_macs``, ``target_latency``) is set and reached."""
        if self.compute is not None and self.compute_target is not None:
            return self.compute.fraction({name: self.mask(name) for name in self.layers}) <= self.compute_target
        return self.target_sparsity is not None and self.sparsity() >= self.target_sparsity - 0.5 / self.num_connections

    def macs_fraction(self) -> float | None:
        """Live MACs per sample as a share of the dense network's (with a compute target), else None."""
        if self.macs is None:
            return None
        return self.macs.fraction({name: self.mask(name) for name in self.layers})

    # ---- ending ---------------------------------------------------------------------------

    def remove_hooks(self) -> None:
        """Stop tracking activity (idempotent); masks stay attached."""
        self.tracker.remove()

    def finalize(self) -> nn.Module:
        """Stop pruning and stop enforcing masks; pruned weights stay zero in the model.

        Activity hooks and optimizer hooks are removed. The weights were zero in their own
        Parameters all along, so an optimizer keeps working and the model keeps its
        architecture and state_dict keys. Returns the model (same object).
        """
        self.remove_hooks()
        self.masks.remove_hooks()
        return self.model

    def compact(self) -> nn.Module:
        """A new, physically smaller dense model computing what the masked model computes.

        Dead units (no live input or no live output) are removed, across residual
        additions too; the constant output of input-less units is folded into the next
        layers' biases. The pruned model is left as it is. See :func:`neuroprune.compact`.
        """
        return compact(self.model)

    # ---- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Masks, counters and step, keyed by parameter names (``fc1.weight``).

        Also the activity gathered since the last check and the check history, so a run
        resumed from a checkpoint takes exactly the decisions an uninterrupted one takes.
        """
        tracker = self.tracker.state_dict()
        return {
            "step": self.step_count,
            "masks": {f"{name}.weight": self.mask(name).to(torch.uint8) for name in self.layers},
            "counters": {f"{name}.weight": c.clone() for name, c in self.counters.items()},
            "unit_counters": {f"{name}.weight": c.clone() for name, c in self.unit_counters.items()},
            "activity": {
                "sums": {f"{name}.weight": stat for name, stat in tracker["sums"].items()},
                "batches": {f"{name}.weight": count for name, count in tracker["batches"].items()},
            },
            "history": [dict(record) for record in self.history],
            # The timed latency model differs from one timing to the next; a resumed run must count in the same one.
            **self._latency_costs_state(),
            # so is the calibration of a speed-up target
            **({"latency_calibration": self.latency_calibration.to_dict()} if self.latency_calibration else {}),
        }

    def _latency_costs_state(self) -> dict[str, Any]:
        if isinstance(self.compute, LatencyBudget):
            return {"latency_costs_by_batch": {
                str(size): {f"{name}.weight": cost for name, cost in costs.items()}
                for size, costs in self.compute.costs_by_batch().items()
            }}
        if self.target_latency is not None and self.compute is not None:
            return {"latency_costs": {f"{name}.weight": cost for name, cost in self.compute.positions.items()}}
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore masks, counters and step saved by :meth:`state_dict` (and activity and history, if saved).

        The whole state is checked before anything is restored, so a state that does not fit
        leaves the pruner (and the model's weights) as they were.

        Raises:
            ModelError: the state names other layers or other shapes than this model's, or a
                part is malformed.
        """
        check_pruner_state(state, weight_shapes={f"{name}.weight": m.weight.shape for name, m in self.layers.items()},
                           unit_sizes={f"{name}.weight": c.shape for name, c in self.unit_counters.items()},
                           is_timed=self.target_latency is not None or self.target_speedup is not None,
                           target_speedup=self.target_speedup, latency_batch_sizes=self.latency_batch_sizes)
        for name in self.layers:
            key = f"{name}.weight"
            self._set_mask(name, state["masks"][key].to(self.layers[name].weight.device, torch.float32))
            self.counters[name] = state["counters"][key].to(self.counters[name].device, torch.int32).clone()
        for key, counters in state.get("unit_counters", {}).items():
            name = key.removesuffix(".weight")
            self.unit_counters[name] = counters.to(self.unit_counters[name].device, torch.int32).clone()
        self.step_count = int(state["step"])
        self.tracker.reset()
        if "activity" in state:
            self.tracker.load_state_dict({
                part: {key.removesuffix(".weight"): value for key, value in state["activity"][part].items()}
                for part in ("sums", "batches")
            })
        if "history" in state:
            self.history = [dict(record) for record in state["history"]]
        shapes = {n: tuple(m.weight.shape) for n, m in self.layers.items()}
        if "latency_costs" in state and self.compute is not None:
            self.compute = ComputeBudget({key.removesuffix(".weight"): float(cost)
                                          for key, cost in state["latency_costs"].items()}, shapes)
        if "latency_costs_by_batch" in state and self.compute is not None:
            self.compute = LatencyBudget({
                int(size): {key.removesuffix(".weight"): float(cost) for key, cost in costs.items()}
                for size, costs in state["latency_costs_by_batch"].items()
            }, shapes)
        if "latency_calibration" in state:
            self._use_calibration(LatencyCalibration.from_dict(state["latency_calibration"]))
            if self.schedule is not None:  # planned with this process's own calibration
                self.plan(self._planned_steps)
        self._update_tracking()

    # ---- training-loop callback events (see neuroprune.engine.fit) ------------------------

    def on_train_begin(self, trainer: Any) -> None:
        if self.optimizer is None:
            self.optimizer = trainer.optimizer
        elif self.optimizer is not trainer.optimizer:
            raise ConfigError(
                "the pruner's masks are attached to another optimizer than the one this training steps, so pruned "
                "weights would grow back: pass the same optimizer to fit(optimizer=...) and the pruner, or create "
                "the pruner without optimizer= and let fit attach its own"
            )
        total = getattr(trainer, "total_steps", None)
        if self.schedule is None or total:
            self.plan(total or None)

    def on_step_end(self, trainer: Any) -> None:
        self.step()

    def on_epoch_end(self, trainer: Any) -> None:
        trainer.log(pruned_fraction=self.sparsity(), live_connections=self.num_live)
