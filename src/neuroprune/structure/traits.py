"""The one table of standard layer kinds: what each does to its input's channels.

Every part of neuroprune that walks a network (compaction, unit pruning, depth cuts, the
saved-model spec, sparse export) asks this table, so they agree on what a layer is.

Roles:

- ``weighted``: Linear and Conv2d. Mix channels: they read input channels through weight
  columns and write output channels through weight rows (a depthwise Conv2d keeps channel
  ``c`` on channel ``c`` instead).
- ``norm``: per-channel affine maps (BatchNorm).
- ``activation``: elementwise functions of each value.
- ``pool``: reduce space, keep channels; a constant channel stays the same constant.
- ``passthrough``: return their input's values (Dropout at inference, Identity).
- ``flatten``: lay channels out as consecutive features, ``c * H * W + s``.
- ``pad``: zero padding around each map; a constant channel stays constant only if it is 0.
- ``resample``: interpolation to another size; a constant channel stays the same constant.
- ``normalize``: normalisation over several channels at once (GroupNorm, LayerNorm): every
  channel changes the others' statistics, so their channels are never removed.

Arguments: a trait lists every constructor argument of its layer. ``spec_args`` are always
written to a saved spec; ``optional_args`` only when they differ from their default (so a
spec stays readable by a PyTorch that lacks the argument). An argument the table does not
list (one a later PyTorch adds) that differs from its default makes the layer unsavable
and keeps its channels whole in compaction (:func:`unlisted_args`), never silently dropped.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any

from torch import nn

ROLES = ("weighted", "norm", "activation", "pool", "passthrough", "flatten", "pad", "resample", "normalize")


@dataclass(frozen=True)
class LayerTrait:
    """What one standard layer kind does, and how it is described in a saved spec.

    Attributes:
        role: one of :data:`ROLES`.
        spec_args: the constructor arguments read back from an instance and always saved.
        allocates: its forward returns a new tensor, never a view of its input, so a
            following ReLU may work in place.
        optional_args: further constructor arguments, saved only when they differ from
            their default (``bias`` is saved as whether the layer has one).
        aliases: deprecated constructor arguments that only set one of the above; never
            stored on the instance, so never read.
    """

    role: str
    spec_args: tuple[str, ...] = ()
    allocates: bool = False
    optional_args: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


_NORM_ARGS = ("num_features", "eps", "momentum", "affine", "track_running_stats")
_INPLACE = ("inplace",)

TRAITS: dict[type[nn.Module], LayerTrait] = {
    nn.Linear: LayerTrait("weighted", ("in_features", "out_features", "bias"), allocates=True),
    nn.Conv2d: LayerTrait(
        "weighted",
        ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias",
         "padding_mode"),
        allocates=True,
    ),
    nn.BatchNorm1d: LayerTrait("norm", _NORM_ARGS, allocates=True, optional_args=("bias",)),
    nn.BatchNorm2d: LayerTrait("norm", _NORM_ARGS, allocates=True, optional_args=("bias",)),
    nn.ReLU: LayerTrait("activation", optional_args=_INPLACE),
    nn.ReLU6: LayerTrait("activation", optional_args=_INPLACE),
    nn.LeakyReLU: LayerTrait("activation", ("negative_slope",), optional_args=_INPLACE),
    nn.GELU: LayerTrait("activation", ("approximate",), allocates=True),
    nn.ELU: LayerTrait("activation", ("alpha",), allocates=True, optional_args=_INPLACE),
    nn.SiLU: LayerTrait("activation", (), allocates=True, optional_args=_INPLACE),
    nn.Hardswish: LayerTrait("activation", (), allocates=True, optional_args=_INPLACE),
    nn.Hardtanh: LayerTrait("activation", ("min_val", "max_val"), optional_args=_INPLACE,
                            aliases=("min_value", "max_value")),
    nn.Tanh: LayerTrait("activation", (), allocates=True),
    nn.Sigmoid: LayerTrait("activation", (), allocates=True),
    nn.MaxPool2d: LayerTrait("pool", ("kernel_size", "stride", "padding", "dilation", "ceil_mode"), allocates=True,
                             optional_args=("return_indices",)),
    nn.AvgPool2d: LayerTrait("pool", ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
                             allocates=True, optional_args=("divisor_override",)),
    nn.AdaptiveAvgPool2d: LayerTrait("pool", ("output_size",), allocates=True),
    nn.AdaptiveMaxPool2d: LayerTrait("pool", ("output_size",), allocates=True, optional_args=("return_indices",)),
    nn.Dropout: LayerTrait("passthrough", ("p",), optional_args=_INPLACE),
    nn.Identity: LayerTrait("passthrough"),
    nn.Flatten: LayerTrait("flatten", ("start_dim", "end_dim")),
    nn.ZeroPad2d: LayerTrait("pad", ("padding",), allocates=True),
    nn.Upsample: LayerTrait("resample", ("size", "scale_factor", "mode", "align_corners"), allocates=True,
                            optional_args=("recompute_scale_factor",)),
    nn.GroupNorm: LayerTrait("normalize", ("num_groups", "num_channels", "eps", "affine"), allocates=True,
                             optional_args=("bias",)),
    nn.LayerNorm: LayerTrait("normalize", ("normalized_shape", "eps", "elementwise_affine"), allocates=True,
                             optional_args=("bias",)),
}

BY_NAME: dict[str, type[nn.Module]] = {cls.__name__: cls for cls in TRAITS}


def trait_of(module: nn.Module) -> LayerTrait | None:
    """The trait of a standard layer (exact type, not a subclass that may change forward), or None."""
    return TRAITS.get(type(module))


def constructor_defaults(cls: type[nn.Module]) -> dict[str, Any]:
    """Each named constructor argument of ``cls`` (device and dtype aside) -> its default (``inspect.Parameter.empty``
    when it has none)."""
    return _constructor_defaults(cls)


@functools.cache
def _constructor_defaults(cls: type[nn.Module]) -> dict[str, Any]:
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in parameters
            if p.name not in ("self", "device", "dtype") and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def argument_value(module: nn.Module, name: str) -> Any:
    """The value of constructor argument ``name`` as the instance holds it (``bias``: whether it has one)."""
    if name == "bias":
        return getattr(module, "bias", None) is not None
    return getattr(module, name)


def unlisted_args(module: nn.Module) -> dict[str, Any]:
    """Constructor arguments of a standard layer that the table does not list and that differ from their default.

    Empty for every layer the table fully describes. A non-empty result means the layer
    computes something the table cannot say (a newer PyTorch's argument): it cannot be
    saved, and compaction keeps its channels whole.
    """
    trait = trait_of(module)
    if trait is None:
        return {}
    listed = {*trait.spec_args, *trait.optional_args, *trait.aliases}
    unlisted = {}
    for name, default in constructor_defaults(type(module)).items():
        if name in listed or not hasattr(module, name):
            continue
        value = getattr(module, name)
        if default is inspect.Parameter.empty or not _same_value(value, default):
            unlisted[name] = value
    return unlisted


def saved_args(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments that rebuild a standard layer: every spec argument, and each optional
    argument that differs from its default. Call :func:`unlisted_args` first; this does not check."""
    trait = trait_of(module)
    assert trait is not None
    args = {name: argument_value(module, name) for name in trait.spec_args}
    defaults = constructor_defaults(type(module))
    for name in trait.optional_args:
        if name in defaults and not _same_value(argument_value(module, name), defaults[name]):
            args[name] = argument_value(module, name)
    return args


def _same_value(value: Any, default: Any) -> bool:
    try:
        return type(value) is type(default) and bool(value == default) or (value is default)
    except (TypeError, RuntimeError, ValueError):  # a tensor, or a type without equality
        return False


def has_role(module: nn.Module, *roles: str) -> bool:
    """True when ``module`` is a standard layer of one of ``roles``."""
    trait = trait_of(module)
    return trait is not None and trait.role in roles


def is_depthwise(module: nn.Module) -> bool:
    """A Conv2d that maps channel ``c`` to channel ``c`` alone (groups == in == out channels)."""
    return (
        isinstance(module, nn.Conv2d)
        and module.groups > 1
        and module.groups == module.in_channels == module.out_channels
    )
