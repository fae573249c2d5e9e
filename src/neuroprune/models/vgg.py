"""CIFAR-style VGG with batch norm (VGG-11, VGG-16) for 28- or 32-pixel images.

Layout follows torchvision's ``vgg*_bn``: ``features`` (conv, bn, relu, ..., max pool),
then a global average pool, flatten and one linear ``classifier`` (the CIFAR variant has no
4096-wide head). Every part is an ``nn.Sequential``, so depth pruning can walk the chain.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ._registry import register_model
from ._width import scaled

# "M" is a 2x2 max pool; numbers are output channels at width 1.
_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


def vgg_cifar(config: list[int | str], in_channels: int, num_classes: int, width: float) -> nn.Sequential:
    """Build a batch-normalised VGG from a channel list (``"M"`` marks a max pool).

    Pools use ``ceil_mode=True`` so that 28-pixel inputs go 28-14-7-4-2-1 instead of
    reaching zero; on 32-pixel inputs this changes nothing (32-16-8-4-2-1).
    """
    layers: list[nn.Module] = []
    channels = in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
            continue
        out = scaled(int(item), width)
        layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
        channels = out
    return nn.Sequential(
        OrderedDict(
            [
                ("features", nn.Sequential(*layers)),
                ("avgpool", nn.AdaptiveAvgPool2d(1)),  # 1x1 already at 28/32 px; keeps other sizes working
                ("flatten", nn.Flatten()),
                ("classifier", nn.Linear(channels, num_classes)),
            ]
        )
    )


@register_model("vgg11", "VGG-11 with batch norm, CIFAR-style (8 convs, global pool, one linear head)")
def vgg11(in_channels: int = 3, image_size: int = 32, num_classes: int = 10, width: float = 1.0) -> nn.Sequential:
    """VGG-11-BN for small images; ``width`` scales every conv's channels (64 * width, ...)."""
    _check_size(image_size)
    return vgg_cifar(_CONFIGS["vgg11"], in_channels, num_classes, width)


@register_model("vgg16", "VGG-16 with batch norm, CIFAR-style (13 convs, global pool, one linear head)")
def vgg16(in_channels: int = 3, image_size: int = 32, num_classes: int = 10, width: float = 1.0) -> nn.Sequential:
    """VGG-16-BN for small images; ``width`` scales every conv's channels (64 * width, ...)."""
    _check_size(image_size)
    return vgg_cifar(_CONFIGS["vgg16"], in_channels, num_classes, width)


def _check_size(image_size: int) -> None:
    # Ceil-mode pooling keeps a 1x1 map at 1x1, so any size works; tiny ones learn little.
    if image_size < 8:
        raise ValueError(f"VGG needs images of at least 8 pixels, got {image_size}; pad smaller images (pad_to=8)")
