"""A JSON graph spec of nested stages and blocks, and the generic builder that turns it back into modules.

A depth-pruned model has a shape no factory knows (a span gone, a translator in its place,
maybe narrower layers after channel pruning). It is saved as safetensors weights plus this
spec; :func:`from_graph` rebuilds it from the spec alone, without the original model's
factory. Node types:

- ``Sequential``: ``children``, a list of named nodes run in order;
- ``Block``: ``children`` plus ``body`` (names run in order, repeats allowed), see
  :class:`~neuroprune.models.resnet.Block`;
- ``Residual``: a Block plus ``shortcut`` and ``post`` (names or null), see
  :class:`~neuroprune.models.resnet.Residual`;
- ``Translator``: its constructor ``args``;
- ``Layer``: one standard layer in the :mod:`neuroprune.models.spec` layer format.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ModelError
from ..models.resnet import Block, Residual
from ..models.spec import from_spec, layer_args
from ..saved_models import (
    ModelFormat,
    load_model_files,
    register_format,
    save_model_files,
)
from .fx_spec import FORMAT as FX_FORMAT
from .fx_spec import from_fx, to_fx
from .translator import Translator

FORMAT = "neuroprune.graph/1"
_LAYER_FORMAT = "neuroprune.sequential/1"


def to_graph(model: nn.Module) -> dict[str, Any]:
    """Describe a model of Sequentials, Blocks, Residual blocks, Translators and standard layers.

    Raises:
        ModelError: a module of another type is found (its path is named).
    """
    return {"format": FORMAT, "root": _node(model, "")}


def from_graph(spec: dict[str, Any]) -> nn.Module:
    """Build the (untrained) model a graph spec describes; load the weights separately.

    Raises:
        ModelError: the spec is malformed.
    """
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelError(f"not a neuroprune graph spec (expected format {FORMAT!r})")
    return _build(spec["root"], "")


def describe_graph_model(model: nn.Module) -> dict[str, Any]:
    """The architecture :func:`save_graph_model` writes: this module's spec, else the traced graph.

    Nested stages and blocks are described by this module's spec; any other traceable model
    (a depth cut of a residual stream or a skip, a ``torch.fx.GraphModule``) by its traced
    graph (:mod:`.fx_spec`).

    Raises:
        ModelError: neither describes the model; both reasons are given.
    """
    try:
        return to_graph(model)
    except ModelError as nested:
        try:
            return to_fx(model)
        except ModelError as traced:
            raise ModelError(f"{nested}; as a traced graph: {traced}") from None


def save_graph_model(model: nn.Module, folder: str | Path, metadata: dict[str, Any] | None = None,
                     stem: str = "model") -> None:
    """Save ``stem.safetensors`` (weights) and ``stem.json`` (:func:`describe_graph_model` and metadata) atomically.

    Raises:
        ModelError: the model cannot be described (the module is named).
    """
    save_model_files(model, describe_graph_model(model), folder, metadata, stem)


def load_graph_model(folder: str | Path, stem: str = "model") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by :func:`save_graph_model` from its two files. Returns ``(model, metadata)``.

    Raises:
        ModelError: a file is missing or malformed, or the weights do not fit (keys and shapes named).
    """
    def build(spec: dict[str, Any]) -> nn.Module:
        return from_fx(spec) if isinstance(spec, dict) and spec.get("format") == FX_FORMAT else from_graph(spec)

    return load_model_files(folder, stem, build)


def _node(module: nn.Module, path: str) -> dict[str, Any]:
    # _modules, not named_children(): a module object used twice (one ReLU at two places)
    # must be described at both places, and named_children() yields it only once
    children = [{"name": name, **_node(child, f"{path}.{name}".lstrip("."))}
                for name, child in module._modules.items() if child is not None]
    if type(module) is nn.Sequential:
        return {"type": "Sequential", "children": children}
    if type(module) is Residual:
        return {"type": "Residual", "children": children, "body": list(module.body),
                "shortcut": module.shortcut, "post": module.post}
    if type(module) is Block:
        return {"type": "Block", "children": children, "body": list(module.body)}
    if isinstance(module, Translator):
        return {"type": "Translator", "args": module.config()}
    try:
        args = layer_args(module)
    except ModelError as exc:
        raise ModelError(f"module {path or '<root>'} cannot be saved as a graph spec: {exc}") from None
    return {"type": "Layer", "layer": {"type": type(module).__name__, "args": args}}


def _build(node: dict[str, Any], path: str) -> nn.Module:
    kind = node.get("type")
    if kind == "Sequential":
        return nn.Sequential(OrderedDict((c["name"], _build(c, f"{path}.{c['name']}")) for c in node["children"]))
    if kind in ("Residual", "Block"):
        modules = {c["name"]: _build(c, f"{path}.{c['name']}") for c in node["children"]}
        try:
            if kind == "Block":
                return Block(modules, node["body"])
            return Residual(modules, node["body"], node.get("shortcut"), node.get("post"))
        except ValueError as exc:
            raise ModelError(f"graph spec node {path or '<root>'}: {exc}") from None
    if kind == "Translator":
        args = node["args"]
        return Translator(tuple(args["in_shape"]), tuple(args["out_shape"]), args["kernel_size"], args["use_batchnorm"])
    if kind == "Layer":
        layer = {"name": "0", **node["layer"]}
        return from_spec({"format": _LAYER_FORMAT, "layers": [layer]})[0]
    raise ModelError(f"graph spec node {path or '<root>'} has unknown type {kind!r}")


register_format(ModelFormat(FORMAT, build=from_graph, describe=to_graph, priority=20))
