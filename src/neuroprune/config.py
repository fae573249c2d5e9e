"""Run configurations: dataclasses filled from defaults, then a YAML file, then CLI flags.

Unknown keys and wrong types are rejected with the key's name; value ranges are checked
by the objects that use them (they raise ConfigError naming the option).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import ConfigError

T = TypeVar("T")


@dataclass
class SynapticConfig:
    """Everything ``neuroprune synaptic`` needs; field names are the CLI option names."""

    dataset: str = "mnist"
    model: str = "mlp"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    lr_schedule: str = "constant"
    seed: int = 0
    criterion: str = "contribution"
    alpha: float = 0.5
    patience: int = 3
    check_every: int = 200
    warmup_steps: int = 0
    stop_step: int | None = None
    min_fan_in: int = 1
    max_fraction_per_check: float = 0.5
    target_sparsity: float | None = None
    compare_dense: bool = False
    data_root: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None

    def __post_init__(self) -> None:
        _check_positive(self, "epochs", "batch_size")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        for name in ("limit_train", "limit_test"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")


def load_config(cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Build ``cls`` from its defaults, then the YAML file at ``path``, then ``overrides``.

    ``None`` values in ``overrides`` mean "not given" and do not override.

    Raises:
        ConfigError: unreadable YAML, unknown keys, wrong types or invalid values.
    """
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_yaml(Path(path)))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return from_dict(cls, values, source=str(path) if path else "options")


def from_dict(cls: type[T], values: dict[str, Any], source: str = "config") -> T:
    """Validate keys and types of ``values`` against dataclass ``cls`` and build it."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {source}; valid keys: {', '.join(fields)}")
    for key, value in values.items():
        if not _matches(value, hints[key]):
            raise ConfigError(f"{key} in {source} must be {_type_name(hints[key])}, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and float in _members(hints[key]):
            values[key] = float(value)
    return cls(**values)


def to_dict(config: Any) -> dict[str, Any]:
    """A plain dict of a config dataclass (for saving beside results)."""
    return dataclasses.asdict(config)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def _members(hint: Any) -> tuple[Any, ...]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return typing.get_args(hint)
    return (hint,)


def _matches(value: Any, hint: Any) -> bool:
    for member in _members(hint):
        if member is type(None) and value is None:
            return True
        if member is bool and isinstance(value, bool):
            return True
        if member is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if member is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if member is str and isinstance(value, str):
            return True
    return False


def _type_name(hint: Any) -> str:
    return " or ".join("null" if m is type(None) else m.__name__ for m in _members(hint))


def _check_positive(config: Any, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(config, name)}")
