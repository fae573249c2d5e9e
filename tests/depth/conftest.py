"""Tiny models and digits batches shared by the depth-pruning tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from neuroprune.data import create_loader
from neuroprune.models import create_model

SIZE = 16  # digits (8x8) padded to 16x16: enough for every CIFAR-style model's pooling


@pytest.fixture
def tiny() -> Callable[..., nn.Module]:
    """``tiny(name)``: a seeded, tiny-width CIFAR-style model for 1-channel 16x16 inputs."""

    def build(name: str, width: float = 0.125, seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        return create_model(name, in_channels=1, image_size=SIZE, num_classes=10, width=width)

    return build


@pytest.fixture(scope="session")
def digits_train() -> torch.utils.data.DataLoader:
    return create_loader("digits", "train", 64, limit=256, pad_to=SIZE)


@pytest.fixture(scope="session")
def digits_test() -> torch.utils.data.DataLoader:
    return create_loader("digits", "test", 128, limit=128, pad_to=SIZE)


@pytest.fixture
def example() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(2, 1, SIZE, SIZE)


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    # Tiny models gain nothing from intra-op threads, and on a busy machine OpenMP's
    # spinning threads slow every small kernel down many times.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
