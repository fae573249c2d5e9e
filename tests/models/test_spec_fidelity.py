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


def test_every_argument_that_changes_the_output_round_trips(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(4, 8, 3, stride=2, padding=2, dilation=2, groups=2, bias=False),
        nn.BatchNorm2d(8, eps=1e-3, momentum=0.01), nn.LeakyReLU(0.2), nn.ZeroPad2d((0, 1, 0, 1)),
        nn.Upsample(size=(9, 9), mode="bilinear", align_corners=False), nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        nn.Flatten(), nn.Linear(8 * 5 * 5, 3),
    )
    model[1].running_mean.uniform_(-1, 1)
    model = model.double().eval()
    npr.save_model(model, tmp_path)
    loaded, _ = npr.load_model(tmp_path)
    conv, norm = loaded[0], loaded[1]
    assert (conv.stride, conv.padding, conv.dilation, conv.groups, conv.bias) == ((2, 2), (2, 2), (2, 2), 2, None)
    assert (norm.eps, norm.momentum) == (1e-3, 0.01)
    assert all(p.dtype == torch.float64 for p in loaded.parameters())
    x = torch.randn(2, 4, 9, 9, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_a_layer_subclass_is_saved_as_its_traced_computation_never_as_its_base(tmp_path):
    class Scaled(nn.Linear):  # a subclass may compute something else: never saved as a Linear
        def forward(self, x):
            return 2 * super().forward(x)

    model = nn.Sequential(nn.Linear(3, 3), Scaled(3, 2)).eval()
    npr.save_model(model, tmp_path)
    loaded, _ = npr.load_model(tmp_path)
    x = torch.randn(4, 3)
    assert torch.equal(loaded(x), model(x))  # the factor 2 survives: the graph is saved, not a Linear


def test_a_layer_the_spec_cannot_represent_is_refused_when_saving_naming_it(tmp_path):
    import pytest

    class LogSumExp(nn.Linear):
        def forward(self, x):
            return torch.logsumexp(super().forward(x), dim=-1, keepdim=True)

    with pytest.raises(npr.ModelError, match="LogSumExp.*logsumexp|logsumexp.*LogSumExp"):
        npr.save_model(nn.Sequential(nn.Linear(3, 3), LogSumExp(3, 2)), tmp_path)
    assert not (tmp_path / "model.json").exists()
