"""The base CNNs: every registered model runs forward and backward; ImageNet models match torchvision's keys."""

import pytest
import torch

from neuroprune.models import create_model, list_models

CIFAR_STYLE = ["vgg11", "vgg16", "resnet20", "resnet56"]


@pytest.mark.parametrize("name", CIFAR_STYLE)
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32)])
def test_cifar_style_forward_backward(name: str, channels: int, size: int) -> None:
    model = create_model(name, in_channels=channels, image_size=size, num_classes=7, width=0.125)
    out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_every_registered_model_runs_forward() -> None:
    # the two large ImageNet models are checked on the meta device below (their keys and shapes)
    for name in [n for n in list_models() if n not in ("vgg16_imagenet", "resnet50_imagenet")]:
        model = create_model(name, in_channels=1, image_size=32, num_classes=10)
        assert model.eval()(torch.randn(1, 1, 32, 32)).shape == (1, 10), name


def test_width_scales_channels() -> None:
    narrow = create_model("vgg16", width=0.25)
    assert narrow.features[0].out_channels == 16 and narrow.classifier.in_features == 128


def test_imagenet_layouts_match_torchvision_keys() -> None:
    with torch.device("meta"):  # shapes and keys only; no memory or initialisation time
        names = ("vgg16_imagenet", "resnet18_imagenet", "resnet50_imagenet")
        vgg, r18, r50 = (create_model(n).state_dict() for n in names)
    assert {"features.0.weight", "features.28.bias", "classifier.0.weight", "classifier.6.weight"} <= set(vgg)
    assert vgg["classifier.6.weight"].shape == (1000, 4096) and len(vgg) == 32
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer4.1.bn2.num_batches_tracked", "fc.weight"} <= set(r18)
    assert len(r18) == 122  # torchvision resnet18: 122 state_dict entries
    assert {"layer1.0.downsample.0.weight", "layer1.0.conv3.weight", "layer4.2.bn3.weight"} <= set(r50)
    assert len(r50) == 320 and r50["fc.weight"].shape == (1000, 2048)
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    total = sum(v.numel() for k, v in r50.items() if not k.endswith(buffers))
    assert total == 25_557_032  # torchvision's resnet50 parameter count
