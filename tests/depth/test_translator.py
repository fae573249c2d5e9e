"""The translator: pooling rule, 1x1 conv C_A -> C_B + ReLU, parameter cost, options."""

import pytest
import torch
from torch import nn

from neuroprune.depth import Translator, pooling_for
from neuroprune.errors import ConfigError


def test_no_pooling_when_sizes_match() -> None:
    assert pooling_for((8, 8), (8, 8)) is None
    assert not hasattr(Translator((16, 8, 8), (32, 8, 8)), "pool")


def test_floor_rule_when_it_lands_exactly() -> None:
    pool = pooling_for((32, 32), (8, 8))
    assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 4 and pool.stride == 4
    # floor(9 / 4) = 2 lands: (9 - 2) // 2 + 1 = 4
    assert isinstance(pooling_for((9, 9), (4, 4)), nn.MaxPool2d)


def test_adaptive_fallback_when_floor_rule_misses() -> None:
    # ceil-mode pooling gives 7 -> 4; floor(7 / 4) = 1 would keep 7
    pool = pooling_for((7, 7), (4, 4))
    assert isinstance(pool, nn.AdaptiveMaxPool2d)
    assert Translator((8, 7, 7), (16, 4, 4))(torch.zeros(2, 8, 7, 7)).shape == (2, 16, 4, 4)


def test_never_upsamples() -> None:
    with pytest.raises(ConfigError, match="cannot enlarge"):
        Translator((8, 4, 4), (8, 8, 8))


def test_authors_translator_shape_and_cost() -> None:
    t = Translator((64, 32, 32), (128, 8, 8))
    assert t(torch.randn(3, 64, 32, 32)).shape == (3, 128, 8, 8)
    assert sum(p.numel() for p in t.parameters()) == 64 * 128 + 128
    assert t.describe() == "maxpool 4x4 -> conv1x1 64->128 -> relu"
    assert (t(torch.randn(1, 64, 32, 32)) >= 0).all()  # ends in a ReLU


def test_batchnorm_and_3x3_options() -> None:
    t = Translator((4, 8, 8), (6, 4, 4), kernel_size=3, use_batchnorm=True)
    assert t.conv.kernel_size == (3, 3) and t.conv.bias is None and isinstance(t.bn, nn.BatchNorm2d)
    assert t(torch.randn(2, 4, 8, 8)).shape == (2, 6, 4, 4)
    with pytest.raises(ConfigError):
        Translator((4, 8, 8), (6, 4, 4), kernel_size=5)
