"""Run configurations: dataclasses filled from defaults, then a YAML file, then CLI flags.

Unknown keys, wrong types and out-of-range values are rejected with the key's name, before
anything runs. Reading never executes anything: YAML is parsed with ``yaml.safe_load``.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .data.info import DATASETS
from .engine.precision import check_device_name, check_precision
from .errors import ConfigError
from .json_files import read_json
from .synaptic.criteria import create_criterion
from .synaptic.options import GRANULARITIES
from .synaptic.schedule import AUTO
from .synaptic.tracker import CRITERIA

T = TypeVar("T")
# A configuration file is a few hundred bytes; refuse to parse anything that cannot be one.
MAX_CONFIG_BYTES = 1 << 20
# config.json beside a run's results: what --resume and export read back from it
RUN_CONFIG_SCHEMA = {"config": "object", "seed": "integer|null", "environment": "object", "processes": "object"}


@dataclass
class SynapticConfig:
    """Everything ``neuroprune synaptic`` needs; field names are the CLI option names."""

    dataset: str = "mnist"
    model: str = "mlp"
    model_args: dict[str, Any] | None = None
    weights: str | None = None
    pretrained: bool = False
    data: str | None = None
    image_size: int | None = None
    channels: int | None = None
    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    lr_schedule: str = "constant"
    seed: int = 0
    criterion: str = "deviation"
    alpha: float = 0.5
    patience: int = 3
    check_every: int | str = AUTO
    warmup_steps: int | str = AUTO
    stop_step: int | str | None = AUTO
    min_fan_in: int = 1
    max_fraction_per_check: float | None = None
    max_unit_ratio: float = 1.0
    target_sparsity: float | None = None
    target_macs: float | None = None
    target_speedup: float | None = None
    speedup_batch: int | None = None
    granularity: str = "auto"
    fold_bias: bool | None = None
    sample_every: int = 1
    compare_dense: bool = False
    compare_gmp: bool = False
    data_root: str | None = None
    limit_train: int | None = None
    limit_test: int | None = None
    measure_latency: bool = True
    device: str = "auto"
    precision: str = "32"

    def __post_init__(self) -> None:
        _check_types(self)
        check_precision(self.precision)
        check_device_name(self.device)
        _check_choice(self, "dataset", DATASETS)
        _check_choice(self, "optimizer", ("sgd", "adam"))
        _check_choice(self, "lr_schedule", ("constant", "cosine"))
        _check_choice(self, "criterion", CRITERIA)
        _check_choice(self, "granularity", GRANULARITIES)
        for name in ("check_every", "warmup_steps", "stop_step"):
            if isinstance(getattr(self, name), str) and getattr(self, name) != AUTO:
                raise ConfigError(f"{name} must be an integer or 'auto', got {_short(getattr(self, name))}")
        if self.fold_bias and not create_criterion(self.criterion).knows_input_means:
            raise ConfigError(f"fold_bias needs a criterion that tracks mean inputs "
                              f"({', '.join(c for c in CRITERIA if create_criterion(c).knows_input_means)}), "
                              f"got criterion {self.criterion}")
        _check_positive(self, "epochs", "batch_size", "patience", "sample_every")
        if isinstance(self.check_every, int):
            _check_positive(self, "check_every")
        _check_positive(self, "limit_train", "limit_test")
        _check_range(self, "lr", low=0.0, is_low_open=True)
        _check_range(self, "momentum", low=0.0, high=1.0, is_high_open=True)
        _check_range(self, "weight_decay", low=0.0)
        _check_range(self, "alpha", low=0.0, is_low_open=True)
        _check_range(self, "max_fraction_per_check", low=0.0, high=1.0, is_low_open=True)
        _check_range(self, "max_unit_ratio", low=0.0, high=1.0, is_low_open=True)
        _check_range(self, "target_sparsity", low=0.0, high=1.0, is_low_open=True, is_high_open=True)
        if self.max_fraction_per_check is not None and self.target_sparsity is not None:
            raise ConfigError("max_fraction_per_check limits pruning without a target; with target_sparsity the "
                              "sparsity schedule sets how much goes at each check: drop one of the two")
        _check_compute_targets(self)
        for name in ("seed", "warmup_steps", "min_fan_in"):
            if isinstance(getattr(self, name), int) and getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        is_counted = isinstance(self.stop_step, int) and isinstance(self.warmup_steps, int)
        if is_counted and self.stop_step <= self.warmup_steps:
            raise ConfigError(
                f"stop_step must be greater than warmup_steps ({self.warmup_steps}), got {self.stop_step}"
            )
        from ._user_options import check_user_options
        from .models import (
            list_models,  # deferred: the registry imports every model family
        )
        from .models.user_model import is_model_reference

        if not is_model_reference(self.model):  # module:factory or file.py:factory is the user's own
            _check_choice(self, "model", tuple(list_models()))
        check_user_options(self)


def _check_compute_targets(config: SynapticConfig) -> None:
    """target_macs / target_speedup: in range, one target at a time, and pruned by units."""
    _check_range(config, "target_macs", low=0.0, high=1.0, is_low_open=True, is_high_open=True)
    _check_range(config, "target_speedup", low=1.0, high=1000.0, is_low_open=True)
    given = [name for name in ("target_sparsity", "target_macs", "target_speedup") if getattr(config, name) is not None]
    if len(given) > 1:
        raise ConfigError(f"give one target, not {' and '.join(given)} (set the others to none)")
    _check_positive(config, "speedup_batch")
    if config.speedup_batch is not None and config.target_speedup is None:
        raise ConfigError("speedup_batch is the batch size a target_speedup must hold at: give target_speedup too, "
                          "or drop speedup_batch")
    if given and given[0] != "target_sparsity":
        if config.max_fraction_per_check is not None:
            raise ConfigError(f"max_fraction_per_check limits pruning without a target; {given[0]} sets how much "
                              "goes at each check: drop one of the two")
        if config.granularity not in ("unit", "auto"):
            raise ConfigError(f"{given[0]} is met by removing whole units: use granularity unit or auto, "
                              f"not {config.granularity}")


def compute_targets(config: SynapticConfig) -> dict[str, float]:
    """The pruner's compute target: ``{"target_macs": x}``, ``{"target_speedup": x, "latency_batch_sizes":
    (b,)}`` (batch 1 and 64 unless ``speedup_batch`` names one) or ``{}``.

    A speed-up is pursued in a latency model timed per layer at batch 1 and 64 and calibrated
    on thinned copies of the whole network (see :mod:`neuroprune.synaptic.latency`), and
    checked by the run's own timing.
    With no target, see :func:`neuroprune.synaptic.granularity.default_target` (what the run
    uses when ``auto`` picks units for a network with convolutions).
    """
    if config.target_speedup is not None:
        sizes = (config.speedup_batch,) if config.speedup_batch is not None else (1, 64)
        return {"target_speedup": config.target_speedup, "latency_batch_sizes": sizes}
    if config.target_macs is not None:
        return {"target_macs": config.target_macs}
    return {}


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: dict[str, Any] | None = None, cleared: tuple[str, ...] = ()
) -> T:
    """Build ``cls`` from its defaults, then the YAML file at ``path``, then ``overrides``.

    ``None`` values in ``overrides`` mean "not given" and do not override; the keys in
    ``cleared`` are set to None whatever the file says (a flag's "none").

    Raises:
        ConfigError: unreadable YAML, unknown keys, wrong types or invalid values.
    """
    values: dict[str, Any] = {}
    if path is not None:
        values.update(_read_yaml(Path(path)))
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    values.update({k: None for k in cleared})
    return from_dict(cls, values, source=str(path) if path else "options")


def from_dict(cls: type[T], values: dict[str, Any], source: str = "config") -> T:
    """Validate keys, types and ranges of ``values`` against dataclass ``cls`` and build it.

    Args:
        cls: a config dataclass such as :class:`SynapticConfig`.
        values: option name -> value; dashes in names are not accepted here.
        source: named in error messages (a file name, or "options").

    Returns:
        The config object.

    Raises:
        ConfigError: ``values`` is not a mapping, or holds an unknown key, a value of the
            wrong type, or a value out of range; the message names the key.

    Example:
        >>> from_dict(SynapticConfig, {"dataset": "digits", "epochs": 2}).epochs
        2
    """
    if not isinstance(values, dict):
        raise ConfigError(f"{source} must be a mapping of option names to values, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted((key for key in values if key not in fields), key=repr)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {source}; valid keys: {', '.join(fields)}")
    resolved = {}
    for key, value in values.items():
        if not _matches(value, hints[key]):
            raise ConfigError(f"{key} in {source} must be {_type_name(hints[key])}, got {_short(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} in {source} must be a finite number, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and float in _members(hints[key]):
            value = float(value)
        resolved[key] = value
    try:
        return cls(**resolved)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (in {source})") from None


def load_run_config(cls: type[T], folder: str | Path) -> T:
    """The resolved config a run saved in ``folder/config.json`` (to resume that run).

    Raises:
        ConfigError: the file is missing or unreadable, or its config no longer validates.
    """
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{path} does not exist: --resume needs the folder of a run that was started")
    saved = read_json(path, what="the config.json a neuroprune run writes", schema=RUN_CONFIG_SCHEMA,
                      error=ConfigError)
    if not isinstance(saved.get("config"), dict):
        raise ConfigError(f"{path} holds no 'config' mapping; it was not written by a neuroprune run")
    return from_dict(cls, saved["config"], source=str(path))


def to_dict(config: Any) -> dict[str, Any]:
    """A plain dict of a config dataclass (for saving beside results)."""
    return dataclasses.asdict(config)


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is {size} bytes; a configuration is far smaller")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {_describe_yaml_error(exc)}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # safe_load builds dates and numbers itself; "2001-13-01" raises ValueError, not YAMLError
        raise ConfigError(f"config file {path} holds a value YAML cannot build: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values, got {type(data).__name__}")
    values: dict[str, Any] = {}
    spellings: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in values:  # batch-size and batch_size name the same option
            raise ConfigError(f"config file {path} sets {name} twice, as {_short(spellings[name])} and as "
                              f"{_short(key)}; keep one")
        values[name], spellings[name] = value, key
    return values


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``, except that a key given twice in one mapping is an error.

    Plain YAML loading keeps the last of two equal keys, so a file that sets ``epochs`` twice
    would silently run with whichever came last.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *defaults": explicit keys may override it
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                is_repeated = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                continue
            if is_repeated:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {_short(key)} is given twice (keep one)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _describe_yaml_error(exc: yaml.YAMLError) -> str:
    """PyYAML's error on one line: what is wrong, and where (its own text quotes the file over several lines)."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(str(exc).split())
    parts = [part for part in (exc.context, exc.problem) if part]
    text = "; ".join(" ".join(str(part).split()) for part in parts) or "syntax error"
    mark = exc.problem_mark or exc.context_mark
    if mark is not None:
        text += f" at line {mark.line + 1}, column {mark.column + 1}"
    return text


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
        if typing.get_origin(member) is dict and isinstance(value, dict):  # model_args
            return True
    return False


def _type_name(hint: Any) -> str:
    return " or ".join("null" if m is type(None) else "a mapping" if typing.get_origin(m) is dict else m.__name__
                       for m in _members(hint))


_SHORT = reprlib.Repr()  # keyword arguments to Repr() need Python 3.12
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxtuple, _SHORT.maxset = 2, 4, 4, 4, 4
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 60, 60, 40


def _short(value: Any) -> str:
    """A bounded rendering: YAML anchors can make a small file hold a huge shared structure."""
    text = _SHORT.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# Ceilings far above any real run, so a value that passes validation cannot fail later:
# torch seeds take 64 bits (we allow 32, what NumPy takes too); a learning rate of 1e308
# overflows at the first step; 10**20 epochs would never end.
_CEILINGS = {"seed": 2**32 - 1, "lr": 100.0, "epochs": 100_000, "batch_size": 1 << 24}
_INT_CEILING = 1 << 53  # steps, limits, counts: beyond this a float cannot even hold them


def check_ceilings(config: Any) -> None:
    """Refuse values so large that the run would fail (or never end) after it started."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        ceiling = _CEILINGS.get(field.name, _INT_CEILING if isinstance(value, int) else None)
        if ceiling is not None and value > ceiling:
            raise ConfigError(f"{field.name} must be at most {ceiling:,}, got {_short(value)}")


def _check_types(config: Any) -> None:
    """Fields set directly in Python get the same type check as values from a file."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if not _matches(value, hints[field.name]):
            raise ConfigError(f"{field.name} must be {_type_name(hints[field.name])}, got {_short(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{field.name} must be a finite number, got {value!r}")
    check_ceilings(config)


def _check_choice(config: Any, name: str, choices: tuple[str, ...]) -> None:
    if getattr(config, name) not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {_short(getattr(config, name))}")


def _check_positive(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")


def _check_range(
    config: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    is_low_open: bool = False,
    is_high_open: bool = False,
) -> None:
    value = getattr(config, name)
    if value is None:
        return
    is_below = low is not None and (value <= low if is_low_open else value < low)
    is_above = high is not None and (value >= high if is_high_open else value > high)
    if is_below or is_above:
        left = "(" if is_low_open else "["
        right = ")" if is_high_open or high is None else "]"
        bounds = f"{left}{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}{right}"
        raise ConfigError(f"{name} must be in {bounds}, got {value}")
