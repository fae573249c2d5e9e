"""Binary connection masks, enforced without touching the forward pass.

A pruned connection's weight is set to exactly zero once, and kept there by hooks on the
optimizer: before each step the gradient is masked (so momentum and Adam moments never
see the pruned position); with an optimizer that is not one of torch's own, the weight is
also masked again after each step (so no custom rule can move it). The forward pass runs the plain layer,
so masking costs nothing there; the pruned weight is zero in storage, so
``model.state_dict()`` keeps its usual keys.

Masks live in :class:`MaskedWeights`, keyed by layer name; modules store nothing extra.
A layer with no pruned connection has no mask and costs nothing at all.

For torch's own optimizers a zero gradient and zero state leave a zero weight at exactly
zero (every update is a product with them), so re-zeroing the weights after each step
would only cost time (a weight-sized multiply per layer and step, about 5% of an MLP's
training step). It is done after every step only for other optimizers, whose rules
(noise, custom decay) may move a zero weight.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .errors import ModelError

log = logging.getLogger(__name__)

Prunable = nn.Linear | nn.Conv2d  # layers whose ``weight`` holds connections
# update rules that map (zero gradient, zero state, zero weight) to a zero weight
_ZERO_PRESERVING = (
    torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.Adagrad, torch.optim.RMSprop,
    torch.optim.Adadelta, torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam, torch.optim.ASGD,
)


class MaskedWeights:
    """0/1 masks over the weights of named layers, enforced through an optimizer's steps.

    Args:
        layers: name -> module with a ``weight`` Parameter (Linear, Conv2d, ...).
        optimizer: the optimizer training those weights; may be given later with
            :meth:`attach_optimizer`. Without one only :meth:`enforce` keeps masks.
    """

    def __init__(self, layers: Mapping[str, Prunable], optimizer: torch.optim.Optimizer | None = None) -> None:
        self.layers = dict(layers)
        self._masks: dict[str, torch.Tensor] = {}  # only layers with at least one pruned connection
        self._handles: list[Any] = []
        self.optimizer: torch.optim.Optimizer | None = None
        if optimizer is not None:
            self.attach_optimizer(optimizer)

    def mask(self, name: str) -> torch.Tensor:
        """Layer ``name``'s mask (1 live, 0 pruned) as a new float tensor."""
        weight = self.layers[name].weight
        if name in self._masks:
            return self._masks[name].clone()
        return torch.ones(weight.shape, dtype=torch.float32, device=weight.device)

    def live(self, name: str) -> int:
        """Number of live connections of layer ``name``."""
        if name in self._masks:
            return int(self._masks[name].sum())
        return self.layers[name].weight.numel()

    @property
    def num_connections(self) -> int:
        """Connections (weights) in the masked layers."""
        return sum(m.weight.numel() for m in self.layers.values())

    @property
    def num_live(self) -> int:
        """Connections still live."""
        return sum(self.live(name) for name in self.layers)

    def sparsity(self) -> float:
        """Share of the connections pruned so far."""
        return 1.0 - self.num_live / self.num_connections

    def layer_summary(self) -> list[dict[str, Any]]:
        """Per layer: name, total connections, pruned connections, units, units with no live input."""
        rows = []
        for name in self.layers:
            mask = self.mask(name)  # (out, in) or (out, in, kh, kw)
            rows.append({"name": name, "total": mask.numel(), "pruned": int(mask.numel() - mask.sum()),
                         "units": mask.shape[0], "units_without_input": int((mask.flatten(1).sum(dim=1) == 0).sum())})
        return rows

    @torch.no_grad()
    def set(self, name: str, mask: torch.Tensor) -> None:
        """Replace layer ``name``'s mask and zero its weight, gradient and optimizer state there."""
        weight = self.layers[name].weight
        mask = mask.to(device=weight.device, dtype=weight.dtype)
        if bool(mask.all()):
            self._masks.pop(name, None)
            return
        self._masks[name] = mask
        weight.mul_(mask)
        if weight.grad is not None:
            weight.grad.mul_(mask)
        if self.optimizer is not None:
            for value in self.optimizer.state.get(weight, {}).values():
                if torch.is_tensor(value) and value.shape == weight.shape:
                    value.mul_(mask)

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Mask gradients before every ``optimizer.step()`` (and weights after it, for optimizers not in
        torch.optim)."""
        if self.optimizer is optimizer:
            return
        self.remove_hooks()
        self.optimizer = optimizer
        self._handles = [optimizer.register_step_pre_hook(self._mask_gradients)]
        if type(optimizer) not in _ZERO_PRESERVING:
            self._handles.append(optimizer.register_step_post_hook(self._mask_weights))
        for name, mask in self._masks.items():  # zero state gathered before we were attached
            self.set(name, mask)

    @torch.no_grad()
    def enforce(self) -> None:
        """Zero every pruned weight now (for training loops without an attached optimizer)."""
        for name, mask in self._masks.items():
            self.layers[name].weight.mul_(mask)

    def remove_hooks(self) -> None:
        """Detach the optimizer hooks (idempotent); masks stop being enforced."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.optimizer = None

    @torch.no_grad()
    def _mask_gradients(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for name, mask in self._masks.items():
            grad = self.layers[name].weight.grad
            if grad is not None:
                grad.mul_(mask)

    def _mask_weights(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.enforce()

    def on_train_begin(self, trainer: Any) -> None:
        """Callback event (see ``neuroprune.fit``): attach the trainer's optimizer if none is."""
        if self.optimizer is None:
            self.attach_optimizer(trainer.optimizer)


class MaskViews:
    """What a pruner holding ``self.masks`` (a :class:`MaskedWeights`) reports about its masks."""

    masks: MaskedWeights

    def mask(self, name: str) -> torch.Tensor:
        """The current 0/1 mask of layer ``name`` (a copy)."""
        return self.masks.mask(name)

    @property
    def num_connections(self) -> int:
        """Connections (weights) in the pruned layers."""
        return self.masks.num_connections

    @property
    def num_live(self) -> int:
        """Connections still live."""
        return self.masks.num_live

    def sparsity(self) -> float:
        """Share of the connections pruned so far."""
        return self.masks.sparsity()

    def layer_summary(self) -> list[dict[str, Any]]:
        """Per layer: name, total connections, pruned connections, units, units with no live input."""
        return self.masks.layer_summary()


def prunable_layers(model: nn.Module, names: Iterable[str] | None = None) -> dict[str, Prunable]:
    """The model's Linear and Conv2d layers by name, or the ``names`` given (checked).

    Raises:
        ModelError: a name is not a Linear/Conv2d layer of the model, or nothing is selected.
    """
    candidates: dict[str, Prunable] = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    chosen = list(candidates) if names is None else list(names)
    unknown = [n for n in chosen if n not in candidates]
    if unknown:
        raise ModelError(f"no prunable layer named {unknown}; prunable layers are: {', '.join(candidates) or 'none'}")
    if not chosen:
        raise ModelError(f"nothing to prune: no Linear or Conv2d layer selected in {type(model).__name__}")
    return {n: candidates[n] for n in chosen}
