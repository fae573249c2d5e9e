"""count_macs against torch's own FlopCounterMode on every registered model.

FlopCounterMode counts 2 FLOPs per multiply-accumulate of mm/addmm/convolution and no
bias additions, like count_macs; so FLOPs / 2 / batch size must equal count_macs exactly.
"""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from neuroprune.metrics import count_macs
from neuroprune.models import create_model, list_models

# (in_channels, image_size) for models built for MNIST-sized input; the rest get CIFAR-sized input.
_INPUT_SHAPES = {"mlp": (1, 28), "lenet5": (1, 28)}
_DEFAULT_INPUT_SHAPE = (3, 32)


@pytest.mark.parametrize("name", list_models())
def test_count_macs_matches_flop_counter(name: str) -> None:
    in_channels, image_size = _INPUT_SHAPES.get(name, _DEFAULT_INPUT_SHAPE)
    torch.manual_seed(0)
    model = create_model(name, in_channels=in_channels, image_size=image_size).eval()
    x = torch.randn(2, in_channels, image_size, image_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    flops = counter.get_total_flops()
    assert flops > 0
    assert (count_macs(model, x) + _attention_macs(model)) * 2 * x.shape[0] == flops


def _attention_macs(model: torch.nn.Module) -> int:
    """Per sample, the attention matmuls count_macs leaves out: q @ k^T and attn @ v, tokens^2 * dim each."""
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        return 0
    tokens, dim = model.pos_embed.shape[1:]
    return len(blocks) * 2 * tokens * tokens * dim
