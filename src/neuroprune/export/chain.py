"""``InferenceChain``: an ``nn.Sequential`` with a lean forward for small exported models.

At batch 1 a pruned MLP spends more time in Python than in arithmetic: each module call
costs a few microseconds of dispatch (``__call__``, hook checks), and each ReLU allocates
a new tensor. This chain calls the kernels directly, keeps a batch-1 activation as a vector
so that every Linear (dense or CSR) is one ``addmv``, and applies ReLU in place on
tensors it produced itself; that is where much of the batch-1 speed-up of an exported
model comes from besides the sparse kernels. It is a subclass of
``nn.Sequential`` with the same children and ``state_dict`` keys, so everything that
reads a Sequential still works; when any child has hooks (e.g. ``count_macs``), the
ordinary ``nn.Sequential`` forward runs so the hooks fire.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..structure.traits import trait_of
from .sparse import SparseLinear


class InferenceChain(nn.Sequential):
    """A Sequential whose forward skips per-module dispatch and reuses ReLU buffers.

    Args:
        layers: named layers, in order, as for ``nn.Sequential(OrderedDict(...))``.

    Example:
        >>> chain = InferenceChain.from_sequential(nn.Sequential(nn.Linear(4, 3), nn.ReLU()))
        >>> chain(torch.randn(2, 4)).shape
        torch.Size([2, 3])
    """

    saves_as_sequential = True  # computes exactly what nn.Sequential computes: saved as a layer list

    def __init__(self, layers: OrderedDict[str, nn.Module]) -> None:
        super().__init__(layers)

    @classmethod
    def from_sequential(cls, model: nn.Sequential) -> InferenceChain:
        """The same children (shared, not copied) in an ``InferenceChain``."""
        # _modules, not named_children(): a module used at two places is kept at both
        return cls(OrderedDict((name, module) for name, module in model._modules.items() if module is not None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        modules = list(self._modules.values())
        for module in modules:
            if module._forward_hooks or module._forward_pre_hooks:  # type: ignore[union-attr]
                return super().forward(x)
        is_owned = False  # True once x is a tensor this forward allocated (safe to overwrite)
        is_vector = False  # True while x is (features,) standing for a (1, features) batch
        for module in modules:
            kind = type(module)
            if kind is nn.Linear or kind is SparseLinear:
                if not is_vector and x.dim() == 2 and x.shape[0] == 1:
                    x, is_vector = x.reshape(-1), True
                if is_vector:
                    x = matrix_vector(module, x)
                elif kind is nn.Linear:
                    params = module._parameters
                    x = F.linear(x, cast(torch.Tensor, params["weight"]), params["bias"])
                else:
                    x = module.forward(x)  # type: ignore[union-attr]
                is_owned = True
            elif kind is nn.ReLU:
                # In place only on our own intermediate and only without autograd, which
                # would need the pre-activation values.
                x = x.relu_() if is_owned and not x.requires_grad else torch.relu(x)
                is_owned = True
            elif kind is nn.Identity or (kind is nn.Dropout and not module.training):
                continue
            elif kind is nn.Flatten and not is_vector:
                flatten = cast(nn.Flatten, module)
                x = x.flatten(flatten.start_dim, flatten.end_dim)
            else:
                if is_vector:
                    x, is_vector = x.view(1, -1), False
                x = module(x)  # type: ignore[misc]
                # Other modules may return a view of their input (nn.Unflatten, in-place ops).
                trait = trait_of(module)
                is_owned = trait is not None and trait.allocates
        return x.view(1, -1) if is_vector else x


def matrix_vector(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer`` applied to one sample ``x`` of shape (in,) as a matrix-vector product: (out,)."""
    bias: torch.Tensor | None
    if isinstance(layer, SparseLinear):
        weight, bias = layer.vector_operands()
    else:
        weight, bias = cast(torch.Tensor, layer._parameters["weight"]), layer._parameters["bias"]
    return torch.mv(weight, x) if bias is None else torch.addmv(bias, weight, x)
