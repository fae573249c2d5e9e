"""Options for one's own model, weights and data, shared by ``synaptic``, ``train`` and ``depth``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

MODEL_HELP = (
    "Registered model (see `neuroprune models`), or your own: module.path:factory or path/to/file.py:factory, "
    "called with model_args: from the YAML file (and in_channels, image_size, num_classes if it takes them). "
    "Importing your module runs its code, as any Python tool does."
)
"""Help of ``--model`` on every command that trains or prunes."""

WEIGHTS_OPTION = click.option(
    "--weights", type=str,
    help="Start from these weights: a .safetensors file or a torch.save state dict (read with weights_only), "
         "checked against the model (names, shapes, dtypes) before loading.",
)
"""``--weights FILE``: any model's starting weights."""

PRETRAINED_OPTION = click.option(
    "--pretrained/--no-pretrained", default=None,
    help="Start from the published ImageNet weights (efficientnet_lite0; `neuroprune models fetch MODEL` first).",
)
"""``--pretrained``: a registered model's published weights."""

def _combine(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def apply(function: Any) -> Any:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


DATA_OPTIONS = _combine(
    click.option("--data", type=str,
                 help="Your own data instead of --dataset: a folder of class sub-folders of PNG/JPEG images "
                      "(with train/ and test/ sub-folders, or 20% carved as test by a fixed seed), or a .npz with "
                      "x_train, y_train, x_test, y_test (uint8 N,C,H,W)."),
    click.option("--image-size", type=int, help="With --data: resize every image to N x N pixels [default: keep]."),
    click.option("--channels", type=int, help="With --data: 1 (grey) or 3 (RGB) [default: 1 if every image is grey]."),
)
"""``--data``, ``--image-size`` and ``--channels``."""
