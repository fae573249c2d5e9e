"""The translator: the small "intact cortex" that bridges a cut (Camacho et al., 2022).

It maps the origin layer's output (C_A, H_A, W_A) to the input the destination layer
expects (C_B, H_B, W_B): optional max pooling when the spatial sizes differ, then a 1x1
convolution C_A -> C_B and a ReLU.

Pooling rule: the authors use kernel = stride = floor(H_A / H_B). When that does not land
exactly on H_B x W_B (e.g. 7 -> 4 after ceil-mode pooling), an adaptive max pool to
(H_B, W_B) is used instead, which picks the kernel windows itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError


def pooling_for(in_size: Sequence[int], out_size: Sequence[int]) -> nn.Module | None:
    """The pooling that brings an ``in_size`` map to ``out_size`` (None when they are equal).

    Args:
        in_size: (H_A, W_A) of the origin's output.
        out_size: (H_B, W_B) the destination expects.

    Returns:
        ``None``, ``MaxPool2d(k, k)`` with ``k = floor(H_A / H_B)`` when it lands exactly,
        or ``AdaptiveMaxPool2d(out_size)``.

    Raises:
        ConfigError: the destination is larger than the origin (translators never upsample).

    Example:
        >>> pooling_for((32, 32), (8, 8))
        MaxPool2d(kernel_size=4, stride=4, padding=0, dilation=1, ceil_mode=False)
    """
    if tuple(in_size) == tuple(out_size):
        return None
    if in_size[0] < out_size[0] or in_size[1] < out_size[1]:
        raise ConfigError(f"a translator cannot enlarge {in_size} to {out_size}; choose a later destination")
    kernel = (in_size[0] // out_size[0], in_size[1] // out_size[1])
    lands = all(math.floor((i - k) / k) + 1 == o for i, k, o in zip(in_size, kernel, out_size, strict=True))
    if lands and kernel[0] == kernel[1]:
        return nn.MaxPool2d(kernel[0], stride=kernel[0])
    if lands:
        return nn.MaxPool2d(kernel, stride=kernel)
    return nn.AdaptiveMaxPool2d((int(out_size[0]), int(out_size[1])))


def describe_translator(
    in_shape: Sequence[int], out_shape: Sequence[int], kernel_size: int = 1, use_batchnorm: bool = False
) -> str:
    """What a Translator between these shapes is, in one line, without building it.

    Example:
        >>> describe_translator((64, 32, 32), (128, 8, 8))
        'maxpool 4x4 -> conv1x1 64->128 -> relu'
    """
    parts = []
    pool = pooling_for(tuple(in_shape[1:]), tuple(out_shape[1:]))
    if isinstance(pool, nn.MaxPool2d):
        k = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * 2
        parts.append(f"maxpool {k[0]}x{k[1]}")
    elif pool is not None:
        parts.append(f"adaptive maxpool to {out_shape[1]}x{out_shape[2]}")
    parts.append(f"conv{kernel_size}x{kernel_size} {in_shape[0]}->{out_shape[0]}")
    if use_batchnorm:
        parts.append("bn")
    parts.append("relu")
    return " -> ".join(parts)


class Translator(nn.Module):
    """Pooling (if needed) -> conv C_A -> C_B -> [batch norm] -> ReLU.

    Args:
        in_shape: (C_A, H_A, W_A), the origin layer's output for one sample.
        out_shape: (C_B, H_B, W_B), the destination layer's input for one sample.
        kernel_size: 1 (the authors' choice) or 3 (padding 1 keeps the size).
        use_batchnorm: add a BatchNorm2d after the conv (the authors' code has none).

    Attributes:
        in_shape, out_shape, kernel_size, use_batchnorm: as given, for saving and reports.

    Example:
        >>> t = Translator((64, 32, 32), (128, 8, 8))
        >>> t(torch.zeros(2, 64, 32, 32)).shape
        torch.Size([2, 128, 8, 8])
        >>> sum(p.numel() for p in t.parameters())  # C_A * C_B + C_B
        8320
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int],
        out_shape: tuple[int, int, int],
        kernel_size: int = 1,
        use_batchnorm: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size not in (1, 3):
            raise ConfigError(f"translator kernel_size must be 1 or 3, got {kernel_size}")
        self.in_shape = tuple(int(v) for v in in_shape)
        self.out_shape = tuple(int(v) for v in out_shape)
        self.kernel_size, self.use_batchnorm = kernel_size, use_batchnorm
        pool = pooling_for(self.in_shape[1:], self.out_shape[1:])
        if pool is not None:
            self.pool = pool
        # bias is redundant in front of batch norm
        self.conv = nn.Conv2d(self.in_shape[0], self.out_shape[0], kernel_size, padding=kernel_size // 2,
                              bias=not use_batchnorm)
        if use_batchnorm:
            self.bn = nn.BatchNorm2d(self.out_shape[0])
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C_A, H_A, W_A) -> (N, C_A, H_B, W_B) -> (N, C_B, H_B, W_B)
        if hasattr(self, "pool"):
            x = self.pool(x)
        x = self.conv(x)
        if self.use_batchnorm:
            x = self.bn(x)
        return self.act(x)

    def config(self) -> dict[str, Any]:
        """Constructor arguments as plain JSON values (``Translator(**config())`` rebuilds it)."""
        # Channels are read from the conv: channel pruning may have narrowed it since construction.
        return {"in_shape": [self.conv.in_channels, *self.in_shape[1:]],
                "out_shape": [self.conv.out_channels, *self.out_shape[1:]],
                "kernel_size": self.kernel_size, "use_batchnorm": self.use_batchnorm}

    def describe(self) -> str:
        """One line such as ``maxpool 4x4 -> conv1x1 64->128 -> relu``."""
        config = self.config()
        return describe_translator(config["in_shape"], config["out_shape"], self.kernel_size, self.use_batchnorm)

    def extra_repr(self) -> str:
        config = self.config()
        return f"{tuple(config['in_shape'])} -> {tuple(config['out_shape'])}"
