"""Recovery after a cut: translator-only training, then optional fine-tuning and distillation.

The authors' recipe trains only the translator (5 epochs, lr 1e-3) with the rest of the
network frozen. Fine-tuning everything afterwards, optionally distilling from the intact
model, are the extensions the spec names.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..engine import fit
from ..engine.precision import autocast
from ..errors import ConfigError
from ..synaptic.pruner import SynapticPruner
from .translator import Translator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseResult:
    """What one recovery phase did.

    Attributes:
        name: ``translator`` or ``finetune``.
        epochs: epochs run.
        lr: peak learning rate.
        seconds: wall-clock training time.
        accuracy: accuracy on the evaluation data after the phase (None without eval data).
        distilled: whether the loss included distillation from a teacher.
    """

    name: str
    epochs: int
    lr: float
    seconds: float
    accuracy: float | None
    distilled: bool

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return asdict(self)


def translator_modules(model: nn.Module) -> list[nn.Module]:
    """The Translators inside ``model``."""
    return [m for m in model.modules() if isinstance(m, Translator)]


def train_translators(
    model: nn.Module, loader: Iterable, *, epochs: int = 5, lr: float = 1e-3, eval_loader: Iterable | None = None,
    precision: str = "32",
) -> PhaseResult:
    """Train only the translators (Adam), everything else frozen, as in the authors' code.

    Frozen batch-norm layers stay in eval mode, so their running statistics do not move
    either (Keras's frozen layers behave the same way).

    Raises:
        ConfigError: the model holds no Translator.
    """
    bridges = translator_modules(model)
    if not bridges:
        raise ConfigError("translator-only recovery needs a model with a Translator (an identity cut has none)")
    trainable = {id(p) for t in bridges for p in t.parameters()}
    flags = {p: p.requires_grad for p in model.parameters()}
    frozen_modules = [m for m in model.modules() if not any(m is t or _inside(m, t) for t in bridges)]
    frozen_norms = [m for m in frozen_modules if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def keep_frozen_in_eval(_: nn.Module, __: Any) -> None:
        for norm in frozen_norms:  # fit() calls model.train() every epoch; undo it for frozen norms
            norm.eval()

    handle = model.register_forward_pre_hook(keep_frozen_in_eval)
    try:
        for param in model.parameters():
            param.requires_grad_(id(param) in trainable)
        optimizer = torch.optim.Adam([p for t in bridges for p in t.parameters()], lr=lr)
        started = time.perf_counter()
        history = fit(model, loader, epochs=epochs, optimizer=optimizer, eval_loader=eval_loader,  # type: ignore[arg-type]
                      precision=precision)
    finally:
        handle.remove()
        for param, flag in flags.items():
            param.requires_grad_(flag)
    return PhaseResult("translator", epochs, lr, time.perf_counter() - started,
                       history[-1].get("test_accuracy"), distilled=False)


def fine_tune(
    model: nn.Module,
    loader: Iterable,
    *,
    epochs: int,
    lr: float = 0.01,
    weight_decay: float = 5e-4,
    teacher: nn.Module | None = None,
    distill_weight: float = 0.5,
    temperature: float = 4.0,
    eval_loader: Iterable | None = None,
    precision: str = "32",
    callbacks: Sequence[Any] = (),
) -> PhaseResult:
    """Fine-tune every parameter with SGD (momentum 0.9, cosine-decayed learning rate).

    Args:
        model: the pruned model, trained in place.
        loader: training batches.
        epochs: epochs (>= 1).
        lr: peak learning rate.
        weight_decay: L2 penalty.
        teacher: the intact model to distil from, or None for plain cross-entropy.
        distill_weight: share of the loss that is the distillation term (Hinton et al. 2015).
        temperature: softmax temperature of the distillation term.
        eval_loader: evaluated after every epoch.
        precision: ``"32"``, ``"bf16-mixed"`` or ``"16-mixed"`` (see :func:`~neuroprune.fit`).
        callbacks: more training callbacks (a :class:`~neuroprune.SynapticPruner` that prunes
            units while the network recovers, say).

    The teacher is run in eval mode and handed back in the mode it came in.
    """
    if not 0 <= distill_weight <= 1:
        raise ConfigError(f"distill_weight must be in [0, 1], got {distill_weight}")
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    total_steps = epochs * max(_length(loader), 1)
    schedule = _CosineSchedule(optimizer, lr, total_steps)
    started = time.perf_counter()
    if teacher is None:
        history = fit(model, loader, epochs=epochs, optimizer=optimizer, eval_loader=eval_loader,  # type: ignore[arg-type]
                      callbacks=[schedule, *callbacks], precision=precision)
    else:
        was_training = teacher.training
        teacher.eval()
        loss = _DistillLoss(distill_weight, temperature)
        batches = _WithTeacher(loader, teacher, precision)
        try:
            history = fit(model, batches, epochs=epochs, optimizer=optimizer,  # type: ignore[arg-type]
                          eval_loader=eval_loader, callbacks=[schedule, *callbacks], loss_fn=loss,
                          precision=precision)
        finally:
            teacher.train(was_training)
    return PhaseResult("finetune", epochs, lr, time.perf_counter() - started, history[-1].get("test_accuracy"),
                       distilled=teacher is not None)


class _CosineSchedule:
    """fit() callback: learning rate follows half a cosine from ``lr`` to 0 over ``total`` steps."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr: float, total: int) -> None:
        self.optimizer, self.lr, self.total = optimizer, lr, total

    def on_step_end(self, trainer: Any) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = 0.5 * self.lr * (1 + math.cos(math.pi * min(trainer.step / self.total, 1.0)))


class _WithTeacher:
    """Batches ``(x, (y, teacher_logits))``: the teacher's outputs travel with the labels to the loss."""

    def __init__(self, loader: Iterable, teacher: nn.Module, precision: str = "32") -> None:
        self.loader, self.teacher, self.precision = loader, teacher, precision
        self.device = next(teacher.parameters()).device

    def __len__(self) -> int:
        return _length(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]]:
        for x, y in self.loader:
            x = x.to(self.device)
            with torch.inference_mode(), autocast(self.precision, self.device):
                logits = self.teacher(x)
            yield x, (y, logits.float().clone())


class _DistillLoss:
    """``(1 - w) * CE(s, y) + w * T^2 * KL(softmax(t/T) || softmax(s/T))``; plain CE for plain labels."""

    def __init__(self, weight: float, temperature: float) -> None:
        self.weight, self.temperature = weight, temperature

    def __call__(self, outputs: torch.Tensor, targets: Any, reduction: str = "mean") -> torch.Tensor:
        if not isinstance(targets, tuple):  # evaluation batches carry plain labels
            return F.cross_entropy(outputs, targets, reduction=reduction)
        labels, teacher = targets
        t = self.temperature
        hard = F.cross_entropy(outputs, labels, reduction=reduction)
        soft = F.kl_div(F.log_softmax(outputs / t, dim=1), F.log_softmax(teacher / t, dim=1), reduction="none",
                        log_target=True).sum(dim=1) * t * t
        soft = soft.mean() if reduction == "mean" else soft.sum()
        return (1 - self.weight) * hard + self.weight * soft


def _inside(module: nn.Module, container: nn.Module) -> bool:
    return any(module is m for m in container.modules())


def _length(loader: Iterable) -> int:
    try:
        return len(loader)  # type: ignore[arg-type]
    except TypeError:
        return 0


def fine_tune_pruning_units(
    model: nn.Module,
    loader: Iterable,
    *,
    target_speedup: float,
    latency_batch_sizes: Sequence[int],
    example_inputs: torch.Tensor,
    epochs: int,
    max_unit_ratio: float = 1.0,
    prune_until: float = 0.6,
    **options: Any,
) -> tuple[nn.Module, PhaseResult, SynapticPruner]:
    """:func:`fine_tune` while a synaptic pruner removes whole units until ``model`` runs ``target_speedup`` x faster.

    One recovery for cuts and units: the units go while the network adapts to its cuts, by
    activity per unit of time their removal saves (the speed-up is timed on ``model`` itself at
    ``latency_batch_sizes``, see :mod:`neuroprune.synaptic.latency`). At most
    ``max_unit_ratio`` of any channel space's units go: where the speed-up is only bought by
    emptying spaces (small layers at batch 1, whose time is mostly per-call cost), a cap below
    1 turns that into a clear error instead of a gutted network. The last units go at
    ``prune_until`` of the fine-tuning steps (the pruner's default, 0.6), the rest of them
    are left to recover. ``options`` go to :func:`fine_tune`.

    Raises:
        ConfigError: ``prune_until`` is not in (0.05, 1] (pruning starts after the first 5%).

    Returns:
        The compacted network (``model`` keeps its masks), the fine-tuning phase and the
        pruner (its calibration and the MACs left).
    """
    if isinstance(prune_until, bool) or not isinstance(prune_until, (int, float)) or not 0.05 < prune_until <= 1:
        raise ConfigError(f"prune_until must be in (0.05, 1] (the share of the fine-tuning steps after which no unit "
                          f"goes; pruning starts after the first 5%), got {prune_until!r}")
    total_steps = epochs * max(_length(loader), 1)
    warmup = total_steps // 20  # the pruner's own "auto" warm-up
    pruner = SynapticPruner(model, granularity="unit", target_speedup=target_speedup,
                            latency_batch_sizes=tuple(latency_batch_sizes), example_inputs=example_inputs[:1],
                            total_steps=total_steps, max_unit_ratio=max_unit_ratio,
                            stop_step=max(round(prune_until * total_steps), warmup + 1))
    phase = fine_tune(model, loader, epochs=epochs, callbacks=[pruner], **options)
    pruner.remove_hooks()
    return pruner.compact().eval(), phase, pruner


def recover(
    model: nn.Module,
    loader: Iterable,
    *,
    translator_epochs: int = 5,
    translator_lr: float = 1e-3,
    finetune_epochs: int = 0,
    finetune_lr: float = 0.01,
    teacher: nn.Module | None = None,
    distill_weight: float = 0.5,
    temperature: float = 4.0,
    eval_loader: Iterable | None = None,
    precision: str = "32",
) -> list[PhaseResult]:
    """Translator-only training, then (if ``finetune_epochs``) fine-tuning of everything.

    A phase with 0 epochs is skipped; translator training is skipped for models without a
    Translator (identity cuts). ``teacher`` turns on distillation in the fine-tuning phase.

    Example:
        >>> phases = recover(small, train_loader, translator_epochs=5, finetune_epochs=10, teacher=model)
    """
    phases = []
    if translator_epochs > 0 and translator_modules(model):
        phases.append(train_translators(model, loader, epochs=translator_epochs, lr=translator_lr,
                                        eval_loader=eval_loader, precision=precision))
    if finetune_epochs > 0:
        phases.append(fine_tune(model, loader, epochs=finetune_epochs, lr=finetune_lr, teacher=teacher,
                                distill_weight=distill_weight, temperature=temperature, eval_loader=eval_loader,
                                precision=precision))
    for phase in phases:
        log.info("recovery %s: %d epochs in %.1fs, accuracy %s", phase.name, phase.epochs, phase.seconds,
                 phase.accuracy)
    return phases
