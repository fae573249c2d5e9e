"""The saved-model spec and compaction keep every layer and every argument that changes the output."""

import torch
from torch import nn

import neuroprune as npr


def test_a_module_object_used_twice_is_kept_at_both_places():
    relu = nn.ReLU()  # one instance at two places, as is common
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), relu, nn.Linear(8, 6), relu, nn.Linear(6, 3))
    x = torch.randn(4, 1, 4, 4)
    small = npr.compact_sequential(model)
    assert len(small) == 6
    assert torch.allclose(model(x), small(x))


def test_reflect_padding_and_newer_activations_round_trip_through_saved_files(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1, padding_mode="reflect"), nn.SiLU(), nn.Conv2d(3, 2, 3), nn.ELU(alpha=0.5),
        nn.Hardtanh(-0.5, 0.5), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
    ).eval()
    x = torch.randn(2, 1, 6, 6)
    npr.save_model(model, tmp_path, {"input_shape": [1, 6, 6]})
    loaded, _ = npr.load_model(tmp_path)
    assert loaded[0].padding_mode == "reflect"
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=1e-6)
