"""SynapticPruner: activity tracking, the low-activity rule and the check schedule, glued.

Typical use::

    pruner = SynapticPruner(model, alpha=0.5, patience=3, check_every=200, optimizer=opt)
    for x, y in loader:
        train_step(model, x, y)
        pruner.step()
    small = pruner.compact()
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ..errors import ConfigError, ModelError
from .compact import compact_sequential
from .masks import MaskedWeights, Prunable
from .rules import LowActivityRule
from .schedule import CheckSchedule
from .tracker import CRITERIA, ActivityTracker

log = logging.getLogger(__name__)


class SynapticPruner:
    """Prunes connections that stay weakly active for ``patience`` consecutive checks.

    Masks are attached to every Linear and Conv2d weight (or the ``layers`` named) when
    the pruner is created. Call :meth:`step` after every optimizer step; it runs a check
    when the schedule says so. Pruning is permanent: a pruned weight is zero in the
    forward pass, gets a zero gradient, and its optimizer state (momentum, Adam moments)
    is zeroed, so neither momentum nor weight decay can revive it.

    Args:
        model: the network to prune (masks are attached in place).
        criterion: activity measure, one of ``contribution`` (default), ``presynaptic``,
            ``hebbian``, ``magnitude``; see :class:`ActivityTracker`.
        alpha: relative threshold: weak means below ``alpha`` x the layer's mean activity.
        patience: consecutive weak checks before a connection is pruned.
        check_every: optimizer steps between checks.
        warmup_steps: optimizer steps before activity starts to count.
        stop_step: no checks after this step (None: until training ends).
        min_fan_in: every unit keeps at least this many live inputs.
        max_fraction_per_check: at most this share of a layer's live connections per check.
        target_sparsity: stop pruning once this share of all tracked connections is gone.
        sample_every: gather activity on every n-th training step only (1: every step).
            The activity between checks is then a sample mean; the tracking cost drops n-fold.
        layers: names of the Linear/Conv2d modules to prune (default: all of them).
        optimizer: whose state is zeroed at pruned positions; may be set later.

    Example:
        >>> model = create_model("mlp", image_size=8)
        >>> pruner = SynapticPruner(model, patience=2, check_every=10)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        criterion: str = "contribution",
        alpha: float = 0.5,
        patience: int = 3,
        check_every: int = 200,
        warmup_steps: int = 0,
        stop_step: int | None = None,
        min_fan_in: int = 1,
        max_fraction_per_check: float = 0.1,
        target_sparsity: float | None = None,
        sample_every: int = 1,
        layers: Iterable[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        if criterion not in CRITERIA:
            raise ConfigError(f"criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}")
        if target_sparsity is not None and not 0 < target_sparsity < 1:
            raise ConfigError(f"target_sparsity must be in (0, 1), got {target_sparsity!r}")
        self.rule = LowActivityRule(alpha, patience, min_fan_in, max_fraction_per_check)
        self.schedule = CheckSchedule(check_every, warmup_steps, stop_step)
        if not isinstance(sample_every, int) or sample_every < 1:
            raise ConfigError(f"sample_every must be an integer >= 1, got {sample_every!r}")
        self.criterion = criterion
        self.target_sparsity = target_sparsity
        self.sample_every = sample_every
        self.model = model
        self.layers = _select_layers(model, layers)
        self.masks = MaskedWeights(self.layers, optimizer)
        self.counters = {
            name: torch.zeros(m.weight.shape, dtype=torch.int32, device=m.weight.device) for name, m in self.layers.items()
        }
        self.tracker = ActivityTracker(self.layers, criterion)
        self.step_count = 0
        self.history: list[dict[str, Any]] = []
        self._update_tracking()

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
        self.tracker.is_active = (
            self.schedule.collects(upcoming) and upcoming % self.sample_every == 0 and not self.is_target_reached
        )

    @torch.no_grad()
    def _check(self) -> None:
        self._all_reduce_statistics()
        activity = self.tracker.activity()
        new_masks: dict[str, torch.Tensor] = {}
        new_counters: dict[str, torch.Tensor] = {}
        for name in self.layers:
            if name not in activity:
                continue  # the layer saw no training batch since the last check
            mask = self.mask(name)
            new_counters[name], new_masks[name] = self.rule(activity[name].to(mask.device), self.counters[name], mask)
        if self.target_sparsity is not None:
            self._cap_at_target(activity, new_masks)
        per_layer: dict[str, dict[str, int]] = {}
        record: dict[str, Any] = {"step": self.step_count, "layers": per_layer}
        for name, mask in new_masks.items():
            pruned_now = int((self.mask(name) - mask).sum())
            self.counters[name] = new_counters[name]
            self._set_mask(name, mask)
            per_layer[name] = {
                "live": int(mask.sum()),
                "pruned_now": pruned_now,
                "dead_units": int((mask.flatten(1).sum(dim=1) == 0).sum()),
            }
        self._broadcast_decisions()
        record["pruned_fraction"] = self.sparsity()
        self.history.append(record)
        self.tracker.reset()
        log.debug("check at step %d: %.1f%% pruned", self.step_count, 100 * record["pruned_fraction"])

    def _all_reduce_statistics(self) -> None:
        """Average activity statistics over processes, so every rank takes the same decision.

        Every rank has run the same number of steps on equally sized shards (what DDP
        needs), so each holds the same layers and batch counts, and the mean of the per-rank
        sums over the mean batch count is the global batch mean a single process would see.
        """
        if not (dist.is_available() and dist.is_initialized()):
            return
        world = dist.get_world_size()
        if world == 1:
            return
        for name in self.layers:  # same order on every rank
            stat = self.tracker.statistics().get(name)
            if stat is not None:
                dist.all_reduce(stat)
                stat /= world

    def synchronize_statistics(self) -> None:
        """Average the activity gathered since the last check over processes, now.

        Collective: every rank calls it. Averaging is linear, so doing it before the check
        changes nothing but float rounding; a checkpoint written by rank 0 then carries the
        activity of all ranks.
        """
        self._all_reduce_statistics()

    def _broadcast_decisions(self) -> None:
        """Make rank 0's masks and counters every rank's.

        The decisions are computed from identical all-reduced statistics and weights, so
        this changes nothing unless a collective's float rounding differed between ranks;
        it guarantees the masks can never drift apart.
        """
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        for name in self.layers:  # same order on every rank
            mask = self.mask(name)
            dist.broadcast(mask, src=0)
            dist.broadcast(self.counters[name], src=0)
            if not torch.equal(mask, self.mask(name)):
                log.warning("layer %s: this rank's pruning decision differed from rank 0's; using rank 0's", name)
                self._set_mask(name, mask)

    def _cap_at_target(self, activity: dict[str, torch.Tensor], new_masks: dict[str, torch.Tensor]) -> None:
        """Revive the strongest of this check's prunings that would overshoot ``target_sparsity``."""
        assert self.target_sparsity is not None  # only called when a target is set
        total = self.num_connections
        budget = max(int(self.target_sparsity * total) - (total - self.num_live), 0)
        newly = {name: self.mask(name).bool() & ~mask.bool() for name, mask in new_masks.items()}
        # layers are compared by activity relative to each one's mean over live connections
        scores = torch.cat([
            (activity[name] / activity[name][self.mask(name).bool()].mean().clamp_min(1e-12))[newly[name]]
            for name in newly
        ])
        if len(scores) <= budget:
            return
        keep = torch.zeros(len(scores), dtype=torch.bool)
        keep[scores.topk(budget, largest=False).indices] = True
        offset = 0
        for name, new_mask in new_masks.items():
            positions = torch.nonzero(newly[name].flatten()).flatten()  # same order as boolean indexing
            new_mask.view(-1)[positions[~keep[offset : offset + len(positions)]]] = 1
            offset += len(positions)

    def _set_mask(self, name: str, mask: torch.Tensor) -> None:
        self.masks.set(name, mask)

    # ---- what the pruner knows ------------------------------------------------------------

    def mask(self, name: str) -> torch.Tensor:
        """The current 0/1 mask of layer ``name`` (a copy)."""
        return self.masks.mask(name)

    @property
    def num_connections(self) -> int:
        """Connections (weights) in the tracked layers."""
        return sum(m.weight.numel() for m in self.layers.values())

    @property
    def num_live(self) -> int:
        """Connections still live."""
        return sum(self.masks.live(name) for name in self.layers)

    def sparsity(self) -> float:
        """Share of the tracked connections pruned so far."""
        return 1.0 - self.num_live / self.num_connections

    @property
    def is_target_reached(self) -> bool:
        """True once ``target_sparsity`` is set and reached."""
        return self.target_sparsity is not None and self.sparsity() >= self.target_sparsity - 1e-9

    def layer_summary(self) -> list[dict[str, Any]]:
        """Per layer: name, total connections, pruned connections, units with no live input."""
        rows = []
        for name in self.layers:
            mask = self.mask(name)
            rows.append({
                "name": name,
                "total": mask.numel(),
                "pruned": int(mask.numel() - mask.sum()),
                "units": mask.shape[0],
                "units_without_input": int((mask.flatten(1).sum(dim=1) == 0).sum()),
            })
        return rows

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

    def compact(self) -> nn.Sequential:
        """A new, physically smaller dense model computing what the masked model computes.

        Dead units (no live input or no live output) are removed; the constant output of
        input-less units is folded into the next layer's bias. The pruned model is left
        as it is. Works for sequential chains; see :func:`compact_sequential`.
        """
        return compact_sequential(self.model)

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
            "activity": {
                "sums": {f"{name}.weight": stat for name, stat in tracker["sums"].items()},
                "batches": {f"{name}.weight": count for name, count in tracker["batches"].items()},
            },
            "history": [dict(record) for record in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore masks, counters and step saved by :meth:`state_dict` (and activity and history, if saved).

        Raises:
            ModelError: the state names other layers or other shapes than this model's.
        """
        expected = {f"{name}.weight": m.weight.shape for name, m in self.layers.items()}
        for part in ("masks", "counters"):
            got = state.get(part, {})
            if set(got) != set(expected):
                raise ModelError(
                    f"pruner state {part} name {sorted(set(got) ^ set(expected))} that do not match the model's "
                    f"prunable layers {sorted(expected)}"
                )
            for key, tensor in got.items():
                if tuple(tensor.shape) != tuple(expected[key]):
                    raise ModelError(f"pruner state {part}[{key!r}] has shape {tuple(tensor.shape)}, "
                                     f"the model's weight has {tuple(expected[key])}")
        for name in self.layers:
            key = f"{name}.weight"
            self._set_mask(name, state["masks"][key].to(self.layers[name].weight.device, torch.float32))
            self.counters[name] = state["counters"][key].to(self.counters[name].device, torch.int32).clone()
        self.step_count = int(state["step"])
        self.tracker.reset()
        if "activity" in state:
            try:
                self.tracker.load_state_dict({
                    part: {key.removesuffix(".weight"): value for key, value in state["activity"][part].items()}
                    for part in ("sums", "batches")
                })
            except (KeyError, ValueError, AttributeError) as exc:
                raise ModelError(f"pruner state activity does not match the model's prunable layers ({exc})") from None
        if "history" in state:
            self.history = [dict(record) for record in state["history"]]
        self._update_tracking()

    # ---- training-loop callback events (see neuroprune.engine.fit) ------------------------

    def on_train_begin(self, trainer: Any) -> None:
        if self.optimizer is None:
            self.optimizer = trainer.optimizer

    def on_step_end(self, trainer: Any) -> None:
        self.step()

    def on_epoch_end(self, trainer: Any) -> None:
        trainer.log(pruned_fraction=self.sparsity(), live_connections=self.num_live)


def _select_layers(model: nn.Module, names: Iterable[str] | None) -> dict[str, Prunable]:
    candidates: dict[str, Prunable] = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    if names is None:
        if not candidates:
            raise ModelError(
                f"{type(model).__name__} has no Linear or Conv2d layer: synaptic pruning needs at least one"
            )
        return candidates
    names = list(names)
    unknown = [n for n in names if n not in candidates]
    if unknown:
        raise ModelError(f"no prunable layer named {unknown}; prunable layers are: {', '.join(candidates)}")
    if not names:
        raise ModelError("layers=[] selects nothing to prune")
    return {n: candidates[n] for n in names}
