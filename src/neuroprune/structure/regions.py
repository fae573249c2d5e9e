"""Single-entry single-exit regions of a traced network: the parts a depth cut may remove.

The network is traced with torch.fx, the graph compaction reads too. Its *flow graph* has
an edge from every traced value to each operation that reads it; values not computed from
the inputs (parameters and buffers read with ``get_attr``, constants) are left out: they
belong to the operations that read them.

A node ``a`` *dominates* ``b`` when every path from the inputs to ``b`` passes through
``a``; ``b`` *post-dominates* ``a`` when every path from ``a`` to the output passes
through ``b``. The *main path* is the chain of nodes that dominate the output: everything
the network computes flows through each of them, whatever skips, residual streams or
loops over a ``ModuleList`` it has. For two points ``a`` before ``b`` on it, ``a``
dominates ``b`` and ``b`` post-dominates ``a``, so the nodes between them (dominated by
``a``, post-dominated by ``b``) form a single-entry single-exit region: it reads nothing
from outside but ``a``'s value (and constants), and nothing outside reads it but ``b``'s.
One module from ``a``'s value to ``b``'s can replace the whole region.

Points are grouped into *units*: a point belongs to the outermost module that computes
it, not counting containers (``nn.Sequential``, ``nn.ModuleList``, ``nn.ModuleDict``) and
the model itself, so a residual block, a transformer block or a conv is one unit and a
cut never enters it; a function called in the model's own ``forward`` is a unit of its
own, named after its node. A unit's segment is the region from the previous unit's last
point to its own, so the segments of consecutive units join into every region a cut may
remove.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import ModelError
from .traits import trait_of

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_COUNTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # the layers count_macs counts
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class Segment:
    """One unit of the main path and the region that computes it.

    Attributes:
        name: the unit's module path (``layer2.0``, ``blocks.3``), or its node's name for a
            function called in the model's own forward (``cat``, ``add_2``).
        kind: ``conv``, ``linear``, ``norm``, ``act``, ``pool``, ``global_pool``,
            ``flatten``, ``pad`` (padding and resampling) or ``other`` for a single standard
            layer, after its role in :mod:`.traits`; ``block`` for a region with parameters
            made of several operations or of a module outside the table; ``other`` for the rest.
        entry: the node whose value enters the region (the previous unit's exit).
        exit: the node whose value leaves it (the unit's last point).
        nodes: the region's nodes in forward order, ``exit`` last.
        in_shape: the entering value's shape for one sample (``()`` when not a tensor).
        out_shape: the leaving value's shape for one sample.
        params: parameters of the modules and tensors the region uses.
        macs: multiply-accumulates per sample of its Linear and Conv layers.
    """

    name: str
    kind: str
    entry: str
    exit: str
    nodes: tuple[str, ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    params: int
    macs: int


class _Tracer(fx.Tracer):
    """A tracer that remembers which module it is inside, to name it when tracing fails."""

    def __init__(self) -> None:
        super().__init__()
        self.path: list[str] = []
        self.failed_in: str | None = None

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


def trace(model: nn.Module) -> fx.GraphModule:
    """``model`` traced with torch.fx; the GraphModule shares the model's submodules.

    Raises:
        ModelError: the model cannot be traced symbolically; the module that failed is named.
    """
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # noqa: BLE001 - fx raises TraceError, TypeError, NotImplementedError, ...
        where = tracer.failed_in or ""
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(
            f"cannot trace module {where or '<root>'!r} ({type(model.get_submodule(where)).__name__}) with "
            f"torch.fx: {message}; depth cuts need a forward without control flow on tensor values"
        ) from None
    return fx.GraphModule(model, graph, class_name=type(model).__name__)


class RegionGraph:
    """The traced model, its dominators and post-dominators, main path and units.

    Args:
        model: any torch.fx-traceable model.
        example_inputs: one batch; when given, one forward pass (eval mode, first sample)
            records every value's shape, else shapes are empty.

    Attributes:
        module: the traced GraphModule (shares the model's submodules).
        points: the main path, in forward order, from the input to the value returned.
        segments: the units after the input, in forward order.

    Example:
        >>> regions = RegionGraph(model, torch.randn(1, 3, 32, 32))
        >>> [s.name for s in regions.segments][:3]
        ['conv1', 'bn1', 'relu']
    """

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor | None = None) -> None:
        self.model = model
        self.module = trace(model)
        if example_inputs is not None:
            _propagate_shapes(model, self.module, example_inputs[:1])
        self.nodes = {node.name: node for node in self.module.graph.nodes}
        self._order = {node: index for index, node in enumerate(self.module.graph.nodes)}
        self._flow = self._flow_nodes()
        self.idom = self._dominators(reverse=False)
        self.ipdom = self._dominators(reverse=True)
        self.points = self._main_path()
        self.segments = self._segments()

    # ---- the flow graph and its (post-)dominator trees ---------------------------------

    def _flow_nodes(self) -> list[fx.Node]:
        """Nodes computed from the inputs that reach the output, in forward order."""
        reached: set[fx.Node] = set()
        for node in self.module.graph.nodes:
            if node.op == "placeholder" or any(p in reached for p in node.all_input_nodes):
                reached.add(node)
        reaching: set[fx.Node] = set()
        for node in reversed(list(self.module.graph.nodes)):
            if node.op == "output" or any(u in reaching for u in node.users):
                reaching.add(node)
        return [n for n in self.module.graph.nodes if n in reached and n in reaching]

    def _dominators(self, *, reverse: bool) -> dict[fx.Node | None, fx.Node | None]:
        """Immediate (post-)dominators; ``None`` stands for the virtual entry (exit) joining all inputs."""
        flow = set(self._flow)
        order = list(reversed(self._flow)) if reverse else self._flow
        rank: dict[fx.Node | None, int] = {node: index for index, node in enumerate(order)}
        rank[None] = -1
        parent: dict[fx.Node | None, fx.Node | None] = {None: None}

        def meet(a: fx.Node | None, b: fx.Node | None) -> fx.Node | None:
            while a is not b:
                while rank[a] > rank[b]:
                    a = parent[a]
                while rank[b] > rank[a]:
                    b = parent[b]
            return a

        for node in order:
            before = [u for u in node.users if u in flow] if reverse else [p for p in node.all_input_nodes if p in flow]
            if not before:  # an input (or the output, walking backwards)
                parent[node] = None
                continue
            common = before[0]
            for other in before[1:]:
                common = meet(common, other)
            parent[node] = common
        return parent

    def dominates(self, a: fx.Node, b: fx.Node) -> bool:
        """True when every path from the inputs to ``b`` passes through ``a`` (``a`` is ``b`` included)."""
        return self._walks_to(self.idom, a, b)

    def post_dominates(self, b: fx.Node, a: fx.Node) -> bool:
        """True when every path from ``a`` to the output passes through ``b`` (``b`` is ``a`` included)."""
        return self._walks_to(self.ipdom, b, a)

    @staticmethod
    def _walks_to(tree: dict[fx.Node | None, fx.Node | None], ancestor: fx.Node, node: fx.Node | None) -> bool:
        while node is not None:
            if node is ancestor:
                return True
            node = tree.get(node)
        return False

    def _main_path(self) -> list[fx.Node]:
        output = next(n for n in self.module.graph.nodes if n.op == "output")
        chain: list[fx.Node] = []
        node = self.idom.get(output)
        while node is not None:
            chain.append(node)
            node = self.idom[node]
        return chain[::-1]

    def region(self, entry: fx.Node, exit: fx.Node) -> list[fx.Node]:
        """The nodes ``entry`` dominates and ``exit`` post-dominates, ``entry`` excluded, in forward order.

        Raises:
            ModelError: the pair does not bound a single-entry single-exit region.
        """
        if not (self.dominates(entry, exit) and self.post_dominates(exit, entry)) or entry is exit:
            raise ModelError(f"nodes {entry.name} and {exit.name} do not bound a single-entry single-exit region")
        start, end = self._order[entry], self._order[exit]
        return [n for n in self._flow if start < self._order[n] <= end
                and self.dominates(entry, n) and self.post_dominates(exit, n)]

    # ---- units -------------------------------------------------------------------------

    def _segments(self) -> list[Segment]:
        points = [p for p in self.points if p.op != "placeholder"]
        if not points:
            return []
        start = self.points[0] if self.points[0].op == "placeholder" else None
        groups: list[tuple[str, fx.Node]] = []  # (unit key, its last point)
        for point in points:
            key = unit_key(self.model, point)
            if groups and groups[-1][0] == key:
                groups[-1] = (key, point)
            else:
                groups.append((key, point))
        names = _unique_names([key for key, _ in groups])
        segments = []
        for name, (_, last) in zip(names, groups, strict=True):
            nodes = self.region(start, last) if start is not None else self._from_inputs(last)
            segments.append(self._describe(name, start, last, nodes))
            start = last
        return segments

    def _from_inputs(self, last: fx.Node) -> list[fx.Node]:
        return [n for n in self._flow if n.op != "placeholder" and self._order[n] <= self._order[last]
                and self.post_dominates(last, n)]

    def _describe(self, name: str, entry: fx.Node | None, exit: fx.Node, nodes: list[fx.Node]) -> Segment:
        owned = nodes + constants_of(nodes)
        flow_ops = [n for n in nodes if n.op in ("call_module", "call_function", "call_method")]
        params = _count_params(self.module, owned)
        single = self.module.get_submodule(flow_ops[0].target) if len(flow_ops) == 1 and \
            flow_ops[0].op == "call_module" else None
        if single is not None and trait_of(single) is not None:
            kind = _kind(single)
        else:
            kind = "block" if params else "other"
        macs = sum(_macs(self.module.get_submodule(n.target), n) for n in owned if n.op == "call_module")
        return Segment(name, kind, entry.name if entry is not None else "", exit.name, tuple(n.name for n in nodes),
                       shape_of(entry) if entry is not None else (), shape_of(exit), params, macs)

    def segment(self, name: str) -> Segment:
        """The unit called ``name``.

        Raises:
            KeyError: no unit has that name.
        """
        for segment in self.segments:
            if segment.name == name:
                return segment
        raise KeyError(name)


def unit_key(module: nn.Module, node: fx.Node) -> str:
    """The outermost non-container module of ``module`` computing ``node`` (``@k``: its k-th call), else its name.

    ``module`` is the traced model itself: a GraphModule keeps only plain modules around its leaves.
    """
    stack = list(node.meta.get("nn_module_stack", {}))
    if node.op == "call_module" and (not stack or stack[-1].split("@")[0] != node.target):
        stack.append(str(node.target))
    for key in stack:
        path = key.split("@")[0]
        try:
            found = module.get_submodule(path)
        except AttributeError:
            return key
        if not isinstance(found, _CONTAINERS):
            return key
    return node.name


def constants_of(nodes: list[fx.Node]) -> list[fx.Node]:
    """Nodes outside ``nodes`` computed from no input (``get_attr``, constants) that only ``nodes`` read."""
    inside = set(nodes)
    found: list[fx.Node] = []
    frontier = [p for n in nodes for p in n.all_input_nodes if p not in inside]
    while frontier:
        node = frontier.pop()
        if node in inside or node.op == "placeholder" or not all(u in inside for u in node.users):
            continue
        if _depends_on_inputs(node):
            continue
        inside.add(node)
        found.append(node)
        frontier += node.all_input_nodes
    return found


def shape_of(node: fx.Node) -> tuple[int, ...]:
    """The node's value shape for one sample (batch dimension dropped), ``()`` when unknown or not a tensor."""
    meta = node.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(int(v) for v in shape[1:]) if shape is not None else ()


def _depends_on_inputs(node: fx.Node) -> bool:
    seen: set[fx.Node] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current.op == "placeholder":
            return True
        if current not in seen:
            seen.add(current)
            stack += current.all_input_nodes
    return False


def _propagate_shapes(model: nn.Module, module: fx.GraphModule, example: torch.Tensor) -> None:
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            # clone: an in-place first layer must not change the caller's tensor
            ShapeProp(module).propagate(example.clone())
    except Exception as exc:  # noqa: BLE001 - the user's forward: any error is a model that does not fit this input
        raise ModelError(f"the shape probe of {type(model).__name__} failed: {str(exc).splitlines()[0]}") from None
    finally:
        for m, flag in flags:
            m.training = flag


def _count_params(module: fx.GraphModule, nodes: list[fx.Node]) -> int:
    seen: dict[int, int] = {}
    for node in nodes:
        if node.op == "call_module":
            for p in module.get_submodule(node.target).parameters():
                seen[id(p)] = p.numel()
        elif node.op == "get_attr":
            value = _attribute(module, str(node.target))
            if isinstance(value, nn.Parameter):
                seen[id(value)] = value.numel()
    return sum(seen.values())


def _attribute(module: nn.Module, target: str) -> Any:
    owner, _, name = target.rpartition(".")
    return getattr(module.get_submodule(owner), name)


def _macs(layer: nn.Module, node: fx.Node) -> int:
    if not isinstance(layer, _COUNTED):
        return 0
    shape = node.meta.get("tensor_meta")
    if shape is None:
        return 0
    outputs = 1
    for size in shape.shape:
        outputs *= int(size)
    # weight (out, in / groups, *kernel): each output element of channel o uses W[o] once
    return layer.weight.numel() * (outputs // layer.weight.shape[0]) // max(1, int(shape.shape[0]))


def _kind(layer: nn.Module) -> str:
    trait = trait_of(layer)
    assert trait is not None
    if trait.role == "weighted":
        return "conv" if isinstance(layer, nn.Conv2d) else "linear"
    if isinstance(layer, _GLOBAL_POOLS):  # adaptive pools end the maps of any size at a fixed one
        return "global_pool"
    return {"norm": "norm", "normalize": "norm", "activation": "act", "pool": "pool", "flatten": "flatten",
            "pad": "pad", "resample": "pad"}.get(trait.role, "other")


def _unique_names(keys: list[str]) -> list[str]:
    """Keys without their ``@k`` call suffix where that leaves them unique."""
    plain = [key.split("@")[0] for key in keys]
    return [p if plain.count(p) == 1 else key for p, key in zip(plain, keys, strict=True)]
