"""Running a model for measurement: input checks, eval mode that is undone, output tensors."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import torch
from torch import nn

from ..errors import NeuropruneError


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode and give every module its own training flag back afterwards."""
    # Restoring per module (not model.train(was_training)) keeps deliberately frozen
    # submodules, such as a BatchNorm left in eval during fine-tuning, as the caller had them.
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


def batch_size_of(example_input: torch.Tensor) -> int:
    """The batch size of ``example_input`` (its first dimension), checked to be usable."""
    if not isinstance(example_input, torch.Tensor):
        raise NeuropruneError(
            f"example_input must be a torch.Tensor batch, got {type(example_input).__name__}; "
            "pass one batch such as torch.randn(1, 3, 32, 32)"
        )
    if example_input.dim() == 0 or example_input.shape[0] == 0:
        raise NeuropruneError(
            f"example_input must start with a non-empty batch dimension, got shape {tuple(example_input.shape)}; "
            "pass one batch such as torch.randn(1, 3, 32, 32)"
        )
    return int(example_input.shape[0])


def output_tensors(output: object) -> Iterator[torch.Tensor]:
    """Every tensor in a model output: a tensor, or tensors nested in tuples, lists and dicts."""
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, Mapping):
        for value in output.values():
            yield from output_tensors(value)
    elif isinstance(output, (tuple, list)):
        for value in output:
            yield from output_tensors(value)
