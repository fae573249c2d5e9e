"""Configurations of ``neuroprune train`` and ``neuroprune depth``: defaults < YAML < CLI flags.

Load them with :func:`neuroprune.config.load_config`, which rejects unknown keys and wrong types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._user_options import check_user_options
from ..config import check_ceilings
from ..engine.precision import check_device_name, check_precision
from ..errors import ConfigError


@dataclass
class TrainConfig:
    """Everything ``neuroprune train`` needs; field names are the CLI option names."""

    model: str = "vgg16"
    model_args: dict[str, Any] | None = None
    dataset: str = "fashion-mnist"
    data: str | None = None
    image_size: int | None = None
    channels: int | None = None
    width: float = 1.0
    weights: str | None = None
    pretrained: bool = False
    pad_to: int | None = None
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    data_root: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    device: str = "auto"
    precision: str = "32"

    def __post_init__(self) -> None:
        _check_common(self)
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ConfigError(f"lr must be > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")


@dataclass
class DepthConfig:
    """Everything ``neuroprune depth`` needs; field names are the CLI option names.

    Either ``cut`` (``ORIGIN:DESTINATION``, several joined by commas) or ``search`` chooses
    the cut. ``search_strategy`` ``single`` scores single cuts after a short recovery each;
    ``greedy`` removes one segment at a time, untrained, until the budgets are met
    (:mod:`neuroprune.depth.greedy`). ``bridge`` unset means a translator for single cuts
    and ``auto`` (identity where the shapes match) for the greedy search.
    """

    model: str = "vgg16"
    model_args: dict[str, Any] | None = None
    checkpoint: str | None = None
    weights: str | None = None
    pretrained: bool = False
    dataset: str = "fashion-mnist"
    data: str | None = None
    image_size: int | None = None
    channels: int | None = None
    width: float = 1.0
    pad_to: int | None = None
    cut: str | None = None
    search: bool = False
    search_strategy: str = "single"
    bridge: str | None = None
    kernel_size: int = 1
    use_batchnorm: bool = False
    translator_init: str = "lstsq"
    # search
    tau: float = 0.8
    efficiency: str = "params"
    max_params: int | None = None
    max_macs: int | None = None
    max_latency_ms: float | None = None
    min_speedup: float | None = None
    latency_batch: int = 1
    max_evaluated: int | None = None
    search_epochs: int = 1
    search_limit_train: int | None = 5000
    # recovery
    translator_epochs: int = 5
    translator_lr: float = 1e-3
    finetune_epochs: int = 0
    finetune_lr: float = 0.01
    distill: bool = False
    distill_weight: float = 0.5
    temperature: float = 4.0
    then_channels: float | None = None
    channels_epochs: int = 0
    then_units_speedup: float | None = None
    then_units_batch: int | None = None
    then_units_max_ratio: float = 1.0
    then_units_until: float = 0.6
    # data and timing
    batch_size: int = 128
    seed: int = 0
    data_root: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    latency_repeats: int = 30
    device: str = "auto"
    precision: str = "32"

    def _check_then_units(self) -> None:
        if self.then_units_speedup is None:
            if self.then_units_batch is not None:
                raise ConfigError("then_units_batch goes with then_units_speedup (the speed-up it is measured at)")
            if self.then_units_max_ratio != 1.0:
                raise ConfigError("then_units_max_ratio goes with then_units_speedup (it caps the units that go)")
            if self.then_units_until != 0.6:
                raise ConfigError("then_units_until goes with then_units_speedup (it says when the last units go)")
            return
        if not self.then_units_speedup > 1:
            raise ConfigError(f"then_units_speedup must be > 1 (times faster than the cut network), "
                              f"got {self.then_units_speedup}")
        if self.finetune_epochs < 1:
            raise ConfigError("then_units_speedup prunes units while the cut network is fine-tuned: "
                              "set finetune_epochs >= 1 (--finetune-epochs)")
        if self.then_channels is not None:
            raise ConfigError("choose one way to narrow the cut network: then_units_speedup or then_channels")
        if self.then_units_batch is not None and self.then_units_batch < 1:
            raise ConfigError(f"then_units_batch must be >= 1, got {self.then_units_batch}")
        if not 0 < self.then_units_max_ratio <= 1:
            raise ConfigError(f"then_units_max_ratio must be in (0, 1] (the largest share of a channel space's units "
                              f"that may go), got {self.then_units_max_ratio}")
        if not 0.05 < self.then_units_until <= 1:
            raise ConfigError(f"then_units_until must be in (0.05, 1] (the share of the fine-tuning after which no "
                              f"unit goes), got {self.then_units_until}")

    @property
    def resolved_bridge(self) -> str:
        """The bridge used: ``bridge``, or when unset ``auto`` for a greedy search and ``translator`` otherwise."""
        if self.bridge is not None:
            return self.bridge
        return "auto" if self.search and self.search_strategy == "greedy" else "translator"

    def __post_init__(self) -> None:
        _check_common(self)
        if (self.cut is None) == (not self.search):
            raise ConfigError("choose the cut with exactly one of cut (ORIGIN:DESTINATION) or search")
        if self.bridge not in (None, "translator", "identity", "auto"):
            raise ConfigError(f"bridge must be 'translator', 'identity' or 'auto', got {self.bridge!r}")
        if self.search_strategy not in ("single", "greedy"):
            raise ConfigError(f"search_strategy must be 'single' or 'greedy', got {self.search_strategy!r}")
        if self.search and self.search_strategy == "greedy" and self.bridge not in (None, "auto"):
            raise ConfigError(f"the greedy search bridges each cut with nn.Identity where the shapes match and a "
                              f"translator elsewhere; leave bridge unset or 'auto' (got {self.bridge!r})")
        if self.translator_init not in ("lstsq", "random"):
            raise ConfigError(f"translator_init must be 'lstsq' or 'random', got {self.translator_init!r}")
        if self.kernel_size not in (1, 3):
            raise ConfigError(f"kernel_size must be 1 or 3, got {self.kernel_size}")
        if not 0 <= self.tau <= 1:
            raise ConfigError(f"tau must be in [0, 1], got {self.tau}")
        if self.efficiency not in ("params", "macs", "latency"):
            raise ConfigError(f"efficiency must be params, macs or latency, got {self.efficiency!r}")
        for name in ("translator_epochs", "finetune_epochs", "search_epochs", "channels_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.then_channels is not None and not 0 < self.then_channels < 1:
            raise ConfigError(f"then_channels must be in (0, 1), got {self.then_channels}")
        self._check_then_units()
        if self.min_speedup is not None and not self.min_speedup > 0:
            raise ConfigError(f"min_speedup must be > 0, got {self.min_speedup}")
        if self.latency_batch < 1 or self.latency_repeats < 1:
            raise ConfigError("latency_batch and latency_repeats must be >= 1")


def _check_common(config: TrainConfig | DepthConfig) -> None:
    check_ceilings(config)
    check_user_options(config)
    if getattr(config, "checkpoint", None) is not None and config.weights is not None:
        raise ConfigError("give the trained model with one of checkpoint (a run of `neuroprune train`) or weights "
                          "(any state dict of the model), not both")
    check_precision(config.precision)
    check_device_name(config.device)
    if config.width <= 0:
        raise ConfigError(f"width must be > 0, got {config.width}")
    for name in ("epochs", "batch_size"):
        if getattr(config, name, 1) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(config, name)}")
    for name in ("limit_train", "limit_test", "pad_to"):
        if getattr(config, name) is not None and getattr(config, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(config, name)}")
