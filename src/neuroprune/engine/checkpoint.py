"""Periodic training checkpoints, written atomically and loaded without unpickling code.

A checkpoint holds everything an interrupted run needs to go on exactly as if it had not
stopped: model weights, optimizer state (momentum), the pruner's masks, counters and
activity sums, the state of other stateful callbacks (the learning-rate schedule), every
rank's RNG states, the epoch and step, and the history so far. The data order needs no
state: :func:`~neuroprune.data.create_loader` derives epoch ``e``'s batches from
``(seed, e)`` alone, and :func:`~neuroprune.engine.fit` tells the loader which epoch comes.
"""

from __future__ import annotations

import copy
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
    total_steps: int | None = None,
) -> Trainer:
    """Restore a checkpoint into freshly built objects and return the Trainer to continue.

    Build the model, pruner, optimizer and callbacks exactly as the original run did, then
    call this and pass the result to ``fit(..., trainer=trainer)``. Restoring is all or
    nothing: the whole checkpoint is checked first (every field, against these objects, and
    the optimizer state loaded into a scratch optimizer), and should loading still fail
    part-way, every object is put back as it was.

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
        total_steps: the run's length in optimizer steps, when known: a pruner's ``"auto"``
            schedule follows from it, and so the activity the checkpoint must hold.

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
                     history_keys=history_keys, total_steps=total_steps, format_version=FORMAT_VERSION)
    _try_optimizer_state(optimizer, state["optimizer"], str(path))
    before = _Snapshot(model, optimizer, pruner, states)
    try:
        scaler = _apply(state, str(path), model, optimizer, pruner, states)
    except Exception as exc:  # noqa: BLE001 - checked above; whatever still fails leaves nothing half-restored
        before.restore()
        reason = exc if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"
        raise ModelError(f"checkpoint {path} could not be restored ({_one_line(reason)}); nothing was changed: "
                         "the file is damaged or was not written for this run") from None
    return Trainer(model, optimizer, epoch=state["epoch"], step=state["step"],
                   history=[dict(record) for record in state["history"]], scaler=scaler)


def _apply(state: dict[str, Any], source: str, model: nn.Module, optimizer: torch.optim.Optimizer, pruner: Any,
           states: Mapping[str, Any] | None) -> torch.amp.GradScaler | None:
    """Load every part of a checked ``state``; returns the gradient scaler to go on with, if any."""
    if pruner is not None:
        pruner.load_state_dict(state["pruner"])
    _load_model_state(model, state["model"], source)
    optimizer.load_state_dict(state["optimizer"])
    saved_states = state.get("states", {})
    for name, obj in (states or {}).items():
        obj.load_state_dict(saved_states[name])
    _restore_rng(state, source)
    if "grad_scaler" not in state:
        return None
    scaler = torch.amp.GradScaler(next(model.parameters()).device.type)  # float16: go on with the scale reached
    scaler.load_state_dict(state["grad_scaler"])
    return scaler


def _try_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any], source: str) -> None:
    """Load ``saved`` into a scratch optimizer of the same kind over copies of the parameters.

    What torch's own ``load_state_dict`` refuses is found here, before anything has changed.
    """
    groups = [{**{k: v for k, v in group.items() if k != "params"},
               "params": [torch.empty_like(p, device="cpu").requires_grad_(p.requires_grad) for p in group["params"]]}
              for group in optimizer.param_groups]
    try:
        scratch = type(optimizer)(groups, **optimizer.defaults)
        scratch.load_state_dict(saved)
    except Exception as exc:  # noqa: BLE001 - any refusal of torch's, as one line
        raise ModelError(f"the optimizer state in {source} does not fit this optimizer: {_one_line(exc)}") from None


class _Snapshot:
    """Copies of everything :func:`resume` changes, to put back when restoring fails part-way."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, pruner: Any,
                 states: Mapping[str, Any] | None) -> None:
        self.model, self.optimizer, self.pruner, self.states = model, optimizer, pruner, dict(states or {})
        self.model_state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        self.optimizer_state = copy.deepcopy(optimizer.state_dict())
        self.pruner_state = copy.deepcopy(pruner.state_dict()) if pruner is not None else None
        self.other_states = {name: copy.deepcopy(obj.state_dict()) for name, obj in self.states.items()}
        self.rng = _rng_state()

    def restore(self) -> None:
        if self.pruner is not None:
            self.pruner.load_state_dict(self.pruner_state)
        with torch.no_grad():
            for key, value in self.model.state_dict().items():
                value.copy_(self.model_state[key])
        self.optimizer.load_state_dict(self.optimizer_state)
        for name, obj in self.states.items():
            obj.load_state_dict(self.other_states[name])
        torch.set_rng_state(self.rng["torch"])
        if self.rng["cuda"]:
            torch.cuda.set_rng_state_all(self.rng["cuda"])


def _one_line(reason: Any) -> str:
    text = " ".join(str(reason).split())
    return text if len(text) <= 200 else text[:197] + "..."


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
