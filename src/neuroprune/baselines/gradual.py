"""Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune").

While the network trains, every ``update_every`` optimizer steps from ``begin_step`` to
``end_step`` the smallest-magnitude live weights are pruned until the pruned share equals
the :class:`~neuroprune.sparsity_schedule.PolynomialSparsity` target. Pruning is permanent.

Typical use::

    pruner = GradualMagnitudePruner.for_training(model, final_sparsity=0.9, total_steps=epochs * len(loader))
    npr.fit(model, loader, epochs=epochs, callbacks=[pruner])
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, ModelError
from ..masks import MaskedWeights, MaskViews, prunable_layers
from ..sparsity_schedule import PolynomialSparsity

log = logging.getLogger(__name__)
SCOPES = ("global", "layer")


class GradualMagnitudePruner(MaskViews):
    """Prunes the smallest weights step by step until ``final_sparsity`` of them are gone.

    Masks cover every Linear and Conv2d weight (or the ``layers`` named). Call :meth:`step`
    after every optimizer step, or pass the pruner to ``neuroprune.fit`` as a callback. A
    pruned weight is zero, gets a zero gradient and zero optimizer state, and is never ranked
    again, so neither momentum nor weight decay can revive it. Updates run at ``begin_step``,
    every ``update_every`` steps after it, and at ``end_step``; none after.

    Args:
        model: the network to prune (weights are zeroed in place).
        final_sparsity: share of the weights pruned at the end, in (0, 1).
        begin_step: the optimizer step of the first pruning update.
        end_step: the step at which ``final_sparsity`` is reached.
        update_every: optimizer steps between pruning updates.
        layers: names of the Linear/Conv2d modules to prune (default: all of them).
        optimizer: the optimizer whose steps keep pruned weights at zero; may be set later.
        scope: ``"global"`` ranks all layers' weights together (the usual setting),
            ``"layer"`` prunes every layer to the same share.

    Example:
        >>> model = create_model("mlp", image_size=8)
        >>> pruner = GradualMagnitudePruner(model, final_sparsity=0.9, begin_step=100, end_step=1000)
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        final_sparsity: float,
        begin_step: int,
        end_step: int,
        update_every: int = 100,
        layers: Iterable[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        scope: str = "global",
    ) -> None:
        self.schedule = PolynomialSparsity(final_sparsity, begin_step, end_step)
        if not isinstance(update_every, int) or isinstance(update_every, bool) or update_every < 1:
            raise ConfigError(f"update_every must be an integer >= 1, got {update_every!r}")
        if scope not in SCOPES:
            raise ConfigError(f"scope must be one of {', '.join(SCOPES)}; got {scope!r}")
        self.update_every = update_every
        self.scope = scope
        self.model = model
        self.layers = prunable_layers(model, layers)
        self.masks = MaskedWeights(self.layers, optimizer)
        self.step_count = 0
        self.history: list[dict[str, Any]] = []

    @classmethod
    def for_training(
        cls,
        model: nn.Module,
        *,
        final_sparsity: float,
        total_steps: int,
        begin_fraction: float = 0.05,
        end_fraction: float = 0.6,
        update_every: int | None = None,
        **kwargs: Any,
    ) -> GradualMagnitudePruner:
        """A pruner whose ramp spans the given fractions of a run of ``total_steps`` optimizer steps.

        Ending the ramp before training ends leaves steps to recover at the final sparsity.
        ``update_every`` defaults to 1% of the run; other keywords go to the constructor.

        Example:
            >>> pruner = GradualMagnitudePruner.for_training(model, final_sparsity=0.8, total_steps=2000)
            >>> pruner.schedule.begin_step, pruner.schedule.end_step, pruner.update_every
            (100, 1200, 20)
        """
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ConfigError(f"total_steps must be an integer >= 1, got {total_steps!r}")
        if not 0 <= begin_fraction < end_fraction <= 1:
            raise ConfigError(
                f"need 0 <= begin_fraction < end_fraction <= 1, got {begin_fraction} and {end_fraction}"
            )
        begin, end = round(begin_fraction * total_steps), round(end_fraction * total_steps)
        if end <= begin:
            raise ConfigError(f"total_steps={total_steps} is too few to ramp from begin_fraction to end_fraction")
        every = max(1, total_steps // 100) if update_every is None else update_every
        return cls(model, final_sparsity=final_sparsity, begin_step=begin, end_step=end, update_every=every, **kwargs)

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The optimizer whose steps keep pruned weights at zero."""
        return self.masks.optimizer

    def step(self) -> bool:
        """Advance one optimizer step; update the masks if one is due. Returns True if it did."""
        self.step_count += 1
        if self.masks.optimizer is None:
            self.masks.enforce()  # no optimizer hooks: at least keep the forward pass exact
        if not self._is_update(self.step_count):
            return False
        target = self.schedule.at(self.step_count)
        groups = [list(self.layers)] if self.scope == "global" else [[name] for name in self.layers]
        for names in groups:
            self._prune_smallest(names, target)
        self.history.append({"step": self.step_count, "pruned_fraction": self.sparsity()})
        log.debug("step %d: %.1f%% pruned", self.step_count, 100 * self.history[-1]["pruned_fraction"])
        return True

    def _is_update(self, step: int) -> bool:
        begin, end = self.schedule.begin_step, self.schedule.end_step
        return begin <= step <= end and ((step - begin) % self.update_every == 0 or step == end)

    @torch.no_grad()
    def _prune_smallest(self, names: list[str], target: float) -> None:
        """Prune the smallest live weights of ``names``, ranked together, until ``target`` of them are pruned."""
        masks = [self.mask(name) for name in names]
        sizes = [mask.numel() for mask in masks]
        pruned = sum(size - int(mask.sum()) for size, mask in zip(sizes, masks, strict=True))
        missing = round(target * sum(sizes)) - pruned
        if missing <= 0:
            return
        device = masks[0].device
        # (sum of sizes,): |w|, with already-pruned positions at +inf so they are never chosen again
        scores = torch.cat([
            self.layers[name].weight.abs().float().where(mask.bool(), torch.inf).flatten().to(device)
            for name, mask in zip(names, masks, strict=True)
        ])
        flat = torch.cat([mask.flatten().to(device) for mask in masks])
        flat[scores.topk(missing, largest=False).indices] = 0
        for name, mask in zip(names, flat.split(sizes), strict=True):
            self.masks.set(name, mask.view(self.layers[name].weight.shape))

    # ---- ending (mask(), sparsity(), layer_summary() come from MaskViews) ------------------

    def finalize(self) -> nn.Module:
        """Stop enforcing masks (idempotent); pruned weights stay zero. Returns the model."""
        self.masks.remove_hooks()
        return self.model

    # ---- state ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Step, masks keyed by parameter names (``fc1.weight``) and the update history."""
        return {
            "step": self.step_count,
            "masks": {f"{name}.weight": self.mask(name).to(torch.uint8) for name in self.layers},
            "history": [dict(record) for record in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned.

        Raises:
            ModelError: the state names other layers or other shapes than this model's.
        """
        expected = {f"{name}.weight": tuple(m.weight.shape) for name, m in self.layers.items()}
        masks = state.get("masks", {})
        shapes = {key: tuple(mask.shape) for key, mask in masks.items()}
        if shapes != expected:
            raise ModelError(f"pruner state masks {shapes} do not fit the model's prunable weights {expected}")
        for name in self.layers:
            self.masks.set(name, masks[f"{name}.weight"].to(torch.float32))
        self.step_count = int(state["step"])
        self.history = [dict(record) for record in state.get("history", [])]

    # ---- training-loop callback events (see neuroprune.engine.fit) ------------------------

    def on_train_begin(self, trainer: Any) -> None:
        if self.optimizer is not None and self.optimizer is not trainer.optimizer:
            raise ConfigError("the pruner's masks are attached to another optimizer than the one fit steps, so "
                              "pruned weights could grow back; pass the same optimizer to fit(optimizer=...) and "
                              "to the pruner, or to fit only")
        self.masks.attach_optimizer(trainer.optimizer)

    def on_step_end(self, trainer: Any) -> None:
        self.step()

    def on_epoch_end(self, trainer: Any) -> None:
        trainer.log(pruned_fraction=self.sparsity())
