"""Shared helpers for the metrics tests: a 0/1 weight mask attached with parametrize."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize


class _Mask(nn.Module):
    """``weight -> weight * mask``, the way pruners mask connections."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


def _mask_weight(module: nn.Module, mask: torch.Tensor) -> None:
    parametrize.register_parametrization(module, "weight", _Mask(mask.to(module.weight.dtype)))


@pytest.fixture
def mask_weight() -> Callable[[nn.Module, torch.Tensor], None]:
    """Attach a 0/1 mask to ``module.weight`` (the stored weight keeps its values)."""
    return _mask_weight
