from collections.abc import Callable

import pytest
import torch
from torch import nn

from neuroprune.errors import NeuropruneError
from neuroprune.metrics import count_macs, count_sparse_macs

MaskWeight = Callable[[nn.Module, torch.Tensor], None]  # the conftest fixture


def _tiny_model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, stride=2, padding=1),  # (3, 8, 8) -> (4, 4, 4)
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 8, 3, padding=1, groups=2),  # (4, 4, 4) -> (8, 4, 4)
        nn.MaxPool2d(2),  # -> (8, 2, 2)
        nn.Flatten(),
        nn.Linear(32, 10),
    )


# Hand count per sample:
#   conv1: 4*4*4 outputs * 3 in-channels * 3*3 kernel             = 1728
#   conv2: 8*4*4 outputs * (4 / 2 groups) in-channels * 3*3       = 2304
#   fc:    32 * 10                                                = 320
#   BatchNorm, ReLU, MaxPool, Flatten                             = 0
TINY_MACS = 1728 + 2304 + 320


@pytest.mark.parametrize("batch_size", [1, 3])
def test_hand_counted_linear_and_conv(batch_size: int) -> None:
    assert count_macs(_tiny_model(), torch.randn(batch_size, 3, 8, 8)) == TINY_MACS


def test_conv1d_conv3d_and_linear_over_rows() -> None:
    # Conv1d: (2, 10) -> (5, 8) with kernel 3 and no padding.
    assert count_macs(nn.Conv1d(2, 5, 3), torch.randn(2, 2, 10)) == 5 * 8 * 2 * 3
    # Conv3d: (1, 4, 4, 4) -> (2, 2, 2, 2) with kernel 3 (output 2*2*2*2 = 16 elements).
    assert count_macs(nn.Conv3d(1, 2, 3), torch.randn(1, 1, 4, 4, 4)) == 16 * 1 * 27
    # A Linear on a (batch, 3 rows, 5) input computes each of the 3 rows.
    assert count_macs(nn.Linear(5, 7), torch.randn(2, 3, 5)) == 3 * 5 * 7


def test_uncounted_layers_cost_nothing() -> None:
    model = nn.Sequential(nn.ConvTranspose2d(2, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.AvgPool2d(2))
    assert count_macs(model, torch.randn(1, 2, 6, 6)) == 0


def test_dense_count_ignores_zeros_sparse_count_skips_them() -> None:
    layer = nn.Linear(8, 4)
    with torch.no_grad():
        layer.weight[:, :4] = 0.0  # half of the weights
    x = torch.randn(5, 8)
    assert count_macs(layer, x) == 32
    assert count_sparse_macs(layer, x) == 16


def test_sparse_conv_counts_nonzero_weights_per_output_position() -> None:
    conv = nn.Conv2d(2, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight[0] = 0.0  # output channel 0: all 18 weights zero
        conv.weight[1, 0] = 0.0  # output channel 1: 9 of 18 weights zero
    x = torch.randn(2, 2, 5, 5)
    positions = 5 * 5
    assert count_macs(conv, x) == positions * 4 * 18
    assert count_sparse_macs(conv, x) == positions * (0 + 9 + 18 + 18)


def test_sparse_macs_read_masked_weights(mask_weight: MaskWeight) -> None:
    model = nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 2))
    mask = torch.zeros(4, 6)
    mask[:2] = 1.0  # keep 12 of 24
    mask_weight(model[0], mask)
    x = torch.randn(3, 6)
    assert count_macs(model, x) == 24 + 8
    assert count_sparse_macs(model, x) == 12 + 8


def test_no_hooks_left_and_training_flags_restored() -> None:
    model = _tiny_model()
    model[1].eval()  # a deliberately frozen BatchNorm stays frozen
    running_mean = model[1].running_mean.clone()
    count_macs(model, torch.randn(2, 3, 8, 8))
    assert all(not module._forward_hooks for module in model.modules())
    assert model.training and model[0].training and not model[1].training
    assert torch.equal(model[1].running_mean, running_mean)


def test_hooks_removed_when_forward_fails() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(5, 2))  # wrong width: forward raises
    with pytest.raises(RuntimeError):
        count_macs(model, torch.randn(1, 4))
    assert all(not module._forward_hooks for module in model.modules())


def test_input_without_batch_dimension_is_refused() -> None:
    with pytest.raises(NeuropruneError, match="batch"):
        count_macs(nn.Linear(1, 1), torch.tensor(1.0))
