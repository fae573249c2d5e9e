"""Which layers share channels: a network traced with torch.fx, grouped into channel spaces.

A *channel space* is a set of tensors in the forward pass whose channel ``c`` is the same
unit: the output of a Conv2d, through its BatchNorm and ReLU, into a residual addition
with the block's input, on to every layer that reads the sum. Removing unit ``c`` of a
space means removing row ``c`` of every layer that writes the space, column ``c`` of every
layer that reads it, and entry ``c`` of every per-channel layer inside it (BatchNorm,
depthwise convs). A residual addition merges the spaces of its two operands; that is
what couples channels across a residual network.

A space is *fixed* when some tensor of it is the model's input or output, or meets an
operation this module does not understand (a concatenation, a multiplication of two
tensors, a reshape, a reduction over channels, a module with no entry in :mod:`.traits`
or with an argument the table does not list, a module with per-channel state that runs
more than once or whose tensors are also read directly): its channels are never removed,
which keeps every such model exact, if less pruned.

Layouts: ``maps`` is a batched (N, C, H, W) tensor (a Conv2d's input is taken to be
batched), ``features`` has its channels on the last axis (a Linear's output), ``flat`` is a
flattened map, channel ``c`` at features ``c * H * W ... (c + 1) * H * W - 1``.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from ..errors import ModelError
from .traits import is_depthwise, trait_of, unlisted_args

ConstantMap = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Reader:
    """A weighted layer reading a space through its weight columns.

    Attributes:
        module: the layer's dotted path.
        node: the traced value it reads (whose per-channel constants are folded into it).
        taps: consecutive input features per channel: H*W for a Linear after a Flatten of
            conv features, else 1.
    """

    module: str
    node: str
    taps: int


@dataclass
class ChannelSpace:
    """One set of coupled channels; see the module docstring.

    Attributes:
        size: number of channels.
        writers: weighted layers whose rows (and bias) make the channels.
        readers: weighted layers that read them.
        channelwise: ``(path, taps)`` of per-channel layers inside the space (BatchNorm,
            depthwise Conv2d); ``taps`` > 1 for a BatchNorm1d after a Flatten.
        fixed: why the channels can never be removed, or None.
    """

    size: int | None
    writers: list[str] = field(default_factory=list)
    readers: list[Reader] = field(default_factory=list)
    channelwise: list[tuple[str, int]] = field(default_factory=list)
    fixed: str | None = None


@dataclass(frozen=True)
class Step:
    """What one traced operation does to the space and the per-channel constants it carries.

    ``kind``: ``write`` (a weighted layer makes a new space), ``channelwise`` (a
    per-channel layer, constants mapped by ``module``), ``map`` (constants mapped by
    ``fn``), ``add`` (constants summed), ``opaque`` (nothing known).
    """

    kind: str
    inputs: tuple[str, ...] = ()
    module: str | None = None
    fn: ConstantMap | None = None


@dataclass
class ChannelMap:
    """The traced network: its spaces, each traced value's space, the operations in order."""

    spaces: list[ChannelSpace]
    space_of: dict[str, int]  # traced value -> index into spaces (tensors only)
    layout: dict[str, str]  # traced value -> "maps" (N, C, H, W), "features" (N, F), "flat" (flattened maps)
    steps: dict[str, Step]  # traced value -> how it was computed, in forward order
    modules: dict[str, nn.Module]


def trace_channels(model: nn.Module) -> ChannelMap:
    """Trace ``model`` with torch.fx and group its channels into spaces.

    Raises:
        ModelError: the model cannot be traced symbolically (data-dependent control flow,
            for example); the message names the module being traced.
    """
    graph = _trace(model)
    return _Builder(model).build(graph)


class _PathTracer(fx.Tracer):
    """A tracer that remembers which module it is inside, to name it when tracing fails."""

    def __init__(self) -> None:
        super().__init__()
        self.path: list[str] = []
        self.failed_in: str | None = None  # the innermost module whose forward raised

    def call_module(self, m: nn.Module, forward: Callable[..., Any], args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> Any:
        self.path.append(self.path_of_module(m))
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:
                self.failed_in = self.path[-1]
            raise
        finally:
            self.path.pop()


def _trace(model: nn.Module) -> fx.Graph:
    tracer = _PathTracer()
    try:
        return tracer.trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, NotImplementedError, ...
        where = tracer.failed_in or ""
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(
            f"cannot trace module {where or '<root>'!r} ({type(model.get_submodule(where)).__name__}) "
            f"with torch.fx: {message}; a model whose forward branches on tensor values cannot be compacted "
            "or pruned by units (connection pruning with finalize() still works)"
        ) from None


_ACTIVATION_FUNCTIONS = {
    F.relu, torch.relu, F.relu6, torch.sigmoid, torch.tanh, F.gelu, F.silu, F.hardswish, F.leaky_relu, F.elu,
    F.hardtanh, F.sigmoid, F.tanh,
}
_ACTIVATION_METHODS = {"relu", "relu_", "sigmoid", "tanh"}
_IDENTITY_FUNCTIONS = {F.dropout}
_POOL_FUNCTIONS = {F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.max_pool2d}  # (N, C, H, W) only
_ADD = {operator.add, operator.iadd, torch.add}
_IN_PLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ipow}


class _Builder:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.modules = dict(model.named_modules(remove_duplicate=False))
        self.parent: list[int] = []
        self.spaces: list[ChannelSpace] = []
        self.space_of: dict[str, int] = {}
        self.layout: dict[str, str] = {}
        self.steps: dict[str, Step] = {}
        self.calls: dict[int, int] = {}
        self.read_directly: set[int] = set()  # modules whose parameters or buffers the graph reads itself

    # ---- union-find over spaces --------------------------------------------------------

    def _new(self, size: int | None, fixed: str | None = None) -> int:
        self.spaces.append(ChannelSpace(size, fixed=fixed))
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def _find(self, index: int) -> int:
        while self.parent[index] != index:
            self.parent[index] = self.parent[self.parent[index]]
            index = self.parent[index]
        return index

    def _space(self, node: str) -> ChannelSpace:
        return self.spaces[self._find(self.space_of[node])]

    def _fix(self, node: Any, reason: str) -> None:
        if isinstance(node, fx.Node) and node.name in self.space_of:
            space = self._space(node.name)
            space.fixed = space.fixed or reason

    def _merge(self, a: str, b: str) -> int:
        ra, rb = self._find(self.space_of[a]), self._find(self.space_of[b])
        if ra == rb:
            return ra
        first, second = self.spaces[ra], self.spaces[rb]
        first.writers += second.writers
        first.readers += second.readers
        first.channelwise += second.channelwise
        first.fixed = first.fixed or second.fixed
        if first.size is None or second.size is None or first.size != second.size:
            first.fixed = first.fixed or "operands of different or unknown widths are added"
        self.parent[rb] = ra
        return ra

    # ---- the walk ---------------------------------------------------------------------

    def build(self, graph: fx.Graph) -> ChannelMap:
        for node in graph.nodes:
            if node.op == "call_module":
                key = id(self.modules[node.target])
                self.calls[key] = self.calls.get(key, 0) + 1
            elif node.op == "get_attr":
                owner = str(node.target).rpartition(".")[0]
                if owner in self.modules:
                    self.read_directly.add(id(self.modules[owner]))
        for node in graph.nodes:
            handler = getattr(self, f"_on_{node.op}")
            handler(node)
        roots = {i: self._find(i) for i in range(len(self.spaces))}
        order = sorted(set(roots.values()))
        index = {root: n for n, root in enumerate(order)}
        spaces = [self.spaces[root] for root in order]
        forward = {str(node.target): n for n, node in enumerate(graph.nodes) if node.op == "call_module"}
        for space in spaces:  # in forward order, so a space's name is its first writer
            space.writers.sort(key=lambda path: forward[path])
            space.readers.sort(key=lambda reader: forward[reader.module])
            space.channelwise.sort(key=lambda member: forward[member[0]])
        space_of = {name: index[roots[i]] for name, i in self.space_of.items()}
        modules = {name: self.modules[name] for name in self.modules}
        return ChannelMap(spaces, space_of, self.layout, self.steps, modules)

    def _same(self, node: fx.Node, source: fx.Node, step: Step, layout: str | None = None) -> None:
        self.space_of[node.name] = self.space_of[source.name]
        self.layout[node.name] = self.layout[source.name] if layout is None else layout
        self.steps[node.name] = step

    def _opaque(self, node: fx.Node, reason: str) -> None:
        for arg in node.all_input_nodes:
            self._fix(arg, reason)
        self.space_of[node.name] = self._new(None, fixed=reason)
        self.layout[node.name] = "unknown"
        self.steps[node.name] = Step("opaque")

    def _on_placeholder(self, node: fx.Node) -> None:
        self.space_of[node.name] = self._new(None, fixed="the model's input")
        self.layout[node.name] = "unknown"
        self.steps[node.name] = Step("opaque")

    def _on_get_attr(self, node: fx.Node) -> None:
        self._opaque(node, f"a tensor attribute {node.target!r} is used directly")

    def _on_output(self, node: fx.Node) -> None:
        for arg in node.all_input_nodes:
            self._fix(arg, "the model's output")

    def _on_call_module(self, node: fx.Node) -> None:
        path = str(node.target)
        module = self.modules[path]
        source = node.args[0] if node.args else None
        trait = trait_of(module)
        if _changes_shared_input(node, bool(getattr(module, "inplace", False)), self.modules):
            self._opaque(node, f"module {path!r} works in place on a value that other operations read")
            return
        if trait is None or not isinstance(source, fx.Node) or len(node.all_input_nodes) != 1:
            self._opaque(node, f"module {path!r} ({type(module).__name__}) is not a layer neuroprune understands")
            return
        reason = self._not_followed(path, module)
        if reason is not None:
            self._opaque(node, reason)
            return
        layout = self.layout[source.name]
        if trait.role == "weighted":
            self._on_weighted(node, path, module, source, layout)
        elif trait.role == "norm":
            width = module.num_features  # type: ignore[attr-defined]
            expected = "maps" if isinstance(module, nn.BatchNorm2d) else ("features", "flat")
            taps = self._taps(source, width) if layout in expected else None
            if taps is None or (layout != "flat" and taps != 1):
                self._opaque(node, f"module {path!r} does not match its input's channels")
                return
            self._space(source.name).channelwise.append((path, taps))
            self._same(node, source, Step("channelwise", (source.name,), module=path))
        elif trait.role == "flatten":
            start, end = module.start_dim, module.end_dim  # type: ignore[attr-defined]
            if start != 1 or end != -1:
                self._opaque(node, f"module {path!r} flattens other dimensions than channels and space")
                return
            self._same(node, source, Step("map", (source.name,), fn=_identity), layout=_flattened(layout))
        elif trait.role in ("pool", "pad", "resample") and layout != "maps":
            self._opaque(node, f"{trait.role} {path!r} of a tensor that is not a feature map")
        elif getattr(module, "return_indices", False):
            self._opaque(node, f"pool {path!r} returns indices")
        elif trait.role == "pad" or isinstance(module, nn.AvgPool2d) and _averages_in_zeros(module):
            self._same(node, source, Step("map", (source.name,), fn=_zero_or_unknown))
        elif trait.role in ("pool", "passthrough", "resample"):
            self._same(node, source, Step("map", (source.name,), fn=_identity))
        else:  # activation
            self._same(node, source, Step("map", (source.name,), fn=_no_grad(module)))

    def _not_followed(self, path: str, module: nn.Module) -> str | None:
        """Why a standard layer's call cannot be followed channel by channel, or None."""
        name = f"module {path!r} ({type(module).__name__})"
        unlisted = unlisted_args(module)
        if unlisted:
            return f"{name} sets {', '.join(unlisted)}, which neuroprune does not follow"
        if trait_of(module).role == "normalize":  # type: ignore[union-attr]
            return f"{name} normalises over several channels at once"
        has_state = any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(False))
        per_channel = has_state or trait_of(module).role in ("weighted", "norm")  # type: ignore[union-attr]
        if self.calls[id(module)] > 1 and per_channel:
            return f"{name} is called more than once"  # one object cannot take two different widths
        if id(module) in self.read_directly:
            return f"{name} has parameters or buffers that the forward also reads directly"
        return None

    def _on_weighted(self, node: fx.Node, path: str, module: nn.Module, source: fx.Node, layout: str) -> None:
        fan_in, width, reads = _weighted_shape(module)
        if isinstance(module, nn.Conv2d) and module.groups > 1:
            if is_depthwise(module) and layout == "maps" and self._space(source.name).size == fan_in:
                self._space(source.name).channelwise.append((path, 1))
                self._same(node, source, Step("channelwise", (source.name,), module=path))
                return
            self._fix(source, f"grouped convolution {path!r}")
            self.space_of[node.name] = self._new(width, fixed=f"grouped convolution {path!r}")
            self.layout[node.name] = "maps"
            self.steps[node.name] = Step("write", (source.name,), module=path)
            return
        taps = self._taps(source, fan_in)
        if taps is None or layout not in reads or (layout != "flat" and taps != 1):
            self._fix(source, f"layer {path!r} reads its input in a layout neuroprune does not follow")
        else:
            self._space(source.name).readers.append(Reader(path, source.name, taps))
        self.space_of[node.name] = self._new(width)
        self.spaces[self.space_of[node.name]].writers.append(path)
        self.layout[node.name] = "maps" if isinstance(module, nn.Conv2d) else "features"
        self.steps[node.name] = Step("write", (source.name,), module=path)

    def _taps(self, source: fx.Node, features: int) -> int | None:
        size = self._space(source.name).size
        if size is None or size == 0 or features % size:
            return None
        return features // size

    def _on_call_function(self, node: fx.Node) -> None:
        args, kwargs = list(node.args), dict(node.kwargs)
        in_place = node.target in _IN_PLACE_OPERATORS or kwargs.get("inplace") is True or (
            node.target in _ACTIVATION_FUNCTIONS and any(a is True for a in args[1:]))
        if _changes_shared_input(node, in_place, self.modules):
            self._opaque(node, f"in-place operation {node.name!r} changes a value that other operations read")
            return
        self._on_operation(node, node.target, args, kwargs)

    def _on_call_method(self, node: fx.Node) -> None:
        name = str(node.target)
        if _changes_shared_input(node, name.endswith("_") and not name.startswith("_"), self.modules):
            self._opaque(node, f"in-place method {name!r} at {node.name!r} changes a value that other operations read")
            return
        if name in ("size", "dim") and (len(node.args) == 1 or node.args[1:] == (0,)):
            self.steps[node.name] = Step("opaque")  # the batch size or rank: no channel information
            return
        if name in ("view", "reshape", "flatten"):
            target: Any = torch.flatten if name == "flatten" else name
            self._on_operation(node, target, list(node.args), dict(node.kwargs))
            return
        methods: dict[str, Any] = {"add": operator.add, "add_": operator.add, "mul": operator.mul, "mean": "mean",
                                   "contiguous": "identity"}
        if name in _ACTIVATION_METHODS:
            self._on_operation(node, getattr(torch, name.rstrip("_")), list(node.args), dict(node.kwargs))
        elif name in methods:
            self._on_operation(node, methods[name], list(node.args), dict(node.kwargs))
        else:
            self._opaque(node, f"tensor method {name!r} at {node.name!r}")

    def _on_operation(self, node: fx.Node, target: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
        tensors = [a for a in args if isinstance(a, fx.Node) and a.name in self.space_of]
        first = args[0] if args and isinstance(args[0], fx.Node) and args[0].name in self.space_of else None
        if target in _ADD and not kwargs and len(args) == 2:
            if len(tensors) == 2:
                a, b = tensors
                if self.layout[a.name] != self.layout[b.name]:
                    self._opaque(node, f"addition {node.name!r} of differently laid out tensors")
                    return
                self.space_of[node.name] = self._merge(a.name, b.name)
                self.layout[node.name] = self.layout[a.name]
                self.steps[node.name] = Step("add", (a.name, b.name))
                return
            if len(tensors) == 1 and isinstance(args[1 - args.index(tensors[0])], (int, float)):
                shift = float(args[1 - args.index(tensors[0])])
                self._same(node, tensors[0], Step("map", (tensors[0].name,), fn=_plus(shift)))
                return
        if target in (operator.mul, torch.mul) and not kwargs and len(args) == 2 and len(tensors) == 1:
            other = args[1 - args.index(tensors[0])]
            if isinstance(other, (int, float)):
                self._same(node, tensors[0], Step("map", (tensors[0].name,), fn=_times(float(other))))
                return
        if first is not None and len(tensors) == 1:
            if target in _ACTIVATION_FUNCTIONS:
                rest, extra = args[1:], kwargs
                if all(not isinstance(a, fx.Node) for a in rest) and all(
                        not isinstance(v, fx.Node) for v in extra.values()):
                    fn = _no_grad(functools.partial(_call_first, target, tuple(rest), dict(extra)))
                    self._same(node, first, Step("map", (first.name,), fn=fn))
                    return
            if target in _IDENTITY_FUNCTIONS or target == "identity" or (
                    target in _POOL_FUNCTIONS and self.layout[first.name] == "maps"
                    and not _returns_indices(target, args, kwargs)):
                self._same(node, first, Step("map", (first.name,), fn=_identity))
                return
            if target is torch.flatten and tuple(args[1:]) in ((1,), (1, -1)) and not kwargs:
                self._same(node, first, Step("map", (first.name,), fn=_identity),
                           layout=_flattened(self.layout[first.name]))
                return
            if target in ("view", "reshape") and len(args) == 3 and args[2] == -1 and not kwargs:
                batch = args[1]
                if (isinstance(batch, fx.Node) and batch.op == "call_method" and batch.target == "size"
                        and tuple(batch.args[1:]) == (0,) and not batch.kwargs):
                    self._same(node, first, Step("map", (first.name,), fn=_identity),
                               layout=_flattened(self.layout[first.name]))
                    return
            layout = _spatial_mean(self.layout[first.name], args[1:], kwargs) if target == "mean" else None
            if layout is not None:
                self._same(node, first, Step("map", (first.name,), fn=_identity), layout=layout)
                return
        label = getattr(target, "__name__", str(target))
        self._opaque(node, f"operation {label!r} at {node.name!r}")


def _changes_shared_input(node: fx.Node, in_place: bool, modules: dict[str, nn.Module]) -> bool:
    """An in-place operation on a value that some other node reads too, directly or through a view or a layer
    that returns its input (Identity, Dropout): that node sees the changed value, which the graph does not show."""
    target = node.args[0] if node.args else None
    seen: set[str] = set()
    while in_place and isinstance(target, fx.Node) and target.name not in seen:
        seen.add(target.name)
        if len(target.users) > 1:
            return True
        target = target.args[0] if _may_return_its_input(target, modules) and target.args else None
    return False


_VIEW_METHODS = {"view", "reshape", "flatten", "contiguous", "transpose", "permute", "t", "squeeze", "unsqueeze",
                 "expand", "expand_as", "view_as", "reshape_as", "narrow", "chunk", "split", "unflatten", "detach",
                 "to", "type_as", "float", "double"}
_VIEW_FUNCTIONS = {torch.flatten, torch.reshape, torch.transpose, torch.permute, torch.squeeze, torch.unsqueeze,
                   torch.chunk, torch.split, torch.narrow, operator.getitem, F.dropout, torch.detach}


def _may_return_its_input(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Whether ``node``'s value may be its first input itself or a view of it."""
    if node.op == "call_module":
        module = modules.get(str(node.target))
        trait = trait_of(module) if module is not None else None
        return trait is None or not trait.allocates
    if node.op == "call_method":
        return str(node.target) in _VIEW_METHODS or str(node.target).endswith("_")
    if node.op == "call_function":
        in_place = node.target in _IN_PLACE_OPERATORS or node.kwargs.get("inplace") is True
        return node.target in _VIEW_FUNCTIONS or in_place
    return False


def _weighted_shape(module: nn.Module) -> tuple[int, int, tuple[str, ...]]:
    """(inputs, outputs, layouts it reads) of a Linear or Conv2d."""
    if isinstance(module, nn.Conv2d):
        return module.in_channels, module.out_channels, ("maps",)
    assert isinstance(module, nn.Linear)
    return module.in_features, module.out_features, ("features", "flat")


def _plus(shift: float) -> ConstantMap:
    return lambda value: value + shift


def _times(factor: float) -> ConstantMap:
    return lambda value: value * factor


def _spatial_mean(layout: str, args: list[Any], kwargs: dict[str, Any]) -> str | None:
    """The layout of ``mean(dim, keepdim)`` when it averages a feature map over space only, else None.

    Only an (N, C, H, W) map has space to average; on (N, F) features the last axis is
    the channels themselves.
    """
    if layout != "maps" or set(kwargs) - {"dim", "keepdim"}:
        return None
    dims = kwargs.get("dim", args[0] if args else None)
    keepdim = kwargs.get("keepdim", args[1] if len(args) > 1 else False)
    dims = (dims,) if isinstance(dims, int) else tuple(dims or ())
    if not dims or not all(isinstance(d, int) and d in (2, 3, -1, -2) for d in dims) or len(args) > 2:
        return None
    if keepdim is True:
        return "maps"
    return "features" if keepdim is False and {d % 4 for d in dims} == {2, 3} else None


def _averages_in_zeros(pool: nn.AvgPool2d) -> bool:
    """An average whose border windows count padding zeros, or that divides by a fixed number instead of the
    window's size: only a zero channel stays the same constant."""
    return pool.divisor_override is not None or (pool.padding not in (0, (0, 0)) and pool.count_include_pad)


def _returns_indices(target: Any, args: list[Any], kwargs: dict[str, Any]) -> bool:
    position = 2 if target is F.adaptive_max_pool2d else 6  # (input, output_size, return_indices) or max_pool2d's
    return bool(kwargs.get("return_indices", False)) or (len(args) > position and bool(args[position]))


def _flattened(layout: str) -> str:
    """Flattening (N, C, H, W) lays channels out as features; a (N, F) tensor stays as it is."""
    return {"maps": "flat", "features": "features", "flat": "flat"}.get(layout, "unknown")


def _call_first(fn: Callable[..., torch.Tensor], rest: tuple[Any, ...], kwargs: dict[str, Any],
                value: torch.Tensor) -> torch.Tensor:
    return fn(value, *rest, **kwargs)


def _identity(value: torch.Tensor) -> torch.Tensor:
    return value


def _zero_or_unknown(value: torch.Tensor) -> torch.Tensor:
    """Zero padding counted in an average: only a zero channel stays constant at the borders."""
    return torch.where(value == 0, value, torch.full_like(value, float("nan")))


def _no_grad(fn: Callable[[torch.Tensor], torch.Tensor]) -> ConstantMap:
    def apply(value: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return fn(value.clone())  # clone: an in-place activation must not touch the caller's tensor
    return apply
