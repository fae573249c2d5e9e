"""Bias folding: what a pruned connection carried on average moves into its unit's bias.

Connection j <- i adds W[j, i] * x_i to unit j's input; split x_i into its mean and what
varies around it, and the mean part is a constant W[j, i] * mean x_i that the bias can
carry as well. Removing a connection whose input barely varies then changes almost
nothing, which is what makes |W| x std(x) (the ``deviation`` criterion) a fair judge.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..masks import Prunable


@torch.no_grad()
def fold_into_bias(
    layers: Mapping[str, Prunable],
    input_means: Mapping[str, torch.Tensor],
    before: Mapping[str, torch.Tensor],
    after: Mapping[str, torch.Tensor],
) -> None:
    """Add each newly pruned connection's mean contribution ``W[j, i] * mean x_i`` to ``bias[j]``.

    Args:
        layers: name -> Linear or Conv2d layer (its bias is changed in place).
        input_means: name -> mean input per feature (channel for Conv2d), (in,) float32.
        before: name -> mask before this check; ``after``: the mask after it.

    Layers without a bias, without a known mean, or with grouped convolutions are left
    as they are. For Conv2d the channel mean stands for every kernel tap (zero padding at
    the borders makes the fold approximate there).
    """
    for name, mask in after.items():
        layer = layers[name]
        if layer.bias is None or name not in input_means or getattr(layer, "groups", 1) != 1:
            continue
        removed = (before[name] - mask).clamp_min(0).to(layer.weight.dtype)
        if not removed.any():
            continue
        carried = layer.weight.detach() * removed  # (out, in) or (out, in, kh, kw)
        if carried.dim() > 2:
            carried = carried.flatten(2).sum(dim=2)  # every tap of a channel sees the same mean
        if carried.shape[1] != input_means[name].numel():
            continue  # e.g. a Linear fed a sequence: its mean is over the last dimension only
        layer.bias.add_(carried @ input_means[name].to(carried.dtype))
