"""Start any model from a weights file: safetensors, or a state dict ``torch.load(weights_only=True)`` reads.

The file is checked against the architecture before its tensors are allocated: the model is
built on PyTorch's meta device and compared, key by key, with the safetensors header (or
with a memory-mapped state dict), so a file of another model, or one that declares huge
sizes, is refused with one line naming the first key that does not fit. Nothing in the file
is ever run as code.

Example:
    >>> model = build_model("mlp", weights=None, in_channels=1, image_size=8, num_classes=10)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from ..errors import ModelError
from ..storage import load_torch
from ._registry import _MODELS, create_model
from .user_model import is_model_reference

# safetensors header dtype names -> torch dtypes
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}


def build_model(name: str, weights: str | Path | None = None, **options: Any) -> nn.Module:
    """``create_model(name, **options)``, started from the tensors in ``weights``.

    Registered models that take a ``weights`` argument themselves (the ImageNet models,
    which adapt torchvision files) get it; every other model is loaded here, after
    :func:`check_weights_file` found that the file fits.

    Args:
        name: a registered name or a model reference (``module:factory``, ``file.py:factory``).
        weights: a ``.safetensors`` file or a state dict saved with ``torch.save``; None to
            keep the factory's initial weights.
        **options: the factory's keyword arguments.

    Returns:
        The model, in training mode.

    Raises:
        ModelError: the model cannot be built, or the file is unreadable or does not fit.
    """
    if weights is None or _takes_weights(name):
        return create_model(name, **options, **({"weights": str(weights)} if weights is not None else {}))
    label = name.rpartition("/")[2] if is_model_reference(name) else name
    return load_weights_into(lambda: create_model(name, **options), weights, label)


def load_weights_into(build: Callable[[], nn.Module], weights: str | Path, label: str) -> nn.Module:
    """Check ``weights`` against ``build()`` (built on the meta device), then build the model and load them.

    Floating-point tensors may be stored in another precision (they are converted, as
    ``load_state_dict`` does); any other difference of name, shape or dtype is refused.

    Raises:
        ModelError: naming the first key that differs, and how.
    """
    path = Path(weights)
    tensors = check_weights_file(build, path, label)
    model = build()
    model.load_state_dict(tensors)
    return model


def check_weights_file(build: Callable[[], nn.Module], path: Path, label: str) -> dict[str, torch.Tensor]:
    """Compare the file's names, shapes and dtypes with the model ``build()`` makes; return its tensors.

    A safetensors file is compared from its header before any tensor is read; a torch file
    is memory-mapped, so its tensors are not copied into memory before they are checked.

    Raises:
        ModelError: the file is missing or unreadable, or does not fit (first bad key named).
    """
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist")
    try:
        with torch.device("meta"):
            expected = build().state_dict()
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - the factory is the user's code
        raise ModelError(f"{label} cannot be built to check {path}: {type(exc).__name__}: {exc}") from None
    if path.suffix == ".safetensors":
        header = _safetensors_header(path)
        _compare(expected, header, path, label)
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"{path} is not a valid safetensors file: {exc}") from None
    tensors = _torch_state(path)
    _compare(expected, {k: (tuple(v.shape), v.dtype) for k, v in tensors.items()}, path, label)
    return tensors


def _takes_weights(name: str) -> bool:
    factory = _MODELS.get(name)
    if factory is None:
        return False
    try:
        return "weights" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def _safetensors_header(path: Path) -> dict[str, tuple[tuple[int, ...], torch.dtype | str]]:
    try:
        with safe_open(str(path), "pt") as handle:
            found = {}
            for key in handle.keys():  # noqa: SIM118 - safe_open handles are not iterable
                view = handle.get_slice(key)
                found[key] = (tuple(view.get_shape()), _SAFETENSORS_DTYPES.get(view.get_dtype(), view.get_dtype()))
            return found
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"{path} is not a valid safetensors file: {' '.join(str(exc).split())}") from None


def _torch_state(path: Path) -> dict[str, torch.Tensor]:
    """A ``torch.save`` state dict, memory-mapped where the file allows it; never unpickles code."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not a zip file (mmap needs one), or not plain data: load_torch says which
        state = load_torch(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # the layout Lightning and many training scripts save
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                             for k, v in state.items()):
        raise ModelError(f"{path} does not hold a state dict (a mapping of parameter names to tensors)")
    return state


def _compare(expected: dict[str, torch.Tensor], found: dict[str, tuple[tuple[int, ...], Any]], path: Path,
             label: str) -> None:
    """Raise naming the first key (in the model's order, then the file's) whose name, shape or dtype differs."""
    problems = []
    for key, tensor in expected.items():
        if key not in found:
            problems.append(f"{key!r} is missing from the file")
            continue
        shape, dtype = found[key]
        if shape != tuple(tensor.shape):
            problems.append(f"{key!r} is {_shape(shape)} in the file but {_shape(tuple(tensor.shape))} in the model")
        elif dtype != tensor.dtype and not (_is_float(dtype) and tensor.dtype.is_floating_point):
            problems.append(f"{key!r} is {_dtype(dtype)} in the file but {_dtype(tensor.dtype)} in the model")
    problems += [f"the file has {key!r}, which the model lacks" for key in found if key not in expected]
    if problems:
        more = f" ({len(problems) - 1} more keys differ)" if len(problems) > 1 else ""
        raise ModelError(f"weights in {path} do not fit {label}: {problems[0]}{more}{_hint(path)}")


def saved_description(path: Path) -> Path | None:
    """The ``model.json`` beside a safetensors file neuroprune saved (it describes the file's model), or None."""
    described = path.with_suffix(".json")
    return described if path.suffix == ".safetensors" and described.is_file() else None


def _hint(path: Path) -> str:
    """What to do when the file is a model neuroprune saved (compacted or pruned, so shaped otherwise)."""
    described = saved_description(path)
    if described is None:
        return ""
    return (f"; {described} describes the model these weights belong to (a compacted or pruned model rebuilds from "
            f"it without the factory): pass --checkpoint {path.parent} to neuroprune depth instead, or load it in "
            f"Python with neuroprune.load_model({str(path.parent)!r})")


def _is_float(dtype: Any) -> bool:
    return isinstance(dtype, torch.dtype) and dtype.is_floating_point


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(map(str, shape)) + ")"


def _dtype(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")
