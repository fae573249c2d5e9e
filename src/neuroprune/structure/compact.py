"""Compaction: turn a masked model into a physically smaller dense one of the same structure.

A channel of a space (see :mod:`.channels`) is removed when every layer that reads it can
let it go:

* no live connection leaves it into that reader; or
* the channel is a known constant where the reader reads it (no live connection enters
  it, so it carries act(bias), through BatchNorm, activations, pooling and residual
  sums), and that constant folds exactly into the reader's bias. A padded convolution
  sees zeros at the borders, not the constant, so there only a constant 0 goes.

Removing channels removes columns of readers, which can empty more rows, so the rule runs
to a fixed point. Channels of fixed spaces (the model's input and output, operations not
understood) stay. The compacted model computes exactly what the masked model computes in
eval mode (BatchNorm uses its running statistics), up to float rounding of folded biases.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import ModelError
from .channels import ChannelMap, ChannelSpace, trace_channels

_Constants = dict[str, "torch.Tensor | None"]


def compact(model: nn.Module) -> nn.Module:
    """Build the smaller dense equivalent of a masked model; the model itself is not changed.

    Args:
        model: any model torch.fx can trace. Pruned weights must be exactly zero (masks
            attached, or baked in). Linear, Conv2d (dense or depthwise), BatchNorm,
            activations, pooling, Dropout, Flatten and residual additions are followed;
            channels that meet anything else are kept.

    Returns:
        A deep copy with the same module tree and names, whose Linear, Conv2d and
        BatchNorm layers keep only the live channels. Hooks are not copied.

    Raises:
        ModelError: the model cannot be traced (the message names the module) or has no
            Linear or Conv2d layer. A model whose every layer meets something compaction
            does not follow is returned as an unchanged copy.

    Example:
        >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> with torch.no_grad():
        ...     net[0].weight[5:] = 0
        ...     net[2].weight[:, 5:] = 0
        >>> compact(net)[0].out_features
        5
    """
    channel_map = trace_channels(model)
    weights = {path: _Layer.of(channel_map.modules[path]) for space in channel_map.spaces for path in space.writers}
    for space in channel_map.spaces:
        for reader in space.readers:
            weights.setdefault(reader.module, _Layer.of(channel_map.modules[reader.module]))
    if not any(isinstance(module, (nn.Linear, nn.Conv2d)) for module in model.modules()):
        raise ModelError("the model has no Linear or Conv2d layer to compact")
    kept = {index: torch.ones(space.size or 0, dtype=torch.bool, device=_device(model))
            for index, space in enumerate(channel_map.spaces) if _is_removable(space)}
    while _remove_dead(channel_map, weights, kept):
        pass
    return _rebuild(model, channel_map, weights, kept)


def compact_sequential(model: nn.Module) -> nn.Module:
    """The earlier name of :func:`compact`, from when only sequential chains were supported."""
    return compact(model)


def _is_removable(space: ChannelSpace) -> bool:
    return space.fixed is None and bool(space.writers) and bool(space.size)


def _device(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


class _Layer:
    """Working copies of a Linear's or Conv2d's weight and bias."""

    def __init__(self, module: nn.Linear | nn.Conv2d) -> None:
        self.module = module
        self.weight = module.weight.detach().clone()
        self.bias = (module.bias.detach().clone() if module.bias is not None
                     else torch.zeros(self.weight.shape[0], dtype=self.weight.dtype, device=self.weight.device))
        self.needs_bias = module.bias is not None

    @classmethod
    def of(cls, module: nn.Module) -> _Layer:
        assert isinstance(module, (nn.Linear, nn.Conv2d))
        return cls(module)

    def columns(self, channels: int) -> torch.Tensor:
        """View of the weight as (out, channels, taps): what each input channel feeds."""
        return self.weight.view(self.weight.shape[0], channels, -1)

    def rows_empty(self) -> torch.Tensor:
        return ~(self.weight.flatten(1) != 0).any(dim=1)

    def folds_constants(self) -> bool:
        return _sees_constants(self.module)


def _sees_constants(module: nn.Module) -> bool:
    """A constant input reaches every output position unchanged: no zero padding mixes in."""
    if isinstance(module, nn.Conv2d) and module.padding_mode == "zeros":
        padding = module.padding
        return padding == "valid" or (not isinstance(padding, str) and all(p == 0 for p in padding))
    return True


def _remove_dead(channel_map: ChannelMap, weights: dict[str, _Layer], kept: dict[int, torch.Tensor]) -> bool:
    """One pass of the removal rule over every space; True when a channel went."""
    constants = _propagate_constants(channel_map, weights)
    changed = False
    for index, alive in kept.items():
        space = channel_map.spaces[index]
        size = int(space.size or 0)
        removable = alive.clone()
        for reader in space.readers:
            layer = weights[reader.module]
            columns = layer.columns(size)
            has_out = (columns != 0).any(dim=2).any(dim=0)
            constant = constants.get(reader.node)
            if constant is None:
                removable &= ~has_out
                continue
            value = constant.expand(size, columns.shape[2]) if reader.taps > 1 else constant[:, :1]
            known = torch.isfinite(value).all(dim=1)
            zero = (value == 0).all(dim=1)
            removable &= ~has_out | (known & (zero | layer.folds_constants()))
        if int(alive.sum()) > 0 and torch.equal(removable, alive):  # a space keeps one channel: no empty layers
            removable[int(torch.nonzero(alive)[0])] = False
        if not bool(removable.any()):
            continue
        for reader in space.readers:
            layer = weights[reader.module]
            columns = layer.columns(size)
            constant = constants.get(reader.node)
            if constant is not None:
                value = constant.expand(size, columns.shape[2]) if reader.taps > 1 else constant[:, :1]
                value = torch.where(removable.view(-1, 1), torch.nan_to_num(value), torch.zeros_like(value))
                shift = (columns * value.unsqueeze(0)).sum(dim=(1, 2))
                if bool((shift != 0).any()):
                    layer.bias += shift
                    layer.needs_bias = True
            columns[:, removable] = 0
        for path in space.writers:
            weights[path].weight[removable] = 0
        alive &= ~removable
        changed = True
    return changed


def _propagate_constants(channel_map: ChannelMap, weights: dict[str, _Layer]) -> _Constants:
    """Per traced value, a (channels, taps) tensor of each channel's constant value (NaN: not constant)."""
    values: _Constants = {}
    for name, step in channel_map.steps.items():
        inputs = [values.get(i) for i in step.inputs]
        if step.kind == "write":
            assert step.module is not None
            layer = weights.get(step.module)
            if layer is None:
                values[name] = None
                continue
            nan = torch.full_like(layer.bias, float("nan"))
            values[name] = torch.where(layer.rows_empty(), layer.bias, nan).unsqueeze(1)
        elif step.kind == "channelwise" and inputs[0] is not None:
            assert step.module is not None
            values[name] = _through_channelwise(channel_map.modules[step.module], inputs[0])
        elif step.kind == "map" and inputs[0] is not None:
            assert step.fn is not None
            values[name] = step.fn(inputs[0])
        elif step.kind == "add" and inputs[0] is not None and inputs[1] is not None:
            values[name] = inputs[0] + inputs[1]
        else:
            values[name] = None
    return values


def _through_channelwise(module: nn.Module, value: torch.Tensor) -> torch.Tensor | None:
    """What a BatchNorm or depthwise conv makes of per-channel constants."""
    with torch.no_grad():
        if isinstance(module, nn.Conv2d):
            weight = module.weight.detach()
            bias = module.bias.detach() if module.bias is not None else torch.zeros_like(weight[:, 0, 0, 0])
            bias = bias.view(-1, 1)
            empty = ~(weight.flatten(1) != 0).any(dim=1, keepdim=True)
            through = value * weight.flatten(1).sum(dim=1, keepdim=True) + bias
            if not _sees_constants(module):
                through = torch.where(value == 0, through, torch.full_like(through, float("nan")))
            return torch.where(empty, bias.expand_as(through), through)
        assert isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d))
        if module.running_mean is None or module.running_var is None:
            return None  # batch statistics: the output depends on the batch
        channels = value.shape[0]
        mean = module.running_mean.view(channels, -1)
        scale = torch.rsqrt(module.running_var.view(channels, -1) + module.eps)
        out = (value - mean) * scale
        if module.weight is not None:
            out = out * module.weight.detach().view(channels, -1)
        if module.bias is not None:
            out = out + module.bias.detach().view(channels, -1)
        return out


# ---- rebuilding ---------------------------------------------------------------------------


def _rebuild(
    model: nn.Module, channel_map: ChannelMap, weights: dict[str, _Layer], kept: dict[int, torch.Tensor]
) -> nn.Module:
    new = _copy_without_hooks(model)
    replacements: dict[str, nn.Module] = {}
    for index, space in enumerate(channel_map.spaces):
        alive = kept.get(index)
        for path in space.writers:
            replacements[path] = _slice_weighted(weights[path], out_keep=alive, in_keep=None)
        for path, taps in space.channelwise:
            replacements[path] = _slice_channelwise(channel_map.modules[path], _spread(alive, taps))
    for index, space in enumerate(channel_map.spaces):
        alive = kept.get(index)
        for reader in space.readers:
            current = replacements.get(reader.module)
            base = weights[reader.module]
            if current is None:
                current = replacements[reader.module] = _slice_weighted(base, out_keep=None, in_keep=None)
            replacements[reader.module] = _slice_inputs(current, _spread(alive, reader.taps))
    for path, module in replacements.items():
        _replace_everywhere(new, channel_map.modules[path], model, module)
    return new


def _copy_without_hooks(model: nn.Module) -> nn.Module:
    new = copy.deepcopy(model)
    for module in new.modules():
        for hooks in (module._forward_hooks, module._forward_pre_hooks, module._backward_hooks,
                      module._backward_pre_hooks, module._state_dict_hooks, module._load_state_dict_pre_hooks):
            hooks.clear()
    return new


def _spread(alive: torch.Tensor | None, taps: int) -> torch.Tensor | None:
    """Channel mask -> feature mask when each channel is ``taps`` consecutive features."""
    if alive is None:
        return None
    return alive.repeat_interleave(taps) if taps > 1 else alive


def _replace_everywhere(new: nn.Module, old_module: nn.Module, old_model: nn.Module, replacement: nn.Module) -> None:
    """Put ``replacement`` at every place of ``new`` that holds the copy of ``old_module``."""
    places = [name for name, module in old_model.named_modules(remove_duplicate=False) if module is old_module]
    for name in places:
        if name == "":
            raise ModelError("the model is itself a single layer; there is nothing to compact around it")
        parent_name, _, attr = name.rpartition(".")
        parent = new.get_submodule(parent_name) if parent_name else new
        parent._modules[attr] = replacement


def _slice_weighted(layer: _Layer, out_keep: torch.Tensor | None, in_keep: torch.Tensor | None) -> nn.Module:
    weight, bias = layer.weight, layer.bias
    if out_keep is not None:
        weight, bias = weight[out_keep], bias[out_keep]
    return _dense_like(layer.module, weight, bias, layer.needs_bias)


def _slice_inputs(module: nn.Module, in_keep: torch.Tensor | None) -> nn.Module:
    if in_keep is None:
        return module
    assert isinstance(module, (nn.Linear, nn.Conv2d))
    weight = module.weight.detach()[:, in_keep]
    bias = module.bias.detach() if module.bias is not None else weight.new_zeros(weight.shape[0])
    return _dense_like(module, weight, bias, module.bias is not None)


def _dense_like(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor, needs_bias: bool) -> nn.Module:
    """A new layer of ``layer``'s kind holding exactly ``weight`` and ``bias``."""
    has_bias = needs_bias or bool((bias != 0).any())
    factory = {"device": weight.device, "dtype": weight.dtype}
    new: nn.Linear | nn.Conv2d
    if isinstance(layer, nn.Conv2d):
        new = nn.Conv2d(
            weight.shape[0] if layer.groups > 1 else weight.shape[1],  # depthwise: one input per channel
            weight.shape[0],
            layer.kernel_size,  # type: ignore[arg-type]  # (kh, kw), typed as tuple[int, ...]
            stride=layer.stride,  # type: ignore[arg-type]
            padding=layer.padding,  # type: ignore[arg-type]
            dilation=layer.dilation,  # type: ignore[arg-type]
            groups=layer.groups if layer.groups == 1 else weight.shape[0],
            bias=has_bias,
            padding_mode=layer.padding_mode,
            **factory,
        )
    else:
        assert isinstance(layer, nn.Linear)
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias, **factory)
    with torch.no_grad():
        new.weight.copy_(weight)
        if new.bias is not None:
            new.bias.copy_(bias)
    new.train(layer.training)
    return new


def _slice_channelwise(module: nn.Module, keep: torch.Tensor | None) -> nn.Module:
    """A BatchNorm or depthwise Conv2d restricted to the ``keep`` channels."""
    if isinstance(module, nn.Conv2d):
        layer = _Layer(module)
        if keep is None:
            return _dense_like(module, layer.weight, layer.bias, layer.needs_bias)
        return _dense_like(module, layer.weight[keep], layer.bias[keep], layer.needs_bias)
    new = copy.deepcopy(module)
    if keep is None:
        return new
    new.num_features = int(keep.sum())  # type: ignore[assignment]
    with torch.no_grad():
        for attr in ("weight", "bias"):
            param = getattr(module, attr)
            if param is not None:
                setattr(new, attr, nn.Parameter(param.detach()[keep].clone(), requires_grad=param.requires_grad))
        for attr in ("running_mean", "running_var"):
            buffer = getattr(module, attr)
            if buffer is not None:
                setattr(new, attr, buffer[keep].clone())
    return new
