"""Architecture specs: a JSON-able description that rebuilds a plain sequential model.

A compacted model has layer widths no factory knows, so it is saved as weights
(safetensors) plus this spec. Rebuilding needs no pickled code and no original model.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from torch import nn

from ..errors import ModelError
from ..saved_models import ModelFormat, register_format
from ..structure.traits import BY_NAME, saved_args, trait_of, unlisted_args

FORMAT = "neuroprune.sequential/1"


def layer_args(module: nn.Module) -> dict[str, Any]:
    """The constructor arguments that rebuild a standard layer (see :data:`~neuroprune.structure.traits.TRAITS`).

    Raises:
        ModelError: the module is not a standard layer of the table (a subclass is not
            either: it may compute something else), or it sets an argument the table does
            not list, which the saved form would silently drop.
    """
    trait = trait_of(module)
    if trait is None:
        raise ModelError(f"type {type(module).__name__} has no saved form; supported: {', '.join(BY_NAME)}")
    unlisted = unlisted_args(module)
    if unlisted:
        settings = ", ".join(f"{name}={value!r}" for name, value in unlisted.items())
        raise ModelError(f"{type(module).__name__}({settings}) sets an argument the saved form does not record")
    return {name: _plain(value) for name, value in saved_args(module).items()}


def to_spec(model: nn.Module) -> dict[str, Any]:
    """Describe a flat ``nn.Sequential`` of standard layers as a JSON-able dict.

    Raises:
        ModelError: the model is not a flat sequential of supported layers.
    """
    # a Sequential subclass may compute something else; one that computes the same says so
    if not (type(model) is nn.Sequential or getattr(type(model), "saves_as_sequential", False)):
        raise ModelError(f"a layer list describes a plain nn.Sequential, not {type(model).__name__}")
    layers = []
    # _modules, not named_children(): a module object used twice (one ReLU at two places)
    # must be described at both places, and named_children() yields it only once
    for name, module in model._modules.items():
        assert module is not None  # nn.Sequential holds no None entries
        try:
            args = layer_args(module)
        except ModelError as exc:
            raise ModelError(f"layer {name!r}: {exc}") from None
        layers.append({"name": name, "type": type(module).__name__, "args": args})
    return {"format": FORMAT, "layers": layers}


def from_spec(spec: dict[str, Any]) -> nn.Sequential:
    """Rebuild the (untrained) model a spec describes; load its weights separately.

    Raises:
        ModelError: the spec is malformed or names an unsupported layer.
    """
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelError(f"not a neuroprune architecture spec (expected format {FORMAT!r})")
    modules: list[tuple[str, nn.Module]] = []
    for entry in spec.get("layers", []):
        kind = entry.get("type")
        if kind not in BY_NAME:
            raise ModelError(f"spec layer {entry.get('name')!r} has unsupported type {kind!r}")
        args = {key: tuple(v) if isinstance(v, list) else v for key, v in entry.get("args", {}).items()}
        try:
            modules.append((entry["name"], BY_NAME[kind](**args)))
        except (TypeError, ValueError, KeyError) as exc:
            raise ModelError(f"spec layer {entry.get('name')!r} ({kind}) is malformed: {exc}") from None
    return nn.Sequential(OrderedDict(modules))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


register_format(ModelFormat(FORMAT, build=from_spec, describe=to_spec, priority=10))
