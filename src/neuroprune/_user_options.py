"""Checks shared by every run config for the user's own model, weights and data.

``model`` may be a reference (``module:factory`` or ``file.py:factory``), ``model_args`` its
keyword arguments, ``weights`` a file to start from, and ``data`` a folder of images or a
``.npz`` with ``image_size`` and ``channels``. File paths are made absolute here, so the
config saved beside a run still finds them when the run resumes from another folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .models.user_model import absolute_reference


def check_user_options(config: Any) -> None:
    """Validate (and make absolute) ``model``, ``model_args``, ``weights``, ``data``, ``image_size``, ``channels``.

    Raises:
        ConfigError: naming the option that is wrong.
    """
    config.model = absolute_reference(config.model)
    if config.model_args is not None:
        if not all(isinstance(key, str) and key.isidentifier() for key in config.model_args):
            keys = sorted(map(str, config.model_args))
            raise ConfigError(f"model_args must map argument names to values, got keys {keys}")
        _check_plain(config.model_args, "model_args")
    for option in ("weights", "data"):
        if getattr(config, option) == "":  # would silently become the current folder
            raise ConfigError(f"{option} is empty: give the path of a file (or folder for data), or leave it out")
    if config.weights is not None:
        config.weights = str(Path(config.weights).expanduser().resolve())
    if getattr(config, "pretrained", False):
        _check_pretrained(config.model, config.weights)
    if config.data is not None:
        config.data = str(Path(config.data).expanduser().resolve())
    elif config.image_size is not None or config.channels is not None:
        raise ConfigError("image_size and channels describe the images of --data; give --data PATH or drop them")
    if config.image_size is not None and not 1 <= config.image_size <= 4096:
        raise ConfigError(f"image_size must be in 1..4096 pixels, got {config.image_size}")
    if config.channels not in (None, 1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {config.channels}")


def _check_pretrained(model: str, weights: str | None) -> None:
    """``pretrained``: a model whose published weights can be fetched, and no second start."""
    from .models.pretrained import SOURCES  # deferred: the model registry imports every model family

    if model not in SOURCES:
        raise ConfigError(f"pretrained weights are known for {', '.join(sorted(SOURCES))}, not {model}: drop "
                          "--pretrained, or start from your own file with --weights")
    if weights is not None:
        raise ConfigError("give one start: --pretrained (the published weights) or --weights FILE, not both")


def _check_plain(value: Any, where: str) -> None:
    """JSON-plain values only: the config is saved as JSON beside the results."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise ConfigError(f"{where} must be a string, number, boolean, list or mapping, got {type(value).__name__}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")


def dataset_of(config: Any) -> str:
    """The data set name a run uses: its ``data`` opened (see :mod:`neuroprune.data.user_data`), else ``dataset``."""
    from .data.user_data import (
        resolve_dataset,  # deferred: configs are read before any data is
    )

    return resolve_dataset(config.dataset, config.data, config.image_size, config.channels)
