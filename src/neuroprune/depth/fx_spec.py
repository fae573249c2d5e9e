"""A JSON spec of a traced graph, and the builder that turns it back into a GraphModule.

A depth cut of a model whose forward is not a chain of Sequentials (a residual stream, a
U-Net skip, a ModuleList loop) is a ``torch.fx.GraphModule`` (:mod:`.surgery`); any other
traceable model of standard layers can be described the same way. The spec lists:

- ``modules``: every module a node calls, by path: a standard layer of
  :data:`~neuroprune.structure.traits.TRAITS` (its constructor arguments) or a Translator;
- ``tensors``: parameters and buffers the graph reads directly (``get_attr``), with shapes;
- ``nodes``: the graph in forward order; a function is named by module and name and must be
  one of the plain tensor functions below, so loading runs no code the file chooses.

Weights travel separately (safetensors), as for every saved model.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import ModelError
from ..models.spec import from_spec, layer_args
from ..saved_models import ModelFormat, register_format
from ..structure.regions import trace
from .translator import Translator

FORMAT = "neuroprune.fx/1"
_LAYER_FORMAT = "neuroprune.sequential/1"
_TORCH_FUNCTIONS = {
    "cat", "concat", "stack", "flatten", "add", "sub", "mul", "div", "matmul", "bmm", "softmax", "relu", "sigmoid",
    "tanh", "mean", "sum", "amax", "transpose", "permute", "reshape", "chunk", "split", "squeeze", "unsqueeze",
    "exp", "sqrt", "rsqrt", "maximum", "minimum", "clamp", "where", "zeros_like", "ones_like", "addmm", "baddbmm",
    "layer_norm", "gelu", "einsum", "narrow", "roll",
}
_MODULES: dict[str, Any] = {"_operator": operator, "operator": operator, "math": math, "torch": torch,
                            "torch.nn.functional": F, "torch._C._nn": F, "builtins": None}


def to_fx(model: nn.Module) -> dict[str, Any]:
    """Describe a traceable model (a GraphModule as it is) as a graph spec.

    Raises:
        ModelError: the model cannot be traced, calls a module that has no saved form, or
            calls a function outside the supported ones (the module or node is named).
    """
    module = model if isinstance(model, fx.GraphModule) else trace(model)
    modules: dict[str, dict[str, Any]] = {}
    tensors: dict[str, dict[str, Any]] = {}
    nodes = []
    for node in module.graph.nodes:
        if node.op == "call_module" and node.target not in modules:
            modules[node.target] = _describe_module(module.get_submodule(node.target), node.target)
        elif node.op == "get_attr":
            tensors[node.target] = _describe_tensor(module, node.target)
        nodes.append({"name": node.name, "op": node.op, "target": _target_name(node),
                      "args": _encode(node.args), "kwargs": _encode(dict(node.kwargs))})
    return {"format": FORMAT, "modules": [{"name": k, **v} for k, v in modules.items()],
            "tensors": [{"name": k, **v} for k, v in tensors.items()], "nodes": nodes}


def from_fx(spec: dict[str, Any]) -> fx.GraphModule:
    """Build the (untrained) GraphModule a graph spec describes; load the weights separately.

    Raises:
        ModelError: the spec is malformed or names something it may not (named).
    """
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelError(f"not a neuroprune fx graph spec (expected format {FORMAT!r})")
    root = nn.Module()
    try:
        for entry in spec["modules"]:
            _install(root, entry["name"], _build_module(entry))
        for entry in spec["tensors"]:
            value = torch.zeros(entry["shape"], dtype=getattr(torch, entry["dtype"]))
            owner, name = _owner(root, entry["name"])
            if entry["parameter"]:
                owner.register_parameter(name, nn.Parameter(value))
            else:
                owner.register_buffer(name, value)
        graph = fx.Graph()
        made: dict[str, fx.Node] = {}
        for entry in spec["nodes"]:
            args = _decode(entry["args"], made)
            if entry["op"] == "output":
                graph.output(args[0])
                continue
            target = _resolve(entry["target"]) if entry["op"] == "call_function" else str(entry["target"])
            if entry["op"] == "call_method" and target.startswith("_"):
                raise ModelError(f"graph spec node {entry['name']!r} calls private method {target!r}")
            node = graph.create_node(entry["op"], target, tuple(args), _decode(entry["kwargs"], made), entry["name"])
            made[entry["name"]] = node
        graph.lint()
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise ModelError(f"graph spec is malformed: {type(exc).__name__}: {exc}") from None
    return fx.GraphModule(root, graph)


def _describe_module(module: nn.Module, path: str) -> dict[str, Any]:
    if isinstance(module, Translator):
        return {"type": "Translator", "args": module.config()}
    try:
        return {"type": type(module).__name__, "args": layer_args(module)}
    except ModelError as exc:
        raise ModelError(f"module {path} cannot be saved as a graph spec: {exc}") from None


def _build_module(entry: dict[str, Any]) -> nn.Module:
    if entry["type"] == "Translator":
        args = entry["args"]
        return Translator(tuple(args["in_shape"]), tuple(args["out_shape"]), args["kernel_size"], args["use_batchnorm"])
    layer = {"name": "0", "type": entry["type"], "args": entry["args"]}
    return from_spec({"format": _LAYER_FORMAT, "layers": [layer]})[0]


def _describe_tensor(module: nn.Module, target: str) -> dict[str, Any]:
    owner, name = _owner(module, target)
    value = getattr(owner, name)
    is_parameter = name in owner._parameters
    if not (is_parameter or name in owner._buffers):
        raise ModelError(f"tensor {target} is neither a parameter nor a buffer: it would not be saved with the weights")
    return {"shape": list(value.shape), "dtype": str(value.dtype).removeprefix("torch."), "parameter": is_parameter}


def _target_name(node: fx.Node) -> str:
    if node.op != "call_function":
        return str(node.target)
    target = node.target
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", "")
    if target is getattr:
        return "builtins.getattr"
    if module not in _MODULES or (module == "torch" and name not in _TORCH_FUNCTIONS):
        raise ModelError(f"node {node.name} calls {module}.{name}, which a graph spec cannot record")
    return f"{module}.{name}"


def _resolve(name: str) -> Any:
    module, _, function = str(name).rpartition(".")
    if name == "builtins.getattr":
        return getattr
    if module not in _MODULES or module == "builtins" or function.startswith("_") or \
            (module == "torch" and function not in _TORCH_FUNCTIONS):
        raise ModelError(f"graph spec calls {name!r}, which is not a supported tensor function")
    return getattr(_MODULES[module], function)


def _encode(value: Any) -> Any:
    if isinstance(value, fx.Node):
        return {"node": value.name}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {"dict": {str(k): _encode(v) for k, v in value.items()}}
    if isinstance(value, slice):
        return {"slice": [_encode(value.start), _encode(value.stop), _encode(value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise ModelError(f"a graph argument of type {type(value).__name__} ({value!r}) cannot be saved")


def _decode(value: Any, made: dict[str, fx.Node]) -> Any:
    if isinstance(value, list):
        return [_decode(v, made) for v in value]
    if not isinstance(value, dict):
        return value
    if "node" in value:
        return made[value["node"]]
    if "tuple" in value:
        return tuple(_decode(v, made) for v in value["tuple"])
    if "dict" in value:
        return {k: _decode(v, made) for k, v in value["dict"].items()}
    if "slice" in value:
        return slice(*(_decode(v, made) for v in value["slice"]))
    if "ellipsis" in value:
        return Ellipsis
    if "dtype" in value:
        dtype = getattr(torch, value["dtype"])
        if not isinstance(dtype, torch.dtype):
            raise ModelError(f"graph spec names unknown dtype {value['dtype']!r}")
        return dtype
    raise ModelError(f"graph spec holds an argument it cannot read: {value!r}")


def _owner(root: nn.Module, target: str) -> tuple[nn.Module, str]:
    path, _, name = target.rpartition(".")
    owner = root
    for part in path.split(".") if path else []:
        if not hasattr(owner, part):
            owner.add_module(part, nn.Module())
        owner = getattr(owner, part)
    return owner, name


def _install(root: nn.Module, target: str, module: nn.Module) -> None:
    owner, name = _owner(root, target)
    owner.add_module(name, module)


register_format(ModelFormat(FORMAT, build=from_fx, describe=to_fx, priority=30))
