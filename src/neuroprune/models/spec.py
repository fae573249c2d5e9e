"""Architecture specs: a JSON-able description that rebuilds a plain sequential model.

A compacted model has layer widths no factory knows, so it is saved as weights
(safetensors) plus this spec. Rebuilding needs no pickled code and no original model.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from torch import nn

from ..errors import ModelError

# type name -> (class, constructor attributes read back from an instance)
_LAYERS: dict[str, tuple[type[nn.Module], tuple[str, ...]]] = {
    "Linear": (nn.Linear, ("in_features", "out_features")),
    "Conv2d": (
        nn.Conv2d,
        ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode"),
    ),
    "BatchNorm1d": (nn.BatchNorm1d, ("num_features", "eps", "momentum", "affine", "track_running_stats")),
    "BatchNorm2d": (nn.BatchNorm2d, ("num_features", "eps", "momentum", "affine", "track_running_stats")),
    "ReLU": (nn.ReLU, ()),
    "ReLU6": (nn.ReLU6, ()),
    "LeakyReLU": (nn.LeakyReLU, ("negative_slope",)),
    "GELU": (nn.GELU, ("approximate",)),
    "ELU": (nn.ELU, ("alpha",)),
    "SiLU": (nn.SiLU, ()),
    "Hardtanh": (nn.Hardtanh, ("min_val", "max_val")),
    "Tanh": (nn.Tanh, ()),
    "Sigmoid": (nn.Sigmoid, ()),
    "MaxPool2d": (nn.MaxPool2d, ("kernel_size", "stride", "padding", "dilation", "ceil_mode")),
    "AvgPool2d": (nn.AvgPool2d, ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")),
    "AdaptiveAvgPool2d": (nn.AdaptiveAvgPool2d, ("output_size",)),
    "AdaptiveMaxPool2d": (nn.AdaptiveMaxPool2d, ("output_size",)),
    "Flatten": (nn.Flatten, ("start_dim", "end_dim")),
    "Dropout": (nn.Dropout, ("p",)),
    "Identity": (nn.Identity, ()),
}


def to_spec(model: nn.Sequential) -> dict[str, Any]:
    """Describe a flat ``nn.Sequential`` of standard layers as a JSON-able dict.

    Raises:
        ModelError: the model is not a flat sequential of supported layers.
    """
    if not isinstance(model, nn.Sequential):
        raise ModelError(f"only nn.Sequential models can be described, got {type(model).__name__}")
    layers = []
    # _modules, not named_children(): a module object used twice (one ReLU at two places)
    # must be described at both places, and named_children() yields it only once
    for name, module in model._modules.items():
        assert module is not None  # nn.Sequential holds no None entries
        kind = type(module).__name__
        if kind not in _LAYERS or type(module) is not _LAYERS[kind][0]:
            raise ModelError(f"layer {name!r} of type {kind} cannot be saved as a spec; supported: {', '.join(_LAYERS)}")
        args = {attr: _plain(getattr(module, attr)) for attr in _LAYERS[kind][1]}
        if kind in ("Linear", "Conv2d"):
            args["bias"] = module.bias is not None
        layers.append({"name": name, "type": kind, "args": args})
    return {"format": "neuroprune.sequential/1", "layers": layers}


def from_spec(spec: dict[str, Any]) -> nn.Sequential:
    """Rebuild the (untrained) model a spec describes; load its weights separately.

    Raises:
        ModelError: the spec is malformed or names an unsupported layer.
    """
    if not isinstance(spec, dict) or spec.get("format") != "neuroprune.sequential/1":
        raise ModelError("not a neuroprune architecture spec (expected format 'neuroprune.sequential/1')")
    modules: list[tuple[str, nn.Module]] = []
    for entry in spec.get("layers", []):
        kind = entry.get("type")
        if kind not in _LAYERS:
            raise ModelError(f"spec layer {entry.get('name')!r} has unsupported type {kind!r}")
        args = {key: tuple(v) if isinstance(v, list) else v for key, v in entry.get("args", {}).items()}
        try:
            modules.append((entry["name"], _LAYERS[kind][0](**args)))
        except (TypeError, ValueError, KeyError) as exc:
            raise ModelError(f"spec layer {entry.get('name')!r} ({kind}) is malformed: {exc}") from None
    return nn.Sequential(OrderedDict(modules))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
