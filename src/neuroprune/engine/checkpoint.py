"""Periodic training checkpoints, written atomically and loaded without unpickling code.

A checkpoint holds everything an interrupted run needs to go on exactly as if it had not
stopped: model weights, optimizer state (momentum), the pruner's masks, counters and
activity sums, the state of other stateful callbacks (the learning-rate schedule), every
rank's RNG states, the epoch and step, and the history so far. The data order needs no
state: :func:`~neuroprune.data.create_loader` derives epoch ``e``'s batches from
``(seed, e)`` alone, and :func:`~neuroprune.engine.fit` tells the loader which epoch comes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import distributed as dist_utils
from ..errors import ModelError
from ..saved_models import load_matching_state
from ..storage import load_torch, save_torch
from .checkpoint_checks import check_checkpoint
from .trainer import Trainer

log = logging.getLogger(__name__)
FORMAT_VERSION = 2


class Checkpointer:
    """Callback that saves the training state at the end of every epoch.

    The file is replaced atomically, so a crash, SIGKILL or NaN loss leaves the last good
    checkpoint intact. Under data-parallel training every rank must carry the callback
    (RNG states are gathered from all ranks), and rank 0 alone writes the file.

    Args:
        path: the checkpoint file (e.g. ``run/checkpoint.pt``).
        pruner: a SynapticPruner (or anything with ``state_dict()``) saved under ``"pruner"``.
        states: more objects with ``state_dict()``/``load_state_dict()`` to save by name,
            e.g. ``{"lr_schedule": EpochLRScheduler(...)}``.

    Example:
        >>> fit(model, loader, epochs=5, callbacks=[pruner, Checkpointer("run/checkpoint.pt", pruner)])
    """

    def __init__(self, path: str | Path, pruner: Any | None = None, *, states: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.pruner = pruner
        self.states = dict(states or {})

    def on_epoch_end(self, trainer: Trainer) -> None:
        if self.pruner is not None and hasattr(self.pruner, "synchronize_statistics"):
            self.pruner.synchronize_statistics()  # one copy of the activity sums stands for all ranks
        rng = dist_utils.gather_objects(_rng_state())
        if not dist_utils.is_main_process():
            return
        state: dict[str, Any] = {
            "format": FORMAT_VERSION,
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "epoch": trainer.epoch,
            "step": trainer.step,
            "history": trainer.history + [trainer._pending],
            "torch_rng": rng[0]["torch"],
            "rng": rng,
            "world_size": dist_utils.world_size(),
            "states": {name: obj.state_dict() for name, obj in self.states.items()},
        }
        if self.pruner is not None:
            state["pruner"] = self.pruner.state_dict()
        if trainer.scaler is not None and trainer.scaler.is_enabled():
            state["grad_scaler"] = trainer.scaler.state_dict()
        save_torch(self.path, _to_cpu(state))
        log.debug("checkpoint for epoch %d written to %s", trainer.epoch, self.path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :class:`Checkpointer` (plain tensors only).

    Raises:
        ModelError: the file is missing, corrupt, or carries pickled code or objects.
    """
    return load_torch(path)


def resume(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    pruner: Any | None = None,
    states: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    history_keys: Sequence[str] = (),
) -> Trainer:
    """Restore a checkpoint into freshly built objects and return the Trainer to continue.

    Build the model, pruner, optimizer and callbacks exactly as the original run did, then
    call this and pass the result to ``fit(..., trainer=trainer)``. The whole checkpoint is
    checked first (every field, against these objects): when it does not fit, nothing has
    been changed.

    Args:
        path: a file written by :class:`Checkpointer`.
        model: the network, with the pruner's masks already attached if it had any.
        optimizer: the optimizer over the same parameters, in the same order.
        pruner: receives the saved pruner state (masks, counters, activity, step).
        states: objects saved under these names by the Checkpointer's ``states``.
        epochs: the run's length in epochs (from epoch 0), when known: a checkpoint beyond
            it, or without a history record for each finished epoch, is refused.
        history_keys: numbers every history record must hold (what the caller reads from
            the history afterwards, e.g. ``test_accuracy``).

    Returns:
        A :class:`Trainer` at the saved epoch and step, with the saved history.

    Raises:
        ModelError: the checkpoint is unreadable or does not fit these objects (the message
            names the file and the field).

    Example:
        >>> trainer = resume("run/checkpoint.pt", model, optimizer, pruner=pruner)
        >>> fit(model, loader, epochs=10, callbacks=[pruner], trainer=trainer)
    """
    state = load_checkpoint(path)
    check_checkpoint(state, str(path), model=model, optimizer=optimizer, pruner=pruner, states=states, epochs=epochs,
                     history_keys=history_keys, format_version=FORMAT_VERSION)
    # Everything below was checked; the except clauses only turn a surprise into the same kind of error.
    if pruner is not None:
        pruner.load_state_dict(state["pruner"])
    _load_model_state(model, state["model"], str(path))
    try:
        optimizer.load_state_dict(state["optimizer"])
    except (ValueError, KeyError) as exc:
        raise ModelError(f"the optimizer state in {path} does not fit this optimizer: {exc}") from None
    saved_states = state.get("states", {})
    for name, obj in (states or {}).items():
        obj.load_state_dict(saved_states[name])
    _restore_rng(state, str(path))
    scaler = None
    if "grad_scaler" in state:  # float16 training: continue with the loss scale it had reached
        scaler = torch.amp.GradScaler(next(model.parameters()).device.type)
        scaler.load_state_dict(state["grad_scaler"])
    return Trainer(model, optimizer, epoch=state["epoch"], step=state["step"],
                   history=[dict(record) for record in state["history"]], scaler=scaler)


def _load_model_state(model: nn.Module, saved: dict[str, torch.Tensor], source: str) -> None:
    """Load saved weights onto the model's device, naming every key or shape that does not fit."""
    device = next(model.parameters()).device
    load_matching_state(model, {key: value.to(device) for key, value in saved.items()}, source)


def _rng_state() -> dict[str, Any]:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
    }


def _restore_rng(state: dict[str, Any], source: str) -> None:
    saved = state.get("rng")
    if saved is None:  # an older checkpoint: rank 0's CPU state only
        torch.set_rng_state(state["torch_rng"])
        return
    if len(saved) != dist_utils.world_size():
        log.warning("%s was written by %d processes, this run has %d: RNG states start from rank 0's",
                    source, len(saved), dist_utils.world_size())
    mine = saved[dist_utils.rank() if dist_utils.rank() < len(saved) else 0]
    torch.set_rng_state(mine["torch"])
    if mine.get("cuda") and torch.cuda.is_available() and len(mine["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(mine["cuda"])


def _to_cpu(value: Any) -> Any:
    """The same nested structure with every tensor on the CPU (checkpoints load anywhere)."""
    if torch.is_tensor(value):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value
