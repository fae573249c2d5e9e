"""Graphs that compaction once got silently wrong, each reduced to a few lines.

Every test compares the compacted model with the masked one in eval mode and, where the
model can be saved, the reloaded one with the compacted one.
"""

import pytest
import torch
from torch import nn

import neuroprune as npr
from neuroprune import ModelError, compact, load_model, save_model


def _assert_exact(model: nn.Module, x: torch.Tensor) -> nn.Module:
    model.eval()
    small = compact(model).eval()
    with torch.no_grad():
        expected, got = model(x), small(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), float((got - expected).abs().max())
    for module in small.modules():
        for width in ("in_features", "out_features", "in_channels", "out_channels", "num_features"):
            assert getattr(module, width, 1) > 0, f"{module} was compacted to width 0"
    return small


class _SharedNorm(nn.Module):
    """One BatchNorm2d object without parameters, normalising two different layers' outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 1)
        self.conv2 = nn.Conv2d(6, 6, 1)
        self.norm = nn.BatchNorm2d(6, affine=False)
        self.head = nn.Conv2d(6, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.conv2(self.norm(self.conv1(x)))))


@pytest.mark.parametrize("dead", [[2], [2, 4]], ids=["equal-widths", "unequal-widths"])
def test_a_parameterless_module_called_twice_keeps_its_channels(dead):
    torch.manual_seed(0)
    model = _SharedNorm()
    with torch.no_grad():
        model.norm.running_mean.uniform_(-1, 1)
        model.norm.running_var.uniform_(0.5, 2)
        model.conv1.weight[2] = 0  # conv1's channel 2 is a constant ...
        model.conv1.bias[2] = 0.7
        model.conv2.weight[dead] = 0  # ... and conv2 loses one or two channels of its own
        model.conv2.bias[dead] = 0.0
    small = _assert_exact(model, torch.randn(2, 3, 4, 4))
    assert small.norm.num_features == 6  # one object serves both: it keeps both widths whole


class _MeanOverFeatures(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 6)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        return self.fc2(h + h.mean(-1, keepdim=True))  # (N, 6) + (N, 1): every channel feeds every other


def test_a_mean_over_the_channel_axis_is_not_channel_preserving():
    torch.manual_seed(0)
    model = _MeanOverFeatures()
    with torch.no_grad():
        model.fc2.weight[:, 1] = 0  # nothing reads channel 1 directly, but the mean does
        model.fc1.weight[3] = 0  # channel 3 is a constant, which the mean also sees
    small = _assert_exact(model, torch.randn(5, 4))
    assert small.fc1.out_features == 6


class _SpatialMean(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 5, 1)
        self.fc = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        h = h + h.mean((2, 3), keepdim=True)  # a mean over space keeps channels apart
        return self.fc(h.mean((-1, -2)))


def test_a_mean_over_space_still_lets_channels_go():
    torch.manual_seed(0)
    model = _SpatialMean()
    with torch.no_grad():
        model.fc.weight[:, 1] = 0
    small = _assert_exact(model, torch.randn(3, 2, 4, 4))
    assert small.conv.out_channels == 4


@pytest.mark.parametrize("bias", [True, False])
def test_a_layer_whose_every_channel_dies_keeps_one(bias):
    model = nn.Sequential(nn.Linear(4, 6, bias=bias), nn.ReLU(), nn.Linear(6, 3))
    with torch.no_grad():
        model[2].weight.zero_()  # nothing reads any of the six channels
    small = _assert_exact(model, torch.randn(2, 4))
    assert small[0].out_features == 1 and small[2].in_features == 1
    assert npr.measure(small, torch.randn(1, 4)).params > 0


def test_every_channel_dead_over_several_passes_keeps_one():
    """Removal runs to a fixed point: the guard must hold on the pass that takes the last channels."""
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    with torch.no_grad():
        model[4].weight[:, :3] = 0  # first pass: three of the second layer's channels go ...
        model[2].weight[:, 1:] = 0  # ... which leaves only column 0 of it reading the first layer
        model[2].weight[3:] = 0
        model[4].weight[:, 3:] = 0  # and the rest of the second layer's channels are unread too
    small = _assert_exact(model, torch.randn(3, 4))
    assert small[2].out_features == 1


def test_an_average_pool_with_a_divisor_compacts_and_saves_exactly(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 1), nn.AvgPool2d(2, divisor_override=3), nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        model[0].weight[1] = 0
        model[0].bias[1] = 0.5  # a constant 0.5 channel: the pool makes it 4 * 0.5 / 3, not 0.5
    x = torch.randn(2, 2, 4, 4)
    small = _assert_exact(model, x)
    save_model(small, tmp_path)
    loaded, _ = load_model(tmp_path)
    assert loaded[1].divisor_override == 3
    assert torch.equal(loaded(x), small(x))


def test_an_upsample_that_recomputes_its_scale_saves_exactly(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 1), nn.Upsample(scale_factor=1.7, mode="bilinear",
                                                          recompute_scale_factor=True), nn.Conv2d(4, 2, 1)).eval()
    x = torch.randn(2, 2, 5, 5)
    save_model(model, tmp_path)
    loaded, _ = load_model(tmp_path)
    assert torch.equal(loaded(x), model(x))


def test_an_argument_the_table_does_not_list_is_refused_by_name(tmp_path, monkeypatch):
    """A later PyTorch may add an argument; until the table lists it, the layer cannot be saved
    and its channels stay whole."""
    from neuroprune.structure import traits

    pool = nn.AvgPool2d(2)
    pool.smoothing = 0.5  # an argument this PyTorch does not have, set to a non-default value
    original = traits._constructor_defaults
    defaults = {**original(nn.AvgPool2d), "smoothing": 0.0}
    monkeypatch.setattr(traits, "_constructor_defaults", lambda cls: defaults if cls is nn.AvgPool2d else original(cls))
    model = nn.Sequential(nn.Conv2d(2, 4, 1), pool, nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        model[3].weight[:, :4] = 0  # nothing reads channel 0: it would go, were the pool understood
    small = _assert_exact(model, torch.randn(2, 2, 4, 4))
    assert small[0].out_channels == 4
    with pytest.raises(ModelError, match=r"layer '1'.*smoothing"):
        save_model(small, tmp_path)


class _DirectWeight(nn.Module):
    """A Linear called as a module and its weight also used on its own."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 6)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x)) + (x @ self.fc1.weight.t()).sum(-1, keepdim=True)


def test_a_module_whose_weight_is_also_read_directly_is_kept_whole():
    torch.manual_seed(0)
    model = _DirectWeight()
    with torch.no_grad():
        model.fc2.weight[:, 2] = 0
    small = _assert_exact(model, torch.randn(3, 4))
    assert small.fc1.out_features == 6


def test_batchnorm_without_bias_compacts_exactly(tmp_path):
    if "bias" not in __import__("inspect").signature(nn.BatchNorm2d).parameters:
        pytest.skip("this PyTorch's BatchNorm has no bias argument")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 1), nn.BatchNorm2d(4, bias=False), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 9, 2))
    with torch.no_grad():
        model[0].weight[1] = 0
        model[1].running_mean.uniform_(-1, 1)
    x = torch.randn(2, 2, 3, 3)
    small = _assert_exact(model, x)
    save_model(small, tmp_path)
    loaded, _ = load_model(tmp_path)
    assert loaded[1].bias is None and torch.equal(loaded(x), small(x))


class _InPlaceAside(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.fc2 = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        torch.nn.functional.relu(h, inplace=True)  # changes h itself; the graph shows fc2 reading h before it
        return self.fc2(h)


def test_an_in_place_change_of_a_value_read_elsewhere_keeps_its_channels():
    torch.manual_seed(0)
    model = _InPlaceAside()
    with torch.no_grad():
        model.fc1.weight[1] = 0
        model.fc1.bias[1] = -0.7  # a constant -0.7 before the ReLU, 0 after it
    small = _assert_exact(model, torch.randn(2, 3))
    assert small.fc1.out_features == 4


class _InPlaceThroughIdentity(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(5, 6)
        self.same = nn.Identity()
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        self.act(self.same(h))  # Identity returns h itself, so the ReLU changes h
        return self.fc2(h + h)


def test_an_in_place_change_through_a_layer_that_returns_its_input_keeps_its_channels():
    torch.manual_seed(0)
    model = _InPlaceThroughIdentity()
    with torch.no_grad():
        model.fc1.weight[2] = 0
        model.fc1.bias[2] = -0.4
    small = _assert_exact(model, torch.randn(3, 5))
    assert small.fc1.out_features == 6
