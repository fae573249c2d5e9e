"""Surgery: a copy of the model with a span of units removed and a bridge put in its place."""

from __future__ import annotations

import copy
from collections import OrderedDict

from torch import nn

from .blocks import BlockSpan

TRANSLATOR_NAME = "translator"


def cut_model(model: nn.Module, span: BlockSpan, bridge: nn.Module | None) -> nn.Module:
    """Return a new model without ``span.removed`` and with ``bridge`` right after the origin.

    The input model is not touched: the copy is deep. Kept units keep their names, so their
    state_dict keys are unchanged; the bridge is named ``translator`` (``translator_1``, ...
    if taken) inside the origin's Sequential. Sequentials left empty are dropped.

    Args:
        model: a model made of nested ``nn.Sequential`` stages (see :func:`~.blocks.chain`).
        span: the cut, from :func:`~.blocks.find_spans`.
        bridge: the module joining origin and destination (a Translator), or ``None`` to
            join them directly (only valid when the shapes already match).

    Returns:
        The pruned model, in the same training mode as ``model``.
    """
    pruned = copy.deepcopy(model)
    assert isinstance(pruned, nn.Sequential), "cuts come from blocks.chain, which requires an nn.Sequential"
    removed = set(span.removed)
    origin_parent, _, origin_name = span.origin.rpartition(".")
    _rebuild(pruned, "", removed, origin_parent, origin_name, bridge)
    return pruned


def _rebuild(
    seq: nn.Sequential, prefix: str, removed: set[str], origin_parent: str, origin_name: str, bridge: nn.Module | None
) -> bool:
    """Drop removed children of ``seq`` (recursively) and insert the bridge; True if ``seq`` ends up empty."""
    kept: list[tuple[str, nn.Module]] = []
    here = prefix.rstrip(".")
    for name, child in seq.named_children():
        path = f"{prefix}{name}"
        if path in removed:
            continue
        if isinstance(child, nn.Sequential) and _rebuild(child, f"{path}.", removed, origin_parent, origin_name, bridge):
            continue
        kept.append((name, child))
        if bridge is not None and here == origin_parent and name == origin_name:
            kept.append((_free_name(seq), bridge))
    # Sequential has no "replace all children": clear its registry and re-add in order.
    seq._modules = OrderedDict(kept)
    return not kept


def _free_name(seq: nn.Sequential) -> str:
    taken = set(dict(seq.named_children()))
    name, index = TRANSLATOR_NAME, 0
    while name in taken:
        index += 1
        name = f"{TRANSLATOR_NAME}_{index}"
    return name
