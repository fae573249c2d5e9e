"""Channel pruning after a cut runs on the structural model compaction reads (no second channel engine)."""

import sys

import pytest
import torch

from neuroprune.depth import DepthPruner
from neuroprune.errors import ConfigError
from neuroprune.metrics import count_params
from neuroprune.structure.channel_pruning import prune_channels


def test_ratio_is_checked(tiny) -> None:
    with pytest.raises(ConfigError, match="ratio"):
        prune_channels(tiny("resnet20"), 1.5)


def test_depth_cut_then_channels_keeps_the_cut_and_narrows_it(tiny, example) -> None:
    model = tiny("resnet20", width=0.25)
    small = DepthPruner(model, example_inputs=example).plan(cut="layer1.1:layer3.0").apply().eval()
    narrow = prune_channels(small, 0.5).eval()
    assert count_params(narrow) < 0.5 * count_params(small) and narrow(example).shape == (2, 10)
    assert small.layer1.translator.conv.out_channels == 8 and narrow.layer1.translator.conv.out_channels == 4
    assert count_params(model) > count_params(small)  # inputs untouched


def test_pruned_channels_are_the_weakest_and_the_rest_is_exact(tiny, example) -> None:
    model = tiny("vgg11", width=0.25).eval()
    with torch.no_grad():  # channel 0 of the first conv is by far the weakest
        model.features[0].weight[0] *= 1e-3
    narrow = prune_channels(model, 0.2).eval()
    kept = narrow.features[0].weight
    assert kept.shape[0] == model.features[0].out_channels - 3
    assert not any(torch.allclose(row, model.features[0].weight[0]) for row in kept)


def test_torch_pruning_is_not_imported_by_the_library(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # any import of it now raises ImportError
    assert prune_channels(tiny("resnet20"), 0.3) is not None
