"""Surgery on the traced graph: a copy of the model with regions removed and bridges in their place.

Each cut is a single-entry single-exit region of the fx graph (:mod:`neuroprune.structure.regions`):
its nodes are erased, the value that left it is replaced everywhere by the bridge's output
(or, for ``nn.Identity``, by the value that entered it), and modules no node calls any more
are dropped. The result is a ``torch.fx.GraphModule``: an ordinary module that trains, saves
(:mod:`.fx_spec`) and measures like any other.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import fx, nn

from ..errors import ModelError
from ..structure.regions import RegionGraph, constants_of
from .blocks import BlockSpan

TRANSLATOR_NAME = "translator"
ORIGIN_KEY = "depth_origin"  # node.meta key: the cut origin a bridge node follows


def cut_model(model: nn.Module, spans: Sequence[BlockSpan], bridges: Sequence[nn.Module | None]) -> fx.GraphModule:
    """Return a new model without the units of ``spans`` and with ``bridges`` in their place.

    The input model is not touched: the copy is deep. Kept layers keep their module paths, so
    their state_dict keys are unchanged; a bridge is named ``translator`` (``translator_1``,
    ... if taken) beside the origin (``layer1.translator`` after ``layer1.0``).

    Args:
        model: any torch.fx-traceable model.
        spans: non-overlapping cuts, from :func:`~.blocks.find_spans` on the same model.
        bridges: per cut, the module joining origin and destination (a Translator), or
            ``None`` to join them directly (only valid when the shapes already match).

    Returns:
        The pruned model, in the same training mode as ``model``.

    Raises:
        ModelError: a span names units the traced model does not have.
    """
    pruned = copy.deepcopy(model)
    regions = RegionGraph(pruned)
    graph = regions.module.graph
    planned = []
    for span in spans:
        try:
            entry = regions.nodes[regions.segment(span.origin).exit]
            segments = [regions.segment(name) for name in span.removed]
        except KeyError as exc:
            raise ModelError(f"cut {span.cut}: the traced model has no unit {exc}") from None
        nodes = [regions.nodes[name] for segment in segments for name in segment.nodes]
        planned.append((span, entry, nodes))
    for (span, entry, nodes), bridge in zip(planned, bridges, strict=True):
        exit_node = nodes[-1]
        replacement = entry
        if bridge is not None:
            target = _free_name(regions.module, span.origin)
            regions.module.add_submodule(target, bridge)
            with graph.inserting_after(exit_node):
                replacement = graph.call_module(target, (entry,))
            replacement.meta[ORIGIN_KEY] = span.origin
        exit_node.replace_all_uses_with(replacement)
        doomed = set(nodes + constants_of(nodes))
        for node in reversed(list(graph.nodes)):
            if node in doomed:
                _erase(graph, node)
    graph.lint()
    # a new GraphModule takes the modules the graph calls, in the order it calls them
    result = fx.GraphModule(regions.module, graph, class_name=type(regions.module).__name__)
    return result.train(model.training)


def bridge_after(pruned: nn.Module, origin: str) -> nn.Module | None:
    """The bridge module that :func:`cut_model` put after the unit ``origin``, if there is one."""
    graph = getattr(pruned, "graph", None)
    if not isinstance(graph, fx.Graph):
        return None
    for node in graph.nodes:
        if node.op == "call_module" and node.meta.get(ORIGIN_KEY) == origin:
            return pruned.get_submodule(str(node.target))
    return None


def _free_name(module: nn.Module, origin: str) -> str:
    parent = origin.split("@")[0].rpartition(".")[0]
    try:
        owner = module.get_submodule(parent)
    except AttributeError:
        parent, owner = "", module
    taken = set(owner._modules)  # every name, a module held under two of them included
    name, index = TRANSLATOR_NAME, 0
    while name in taken:
        index += 1
        name = f"{TRANSLATOR_NAME}_{index}"
    return f"{parent}.{name}" if parent else name


def _erase(graph: fx.Graph, node: fx.Node) -> None:
    """Erase ``node`` and whatever dead code still reads it."""
    if node.graph is not graph or node._erased:
        return
    for user in list(node.users):
        _erase(graph, user)
    graph.erase_node(node)
