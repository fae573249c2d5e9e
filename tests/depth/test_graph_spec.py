"""A saved pruned model reloads from its two files alone and gives identical outputs."""

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from neuroprune.depth import DepthPruner, load_graph_model, save_graph_model
from neuroprune.errors import ModelError


@pytest.mark.parametrize(("name", "cut"), [("vgg16", "features.9:features.34"), ("resnet20", "relu:layer3.1")])
def test_round_trip_gives_identical_outputs(tmp_path: Path, tiny, example, name: str, cut: str) -> None:
    model = tiny(name)
    small = DepthPruner(model, example_inputs=example).plan(cut=cut, use_batchnorm=True).apply()
    with torch.no_grad():  # make the running statistics non-trivial
        small.train()(example * 3)
    small.eval()
    save_graph_model(small, tmp_path, {"cut": cut})
    spec = json.loads((tmp_path / "model.json").read_text())
    assert spec["architecture"]["format"] == "neuroprune.fx/1" and spec["metadata"]["cut"] == cut
    reloaded, _ = load_graph_model(tmp_path)
    assert not any("vgg" in type(m).__module__ or "cnn" in type(m).__module__ for m in reloaded.modules())
    assert torch.equal(reloaded(example), small(example))


def test_channel_pruned_model_round_trips(tmp_path: Path, tiny, example) -> None:
    from neuroprune.structure.channel_pruning import prune_channels

    small = DepthPruner(tiny("resnet20", width=0.25), example_inputs=example).plan(cut="layer1.1:layer3.0").apply()
    narrow = prune_channels(small, 0.5).eval()
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in small.parameters())
    save_graph_model(narrow, tmp_path)
    reloaded, _ = load_graph_model(tmp_path)
    assert torch.equal(reloaded(example), narrow(example))


def test_missing_or_mismatched_files_are_explained(tmp_path: Path, tiny, example) -> None:
    with pytest.raises(ModelError, match="missing"):
        load_graph_model(tmp_path)
    small = DepthPruner(tiny("resnet20"), example_inputs=example).plan(cut="relu:layer3.1").apply()
    save_graph_model(small, tmp_path)
    other = DepthPruner(tiny("resnet20"), example_inputs=example).plan(cut="relu:layer2.1").apply()
    save_graph_model(other, tmp_path / "other")
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(ModelError, match="shape mismatches|missing keys|unexpected keys"):
        load_graph_model(tmp_path)


def test_module_placed_twice_is_saved_at_both_places(tmp_path: Path) -> None:
    # one ReLU object at two positions: nn.Module.named_children() yields it once
    torch.manual_seed(0)
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(4, 8), relu, nn.Sequential(nn.Linear(8, 8), relu), nn.Linear(8, 3), relu).eval()
    save_graph_model(model, tmp_path)
    reloaded, _ = load_graph_model(tmp_path)
    kinds = [type(m).__name__ for m in model.modules(remove_duplicate=False)]
    assert [type(m).__name__ for m in reloaded.modules()] == kinds
    x = torch.randn(5, 4)
    assert torch.equal(reloaded(x), model(x))
