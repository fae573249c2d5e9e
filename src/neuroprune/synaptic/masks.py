"""Binary connection masks, attached with ``torch.nn.utils.parametrize``.

The parametrization multiplies the stored weight by its mask in every forward pass, so a
pruned connection contributes nothing and receives a zero gradient. The mask is a
non-persistent buffer: the pruner's ``state_dict`` is the one place masks are saved.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


class ConnectionMask(nn.Module):
    """Parametrization ``weight -> weight * mask`` with a fixed 0/1 mask."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def attach_mask(module: nn.Module, mask: torch.Tensor) -> ConnectionMask:
    """Mask ``module.weight``; the stored Parameter keeps its identity (optimizers keep working)."""
    parametrization = ConnectionMask(mask.to(module.weight.dtype))
    parametrize.register_parametrization(module, "weight", parametrization)
    return parametrization


def stored_weight(module: nn.Module) -> nn.Parameter:
    """The Parameter the optimizer updates (the unmasked storage under a parametrization)."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def detach_mask(module: nn.Module) -> None:
    """Remove the parametrization, leaving the masked values in the same Parameter."""
    if parametrize.is_parametrized(module, "weight"):
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` with masked weights under their own names (``fc1.weight``).

    Parametrized modules store weights as ``fc1.parametrizations.weight.original``;
    saved files never expose that. Pruned positions are exactly zero in the storage, so
    the stored value is the masked value.
    """
    plain = {}
    for key, value in model.state_dict().items():
        plain[key.replace(".parametrizations.weight.original", ".weight")] = value
    return plain
