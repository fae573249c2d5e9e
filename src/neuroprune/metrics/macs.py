"""Multiply-accumulate counts of one forward pass, dense and ideal-sparse.

The one counting rule: a ``Linear`` or ``Conv1d/2d/3d`` layer costs one MAC per weight for
every output row (Linear) or output position (Conv) it produces::

    Linear:  MACs = in_features * out_features * rows          rows = output.numel() / out_features
    ConvNd:  MACs = out_elements * (in_channels / groups) * prod(kernel_size)

Both equal ``weight.numel() * output.numel() / weight.shape[0]``. Zero-padded positions
are counted (the dense kernel computes them). Bias additions are not counted, and these
cost nothing under this rule: transposed convolutions, normalisation (BatchNorm,
LayerNorm), activations, pooling, elementwise operations such as residual adds, and any
computation done with functional calls (``F.linear``, ``torch.matmul``,
``nn.MultiheadAttention``'s attention) rather than through the layer modules above.

The same rule, doubled, is what ``torch.utils.flop_counter.FlopCounterMode`` reports for
``mm``/``addmm``/``convolution``: FLOPs = 2 * MACs, bias adds counted by neither.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ._forward import batch_size_of, eval_mode

# ConvTranspose*d is not a subclass of these, so it is (documented as) not counted.
_COUNTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def count_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """Multiply-accumulates per sample of a dense forward pass (zeros in weights still count).

    Runs ``model`` once on ``example_input`` in eval mode without gradients (training
    flags are restored afterwards) and counts Linear and Conv1d/2d/3d layers by the
    module-level rule above; norm, pooling and elementwise operations are not counted.

    Args:
        model: the model to count.
        example_input: one batch, batch dimension first.

    Returns:
        MACs of the whole batch divided by its batch size.

    Example:
        >>> count_macs(nn.Linear(8, 4), torch.randn(2, 8))
        32
    """
    return _count(model, example_input, is_sparse=False)


def count_sparse_macs(model: nn.Module, example_input: torch.Tensor) -> int:
    """Multiply-accumulates per sample that an ideal sparse kernel would do: non-zero weights only.

    Same rule as :func:`count_macs`, but each output row (Linear) or output position of
    channel ``o`` (Conv) costs ``nonzero(W[o])`` instead of ``W[o].numel()``. Masked
    weights (``torch.nn.utils.parametrize``) count by their masked value.

    Args:
        model: the model to count.
        example_input: one batch, batch dimension first.

    Returns:
        Sparse MACs of the whole batch divided by its batch size.

    Example:
        >>> layer = nn.Linear(8, 4)
        >>> with torch.no_grad():
        ...     layer.weight[:, :4] = 0.0
        >>> count_sparse_macs(layer, torch.randn(2, 8))
        16
    """
    return _count(model, example_input, is_sparse=True)


def _count(model: nn.Module, example_input: torch.Tensor, *, is_sparse: bool) -> int:
    batch_size = batch_size_of(example_input)
    total = 0

    def count_layer(module: nn.Module, inputs: tuple[object, ...], output: torch.Tensor) -> None:
        nonlocal total
        weight = cast(torch.Tensor, module.weight)  # the masked value when the layer is parametrized
        # weight: Linear (out, in), ConvNd (out, in / groups, *kernel). Every output element
        # of feature/channel o uses the weights W[o] once, so summed over o:
        # (counted weights) * (output elements per feature/channel).
        counted = int(torch.count_nonzero(weight)) if is_sparse else weight.numel()
        total += counted * (output.numel() // weight.shape[0])

    handles: list[RemovableHandle] = []
    try:
        for module in model.modules():
            if isinstance(module, _COUNTED_LAYERS):
                handles.append(module.register_forward_hook(count_layer))
        with eval_mode(model), torch.no_grad():
            model(example_input)
    finally:
        for handle in handles:
            handle.remove()
    return total // batch_size
