"""On-disk size of a model's weights, as a safetensors file."""

from __future__ import annotations

import torch
from safetensors.torch import save
from torch import nn
from torch.nn.utils import parametrize


def weight_bytes(model: nn.Module) -> int:
    """Size in bytes of the model's ``state_dict`` saved as safetensors (header included).

    A weight masked with ``torch.nn.utils.parametrize`` is saved under its plain name
    (``fc1.weight``, never ``fc1.parametrizations.weight.original``) with its masked value;
    tensors a parametrization keeps for itself (masks) are pruner state and are left out.
    Tied tensors are saved once. The size is dense: zeros take as many bytes as any value.

    Args:
        model: any module.

    Returns:
        The number of bytes ``safetensors.torch.save`` produces.

    Example:
        >>> weight_bytes(nn.Linear(4, 3)) > 15 * 4  # 15 float32 values plus the header
        True
    """
    return len(save(_savable_tensors(model)))


def _savable_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict with plain masked weights, contiguous, on CPU, and no shared memory."""
    tensors = {key: value for key, value in model.state_dict().items() if isinstance(value, torch.Tensor)}
    # one plain tensor per masked module, however many places hold it: a tie is stored once
    plain: dict[tuple[int, str], torch.Tensor] = {}
    with torch.no_grad():
        # every place of a module used twice: the state_dict has its keys under each
        for prefix, module in model.named_modules(remove_duplicate=False):
            if not parametrize.is_parametrized(module):
                continue
            dot = f"{prefix}." if prefix else ""
            container = f"{dot}parametrizations."
            for key in [k for k in tensors if k.startswith(container)]:
                del tensors[key]
            for name in module.parametrizations:
                if (id(module), name) not in plain:
                    plain[id(module), name] = getattr(module, name).detach()
                tensors[f"{dot}{name}"] = plain[id(module), name]
    return _unshared(tensors)


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop exact duplicates (tied weights) and copy other tensors that share memory.

    safetensors refuses tensors that share memory; a file would store a tied weight once.
    """
    result: dict[str, torch.Tensor] = {}
    seen_views: set[tuple[int, tuple[int, ...], tuple[int, ...], torch.dtype]] = set()
    seen_storages: set[int] = set()
    for key, tensor in tensors.items():
        tensor = tensor.detach()
        if tensor.numel() > 0:  # empty tensors own no memory to share
            # Pointers are read on the tensor's own device: .cpu() of a GPU tensor makes new storage.
            view = (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)
            if view in seen_views:
                continue
            seen_views.add(view)
            storage = tensor.untyped_storage().data_ptr()
            if storage in seen_storages:
                tensor = tensor.clone()
            seen_storages.add(storage)
        result[key] = tensor.cpu().contiguous()
    return result
