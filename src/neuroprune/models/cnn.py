"""Small plain CNNs: LeNet-5 and a CIFAR-style conv net, as flat ``nn.Sequential`` chains."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from ._probe import flat_features
from ._registry import register_model
from ._width import scaled


@register_model("lenet5", "LeNet-5 (Caffe variant): conv 20, conv 50, fc 500, fc classes")
def lenet5(
    in_channels: int = 1,
    image_size: int = 28,
    num_classes: int = 10,
    width: float = 1.0,
    channels: tuple[int, int] | None = None,
    hidden: int | None = None,
) -> nn.Sequential:
    """LeNet-5 as in Caffe and Han et al. 2015 (431k parameters on MNIST), with ReLU after each conv.

    Images smaller than 16 pixels (8x8 digits) use padded convolutions so that the
    two 5x5 convolutions and two poolings still fit. ``channels`` and ``hidden`` set the
    two conv widths and the hidden width exactly (e.g. the shape a pruned model ended
    with); otherwise ``width`` scales 20, 50 and 500.
    """
    c1, c2 = (int(channels[0]), int(channels[1])) if channels is not None else (scaled(20, width), scaled(50, width))
    hidden = int(hidden) if hidden is not None else scaled(500, width)
    if min(c1, c2, hidden) < 1:
        raise ValueError(f"channels and hidden must be positive, got {(c1, c2)} and {hidden}")
    pad = 2 if image_size < 16 else 0
    features = nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(in_channels, c1, 5, padding=pad)),
                ("relu1", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("conv2", nn.Conv2d(c1, c2, 5, padding=pad)),
                ("relu2", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
            ]
        )
    )
    n_flat = flat_features(features, in_channels, image_size)
    head = [
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(n_flat, hidden)),
        ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(hidden, num_classes)),
    ]
    return nn.Sequential(OrderedDict(list(features.named_children()) + head))


@register_model("cifar_cnn", "conv 32-32-64-64 feature extractor with a 512-unit FC head, for 32x32 colour images")
def cifar_cnn(in_channels: int = 3, image_size: int = 32, num_classes: int = 10, width: float = 1.0) -> nn.Sequential:
    """A plain CIFAR-10 CNN: two conv-conv-pool stages and a two-layer fully connected head."""
    c1, c2, hidden = scaled(32, width), scaled(64, width), scaled(512, width)
    features = nn.Sequential(
        OrderedDict(
            [
                ("conv1", nn.Conv2d(in_channels, c1, 3, padding=1)),
                ("relu1", nn.ReLU()),
                ("conv2", nn.Conv2d(c1, c1, 3, padding=1)),
                ("relu2", nn.ReLU()),
                ("pool1", nn.MaxPool2d(2)),
                ("conv3", nn.Conv2d(c1, c2, 3, padding=1)),
                ("relu3", nn.ReLU()),
                ("conv4", nn.Conv2d(c2, c2, 3, padding=1)),
                ("relu4", nn.ReLU()),
                ("pool2", nn.MaxPool2d(2)),
            ]
        )
    )
    n_flat = flat_features(features, in_channels, image_size)
    head = [
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(n_flat, hidden)),
        ("relu5", nn.ReLU()),
        ("fc2", nn.Linear(hidden, num_classes)),
    ]
    return nn.Sequential(OrderedDict(list(features.named_children()) + head))
