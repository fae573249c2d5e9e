"""Periodic training checkpoints, written atomically and loaded without unpickling code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .._io import load_torch, save_torch
from ..synaptic.masks import plain_state_dict


class Checkpointer:
    """Callback that saves model, optimizer, pruner state, RNG and progress every epoch.

    The file is replaced atomically, so a crash (or a NaN loss) leaves the last good
    checkpoint intact.

    Args:
        path: the checkpoint file (e.g. ``run/checkpoint.pt``).
        pruner: an object with ``state_dict()`` (a SynapticPruner) to save alongside.
    """

    def __init__(self, path: str | Path, pruner: Any | None = None) -> None:
        self.path = Path(path)
        self.pruner = pruner

    def on_epoch_end(self, trainer: Any) -> None:
        state = {
            "model": plain_state_dict(trainer.model),
            "optimizer": trainer.optimizer.state_dict(),
            "epoch": trainer.epoch,
            "step": trainer.step,
            "history": trainer.history + [trainer._pending],
            "torch_rng": torch.get_rng_state(),
        }
        if self.pruner is not None:
            state["pruner"] = self.pruner.state_dict()
        save_torch(self.path, state)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :class:`Checkpointer` (plain tensors only)."""
    return load_torch(path)
