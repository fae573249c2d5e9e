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
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

ROLES = ("weighted", "norm", "activation", "pool", "passthrough", "flatten", "pad", "resample")


@dataclass(frozen=True)
class LayerTrait:
    """What one standard layer kind does, and how it is described in a saved spec.

    Attributes:
        role: one of :data:`ROLES`.
        spec_args: the constructor arguments read back from an instance to rebuild it
            (every argument that changes the output).
        allocates: its forward returns a new tensor, never a view of its input, so a
            following ReLU may work in place.
    """

    role: str
    spec_args: tuple[str, ...] = ()
    allocates: bool = False


_NORM_ARGS = ("num_features", "eps", "momentum", "affine", "track_running_stats")

TRAITS: dict[type[nn.Module], LayerTrait] = {
    nn.Linear: LayerTrait("weighted", ("in_features", "out_features", "bias"), allocates=True),
    nn.Conv2d: LayerTrait(
        "weighted",
        ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias",
         "padding_mode"),
        allocates=True,
    ),
    nn.BatchNorm1d: LayerTrait("norm", _NORM_ARGS, allocates=True),
    nn.BatchNorm2d: LayerTrait("norm", _NORM_ARGS, allocates=True),
    nn.ReLU: LayerTrait("activation"),
    nn.ReLU6: LayerTrait("activation"),
    nn.LeakyReLU: LayerTrait("activation", ("negative_slope",)),
    nn.GELU: LayerTrait("activation", ("approximate",), allocates=True),
    nn.ELU: LayerTrait("activation", ("alpha",), allocates=True),
    nn.SiLU: LayerTrait("activation", (), allocates=True),
    nn.Hardswish: LayerTrait("activation", (), allocates=True),
    nn.Hardtanh: LayerTrait("activation", ("min_val", "max_val")),
    nn.Tanh: LayerTrait("activation", (), allocates=True),
    nn.Sigmoid: LayerTrait("activation", (), allocates=True),
    nn.MaxPool2d: LayerTrait("pool", ("kernel_size", "stride", "padding", "dilation", "ceil_mode"), allocates=True),
    nn.AvgPool2d: LayerTrait("pool", ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
                             allocates=True),
    nn.AdaptiveAvgPool2d: LayerTrait("pool", ("output_size",), allocates=True),
    nn.AdaptiveMaxPool2d: LayerTrait("pool", ("output_size",), allocates=True),
    nn.Dropout: LayerTrait("passthrough", ("p",)),
    nn.Identity: LayerTrait("passthrough"),
    nn.Flatten: LayerTrait("flatten", ("start_dim", "end_dim")),
    nn.ZeroPad2d: LayerTrait("pad", ("padding",), allocates=True),
    nn.Upsample: LayerTrait("resample", ("size", "scale_factor", "mode", "align_corners"), allocates=True),
}

BY_NAME: dict[str, type[nn.Module]] = {cls.__name__: cls for cls in TRAITS}


def trait_of(module: nn.Module) -> LayerTrait | None:
    """The trait of a standard layer (exact type, not a subclass that may change forward), or None."""
    return TRAITS.get(type(module))


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
