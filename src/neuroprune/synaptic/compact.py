"""Compaction: turn a masked sequential model into a physically smaller dense one.

A unit (a Linear neuron or a Conv2d channel) is dead when
  * no live connection leaves it: nothing reads it, so it is dropped with its inputs; or
  * no live connection enters it: it outputs the constant act(bias). That constant is
    folded into the next layer's bias, then the unit is dropped.
Dropping units removes rows and columns elsewhere, which can kill more units, so the
two rules run to a fixed point. The compacted model computes exactly what the masked
model computes in eval mode (BatchNorm uses its running statistics).

A constant channel feeding a padded convolution is not constant at the borders (the
padding is zero), so such a channel is dropped only when its constant is exactly 0
(e.g. ReLU of a negative bias); otherwise it is kept.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from ..errors import ModelError

_PRUNABLE = (nn.Linear, nn.Conv2d)
# Modules that map a constant per unit to the same constant per unit.
_CONSTANT_PRESERVING = (nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Dropout, nn.Identity, nn.Flatten)
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.Hardtanh)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d)
_SUPPORTED = _PRUNABLE + _CONSTANT_PRESERVING + _ELEMENTWISE + _BATCHNORM + (nn.AvgPool2d,)


def compact_sequential(model: nn.Module) -> nn.Sequential:
    """Build the smaller dense equivalent of a masked sequential model.

    Args:
        model: an ``nn.Sequential`` (nested sequentials are flattened) of Linear, Conv2d,
            activations, pooling, BatchNorm, Dropout and Flatten. Pruned weights must be
            exactly zero (masks attached, or already baked in). The model is not changed.

    Returns:
        A new flat ``nn.Sequential`` whose layers keep only live units; names are the
        original module paths with dots replaced by underscores.

    Raises:
        ModelError: the model is not a supported chain (e.g. residual connections or
            grouped convolutions); use ``SynapticPruner.finalize()`` instead.
    """
    chain = _flatten(model)
    layers = [i for i, (_, m) in enumerate(chain) if isinstance(m, _PRUNABLE)]
    if not layers:
        raise ModelError("the model has no Linear or Conv2d layer to compact")
    prunable: list[nn.Linear | nn.Conv2d] = [chain[i][1] for i in layers]  # type: ignore[misc]
    weights = [layer.weight.detach().clone() for layer in prunable]
    biases = [_bias_of(layer) for layer in prunable]
    alive = [torch.ones(w.shape[0], dtype=torch.bool) for w in weights]

    changed = True
    while changed:
        changed = False
        for k in range(len(layers) - 1):
            between = [m for _, m in chain[layers[k] + 1 : layers[k + 1]]]
            nxt = chain[layers[k + 1]][1]
            incoming = _columns_by_unit(nxt, weights[k + 1], weights[k].shape[0])  # (out_next, units, taps) view
            has_out = (incoming != 0).any(dim=2).any(dim=0)
            has_in = (weights[k].flatten(1) != 0).any(dim=1)
            for j in torch.nonzero(alive[k] & ~has_out).flatten().tolist():
                weights[k][j] = 0
                alive[k][j] = False
                changed = True
            constants = _constant_outputs(biases[k], between)
            for j in torch.nonzero(alive[k] & has_out & ~has_in).flatten().tolist():
                value = None if constants is None else float(constants[j])
                if value is None or (value != 0 and not _can_fold(nxt)):
                    continue
                if value != 0:
                    biases[k + 1] += incoming[:, j, :].sum(dim=1) * value
                incoming[:, j, :] = 0
                alive[k][j] = False
                changed = True
    return _rebuild(chain, layers, weights, biases, alive)


def _flatten(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    if not isinstance(model, nn.Sequential):
        raise ModelError(
            f"compaction needs an nn.Sequential chain, got {type(model).__name__}; "
            "use SynapticPruner.finalize() to keep the original architecture with zeros baked in"
        )
    chain = []
    # _modules, not named_children(): that skips a module object used a second time (one
    # ReLU instance at two places), which would silently drop a layer of the chain
    for name, module in model._modules.items():
        assert module is not None  # nn.Sequential holds no None entries
        path = f"{prefix}{name}"
        if isinstance(module, nn.Sequential):
            chain += _flatten(module, f"{path}_")
        elif not isinstance(module, _SUPPORTED):
            raise ModelError(
                f"cannot compact module {path!r} of type {type(module).__name__}; supported: "
                + ", ".join(sorted({t.__name__ for t in _SUPPORTED}))
            )
        elif isinstance(module, nn.Conv2d) and module.groups != 1:
            raise ModelError(f"cannot compact grouped convolution {path!r} (groups={module.groups})")
        else:
            chain.append((path, module))
    return chain


def _bias_of(layer: nn.Linear | nn.Conv2d) -> torch.Tensor:
    if layer.bias is None:
        return torch.zeros(layer.weight.shape[0], dtype=layer.weight.dtype)
    return layer.bias.detach().clone()


def _columns_by_unit(layer: nn.Module, weight: torch.Tensor, units: int) -> torch.Tensor:
    """View of ``weight`` as (out, units, taps): what each unit of the previous layer feeds."""
    if isinstance(layer, nn.Conv2d):
        if weight.shape[1] != units:
            raise ModelError(f"a Conv2d expects {weight.shape[1]} input channels but the previous layer has {units} units")
        return weight.view(weight.shape[0], units, -1)
    if weight.shape[1] % units != 0:
        raise ModelError(f"a Linear layer's {weight.shape[1]} inputs are not a multiple of the previous {units} units")
    # after Flatten of (N, C, H, W), feature c*H*W + s belongs to channel c
    return weight.view(weight.shape[0], units, weight.shape[1] // units)


def _constant_outputs(bias: torch.Tensor, between: list[nn.Module]) -> torch.Tensor | None:
    """Per-unit output of an input-less unit after the modules up to the next layer, or None."""
    value = bias.clone()
    for module in between:
        if isinstance(module, _CONSTANT_PRESERVING):
            continue
        if isinstance(module, _ELEMENTWISE):
            with torch.no_grad():
                value = module(value)
        elif isinstance(module, _BATCHNORM):
            if module.running_mean is None or module.running_var is None:
                return None  # batch statistics only: the output depends on the batch
            scale = torch.rsqrt(module.running_var + module.eps)
            value = (value - module.running_mean) * scale
            if module.affine:
                value = value * module.weight.detach() + module.bias.detach()
        elif isinstance(module, nn.AvgPool2d) and module.padding == 0 and not module.ceil_mode:
            continue
        else:
            return None
    return value


def _can_fold(layer: nn.Module) -> bool:
    """A constant input folds into this layer's bias exactly (no zero padding mixes in)."""
    if isinstance(layer, nn.Conv2d):
        return all(p == 0 for p in layer.padding) if isinstance(layer.padding, tuple) else layer.padding == "valid"
    return True


def _rebuild(
    chain: list[tuple[str, nn.Module]],
    layers: list[int],
    weights: list[torch.Tensor],
    biases: list[torch.Tensor],
    alive: list[torch.Tensor],
) -> nn.Sequential:
    alive[-1][:] = True  # the model's outputs are never removed
    kept_in: torch.Tensor | None = None  # kept units of the previous prunable layer
    modules: list[tuple[str, nn.Module]] = []
    k = -1
    for index, (name, module) in enumerate(chain):
        if index in layers:
            k += 1
            kept_out = torch.nonzero(alive[k]).flatten()
            weight = weights[k][kept_out]
            if kept_in is not None:
                units = weights[k - 1].shape[0]
                weight = _columns_by_unit(module, weight, units)[:, kept_in].reshape(len(kept_out), -1, *weight.shape[2:])
            modules.append((name, _dense_like(module, weight, biases[k][kept_out])))
            kept_in = kept_out
        elif isinstance(module, _BATCHNORM) and kept_in is not None:
            modules.append((name, _sliced_batchnorm(module, kept_in)))  # type: ignore[arg-type]
        else:
            modules.append((name, copy.deepcopy(module)))
    return nn.Sequential(OrderedDict(modules))


def _dense_like(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear | nn.Conv2d:
    """A new layer of ``layer``'s kind holding exactly ``weight`` and ``bias``."""
    has_bias = layer.bias is not None or bool((bias != 0).any())
    new: nn.Linear | nn.Conv2d
    if isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(
            weight.shape[1],
            weight.shape[0],
            layer.kernel_size,  # type: ignore[arg-type]  # (kh, kw), typed as tuple[int, ...]
            stride=layer.stride,  # type: ignore[arg-type]
            padding=layer.padding,  # type: ignore[arg-type]
            dilation=layer.dilation,  # type: ignore[arg-type]
            bias=has_bias,
            padding_mode=layer.padding_mode,
        )
    else:
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias)
    new = new.to(weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if new.bias is not None:
            new.bias.copy_(bias)
    return new


def _sliced_batchnorm(bn: nn.BatchNorm1d | nn.BatchNorm2d, kept: torch.Tensor) -> nn.Module:
    new = copy.deepcopy(bn)
    new.num_features = len(kept)
    with torch.no_grad():
        for attr in ("weight", "bias"):
            param = getattr(bn, attr)
            if param is not None:
                setattr(new, attr, nn.Parameter(param.detach()[kept].clone()))
        for attr in ("running_mean", "running_var"):
            buffer = getattr(bn, attr)
            if buffer is not None:
                setattr(new, attr, buffer[kept].clone())
    return new
