"""Peer pruning methods the synaptic results are compared against.

* Magnitude pruning (Han et al. 2015, "Learning both Weights and Connections"): train,
  remove the smallest-magnitude weights, retrain with the pruned weights held at zero.
* Random pruning: the same, removing uniformly random weights.

Both take per-layer sparsities, so they can be matched layer by layer to a synaptic run
and differ from it only in *which* connections go.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import ConfigError, ModelError
from ..masks import MaskedWeights, Prunable


def magnitude_masks(model: nn.Module, sparsity: Mapping[str, float]) -> dict[str, torch.Tensor]:
    """Per layer, keep the largest-magnitude weights and prune the share ``sparsity[name]``.

    Args:
        model: the trained network.
        sparsity: layer name -> share of its weights to prune, in [0, 1).

    Returns:
        layer name -> 0/1 float mask shaped like the weight.
    """
    masks = {}
    for name, module in _layers(model, sparsity).items():
        weight = module.weight.detach().abs()
        masks[name] = _keep_top(weight, sparsity[name])
    return masks


def random_masks(model: nn.Module, sparsity: Mapping[str, float], seed: int = 0) -> dict[str, torch.Tensor]:
    """Per layer, prune a uniformly random share ``sparsity[name]`` of the weights."""
    generator = torch.Generator().manual_seed(seed)
    masks = {}
    for name, module in _layers(model, sparsity).items():
        scores = torch.rand(module.weight.shape, generator=generator)
        masks[name] = _keep_top(scores, sparsity[name])
    return masks


def apply_masks(
    model: nn.Module, masks: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer | None = None
) -> MaskedWeights:
    """Zero the pruned weights and hold them at zero during further training.

    Args:
        model: the network; its weights are zeroed in place.
        masks: layer name -> 0/1 mask shaped like that layer's weight.
        optimizer: the optimizer of the retraining. Without one, pass the returned object
            to ``neuroprune.fit`` as a callback, which attaches the trainer's optimizer.

    Returns:
        The :class:`MaskedWeights` enforcing the masks.
    """
    layers = _layers(model, masks)
    held = MaskedWeights(layers, optimizer)
    for name, mask in masks.items():
        held.set(name, mask)
    return held


def _keep_top(scores: torch.Tensor, share_pruned: float) -> torch.Tensor:
    if not 0 <= share_pruned < 1:
        raise ConfigError(f"a layer's sparsity must be in [0, 1), got {share_pruned}")
    n_prune = int(round(share_pruned * scores.numel()))
    mask = torch.ones(scores.numel(), device=scores.device)
    if n_prune:
        mask[scores.flatten().topk(n_prune, largest=False).indices] = 0
    return mask.view_as(scores)


def _layers(model: nn.Module, sparsity: Mapping[str, object]) -> dict[str, Prunable]:
    modules = dict(model.named_modules())
    missing = [name for name in sparsity if not isinstance(modules.get(name), (nn.Linear, nn.Conv2d))]
    if missing:
        raise ModelError(f"no Linear or Conv2d layer named {missing} in the model")
    return {name: modules[name] for name in sparsity}  # type: ignore[misc]  # checked above
