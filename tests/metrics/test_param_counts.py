from collections.abc import Callable

import torch
from torch import nn

from neuroprune.metrics import count_nonzero_params, count_params

MaskWeight = Callable[[nn.Module, torch.Tensor], None]  # the conftest fixture


def test_count_params_matches_layer_shapes() -> None:
    model = nn.Sequential(nn.Linear(10, 5), nn.ReLU(), nn.Conv1d(2, 3, 4, bias=False))
    assert count_params(model) == (10 * 5 + 5) + (3 * 2 * 4)


def test_shared_parameter_counted_once() -> None:
    first, second = nn.Linear(4, 4), nn.Linear(4, 4)
    second.weight = first.weight  # tied
    assert count_params(nn.Sequential(first, second)) == 16 + 4 + 4


def test_masked_weights_count_as_zero(mask_weight: MaskWeight) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    mask = torch.ones(4, 6)
    mask[:, :3] = 0.0  # prune 12 of 24 connections
    mask_weight(model[0], mask)

    # The unmasked storage is untouched: without the mask reading, everything is non-zero.
    assert torch.count_nonzero(model[0].parametrizations.weight.original) == 24
    assert count_params(model) == (24 + 4) + (8 + 2)
    assert count_nonzero_params(model) == (12 + 4) + (8 + 2)


def test_mask_buffers_are_not_parameters(mask_weight: MaskWeight) -> None:
    layer = nn.Linear(3, 2)
    mask_weight(layer, torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]))
    assert count_params(layer) == 8
    assert count_nonzero_params(layer) == 3 + 2


def test_explicit_zeros_are_not_counted() -> None:
    layer = nn.Linear(5, 2, bias=False)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[1, 4] = 0.5
    assert count_nonzero_params(layer) == 1
