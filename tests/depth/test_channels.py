"""Channel pruning after a cut: Torch-Pruning is optional and its absence is explained."""

import sys

import pytest
import torch

from neuroprune.depth import DepthPruner, prune_channels, prune_channels_to_macs
from neuroprune.errors import ConfigError, NeuropruneError
from neuroprune.metrics import count_macs


def test_missing_torch_pruning_is_explained(monkeypatch: pytest.MonkeyPatch, tiny, example) -> None:
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # import now raises ImportError
    with pytest.raises(NeuropruneError, match="pip install torch-pruning"):
        prune_channels(tiny("resnet20"), example, 0.3)


def test_ratio_is_checked(tiny, example) -> None:
    with pytest.raises(ConfigError, match="ratio"):
        prune_channels(tiny("resnet20"), example, 1.5)


def test_depth_cut_then_channels_to_a_mac_target(tiny, example) -> None:
    pytest.importorskip("torch_pruning")
    model = tiny("vgg11", width=0.25)
    small = DepthPruner(model, example_inputs=example).plan(cut="features.7:features.18").apply()
    target = count_macs(small, example) // 2
    narrow, ratio = prune_channels_to_macs(small, example, target)
    assert 0 < ratio < 1
    assert abs(count_macs(narrow, example) - target) < 0.25 * target
    assert narrow.eval()(example).shape == (2, 10)
    assert count_macs(model, example) > count_macs(small, example)  # inputs untouched


def test_channel_pruning_to_the_measured_latency_of_a_reference(tiny) -> None:
    from neuroprune.depth import prune_channels_to_latency
    from neuroprune.metrics import count_params

    base, reference = tiny("vgg11", width=0.25).eval(), tiny("vgg11", width=0.0625).eval()
    narrow, ratio, relative = prune_channels_to_latency(base, torch.randn(1, 1, 16, 16), reference, steps=3,
                                                        rounds=1, repeats=5)
    assert 0 < ratio < 0.9
    assert count_params(narrow) < count_params(base)
    assert 0.2 < relative < 5  # the closest of three bisection steps to "as fast as the reference"
