"""Synaptic pruning inside a ``lightning.Trainer``, as a callback.

Needs the optional ``lightning`` package (``pip install neuroprune[lightning]``). The
callback attaches a :class:`~neuroprune.synaptic.SynapticPruner` to the LightningModule
(or one of its submodules) when fitting starts, before Lightning builds the optimizer and
wraps the model for data-parallel training, and advances it once per optimizer step.
Under Lightning's DDP strategies the pruner averages its activity statistics over the
processes before every check, so every rank prunes the same connections. The pruner's
state (masks, counters, activity, step) is saved in and restored from Lightning's
checkpoints.

Example:
    >>> import lightning as L
    >>> from neuroprune.integrations.lightning import SynapticPruning
    >>> pruning = SynapticPruning(target_sparsity=0.9)  # checks every 1% of the run
    >>> L.Trainer(max_epochs=10, callbacks=[pruning]).fit(module, train_loader)
    >>> small = pruning.pruner.compact()
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError
from ..synaptic import SynapticPruner

try:
    import lightning.pytorch as pl
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "neuroprune.integrations.lightning needs the lightning package: pip install neuroprune[lightning]"
    ) from exc

log = logging.getLogger(__name__)


class SynapticPruning(pl.Callback):
    """Lightning callback running activity-dependent synaptic pruning during ``fit``.

    Args:
        submodule: dotted name of the network to prune inside the LightningModule (e.g.
            ``"model"``); None prunes the LightningModule's own Linear/Conv2d layers.
        layers: names (relative to the pruned network) of the layers to prune; default all.
        **pruner_options: passed to :class:`~neuroprune.synaptic.SynapticPruner`
            (``criterion``, ``alpha``, ``patience``, ``check_every``, ``warmup_steps``, ...).

    Attributes:
        pruner: the SynapticPruner, available once fitting has started.
    """

    def __init__(self, submodule: str | None = None, layers: Iterable[str] | None = None,
                 **pruner_options: Any) -> None:
        super().__init__()
        if "optimizer" in pruner_options or "model" in pruner_options:
            raise ConfigError("SynapticPruning takes the model and optimizer from the Lightning Trainer")
        self.submodule = submodule
        self.layers = list(layers) if layers is not None else None
        self.pruner_options = pruner_options
        self.pruner: SynapticPruner | None = None
        self._pending_state: dict[str, Any] | None = None
        self._seen_step = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Attach the masks (once) before Lightning builds the optimizer and any DDP wrapper."""
        if stage != "fit" or self.pruner is not None:
            return
        network = pl_module.get_submodule(self.submodule) if self.submodule else pl_module
        self.pruner = SynapticPruner(network, layers=self.layers, **self.pruner_options)
        if self._pending_state is not None:
            self.pruner.load_state_dict(self._pending_state)
            self._pending_state = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pruner = self._require_pruner()
        if trainer.optimizers:  # its steps keep pruned weights (and their momentum) at zero
            pruner.optimizer = trainer.optimizers[0]
        total = trainer.estimated_stepping_batches  # optimizer steps of the whole fit; inf if unbounded
        if isinstance(total, (int, float)) and 0 < total < float("inf"):
            pruner.plan(int(total))  # resolves "auto" check_every, warm-up and stop for this run
        self._seen_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        pruner = self._require_pruner()
        # global_step counts optimizer steps, so gradient accumulation is handled
        while self._seen_step < trainer.global_step:
            pruner.step()
            self._seen_step += 1

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        pruner = self._require_pruner()
        pl_module.log("pruned_fraction", pruner.sparsity(), rank_zero_only=True)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and self.pruner is not None:
            self.pruner.remove_hooks()

    def state_dict(self) -> dict[str, Any]:
        """The pruner's state, saved in Lightning checkpoints."""
        return {"pruner": self.pruner.state_dict()} if self.pruner is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the pruner's state from a Lightning checkpoint."""
        if "pruner" not in state_dict:
            return
        if self.pruner is None:
            self._pending_state = state_dict["pruner"]
        else:
            self.pruner.load_state_dict(state_dict["pruner"])

    def _require_pruner(self) -> SynapticPruner:
        if self.pruner is None:
            raise RuntimeError("SynapticPruning.setup() has not run; add the callback to a lightning.Trainer")
        return self.pruner

