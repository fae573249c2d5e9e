"""The saved-model format: safetensors weights plus a JSON architecture, and its registry of kinds.

A saved model is two files: ``stem.safetensors`` (the tensors) and ``stem.json``
(``{"architecture": ..., "metadata": ..., "dtype": ...}``). The architecture's ``format``
names the kind that rebuilds it; each kind registers itself here from its own module
(:mod:`neuroprune.models.spec` plain layer chains, :mod:`neuroprune.depth.graph_spec`
nested blocks and residuals, :mod:`neuroprune.export.sparse_spec` CSR layers), so this
module imports none of them. Rebuilding runs no pickled code and needs no model factory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from .errors import ModelError
from .json_files import parse_json, read_json
from .memory import check_fits
from .storage import atomic_write_bytes, write_json

# a model description lists layers and their arguments: kilobytes, a few megabytes at most
MAX_JSON_BYTES = 16 << 20
_MAX_HEADER_BYTES = 100 << 20  # the limit the safetensors format sets itself
# bytes per element of the safetensors dtypes (others count as 8)
_ITEM_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
# the fields of model.json every reader relies on; the architecture's own kind checks the rest
MODEL_JSON_SCHEMA = {"architecture": "object", "architecture.format": "string", "metadata": "object",
                     "metadata.input_shape": "array", "metadata.input_shape[]": "integer",
                     "metadata.model_options": "object", "metadata.model": "string|null"}


@dataclass(frozen=True)
class ModelFormat:
    """One kind of saved architecture.

    Attributes:
        name: the ``format`` string in the JSON.
        build: architecture dict -> untrained model (raises ModelError when malformed).
        describe: model -> architecture dict (raises ModelError naming what it cannot
            describe), or None when :func:`save_model` should not pick this kind itself.
        priority: :func:`save_model` tries kinds from the lowest priority up.
    """

    name: str
    build: Callable[[dict[str, Any]], nn.Module]
    describe: Callable[[nn.Module], dict[str, Any]] | None = None
    priority: int = 100


_FORMATS: dict[str, ModelFormat] = {}


def register_format(model_format: ModelFormat) -> None:
    """Make a kind of saved architecture known to :func:`load_model` (and :func:`save_model`)."""
    _FORMATS[model_format.name] = model_format


def describe_model(model: nn.Module) -> dict[str, Any]:
    """The architecture dict of the first kind (by priority) that can describe ``model``.

    Raises:
        ModelError: no kind can; the message gives each kind's reason.
    """
    reasons = []
    for model_format in sorted(_FORMATS.values(), key=lambda f: f.priority):
        if model_format.describe is None:
            continue
        try:
            return model_format.describe(model)
        except ModelError as exc:
            reasons.append(str(exc))
    raise ModelError("the model cannot be saved: " + "; ".join(reasons or ["no model format is registered"]))


def save_model(model: nn.Module, folder: str | Path, metadata: dict[str, Any] | None = None,
               stem: str = "model") -> None:
    """Save ``model`` as ``stem.safetensors`` plus ``stem.json``, atomically.

    Plain chains of standard layers are saved as a layer list; nested Sequentials and
    residual blocks as a graph. The JSON also holds ``metadata`` (data set, input
    shape, ...) and the weights' dtype.

    Raises:
        ModelError: the model holds a module no format can rebuild (its path is named).
    """
    save_model_files(model, describe_model(model), folder, metadata, stem)


def save_model_files(
    model: nn.Module, architecture: dict[str, Any], folder: str | Path, metadata: dict[str, Any] | None, stem: str
) -> None:
    """Write ``model``'s weights (safetensors) and ``{architecture, metadata, dtype}`` (JSON), atomically."""
    folder = Path(folder)
    tensors = {k: v.detach().contiguous().cpu().clone() for k, v in model.state_dict().items()}
    dtypes = sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values() if t.is_floating_point()})
    atomic_write_bytes(folder / f"{stem}.safetensors", save_safetensors_bytes(tensors))
    write_json(folder / f"{stem}.json", {"architecture": architecture, "metadata": metadata or {},
                                          "dtype": dtypes[0] if len(dtypes) == 1 else dtypes})


def load_model(folder: str | Path, stem: str = "model") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild any model neuroprune saved (compacted, sparse-exported or depth-pruned).

    The architecture's ``format`` picks the builder. Returns ``(model in eval mode, metadata)``.

    Raises:
        ModelError: a file is missing or malformed, the format is unknown, or the weights
            do not fit the architecture (the message names the mismatched keys and shapes).
    """
    def build(architecture: dict[str, Any]) -> nn.Module:
        kind = architecture.get("format") if isinstance(architecture, dict) else None
        if kind not in _FORMATS:
            raise ModelError(f"unknown saved-model format {kind!r}; known: {', '.join(sorted(_FORMATS))}")
        return _FORMATS[kind].build(architecture)

    return load_model_files(folder, stem, build)


def load_model_files(
    folder: str | Path, stem: str, build: Callable[[dict[str, Any]], nn.Module]
) -> tuple[nn.Module, dict[str, Any]]:
    """Read ``stem.json`` and ``stem.safetensors``, ``build`` the architecture, load the weights.

    The architecture is first built on PyTorch's meta device (no memory) and checked
    against the weights file's header, so a file that declares huge or negative sizes is
    refused before anything is allocated.
    """
    folder = Path(folder)
    spec_path, weights_path = folder / f"{stem}.json", folder / f"{stem}.safetensors"
    for path in (spec_path, weights_path):
        if not path.is_file():
            raise ModelError(f"{path} is missing: a saved model needs both {spec_path.name} and {weights_path.name}")
    saved = read_json_file(spec_path)
    if not isinstance(saved, dict) or not isinstance(saved.get("architecture"), dict):
        raise ModelError(f"{spec_path} is not a neuroprune model description: it has no 'architecture' object")
    architecture = saved["architecture"]
    check_against_file(lambda: build(architecture), weights_path, spec_path)
    model = build(architecture)  # the sizes are those of the file's tensors now
    try:
        tensors = load_safetensors_bytes(weights_path.read_bytes())
    except SafetensorError as exc:
        raise ModelError(f"{weights_path} is not a valid safetensors file: {exc}") from None
    floating = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(floating) == 1:  # the layers are built in float32; keep the saved precision
        model = model.to(floating.pop())
    load_matching_state(model, tensors, source=str(weights_path))
    metadata = saved.get("metadata", {})
    return model.eval(), metadata if isinstance(metadata, dict) else {}


def read_json_file(path: Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a model description (``model.json``) with :func:`~neuroprune.json_files.read_json`.

    Raises:
        ModelError: too large, not UTF-8, not JSON, nested too deeply, or a field of the
            wrong type (named).
    """
    return read_json(path, what="a neuroprune model description", max_bytes=max_bytes, schema=MODEL_JSON_SCHEMA,
                     root="any", error=ModelError)


def check_against_file(build: Callable[[], nn.Module], weights_path: Path, source: Path | str) -> None:
    """Build ``build()`` on the meta device and compare its tensors with the file's header.

    Raises:
        ModelError: the architecture is malformed (names ``source``), the file is not
            safetensors, or keys and shapes differ (each one named).
    """
    try:
        with torch.device("meta"):
            model = build()
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError, RecursionError, OverflowError) as exc:
        message = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise ModelError(f"{source} describes a model that cannot be built: {message}") from None
    header = safetensors_header(weights_path)
    shapes = {key: tuple(entry["shape"]) for key, entry in header.items()}
    _compare(model.state_dict(), shapes, str(weights_path))
    declared = sum(math.prod(entry["shape"]) * _ITEM_BYTES.get(entry["dtype"], 8) for entry in header.values())
    check_fits(declared, str(weights_path))  # sizes that agree can still be far too large


def safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """The tensor entries (``dtype``, ``shape``, ``data_offsets``) of a safetensors file's header.

    Read with plain file reads (no memory map of the whole file, which a file declaring
    gigabytes would need) and checked: every tensor's bytes lie inside the file.

    Raises:
        ModelError: the file is missing, too short, or its header is not a safetensors header.
    """
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 2 <= length <= _MAX_HEADER_BYTES:
                raise ModelError(f"{path} is not a valid safetensors file: its header length is {length}")
            data = handle.read(length)
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    header = parse_json(data, str(path), what="a safetensors header", error=ModelError,
                        schema={"*": "object", "*.dtype": "string", "*.shape": "array", "*.shape[]": "integer",
                                "*.data_offsets": "array", "*.data_offsets[]": "integer"})
    header.pop("__metadata__", None)
    for key, entry in header.items():
        offsets, shape = entry.get("data_offsets"), entry.get("shape")
        if not isinstance(shape, list) or any(n < 0 for n in shape) or not isinstance(offsets, list) \
                or len(offsets) != 2 or not 0 <= offsets[0] <= offsets[1] <= size - 8 - length:
            raise ModelError(f"{path} is not a valid safetensors file: tensor {key[:100]!r} lies outside the file")
    return header


def load_matching_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(tensors)`` with an error naming every mismatched key and shape."""
    check_matching_state(model, tensors, source)
    model.load_state_dict(tensors)


def check_matching_state(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Raise a ModelError naming every key and shape of ``tensors`` that ``model`` lacks or has otherwise.

    Nothing is loaded, so the check can come before anything else changes.
    """
    _compare(model.state_dict(), {k: tuple(v.shape) for k, v in tensors.items()}, source)


def _compare(expected: dict[str, torch.Tensor], shapes: dict[str, tuple[int, ...]], source: str) -> None:
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = [
        f"{k}: file {shapes[k]} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in shapes and shapes[k] != tuple(expected[k].shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if wrong:
            parts.append("shape mismatches " + "; ".join(wrong))
        raise ModelError(f"weights in {source} do not fit the architecture: " + ", ".join(parts)[:2000])
