"""Shape probing shared by the model factories."""

import torch
from torch import nn


def flat_features(features: nn.Module, in_channels: int, image_size: int) -> int:
    """Number of features ``features`` produces for one image (found by a dry run)."""
    with torch.no_grad():
        out = features(torch.zeros(1, in_channels, image_size, image_size))
    return out[0].numel()
