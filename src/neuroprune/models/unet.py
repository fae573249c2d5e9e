"""A U-Net-like classifier: an encoder, a lower path, and a skip joined to it by concatenation.

``enc`` (two conv-BN-ReLU at full size) feeds both the lower path (max pool, ``mid`` at half
size, nearest upsampling) and the skip; the two meet in ``torch.cat`` along channels, then
``dec`` (two conv-BN-ReLU), global average pooling and a linear head. Its forward is not a
chain: every value between the encoder and the concatenation is skipped over, so depth
pruning sees the whole lower path as one block that a translator can replace.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from ._registry import register_model
from ._width import scaled


def _double_conv(inputs: int, outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels_in in (inputs, outputs):
        layers += [nn.Conv2d(channels_in, outputs, 3, padding=1, bias=False), nn.BatchNorm2d(outputs),
                   nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class UNetSkip(nn.Module):
    """Encoder, pooled lower path, upsampling, concatenated skip, decoder, classification head.

    Args:
        in_channels: image channels.
        num_classes: outputs of the head.
        channels: (encoder, lower path) widths; the decoder is as wide as the encoder.
    """

    def __init__(self, in_channels: int, num_classes: int, channels: tuple[int, int]) -> None:
        super().__init__()
        outer, inner = channels
        self.enc = _double_conv(in_channels, outer)
        self.down = nn.MaxPool2d(2)
        self.mid = _double_conv(outer, inner)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec = _double_conv(inner + outer, outer)
        self.head = nn.Sequential(OrderedDict([("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                                               ("fc", nn.Linear(outer, num_classes))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.enc(x)  # (N, C1, H, W)
        lower = self.up(self.mid(self.down(skip)))  # (N, C2, H/2, W/2) -> (N, C2, H, W)
        return self.head(self.dec(torch.cat([lower, skip], dim=1)))  # (N, C2 + C1, H, W) -> (N, classes)


@register_model("unet_skip", "U-Net-like classifier: encoder 16, pooled path 32, concatenated skip, decoder 16")
def unet_skip(in_channels: int = 1, image_size: int = 28, num_classes: int = 10, width: float = 1.0) -> UNetSkip:
    """A one-level U-Net with a classification head; ``width`` scales the 16/32 channels."""
    if image_size % 2:
        raise ValueError(f"unet_skip pools by 2 and upsamples back, so image_size must be even, got {image_size}")
    return UNetSkip(in_channels, num_classes, (scaled(16, width), scaled(32, width)))
