"""Parameter counts that see masked weights as the model uses them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import torch
from torch import nn
from torch.nn.utils import parametrize


def count_params(model: nn.Module) -> int:
    """Number of parameters, each shared Parameter counted once.

    A weight masked with ``torch.nn.utils.parametrize`` counts once, at its own shape;
    tensors the parametrization itself holds (masks) are not model parameters.

    Args:
        model: any module.

    Returns:
        The total number of parameter elements.

    Example:
        >>> count_params(nn.Linear(4, 3))
        15
    """
    return sum(value.numel() for value in _parameter_values(model))


def count_nonzero_params(model: nn.Module) -> int:
    """Number of parameter elements that are not zero, reading masked weights after masking.

    Args:
        model: any module; weights under a ``torch.nn.utils.parametrize`` mask count by
            their masked value, so pruned connections count as zeros.

    Returns:
        The number of non-zero parameter elements.

    Example:
        >>> layer = nn.Linear(4, 3)
        >>> with torch.no_grad():
        ...     layer.weight[0] = 0.0
        >>> count_nonzero_params(layer)  # 12 weights + 3 biases, 4 weights zeroed
        11
    """
    return sum(int(torch.count_nonzero(value)) for value in _parameter_values(model))


def _parameter_values(model: nn.Module) -> Iterator[torch.Tensor]:
    """Each parameter once, as its module exposes it (the masked value when parametrized)."""
    seen: set[int] = set()
    # no_grad: reading a parametrized attribute runs the parametrization, which would
    # otherwise record an autograd graph for nothing.
    with torch.no_grad():
        yield from _module_values(model, seen)


def _module_values(module: nn.Module, seen: set[int]) -> Iterator[torch.Tensor]:
    for param in module.parameters(recurse=False):
        if id(param) not in seen:
            seen.add(id(param))
            yield param
    is_parametrized = parametrize.is_parametrized(module)
    if is_parametrized:
        for name, stored in cast(nn.ModuleDict, module.parametrizations).items():
            # Key on the ParametrizationList: the public attribute is a fresh tensor per read.
            if id(stored) not in seen:
                seen.add(id(stored))
                yield getattr(module, name)
    for child_name, child in module.named_children():
        # The "parametrizations" container holds the unmasked storage already read above.
        if is_parametrized and child_name == "parametrizations":
            continue
        yield from _module_values(child, seen)
