"""Tiny pruned models and run folders shared by the export tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import neuroprune as npr
from neuroprune.saved_models import save_model
from neuroprune.storage import save_torch, write_json

IMAGE_SIZE = 8  # 8x8 digits-sized inputs keep every model tiny


def masked_mlp(sparsity: float = 0.9, seed: int = 0) -> nn.Module:
    """The registered MLP (64-300-100-10) with its smallest weights zeroed at ``sparsity``.

    The zeros are written into the weights, which is what a masked model computes with.
    """
    torch.manual_seed(seed)
    model = npr.create_model("mlp", in_channels=1, image_size=IMAGE_SIZE, num_classes=10)
    masks = npr.magnitude_masks(model, {"fc1": sparsity, "fc2": sparsity, "fc3": min(sparsity, 0.5)})
    with torch.no_grad():
        for name, mask in masks.items():
            getattr(model, name).weight.mul_(mask)
        model.fc1.weight[:40] = 0  # dead units, so that compaction has something to remove
    return model.eval()


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a busy machine OpenMP threads waiting for a core make tiny ops take milliseconds."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def make_masked():
    """``masked_mlp`` as a fixture, for tests that need several differently pruned models."""
    return masked_mlp


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.randn(5, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A synaptic run folder as ``neuroprune synaptic`` writes it (compacted model + masked checkpoint)."""
    masked = masked_mlp()
    folder = tmp_path / "run"
    save_model(npr.compact_sequential(masked).eval(), folder,
               {"dataset": "digits", "input_shape": [1, IMAGE_SIZE, IMAGE_SIZE], "source": "mlp"})
    save_torch(folder / "checkpoint.pt", {"model": masked.state_dict(), "epoch": 1})
    write_json(folder / "result.json", {"method": "synaptic", "model": "mlp", "dataset": "digits"})
    return folder
