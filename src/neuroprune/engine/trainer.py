"""A plain training loop with named callback events.

Events, in order: ``on_train_begin``, then per batch ``on_step_end`` (after the
optimizer step), per epoch ``on_epoch_end`` (after evaluation), and ``on_train_end``.
A callback is any object with some of these methods; each receives the :class:`Trainer`.

Under ``torchrun`` (a running ``torch.distributed`` process group), :func:`fit` trains
data-parallel: the model is wrapped in ``DistributedDataParallel`` for the training passes,
every rank loads its own shard of each global batch, and the loss each step reports is the
mean over all ranks, so every rank stops at the same step when it becomes NaN.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .. import distributed as dist_utils
from ..errors import NeuropruneError
from .precision import autocast, check_precision, grad_scaler

log = logging.getLogger(__name__)
EVENTS = ("on_train_begin", "on_step_end", "on_epoch_end", "on_train_end")


class TrainingDiverged(NeuropruneError):
    """The loss became NaN or infinite."""


@dataclass
class Trainer:
    """What callbacks can see and change while :func:`fit` runs."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    epoch: int = 0  # epochs finished
    step: int = 0  # optimizer steps finished
    total_steps: int = 0  # optimizer steps of the whole run (0: unknown, e.g. a loader without len)
    history: list[dict[str, Any]] = field(default_factory=list)
    last_loss: float = float("nan")
    should_stop: bool = False
    precision: str = "32"
    scaler: torch.amp.GradScaler | None = None  # float16 training's loss scale (saved in checkpoints)
    _pending: dict[str, Any] = field(default_factory=dict)

    def log(self, **metrics: Any) -> None:
        """Add values to this epoch's history record."""
        self._pending.update(metrics)


class EpochLRScheduler:
    """Callback stepping a torch learning-rate scheduler once per epoch."""

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        self.scheduler = scheduler

    def on_epoch_end(self, trainer: Trainer) -> None:
        self.scheduler.step()
        trainer.log(lr=self.scheduler.get_last_lr()[0])

    def state_dict(self) -> dict[str, Any]:
        """The wrapped scheduler's state (saved in checkpoints)."""
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.scheduler.load_state_dict(state)


def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: Callable = nn.functional.cross_entropy,
    *,
    distributed: bool = False,
    precision: str = "32",
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``loader`` (eval mode, no gradients).

    Args:
        model: the network; batches are moved to its device.
        loader: yields ``(inputs, targets)``.
        loss_fn: ``loss_fn(outputs, targets, reduction="sum")``.
        distributed: sum the counts over all processes (a collective: every rank calls
            it), so each rank may hold its own shard of the data.
        precision: ``"32"``, ``"bf16-mixed"`` or ``"16-mixed"`` (forward under autocast).

    Returns:
        ``{"loss": float, "accuracy": float}`` with accuracy in [0, 1].
    """
    was_training = model.training
    model.eval()
    device = _device_of(model)
    total, correct, loss_sum = 0, 0, 0.0
    with torch.inference_mode():
        for x, y in loader:
            x, y = _to_device(x, device), _to_device(y, device)
            with autocast(precision, device):
                out = model(x)
                loss_sum += float(loss_fn(out, y, reduction="sum"))
            correct += int((out.argmax(dim=1) == y).sum())
            total += len(y)
    model.train(was_training)
    if distributed:
        sums = torch.tensor([loss_sum, correct, total], dtype=torch.float64, device=device)
        loss_sum, correct, total = dist_utils.all_reduce_sum_(sums).tolist()
    if total == 0:
        raise NeuropruneError("the evaluation data set is empty")
    return {"loss": loss_sum / total, "accuracy": correct / total}


def fit(
    model: nn.Module,
    train_loader: DataLoader,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 0.01,
    eval_loader: Iterable | None = None,
    callbacks: Sequence[Any] = (),
    loss_fn: Callable = nn.functional.cross_entropy,
    show_progress: bool = False,
    start_epoch: int = 0,
    trainer: Trainer | None = None,
    distributed: bool | None = None,
    precision: str = "32",
) -> list[dict[str, Any]]:
    """Train ``model`` for ``epochs`` epochs and return the per-epoch history.

    Args:
        model: the network; trained in place.
        train_loader: yields ``(inputs, targets)`` batches.
        epochs: number of epochs (>= 1).
        optimizer: defaults to SGD with momentum 0.9 at ``lr``.
        lr: learning rate of the default optimizer.
        eval_loader: evaluated after every epoch (``test_accuracy``, ``test_loss``).
        callbacks: objects with event methods (see module docstring), e.g. a SynapticPruner.
        loss_fn: ``loss_fn(outputs, targets, reduction=...)``.
        show_progress: draw a progress bar on the terminal.
        start_epoch: epochs already done (when resuming).
        trainer: a Trainer to continue (when resuming); overrides ``optimizer``.
        distributed: train data-parallel over the running process group; None (default)
            does so whenever one with more than one process is running. Every rank must call
            ``fit`` with its own shard of the data (``create_loader(..., rank=, world_size=)``);
            ``eval_loader`` may be a shard too, since evaluation sums over all ranks.
        precision: ``"32"``; ``"bf16-mixed"`` or ``"16-mixed"`` run forward passes and the
            loss under ``torch.autocast`` (weights and optimizer state stay float32;
            float16 adds a gradient scaler). The model is moved nowhere: put it on its
            device first.

    Returns:
        One dict per epoch: ``epoch``, ``train_loss``, ``seconds``, ``test_accuracy``,
        ``test_loss`` and whatever callbacks logged.

    Raises:
        TrainingDiverged: the loss became NaN or infinite; training stops at once (on every
            rank, at the same step).

    Example:
        >>> history = fit(model, loader, epochs=3, lr=0.05, eval_loader=test_loader)
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise NeuropruneError(f"epochs must be an integer >= 1, got {epochs!r}")
    check_precision(precision)
    trainer = _ready_trainer(model, trainer, optimizer, lr, start_epoch, epochs * _safe_len(train_loader), precision)
    is_distributed = dist_utils.is_distributed() if distributed is None else distributed
    loop = _Loop(model, trainer, loss_fn, callbacks, precision=precision, epochs=epochs, is_distributed=is_distributed)
    _emit(callbacks, "on_train_begin", trainer)
    is_shown = show_progress and dist_utils.is_main_process()
    progress = _Progress(is_shown, total=(epochs - trainer.epoch) * _safe_len(train_loader))
    try:
        while trainer.epoch < epochs and not trainer.should_stop:
            started = time.perf_counter()
            train_loss = loop.train_epoch(trainer, train_loader, progress)
            loop.end_epoch(trainer, train_loss, started, eval_loader)
        _emit(callbacks, "on_train_end", trainer)
    finally:
        progress.close()
    return trainer.history


def _ready_trainer(
    model: nn.Module,
    trainer: Trainer | None,
    optimizer: torch.optim.Optimizer | None,
    lr: float,
    start_epoch: int,
    total_steps: int,
    precision: str,
) -> Trainer:
    """The Trainer to continue, or a new one (SGD with momentum 0.9 at ``lr`` unless ``optimizer``)."""
    if trainer is None:
        optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        trainer = Trainer(model, optimizer, epoch=start_epoch)
    trainer.total_steps = total_steps
    trainer.precision = precision
    if trainer.scaler is None:
        trainer.scaler = grad_scaler(precision, _device_of(model))
    return trainer


class _Loop:
    """The parts of one :func:`fit` call that every epoch repeats: training steps and the epoch's record."""

    def __init__(self, model: nn.Module, trainer: Trainer, loss_fn: Callable, callbacks: Sequence[Any], *,
                 precision: str, epochs: int, is_distributed: bool) -> None:
        self.model, self.loss_fn, self.callbacks = model, loss_fn, callbacks
        self.precision, self.epochs, self.is_distributed = precision, epochs, is_distributed
        self.device = _device_of(model)
        assert trainer.scaler is not None  # set by _ready_trainer
        self.scaler = trainer.scaler
        # Callbacks keep seeing the plain model; only the training passes go through DDP.
        self.forward = _data_parallel(model, self.device) if is_distributed else model
        self.world = dist_utils.world_size() if is_distributed else 1

    def train_epoch(self, trainer: Trainer, loader: Iterable, progress: _Progress) -> float:
        """One pass over ``loader``, a step per batch; returns the mean training loss."""
        loss_sum, batches = 0.0, 0
        self.model.train()
        _set_epoch(loader, trainer.epoch)
        for x, y in loader:
            value = self._step(trainer, _to_device(x, self.device), _to_device(y, self.device))
            loss_sum, batches = loss_sum + value, batches + 1
            _emit(self.callbacks, "on_step_end", trainer)
            progress.advance(f"epoch {trainer.epoch + 1}/{self.epochs} loss {value:.4f}")
        return loss_sum / max(batches, 1)

    def _step(self, trainer: Trainer, x: Any, y: Any) -> float:
        """One optimizer step on a batch; returns its loss (the mean over ranks when distributed)."""
        trainer.optimizer.zero_grad(set_to_none=True)
        with autocast(self.precision, self.device):
            loss = self.loss_fn(self.forward(x), y)
        value = _mean_over_ranks(loss, self.world) if self.is_distributed else float(loss.detach())
        if not math.isfinite(value):
            raise TrainingDiverged(
                f"the training loss became {value} at epoch {trainer.epoch + 1}, step {trainer.step + 1}; "
                "training stopped (try a lower learning rate). Earlier checkpoints are left as they were."
            )
        self.scaler.scale(loss).backward()
        self.scaler.step(trainer.optimizer)  # skipped (float16 only) when a gradient overflowed
        self.scaler.update()
        trainer.step += 1
        trainer.last_loss = value
        return value

    def end_epoch(self, trainer: Trainer, train_loss: float, started: float, eval_loader: Iterable | None) -> None:
        """Close the epoch begun at ``started``: evaluate, let callbacks log, append the record to the history."""
        trainer.epoch += 1
        record: dict[str, Any] = {"epoch": trainer.epoch, "step": trainer.step}
        record["train_loss"] = train_loss
        record["seconds"] = time.perf_counter() - started
        if eval_loader is not None:
            scores = evaluate(self.model, eval_loader, self.loss_fn, distributed=self.is_distributed,
                              precision=self.precision)
            record["test_loss"], record["test_accuracy"] = scores["loss"], scores["accuracy"]
        trainer._pending = record
        _emit(self.callbacks, "on_epoch_end", trainer)
        trainer.history.append(trainer._pending)
        if dist_utils.is_main_process():
            log.info("epoch %d: %s", trainer.epoch, _summary(trainer._pending))
        trainer._pending = {}


def _data_parallel(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped for data-parallel training; its parameters start as rank 0's."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def _mean_over_ranks(loss: torch.Tensor, world: int) -> float:
    """The batch loss averaged over ranks: what a single process on the global batch reports."""
    total = loss.detach().clone().reshape(1)
    dist_utils.all_reduce_sum_(total)
    return float(total) / world


def _set_epoch(loader: Iterable, epoch: int) -> None:
    """Tell a sampler that orders batches by epoch which epoch comes (so resuming replays it)."""
    parts: tuple[Any, ...] = (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None))
    for part in parts:
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)
            return


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _to_device(value: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors in a tuple or list, to ``device`` (no copy on the CPU)."""
    if device.type == "cpu":
        return value
    if torch.is_tensor(value):
        return value.to(device, non_blocking=True)
    if isinstance(value, (tuple, list)):
        return type(value)(_to_device(item, device) for item in value)
    return value


def _summary(record: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items() if k != "epoch")


def _emit(callbacks: Sequence[Any], event: str, trainer: Trainer) -> None:
    for callback in callbacks:
        handler = getattr(callback, event, None)
        if handler is not None:
            handler(trainer)


def _safe_len(loader: Iterable) -> int:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return 0


class _Progress:
    """A rich progress bar, or nothing when ``enabled`` is False."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar = None
        if enabled:
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), transient=True)
            self._task = self._bar.add_task("training", total=total or None)
            self._bar.start()

    def advance(self, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=description)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
