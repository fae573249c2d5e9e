"""Raw uint8 pixels -> normalised float32 tensors, with the constants in :class:`DatasetInfo`."""

from __future__ import annotations

import numpy as np
import torch

from ._sources import SOURCES
from .info import dataset_info


def normalize(name: str, images: np.ndarray) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 (N, C, H, W): ``(pixel / pixel_max - mean) / std`` per channel."""
    info = dataset_info(name)
    mean = torch.tensor(info.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=torch.float32).view(1, -1, 1, 1)
    tensor = torch.tensor(images, dtype=torch.float32)  # a fresh copy, safe to modify in place
    return tensor.div_(SOURCES[name].pixel_max).sub_(mean).div_(std)


def background(name: str) -> torch.Tensor:
    """Per-channel value (C,) that a zero (black) pixel takes after :func:`normalize`."""
    info = dataset_info(name)
    return -torch.tensor(info.mean, dtype=torch.float32) / torch.tensor(info.std, dtype=torch.float32)
