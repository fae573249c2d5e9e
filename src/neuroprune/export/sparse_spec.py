"""Saving models with CSR layers: the ``neuroprune.sparse/1`` spec.

safetensors holds only dense tensors, so a :class:`SparseLinear` is stored as its CSR
components (``NAME.crow_indices``, ``NAME.col_indices``, ``NAME.values``, ``NAME.bias``),
which are exactly its ``state_dict``. The JSON spec is the ``neuroprune.sequential/1``
layer list (see :mod:`neuroprune.models.spec`) plus one more layer type::

    {"name": "fc1", "type": "SparseLinear",
     "args": {"in_features": 784, "out_features": 217, "nnz": 18694, "bias": true,
              "index_dtype": "int32", "dense_below": 0}}

A hybrid layer (``dense_below`` > 0) also stores ``NAME.dense_weight``. ``nnz`` fixes the
buffer shapes, so the weights file is checked against the spec key by key and shape by
shape, as for any saved model.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelError
from ..models.spec import from_spec, to_spec
from ..saved_models import ModelFormat, load_model_files, register_format, save_model_files
from .chain import InferenceChain
from .sparse import SparseLinear

FORMAT = "neuroprune.sparse/1"
_LAYER_FORMAT = "neuroprune.sequential/1"
_INDEX_DTYPES = {"int32": torch.int32, "int64": torch.int64}


def to_sparse_spec(model: nn.Sequential) -> dict[str, Any]:
    """Describe a flat Sequential of standard layers and :class:`SparseLinear` layers.

    Raises:
        ModelError: a layer is neither a supported standard layer nor a SparseLinear.
    """
    if not isinstance(model, nn.Sequential):
        raise ModelError(f"only nn.Sequential models can be described, got {type(model).__name__}")
    layers = []
    # _modules, not named_children(): a module used at two places is described at both
    for name, module in model._modules.items():
        assert module is not None  # nn.Sequential holds no None entries
        if isinstance(module, SparseLinear):
            layers.append({"name": name, "type": "SparseLinear", "args": {
                "in_features": module.in_features,
                "out_features": module.out_features,
                "nnz": module.nnz,
                "bias": module.bias is not None,
                "index_dtype": str(module.col_indices.dtype).removeprefix("torch."),
                "dense_below": module.dense_below,
            }})
        else:
            layers.append(to_spec(nn.Sequential(OrderedDict([(name, module)])))["layers"][0])
    return {"format": FORMAT, "layers": layers}


def from_sparse_spec(spec: dict[str, Any]) -> InferenceChain:
    """Build the (empty) model a ``neuroprune.sparse/1`` spec describes; load weights separately.

    Raises:
        ModelError: the spec is malformed or names an unsupported layer.
    """
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelError(f"not a neuroprune sparse model spec (expected format {FORMAT!r})")
    modules: list[tuple[str, nn.Module]] = []
    for entry in spec.get("layers", []):
        if entry.get("type") != "SparseLinear":
            modules.append((entry["name"], from_spec({"format": _LAYER_FORMAT, "layers": [entry]})[0]))
            continue
        args = entry.get("args", {})
        try:
            layer = SparseLinear.empty(
                int(args["in_features"]), int(args["out_features"]), int(args["nnz"]),
                bias=bool(args["bias"]), index_dtype=_INDEX_DTYPES[args.get("index_dtype", "int32")],
                dense_below=int(args.get("dense_below", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                f"spec layer {entry.get('name')!r} (SparseLinear) is malformed: missing or bad {exc}"
            ) from None
        modules.append((entry["name"], layer))
    return InferenceChain(OrderedDict(modules))


def save_sparse_model(model: nn.Sequential, folder: str | Path, metadata: dict[str, Any] | None = None,
                      stem: str = "model") -> None:
    """Write ``stem.safetensors`` (dense tensors only) and ``stem.json`` (spec + metadata) atomically."""
    save_model_files(model, to_sparse_spec(model), folder, metadata, stem)


def load_sparse_model(folder: str | Path, stem: str = "model") -> tuple[InferenceChain, dict[str, Any]]:
    """Rebuild a model saved by :func:`save_sparse_model`. Returns ``(model, metadata)``.

    Raises:
        ModelError: a file is missing or malformed, or the weights do not fit the spec
            (the message names the mismatched keys and shapes).
    """
    return load_model_files(folder, stem, from_sparse_spec)  # type: ignore[return-value]


register_format(ModelFormat(FORMAT, build=from_sparse_spec))
