"""ImageNet VGG-16 and ResNet-18/50 with torchvision's state_dict layout, for transfer learning.

torchvision is not a dependency: the architectures are written here so that a torchvision
weights file (``vgg16-397923af.pth``, ``resnet50-0676ba61.pth``, or the same tensors as
safetensors) loads key for key. The 1000-class head is then replaced by a fresh one for
the target data set. Files are read with safetensors or ``torch.load(weights_only=True)``;
nothing is ever unpickled as code and nothing is downloaded.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from ..saved_models import load_matching_state
from ..storage import load_torch
from ._registry import register_model
from .resnet import resnet

log = logging.getLogger(__name__)

_VGG16: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
IMAGENET_CLASSES = 1000


def vgg16_body(in_channels: int = 3, num_classes: int = IMAGENET_CLASSES) -> nn.Sequential:
    """torchvision's ``vgg16`` (no batch norm): ``features.0`` ... ``features.30``, ``classifier.0`` ... ``.6``."""
    layers: list[nn.Module] = []
    channels = in_channels
    for item in _VGG16:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            channels = int(item)
    classifier = nn.Sequential(
        nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(),
        nn.Linear(4096, num_classes),
    )
    return nn.Sequential(
        OrderedDict(
            [("features", nn.Sequential(*layers)), ("avgpool", nn.AdaptiveAvgPool2d(7)), ("flatten", nn.Flatten()),
             ("classifier", classifier)]
        )
    )


def resnet18_body(in_channels: int = 3, num_classes: int = IMAGENET_CLASSES) -> nn.Sequential:
    """torchvision's ``resnet18``: ``conv1``, ``bn1``, ``layer1.0.conv1`` ..., ``fc``."""
    return resnet([2, 2, 2, 2], [64, 128, 256, 512], in_channels=in_channels, num_classes=num_classes,
                  imagenet_stem=True)


def resnet50_body(in_channels: int = 3, num_classes: int = IMAGENET_CLASSES) -> nn.Sequential:
    """torchvision's ``resnet50`` (v1.5, stride in the 3x3 conv), bottleneck blocks."""
    return resnet(
        [3, 4, 6, 3], [64, 128, 256, 512], in_channels=in_channels, num_classes=num_classes,
        bottleneck_blocks=True, imagenet_stem=True,
    )


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a ``torch.save`` file of plain tensors.

    Raises:
        ModelError: the file is missing, unreadable, or not a flat mapping of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist; pass the path of a torchvision state_dict file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"{path} is not a valid safetensors file: {exc}") from None
    state = load_torch(path)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
    return state


def _transfer(
    model: nn.Sequential, head: str, weights: str | Path | None, in_channels: int, num_classes: int
) -> nn.Sequential:
    """Load ImageNet weights into ``model`` (built for 3 channels and 1000 classes), then adapt it."""
    if weights is not None:
        load_matching_state(model, load_state_file(weights), source=str(weights))
    first_name = "features.0" if "features" in dict(model.named_children()) else "conv1"
    return adapt_input_and_head(model, first_name, head, in_channels, num_classes)


def adapt_input_and_head(model: nn.Sequential, first_name: str, head: str, in_channels: int,
                         num_classes: int) -> nn.Sequential:
    """Fit an ImageNet network to the target data: grey input and a fresh head where needed.

    A grey-scale target (``in_channels=1``) gets the first conv's kernels summed over RGB,
    which equals feeding the grey image to all three colour channels.

    Raises:
        ModelError: ``in_channels`` is neither 1 nor 3.
    """
    if in_channels not in (1, 3):
        raise ModelError(f"an ImageNet network takes 1 (grey) or 3 (colour) input channels, not {in_channels}")
    if in_channels != 3:
        first = model.get_submodule(first_name)
        assert isinstance(first, nn.Conv2d)
        new = nn.Conv2d(in_channels, first.out_channels, first.kernel_size, first.stride, first.padding,  # type: ignore[arg-type]
                        bias=first.bias is not None)
        with torch.no_grad():
            if in_channels == 1:
                new.weight.copy_(first.weight.sum(dim=1, keepdim=True))
            if first.bias is not None and new.bias is not None:
                new.bias.copy_(first.bias)
        _replace(model, first_name, new)
    if num_classes != IMAGENET_CLASSES:
        old = model.get_submodule(head)
        assert isinstance(old, nn.Linear)
        _replace(model, head, nn.Linear(old.in_features, num_classes))
        log.info("replaced the %d-class head %s with a fresh %d-class one", old.out_features, head, num_classes)
    return model


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


@register_model("vgg16_imagenet", "torchvision-layout VGG-16 (ImageNet); weights=PATH, new head for num_classes")
def vgg16_imagenet(
    in_channels: int = 3, image_size: int = 224, num_classes: int = IMAGENET_CLASSES, weights: str | None = None
) -> nn.Sequential:
    """VGG-16 with torchvision's keys (``features.0.weight`` ... ``classifier.6.weight``).

    Args:
        in_channels: 3, or 1 (RGB kernels summed for grey images).
        image_size: unused (adaptive 7x7 pooling accepts any size of 32 pixels or more).
        num_classes: classes of the target data set; anything but 1000 gets a new head.
        weights: a torchvision state_dict file (``.pth``/``.pt`` or ``.safetensors``).
    """
    del image_size
    return _transfer(vgg16_body(), "classifier.6", weights, in_channels, num_classes)


@register_model("resnet18_imagenet", "torchvision-layout ResNet-18 (ImageNet); weights=PATH, new head")
def resnet18_imagenet(
    in_channels: int = 3, image_size: int = 224, num_classes: int = IMAGENET_CLASSES, weights: str | None = None
) -> nn.Sequential:
    """ResNet-18 with torchvision's keys (``conv1.weight``, ``layer1.0.conv1.weight``, ``fc.weight``)."""
    del image_size
    return _transfer(resnet18_body(), "fc", weights, in_channels, num_classes)


@register_model("resnet50_imagenet", "torchvision-layout ResNet-50 (ImageNet); weights=PATH, new head")
def resnet50_imagenet(
    in_channels: int = 3, image_size: int = 224, num_classes: int = IMAGENET_CLASSES, weights: str | None = None
) -> nn.Sequential:
    """ResNet-50 with torchvision's keys (``layer1.0.downsample.0.weight``, ``fc.weight``, ...)."""
    del image_size
    return _transfer(resnet50_body(), "fc", weights, in_channels, num_classes)
