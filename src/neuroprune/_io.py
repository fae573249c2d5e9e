"""Atomic file writing and the saved-model format (safetensors weights + JSON spec).

Everything a run writes goes to a temporary file in the same folder first and is then
renamed over the target, so a crash mid-write never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from .errors import ModelError
from .models.spec import from_spec, to_spec


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should read like any file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def save_torch(path: str | Path, obj: Any) -> None:
    """Atomically ``torch.save`` plain data (tensors, numbers, strings, lists, dicts)."""
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_torch(path: str | Path) -> Any:
    """Load a file written by :func:`save_torch`, never executing pickled code.

    Raises:
        ModelError: the file is missing, corrupt, or carries anything but plain data.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # torch raises UnpicklingError or RuntimeError for both cases
        raise ModelError(
            f"refusing to load {path}: it is corrupt or carries pickled code/objects that are not plain "
            f"tensors and numbers ({str(exc).splitlines()[0]})"
        ) from None


def save_model(model: nn.Sequential, folder: str | Path, metadata: dict[str, Any] | None = None, stem: str = "model") -> None:
    """Save a plain sequential model as ``stem.safetensors`` plus ``stem.json``.

    The JSON holds the architecture spec (enough to rebuild the model without any
    neuroprune model code) and ``metadata`` (data set, input shape, ...).
    """
    save_model_files(model, to_spec(model), folder, metadata, stem)


def save_model_files(
    model: nn.Module, architecture: dict[str, Any], folder: str | Path, metadata: dict[str, Any] | None, stem: str
) -> None:
    """Write ``model``'s weights (safetensors) and ``{architecture, metadata}`` (JSON), atomically."""
    folder = Path(folder)
    tensors = {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(folder / f"{stem}.safetensors", save_safetensors_bytes(tensors))
    write_json(folder / f"{stem}.json", {"architecture": architecture, "metadata": metadata or {}})


def load_model(folder: str | Path, stem: str = "model") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild any model neuroprune saved (compacted, sparse-exported or depth-pruned).

    The architecture's ``format`` picks the builder: ``neuroprune.sequential/1`` (plain
    layers), ``neuroprune.sparse/1`` (with CSR layers), ``neuroprune.graph/1`` (blocks,
    residuals and translators). Returns ``(model in eval mode, metadata)``.

    Raises:
        ModelError: a file is missing or malformed, the format is unknown, or the weights
            do not fit the architecture (the message names the mismatched keys and shapes).
    """
    def build(architecture: dict[str, Any]) -> nn.Module:
        kind = architecture.get("format") if isinstance(architecture, dict) else None
        if kind == "neuroprune.sparse/1":
            from .export.sparse_spec import from_sparse_spec

            return from_sparse_spec(architecture)
        if kind == "neuroprune.graph/1":
            from .depth.graph_spec import from_graph

            return from_graph(architecture)
        return from_spec(architecture)  # explains an unknown format itself

    return load_model_files(folder, stem, build)


def load_model_files(
    folder: str | Path, stem: str, build: Callable[[dict[str, Any]], nn.Module]
) -> tuple[nn.Module, dict[str, Any]]:
    """Read ``stem.json`` and ``stem.safetensors``, ``build`` the architecture, load the weights."""
    folder = Path(folder)
    spec_path, weights_path = folder / f"{stem}.json", folder / f"{stem}.safetensors"
    for path in (spec_path, weights_path):
        if not path.is_file():
            raise ModelError(f"{path} is missing: a saved model needs both {spec_path.name} and {weights_path.name}")
    try:
        saved = json.loads(spec_path.read_text())
        model = build(saved["architecture"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelError(f"{spec_path} is not a neuroprune model description: {exc}") from None
    try:
        tensors = load_safetensors_bytes(weights_path.read_bytes())
    except SafetensorError as exc:
        raise ModelError(f"{weights_path} is not a valid safetensors file: {exc}") from None
    load_matching_state(model, tensors, source=str(weights_path))
    return model.eval(), saved.get("metadata", {})


def load_matching_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(tensors)`` with an error naming every mismatched key and shape."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [
        f"{k}: file {tuple(tensors[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in tensors and tensors[k].shape != expected[k].shape
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if wrong:
            parts.append("shape mismatches " + "; ".join(wrong))
        raise ModelError(f"weights in {source} do not fit the architecture: " + ", ".join(parts))
    model.load_state_dict(tensors)
