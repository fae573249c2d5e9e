from collections.abc import Callable

import torch
from torch import nn

from neuroprune.metrics import weight_bytes
from neuroprune.metrics.size import _savable_tensors

MaskWeight = Callable[[nn.Module, torch.Tensor], None]  # the conftest fixture


def test_weight_bytes_grows_with_parameters() -> None:
    small, large = nn.Linear(10, 10), nn.Linear(10, 20)
    extra_params = (200 + 20) - (100 + 10)
    # float32: 4 bytes a value; the headers differ by at most a few characters of shape text.
    assert abs(weight_bytes(large) - weight_bytes(small) - 4 * extra_params) < 16
    assert weight_bytes(small) > 4 * 110


def test_masked_model_saves_plain_masked_weights(mask_weight: MaskWeight) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    plain = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    mask = torch.ones(4, 6)
    mask[0] = 0.0
    mask_weight(model[0], mask)

    tensors = _savable_tensors(model)
    assert sorted(tensors) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert not any("parametrizations" in key for key in tensors)
    assert torch.equal(tensors["0.weight"], model[0].weight)
    assert torch.count_nonzero(tensors["0.weight"][0]) == 0
    # Same names, shapes and dtypes as the unmasked architecture: same file size.
    assert weight_bytes(model) == weight_bytes(plain)


def test_tied_weights_saved_once() -> None:
    first, second = nn.Linear(8, 8, bias=False), nn.Linear(8, 8, bias=False)
    untied = weight_bytes(nn.Sequential(first, second))
    second.weight = first.weight
    tied = weight_bytes(nn.Sequential(first, second))
    assert untied - tied >= 64 * 4


def test_masked_layer_placed_twice_is_saved_once_as_plain_weights(mask_weight: MaskWeight) -> None:
    layer = nn.Linear(4, 4)
    mask_weight(layer, torch.ones(4, 4))
    tensors = _savable_tensors(nn.Sequential(layer, nn.ReLU(), layer))
    assert sorted(tensors) == ["0.bias", "0.weight"]  # the second place is a tie, as for a plain layer
