"""``neuroprune.load_model`` rebuilds every saved format from its two files alone."""

import json

import pytest
import torch

import neuroprune as npr
from neuroprune.depth import DepthPruner, save_graph_model
from neuroprune.export import SparseLinear, save_sparse_model, sparsify


def test_depth_pruned_graph_model_round_trips(tmp_path):
    torch.manual_seed(0)
    model = npr.create_model("resnet20", in_channels=1, image_size=16, width=0.25).eval()
    x = torch.randn(3, 1, 16, 16)
    pruner = DepthPruner(model, example_inputs=x)
    small = pruner.plan(cut=(pruner.candidates()[0].origin, pruner.candidates()[0].destination)).apply().eval()
    save_graph_model(small, tmp_path, {"note": "graph"})
    loaded, metadata = npr.load_model(tmp_path)
    assert metadata == {"note": "graph"}
    assert torch.equal(loaded(x), small(x))


def test_sparse_export_round_trips(tmp_path):
    torch.manual_seed(0)
    model = npr.create_model("mlp", image_size=8, hidden=(64,))
    npr.apply_masks(model, npr.magnitude_masks(model, {"fc1": 0.95, "fc2": 0.5}))
    x = torch.randn(4, 1, 8, 8)
    fast, _ = sparsify(model.eval(), [x], candidates=("csr",), rounds=1, repeats=1)
    save_sparse_model(fast, tmp_path)
    loaded, _ = npr.load_model(tmp_path)
    assert any(isinstance(m, SparseLinear) for m in loaded.modules())
    torch.testing.assert_close(loaded(x), model(x), rtol=1e-5, atol=1e-5)


def test_unknown_format_is_named(tmp_path):
    npr.save_model(npr.create_model("mlp", image_size=8), tmp_path)
    saved = json.loads((tmp_path / "model.json").read_text())
    saved["architecture"]["format"] = "somebody-else/3"
    (tmp_path / "model.json").write_text(json.dumps(saved))
    with pytest.raises(npr.ModelError, match="format"):
        npr.load_model(tmp_path)
