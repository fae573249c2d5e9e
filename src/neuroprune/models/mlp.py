"""Fully connected classifiers (LeNet-300-100 by default)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from torch import nn

from ._registry import register_model


@register_model("mlp", "LeNet-300-100: fully connected, hidden widths 300 and 100 by default")
def mlp(
    in_channels: int = 1,
    image_size: int = 28,
    num_classes: int = 10,
    hidden: Sequence[int] = (300, 100),
) -> nn.Sequential:
    """LeNet-300-100 (Han et al. 2015's MNIST baseline) with configurable hidden widths.

    The input image is flattened, so the input width adapts to the data set
    (64 for 8x8 digits, 784 for 28x28 MNIST).
    """
    if not hidden or any(int(w) < 1 for w in hidden):
        raise ValueError(f"hidden widths must be positive integers, got {list(hidden)}")
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    width = in_channels * image_size * image_size
    for index, out in enumerate(hidden, start=1):
        layers += [(f"fc{index}", nn.Linear(width, int(out))), (f"relu{index}", nn.ReLU())]
        width = int(out)
    layers.append((f"fc{len(hidden) + 1}", nn.Linear(width, num_classes)))
    return nn.Sequential(OrderedDict(layers))
