"""Residual networks: one generic residual block, CIFAR ResNet-20/56 and ImageNet ResNet-18/50 bodies.

Blocks keep torchvision's attribute names (``conv1``, ``bn1``, ``downsample.0``, ...) so
state_dict keys match torchvision's layout; whole networks are ``nn.Sequential`` chains
(``conv1``, ``bn1``, ``relu``, [``maxpool``], ``layer1`` ..., ``avgpool``, ``flatten``, ``fc``)
whose keys are the same as torchvision's ``ResNet`` module.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from ._registry import register_model
from ._width import scaled


class Block(nn.Module):
    """Named submodules run in order as one unit (a depth cut keeps it or removes it whole).

    Unlike an ``nn.Sequential``, the order is a list of names, so a module may run twice
    (torchvision's blocks reuse one ReLU) and the submodules keep the attribute names a
    weights file expects.

    Args:
        modules: the submodules, by attribute name.
        body: names run in order.
    """

    def __init__(self, modules: dict[str, nn.Module], body: Sequence[str]) -> None:
        super().__init__()
        for name, module in modules.items():
            self.add_module(name, module)
        missing = [n for n in body if n not in modules]
        if missing:
            raise ValueError(f"block refers to unknown submodules {missing}")
        self.body = list(body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in self.body:
            x = getattr(self, name)(x)
        return x


class Residual(Block):
    """``post(body(x) + shortcut(x))``: a :class:`Block` with a skip connection.

    Args:
        modules: the submodules, by attribute name.
        body: names run in order on the main path.
        shortcut: name of the module on the skip path, or ``None`` for the identity.
        post: name of the module applied after the sum (usually the ReLU), or ``None``.

    Example:
        >>> block = basic_block(16, 32, stride=2)
        >>> block(torch.zeros(1, 16, 8, 8)).shape
        torch.Size([1, 32, 4, 4])
    """

    def __init__(
        self, modules: dict[str, nn.Module], body: Sequence[str], shortcut: str | None = None, post: str | None = None
    ) -> None:
        super().__init__(modules, body)
        missing = [n for n in (shortcut, post) if n is not None and n not in modules]
        if missing:
            raise ValueError(f"residual block refers to unknown submodules {missing}")
        self.shortcut, self.post = shortcut, post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        skip = x if self.shortcut is None else getattr(self, self.shortcut)(x)
        out = out + skip
        return out if self.post is None else getattr(self, self.post)(out)


def basic_block(inplanes: int, planes: int, stride: int = 1) -> Residual:
    """Two 3x3 convs (torchvision's ``BasicBlock``); a 1x1 conv + BN shortcut where shapes change."""
    modules: dict[str, nn.Module] = {
        "conv1": nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False),
        "bn1": nn.BatchNorm2d(planes),
        "relu": nn.ReLU(inplace=True),
        "conv2": nn.Conv2d(planes, planes, 3, padding=1, bias=False),
        "bn2": nn.BatchNorm2d(planes),
    }
    shortcut = _downsample(modules, inplanes, planes, stride)
    return Residual(modules, ["conv1", "bn1", "relu", "conv2", "bn2"], shortcut, "relu")


def bottleneck(inplanes: int, planes: int, stride: int = 1, expansion: int = 4) -> Residual:
    """1x1 reduce, 3x3 (strided, as torchvision's ResNet v1.5), 1x1 expand to ``planes * expansion``."""
    out = planes * expansion
    modules: dict[str, nn.Module] = {
        "conv1": nn.Conv2d(inplanes, planes, 1, bias=False),
        "bn1": nn.BatchNorm2d(planes),
        "conv2": nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False),
        "bn2": nn.BatchNorm2d(planes),
        "conv3": nn.Conv2d(planes, out, 1, bias=False),
        "bn3": nn.BatchNorm2d(out),
        "relu": nn.ReLU(inplace=True),
    }
    shortcut = _downsample(modules, inplanes, out, stride)
    return Residual(modules, ["conv1", "bn1", "relu", "conv2", "bn2", "relu", "conv3", "bn3"], shortcut, "relu")


def _downsample(modules: dict[str, nn.Module], inplanes: int, out: int, stride: int) -> str | None:
    if stride == 1 and inplanes == out:
        return None
    # (torchvision's option B shortcut; the original CIFAR ResNet used zero padding, option A)
    modules["downsample"] = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
    return "downsample"


def resnet(
    blocks: Sequence[int],
    planes: Sequence[int],
    *,
    in_channels: int,
    num_classes: int,
    bottleneck_blocks: bool = False,
    imagenet_stem: bool = False,
) -> nn.Sequential:
    """Assemble a ResNet as a Sequential with torchvision's top-level names.

    Args:
        blocks: residual blocks per stage, e.g. ``[3, 3, 3]`` for ResNet-20.
        planes: base channels per stage; stages after the first halve the resolution.
        in_channels: image channels.
        num_classes: outputs of ``fc``.
        bottleneck_blocks: use bottleneck blocks (expansion 4) instead of basic blocks.
        imagenet_stem: 7x7 stride-2 conv + 3x3 max pool (ImageNet) instead of one 3x3 conv.
    """
    expansion = 4 if bottleneck_blocks else 1
    stem = planes[0]
    layers: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Conv2d(in_channels, stem, 7 if imagenet_stem else 3, 2 if imagenet_stem else 1,
                            3 if imagenet_stem else 1, bias=False)),
        ("bn1", nn.BatchNorm2d(stem)),
        ("relu", nn.ReLU(inplace=True)),
    ]
    if imagenet_stem:
        layers.append(("maxpool", nn.MaxPool2d(3, stride=2, padding=1)))
    channels = stem
    for stage, (count, width) in enumerate(zip(blocks, planes, strict=True), start=1):
        stage_blocks = []
        for index in range(count):
            stride = 2 if stage > 1 and index == 0 else 1
            block = bottleneck(channels, width, stride) if bottleneck_blocks else basic_block(channels, width, stride)
            stage_blocks.append(block)
            channels = width * expansion
        layers.append((f"layer{stage}", nn.Sequential(*stage_blocks)))
    layers += [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
               ("fc", nn.Linear(channels, num_classes))]
    model = nn.Sequential(OrderedDict(layers))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return model


def _cifar_resnet(depth: int, in_channels: int, num_classes: int, width: float) -> nn.Sequential:
    per_stage = (depth - 2) // 6
    planes = [scaled(c, width) for c in (16, 32, 64)]
    return resnet([per_stage] * 3, planes, in_channels=in_channels, num_classes=num_classes)


@register_model("resnet20", "ResNet-20, CIFAR-style: 3 stages of 3 basic blocks (16-32-64 channels)")
def resnet20(in_channels: int = 3, image_size: int = 32, num_classes: int = 10, width: float = 1.0) -> nn.Sequential:
    """ResNet-20 (He et al. 2016, CIFAR); ``width`` scales the 16/32/64 stage channels."""
    del image_size  # global pooling makes the network size-agnostic
    return _cifar_resnet(20, in_channels, num_classes, width)


@register_model("resnet56", "ResNet-56, CIFAR-style: 3 stages of 9 basic blocks (16-32-64 channels)")
def resnet56(in_channels: int = 3, image_size: int = 32, num_classes: int = 10, width: float = 1.0) -> nn.Sequential:
    """ResNet-56 (He et al. 2016, CIFAR); ``width`` scales the 16/32/64 stage channels."""
    del image_size
    return _cifar_resnet(56, in_channels, num_classes, width)
