"""Compaction is exact: prune random connections and units, compact, save, load, compare.

Covers every registered model and the cases that broke earlier walkers: a module instance
used twice, reflect padding, BatchNorm1d after a Flatten of conv features, grouped and
depthwise convolutions, a concatenation, and a float64 model.
"""

from collections import OrderedDict

import pytest
import torch
from torch import nn

import neuroprune as npr
from neuroprune import ModelError, compact, load_model, save_model

# small but complete instances: every layer kind the factory uses is there
_OPTIONS = {
    "mlp": {"in_channels": 1, "image_size": 8},
    "lenet5": {"in_channels": 1, "image_size": 12, "width": 0.5},
    "cifar_cnn": {"in_channels": 3, "image_size": 16, "width": 0.25},
    "vgg11": {"in_channels": 3, "image_size": 16, "width": 0.125},
    "vgg16": {"in_channels": 3, "image_size": 16, "width": 0.125},
    "resnet20": {"in_channels": 3, "image_size": 16, "width": 0.5},
    "resnet56": {"in_channels": 3, "image_size": 16, "width": 0.25},
    "resnet18_imagenet": {"in_channels": 3, "image_size": 32, "num_classes": 10},
    "resnet50_imagenet": {"in_channels": 1, "image_size": 32, "num_classes": 10},
    "vgg16_imagenet": {"in_channels": 3, "image_size": 32, "num_classes": 10},
    "efficientnet_lite0": {"in_channels": 1, "image_size": 28, "num_classes": 10, "resolution": 32},
    "vit_tiny": {"in_channels": 1, "image_size": 16, "width": 0.5, "depth": 2},
    "unet_skip": {"in_channels": 3, "image_size": 16, "width": 0.5},
}


def _prune_randomly(model: nn.Module, seed: int = 0) -> None:
    """Zero 60% of connections and 30% of units (their rows), and give BatchNorm real statistics."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                weight = module.weight
                weight.mul_((torch.rand(weight.shape, generator=generator) > 0.6).to(weight.dtype))
                weight[torch.rand(weight.shape[0], generator=generator) < 0.3] = 0
                if module.bias is not None:
                    module.bias.uniform_(-0.5, 0.5, generator=generator)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                module.running_mean.uniform_(-0.5, 0.5, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.5, 0.5, generator=generator)


def _roundtrip_matches(model: nn.Module, x: torch.Tensor, tmp_path, atol: float = 1e-5) -> nn.Module:
    model.eval()
    small = compact(model).eval()
    with torch.no_grad():
        expected = model(x)
        assert torch.allclose(small(x), expected, atol=atol), float((small(x) - expected).abs().max())
        save_model(small, tmp_path)
        loaded, _ = load_model(tmp_path)
        assert torch.equal(loaded(x), small(x))
    return small


def test_the_table_covers_every_registered_model():
    assert sorted(_OPTIONS) == npr.list_models()


@pytest.mark.parametrize("name", sorted(_OPTIONS))
def test_every_registered_model_compacts_exactly_and_round_trips(name, tmp_path):
    torch.manual_seed(0)
    options = _OPTIONS[name]
    model = npr.create_model(name, **options)
    _prune_randomly(model)
    x = torch.randn(2, options["in_channels"], options["image_size"], options["image_size"])
    small = _roundtrip_matches(model, x, tmp_path)
    assert npr.count_params(small) < npr.count_params(model)


def test_residual_channels_go_only_when_every_coupled_layer_lets_them_go(tmp_path):
    torch.manual_seed(0)
    model = npr.create_model("resnet20", in_channels=3, image_size=8, width=0.5).eval()
    stage = [model.conv1, *(block.conv2 for block in model.layer1)]  # the layers writing stage 1's channels
    with torch.no_grad():
        for conv in stage:
            conv.weight[3] = 0  # channel 3 loses its input everywhere ...
        for norm in [model.bn1, *(block.bn2 for block in model.layer1)]:
            norm.bias[3] = 0.3  # ... so it carries a positive constant
        model.layer1[1].conv1.weight[:, 3] = 0  # ... and one reader; the others still read a constant
    small = _roundtrip_matches(model, torch.randn(2, 3, 8, 8), tmp_path)
    # padded 3x3 readers see zeros at the borders, not the constant: the channel must stay
    assert small.conv1.out_channels == model.conv1.out_channels
    with torch.no_grad():
        for block in model.layer1:
            block.conv1.weight[:, 3] = 0
        model.layer2[0].conv1.weight[:, 3] = 0
        model.layer2[0].downsample[0].weight[:, 3] = 0  # now nothing reads channel 3 of stage 1
    small = _roundtrip_matches(model, torch.randn(2, 3, 8, 8), tmp_path)
    assert small.conv1.out_channels == model.conv1.out_channels - 1
    assert small.layer1[2].bn2.num_features == model.layer1[2].bn2.num_features - 1
    assert small.layer2[0].downsample[0].in_channels == model.layer2[0].downsample[0].in_channels - 1


def test_a_module_instance_used_twice(tmp_path):
    torch.manual_seed(0)
    relu = nn.ReLU()
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), relu, nn.Linear(12, 8), relu, nn.Linear(8, 3))
    unpruned = compact(model.eval())
    x = torch.randn(4, 1, 4, 4)
    assert torch.equal(unpruned(x), model(x))  # nothing pruned: nothing changes, no layer dropped
    _prune_randomly(model)
    _roundtrip_matches(model, x, tmp_path)


def test_reflect_padding_keeps_constant_channels_foldable(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(6, 4, 3, padding=1, padding_mode="reflect"),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight[1] = 0
        model[0].bias[1] = 0.8  # a constant 0.8 channel: reflect padding repeats it, so it folds
    small = _roundtrip_matches(model, torch.randn(2, 2, 7, 7), tmp_path)
    assert small[0].out_channels == 5
    assert small[2].padding_mode == "reflect"


def test_batchnorm1d_after_a_flatten_of_conv_features(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.BatchNorm1d(4 * 4 * 4), nn.Linear(64, 8),
                          nn.ReLU(), nn.Linear(8, 3))
    _prune_randomly(model)
    with torch.no_grad():
        model[4].weight.view(8, 4, 16)[:, 2] = 0  # nothing reads conv channel 2
    small = _roundtrip_matches(model, torch.randn(3, 1, 6, 6), tmp_path)
    assert small[3].num_features == small[0].out_channels * 16


def test_grouped_and_depthwise_convolutions(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8), nn.ReLU6(),
        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU6(),  # depthwise: channels pass through
        nn.Conv2d(8, 8, 1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.ReLU(),  # grouped: its channels are kept whole
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )
    _prune_randomly(model)
    with torch.no_grad():
        model[6].weight[:, 5] = 0  # nothing reads channel 5 of the depthwise stage
    small = _roundtrip_matches(model, torch.randn(2, 3, 6, 6), tmp_path)
    assert small[3].groups == small[3].out_channels < 8
    assert small[8].in_channels == 8 and small[8].groups == 2


class _Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.left = nn.Conv2d(3, 4, 1)
        self.right = nn.Conv2d(3, 4, 3, padding=1)
        self.fuse = nn.Conv2d(8, 6, 1)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        y = torch.relu(self.fuse(torch.cat([self.left(x), self.right(x)], dim=1)))
        return self.head(y.mean((2, 3)))


def test_a_concatenation_is_kept_whole_and_the_rest_compacts(tmp_path):
    torch.manual_seed(0)
    model = _Concat().eval()
    _prune_randomly(model)
    with torch.no_grad():
        model.head.weight[:, 1] = 0  # fuse's channel 1 is read by nobody ... but through an unknown mean
        model.fuse.weight[:, 0] = 0
    small = compact(model).eval()
    x = torch.randn(2, 3, 5, 5)
    assert torch.allclose(small(x), model(x), atol=1e-6)
    assert small.fuse.in_channels == 8  # the concatenation's channels are not followed, so kept
    save_model(small, tmp_path)  # any traced graph of standard layers saves (neuroprune.fx/1)
    loaded, _ = load_model(tmp_path)
    assert torch.equal(loaded(x), small(x))


def test_float64_model_round_trips_in_float64(tmp_path):
    torch.manual_seed(0)
    model = npr.create_model("lenet5", image_size=12, width=0.5).double()
    _prune_randomly(model)
    x = torch.randn(2, 1, 12, 12, dtype=torch.float64)
    _roundtrip_matches(model, x, tmp_path, atol=1e-12)
    loaded, _ = load_model(tmp_path)
    assert all(p.dtype == torch.float64 for p in loaded.parameters())


def test_untraceable_model_is_named():
    class Gate(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(ModelError, match="'gate'"):
        compact(nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("gate", Gate())])))
