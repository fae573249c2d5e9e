"""A plain training loop with named callback events.

Events, in order: ``on_train_begin``, then per batch ``on_step_end`` (after the
optimizer step), per epoch ``on_epoch_end`` (after evaluation), and ``on_train_end``.
A callback is any object with some of these methods; each receives the :class:`Trainer`.
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

from ..errors import NeuropruneError

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
    history: list[dict[str, Any]] = field(default_factory=list)
    last_loss: float = float("nan")
    should_stop: bool = False
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


def evaluate(model: nn.Module, loader: Iterable, loss_fn: Callable = nn.functional.cross_entropy) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``loader`` (eval mode, no gradients).

    Returns:
        ``{"loss": float, "accuracy": float}`` with accuracy in [0, 1].
    """
    was_training = model.training
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    with torch.inference_mode():
        for x, y in loader:
            out = model(x)
            loss_sum += float(loss_fn(out, y, reduction="sum"))
            correct += int((out.argmax(dim=1) == y).sum())
            total += len(y)
    model.train(was_training)
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

    Returns:
        One dict per epoch: ``epoch``, ``train_loss``, ``seconds``, ``test_accuracy``,
        ``test_loss`` and whatever callbacks logged.

    Raises:
        TrainingDiverged: the loss became NaN or infinite; training stops at once.

    Example:
        >>> history = fit(model, loader, epochs=3, lr=0.05, eval_loader=test_loader)
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise NeuropruneError(f"epochs must be an integer >= 1, got {epochs!r}")
    if trainer is None:
        optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        trainer = Trainer(model, optimizer, epoch=start_epoch)
    _emit(callbacks, "on_train_begin", trainer)
    progress = _Progress(show_progress, total=(epochs - trainer.epoch) * _safe_len(train_loader))
    try:
        while trainer.epoch < epochs and not trainer.should_stop:
            started, loss_sum, batches = time.perf_counter(), 0.0, 0
            model.train()
            for x, y in train_loader:
                trainer.optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingDiverged(
                        f"the training loss became {value} at epoch {trainer.epoch + 1}, step {trainer.step + 1}; "
                        "training stopped (try a lower learning rate). Earlier checkpoints are left as they were."
                    )
                loss.backward()
                trainer.optimizer.step()
                trainer.step += 1
                trainer.last_loss = value
                loss_sum, batches = loss_sum + value, batches + 1
                _emit(callbacks, "on_step_end", trainer)
                progress.advance(f"epoch {trainer.epoch + 1}/{epochs} loss {value:.4f}")
            trainer.epoch += 1
            record: dict[str, Any] = {"epoch": trainer.epoch, "step": trainer.step}
            record["train_loss"] = loss_sum / max(batches, 1)
            record["seconds"] = time.perf_counter() - started
            if eval_loader is not None:
                scores = evaluate(model, eval_loader, loss_fn)
                record["test_loss"], record["test_accuracy"] = scores["loss"], scores["accuracy"]
            trainer._pending = record
            _emit(callbacks, "on_epoch_end", trainer)
            trainer.history.append(trainer._pending)
            log.info("epoch %d: %s", trainer.epoch, _summary(trainer._pending))
            trainer._pending = {}
        _emit(callbacks, "on_train_end", trainer)
    finally:
        progress.close()
    return trainer.history


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
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), transient=True)
            self._task = self._bar.add_task("training", total=total or None)
            self._bar.start()

    def advance(self, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=description)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
