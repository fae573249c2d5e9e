"""Structural checks a run makes before it trains, so a model that cannot finish fails in the first second."""

from __future__ import annotations

import torch
from torch import nn

from ..depth.graph_spec import describe_graph_model
from ..errors import ModelError


def check_savable(model: nn.Module, name: str) -> None:
    """Refuse a model the graph spec cannot describe (its trained weights could not be saved).

    Raises:
        ModelError: naming the module that has no saved form.
    """
    try:
        describe_graph_model(model)
    except ModelError as exc:
        raise ModelError(f"model {name!r} could not be saved after training ({exc}); the run would fail after its "
                         "last epoch, so it does not start. Build the model from standard layers in a forward that "
                         "torch.fx can trace") from None


def check_runs_on(model: nn.Module, example: torch.Tensor, name: str) -> None:
    """Run ``model`` once on ``example``; a model that does not fit the data's shape is refused in one line.

    Raises:
        ModelError: the forward pass failed (its error, and the input shape, named).
    """
    try:
        with torch.no_grad():
            model.eval()(example)
    except Exception as exc:  # noqa: BLE001 - the user's forward: any error is a model that does not fit this input
        text = " ".join(str(exc).split())[:300]
        raise ModelError(f"model {name!r} cannot run on inputs of shape {tuple(example.shape)}: "
                         f"{type(exc).__name__}: {text}; give the data it was built for (--data or --dataset), or "
                         "model_args that fit this data") from None
