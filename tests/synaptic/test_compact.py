from collections import OrderedDict

import pytest
import torch
from torch import nn

from neuroprune import ModelError, SynapticPruner, compact_sequential, create_model


def _prune_by_training(model, shape, steps=24):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner = SynapticPruner(model, alpha=0.9, patience=2, check_every=2, max_fraction_per_check=0.6,
                            min_fan_in=0, optimizer=optimizer)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randn(shape, generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), torch.randint(0, 10, (shape[0],), generator=generator)).backward()
        optimizer.step()
        pruner.step()
    return pruner


@pytest.mark.parametrize(
    "name, kwargs, shape",
    [
        ("mlp", {"image_size": 8, "hidden": (64, 32)}, (16, 1, 8, 8)),
        ("lenet5", {"image_size": 8, "width": 0.5}, (16, 1, 8, 8)),
        ("cifar_cnn", {"in_channels": 3, "image_size": 16, "width": 0.25}, (8, 3, 16, 16)),
    ],
)
def test_compacted_model_matches_masked_model_and_is_smaller(name, kwargs, shape):
    torch.manual_seed(0)
    model = create_model(name, **kwargs)
    pruner = _prune_by_training(model, shape)
    assert pruner.sparsity() > 0.5
    model.eval()
    small = pruner.compact().eval()
    x = torch.randn(shape)
    assert torch.allclose(model(x), small(x), atol=1e-5)
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert params(small) < params(model)
    removed_units = sum(
        a.weight.shape[0] - b.weight.shape[0]
        for a, b in zip(pruner.layers.values(), [m for m in small if hasattr(m, "weight")], strict=True)
    )
    assert removed_units > 0, "heavy pruning with min_fan_in=0 should leave dead units to remove"


def _mlp_with_weights(w1, b1, w2, b2):
    model = nn.Sequential(nn.Linear(w1.shape[1], w1.shape[0]), nn.ReLU(), nn.Linear(w2.shape[1], w2.shape[0]))
    with torch.no_grad():
        model[0].weight.copy_(w1), model[0].bias.copy_(b1), model[2].weight.copy_(w2), model[2].bias.copy_(b2)
    return model


def test_input_less_unit_is_folded_into_next_bias():
    w1 = torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.5, 2.0]])  # unit 0 has no live input
    b1 = torch.tensor([0.7, 0.1, -0.2])  # so it always outputs relu(0.7) = 0.7
    w2 = torch.tensor([[2.0, 1.0, 1.0], [-1.0, 0.5, 0.0]])
    b2 = torch.tensor([0.0, 1.0])
    model = _mlp_with_weights(w1, b1, w2, b2)
    small = compact_sequential(model)
    assert small[0].out_features == 2
    assert torch.allclose(small[2].bias, b2 + w2[:, 0] * 0.7)
    x = torch.randn(10, 2)
    assert torch.allclose(model(x), small(x), atol=1e-6)


def test_unit_without_outputs_is_removed_and_the_removal_cascades():
    w1 = torch.tensor([[1.0, 1.0], [1.0, -1.0]])
    b1 = torch.zeros(2)
    w2 = torch.tensor([[0.0, 1.0]])  # hidden unit 0 feeds nothing
    model = _mlp_with_weights(w1, b1, w2, torch.zeros(1))
    small = compact_sequential(model)
    assert small[0].weight.shape == (1, 2)
    x = torch.randn(5, 2)
    assert torch.allclose(model(x), small(x))


def test_constant_channel_before_padded_conv_is_kept_unless_zero():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 2, 3, padding=1), nn.Flatten(),
                          nn.Linear(2 * 4 * 4, 3))
    with torch.no_grad():
        model[0].weight[0] = 0
        model[0].bias[0] = 0.5  # constant 0.5: not foldable through zero padding
        model[0].weight[1] = 0
        model[0].bias[1] = -0.5  # relu -> exactly 0: removable
    small = compact_sequential(model)
    assert small[0].out_channels == 2
    x = torch.randn(4, 1, 6, 6)
    assert torch.allclose(model(x), small(x), atol=1e-6)


def test_batchnorm_is_sliced_and_used_for_the_folded_constant():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(4 * 2 * 2, 3))
    model.train()
    model(torch.randn(16, 1, 6, 6))  # give BatchNorm real running statistics
    with torch.no_grad():
        model[0].weight[2] = 0
        model[1].bias[2] = 1.0
    model.eval()
    small = compact_sequential(model).eval()
    assert small[1].num_features == 3
    x = torch.randn(4, 1, 6, 6)
    assert torch.allclose(model(x), small(x), atol=1e-5)


def test_model_with_data_dependent_control_flow_is_refused_naming_the_module():
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else x  # branches on a tensor value: not traceable

    with pytest.raises(ModelError, match=r"cannot trace module 'gate'.*finalize"):
        compact_sequential(nn.Sequential(OrderedDict([("fc", nn.Linear(4, 4)), ("gate", Gate())])))


def test_channels_meeting_an_unknown_module_are_kept_and_the_result_stays_exact():
    class Scale(nn.Module):  # a custom leaf-like module the structural model does not know
        def __init__(self):
            super().__init__()
            self.gain = nn.Parameter(torch.linspace(0.5, 2.0, 6))

        def forward(self, x):
            return x * self.gain

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), Scale(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    with torch.no_grad():
        model[0].weight[1] = 0  # would be foldable, but the gain multiplies it on the way
        model[3].weight[2] = 0  # input-less unit of a plain space: goes
    small = compact_sequential(model).eval()
    assert small[0].out_features == 6 and small[3].out_features == 4
    x = torch.randn(8, 4)
    assert torch.allclose(model(x), small(x), atol=1e-6)
