"""Where a run computes: the device it picks and the precision of its forward passes.

``precision`` follows the names PyTorch Lightning users know: ``"32"`` (float32),
``"bf16-mixed"`` (forward passes under ``torch.autocast`` in bfloat16; weights, gradients
and optimizer state stay float32) and ``"16-mixed"`` (the same in float16, with a gradient
scaler so small gradients do not flush to zero). bfloat16 autocast works on CPU too.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from ..errors import ConfigError

PRECISIONS = ("32", "bf16-mixed", "16-mixed")
_AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def check_precision(precision: str) -> str:
    """``precision`` itself, or a ConfigError naming the choices."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def check_device_name(name: str) -> str:
    """``name`` itself if it names a device (``auto``, ``cpu``, ``cuda``, ``cuda:N``), else a ConfigError.

    Whether the device exists here is checked when the run starts (:func:`resolve_device`).
    """
    text = str(name)
    if not (text in ("auto", "cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit())):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {text[:40]!r}")
    return text


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """Run the enclosed forward pass (and loss) in ``precision`` on ``device``."""
    dtype = _AUTOCAST_DTYPES.get(check_precision(precision))
    if dtype is None:
        yield
        return
    with torch.autocast(device.type, dtype=dtype):
        yield


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for float16 (bfloat16 has float32's range)."""
    return torch.amp.GradScaler(device.type, enabled=check_precision(precision) == "16-mixed")


def resolve_device(requested: str = "auto") -> torch.device:
    """The device a run uses: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.

    Under ``torchrun`` a bare ``cuda`` (or ``auto`` on a GPU machine) means this process's
    own GPU, ``cuda:LOCAL_RANK``.

    Raises:
        ConfigError: the name is not a device, or CUDA (that GPU) is not available here.
    """
    text = check_device_name(str(requested).strip().lower())
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"device {requested!r} needs CUDA, which this machine does not have; use --device cpu")
    index = int(text[5:]) if text.startswith("cuda:") else int(os.environ.get("LOCAL_RANK", "0"))
    if index >= torch.cuda.device_count():
        raise ConfigError(f"device cuda:{index} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    torch.cuda.set_device(index)
    return torch.device("cuda", index)
