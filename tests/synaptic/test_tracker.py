import torch
from torch import nn

from neuroprune.synaptic import ActivityTracker


def _linear():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]))
        layer.bias.zero_()
    return layer


def test_contribution_is_weight_magnitude_times_mean_absolute_input():
    layer = _linear()
    tracker = ActivityTracker({"fc": layer}, "contribution")
    layer(torch.tensor([[1.0, -2.0, 0.0], [3.0, 2.0, -4.0]]))  # mean |x| = [2, 2, 2]
    layer(torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))  # second batch halves it: [1, 1, 1]
    expected = layer.weight.detach().abs() * torch.tensor([1.0, 1.0, 1.0])
    assert torch.allclose(tracker.activity()["fc"], expected)


def test_presynaptic_hebbian_and_magnitude():
    layer = _linear()
    x = torch.tensor([[1.0, 2.0, 0.0], [1.0, 0.0, 4.0]])
    pre = ActivityTracker({"fc": layer}, "presynaptic")
    hebb = ActivityTracker({"fc": layer}, "hebbian")
    y = layer(x).detach()
    assert torch.allclose(pre.activity()["fc"], torch.tensor([[1.0, 1.0, 2.0]] * 2))
    expected_hebb = (y.abs().t() @ x.abs()) / 2
    assert torch.allclose(hebb.activity()["fc"], expected_hebb)
    assert torch.equal(ActivityTracker({"fc": layer}, "magnitude").activity()["fc"], layer.weight.detach().abs())


def test_conv_activity_uses_the_input_channel_mean_for_every_kernel_tap():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    tracker = ActivityTracker({"conv": conv}, "presynaptic")
    x = torch.zeros(2, 2, 4, 4)
    x[:, 1] = -2.0
    conv(x)
    activity = tracker.activity()["conv"]
    assert activity.shape == conv.weight.shape
    assert torch.all(activity[:, 0] == 0) and torch.all(activity[:, 1] == 2.0)


def test_eval_passes_and_inactive_tracker_gather_nothing():
    layer = _linear()
    tracker = ActivityTracker({"fc": layer}, "contribution")
    layer.eval()
    layer(torch.ones(2, 3))
    assert tracker.activity() == {}
    layer.train()
    tracker.is_active = False
    layer(torch.ones(2, 3))
    assert tracker.activity() == {}
    tracker.is_active = True
    layer(torch.ones(2, 3))
    tracker.reset()
    assert tracker.activity() == {}
