"""Least-squares initialisation of a translator from the intact model's own activations.

The authors start the translator from random weights and train it. Here it can start
where training would head: the 1x1 conv that best maps the (pooled) origin activations
to the activations the intact model feeds the destination, in the least-squares sense.
One pass over a few batches and one small linear solve; recovery then starts close to the
intact network instead of from a random remapping.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import fx, nn

from ..errors import ConfigError
from ..structure.regions import RegionGraph
from .blocks import BlockSpan
from .surgery import bridge_after

log = logging.getLogger(__name__)


def can_init_by_least_squares(translator: nn.Module) -> bool:
    """True for a translator whose conv alone maps origin to destination (1x1, no batch norm)."""
    return getattr(translator, "kernel_size", None) == 1 and not getattr(translator, "use_batchnorm", False)


def init_translator(
    pruned: nn.Module, intact: nn.Module, span: BlockSpan, loader: Iterable, *, batches: int = 8, ridge: float = 1e-3
) -> float:
    """Set the translator's 1x1 conv to the least-squares map from origin to destination activations.

    Args:
        pruned: the cut model, changed in place: the Translator that bridges ``span`` (the one
            right after its origin) is set.
        intact: the model before the cut (not changed).
        span: the cut.
        loader: batches ``(x, y)``; only ``x`` is used.
        batches: how many batches to collect activations from.
        ridge: Tikhonov regulariser, relative to the mean diagonal of X^T X.

    Returns:
        The relative residual ||XW - Y|| / ||Y|| of the fit (0 is a perfect remapping).

    Raises:
        ConfigError: no Translator bridges ``span``, its conv is not 1x1, or it has batch norm
            (the fitted map, bias included, could not be installed as it is).
    """
    translator = translator_after(pruned, span.origin)
    if translator is None or not can_init_by_least_squares(translator):
        raise ConfigError(f"least-squares initialisation needs a translator with a 1x1 conv and no batch norm right "
                          f"after {span.origin} (between the conv and the ReLU, batch norm would change the "
                          f"fitted map)")
    sources, targets = _activations(intact, span, loader, batches)
    pool = getattr(translator, "pool", None)
    with torch.no_grad():
        if pool is not None:
            sources = pool(sources)
        x = sources.permute(0, 2, 3, 1).reshape(-1, sources.shape[1])  # (N*H*W, C_A)
        y = targets.permute(0, 2, 3, 1).reshape(-1, targets.shape[1])  # (N*H*W, C_B)
        ones = torch.ones(len(x), 1, device=x.device, dtype=x.dtype)
        x = torch.cat([x, ones], dim=1).double()  # last column: the bias
        gram = x.T @ x
        gram += ridge * gram.diagonal().mean() * torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
        solution = torch.linalg.solve(gram, x.T @ y.double())  # (C_A + 1, C_B)
        residual = float((x @ solution - y.double()).norm() / y.double().norm().clamp_min(1e-12))
        conv = translator.conv
        assert isinstance(conv, nn.Conv2d)
        conv.weight.copy_(solution[:-1].T.reshape(conv.weight.shape).to(conv.weight.dtype))
        if conv.bias is not None:
            conv.bias.copy_(solution[-1].to(conv.bias.dtype))
    log.info("translator for %s initialised by least squares (relative residual %.3f)", span.cut, residual)
    return residual


def init_translators(pruned: nn.Module, plan: Any, loader: Iterable) -> None:
    """:func:`init_translator` for every translator a :class:`~.pruner.DepthPlan` put into ``pruned``."""
    for span, bridge in zip(plan.spans, plan.bridges, strict=True):
        if bridge == "translator":
            init_translator(pruned, plan.model, span, loader)


def translator_after(pruned: nn.Module, origin: str) -> nn.Module | None:
    """The Translator that bridges the cut starting after the unit ``origin``, if there is one."""
    bridge = bridge_after(pruned, origin)
    return bridge if isinstance(bridge, nn.Module) and hasattr(bridge, "conv") else None


class _Recorder(fx.Interpreter):
    """Runs the traced model and keeps a copy of the named values."""

    def __init__(self, module: fx.GraphModule, names: tuple[str, str]) -> None:
        super().__init__(module)
        self.names = names
        self.kept: dict[str, list[torch.Tensor]] = {name: [] for name in names}

    def run_node(self, n: fx.Node) -> Any:
        value = super().run_node(n)
        if n.name in self.kept:
            self.kept[n.name].append(value.detach().clone())  # clone: a later in-place op could change it
        return value


def _activations(
    model: nn.Module, span: BlockSpan, loader: Iterable, batches: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Origin outputs (N, C_A, H_A, W_A) and destination inputs (N, C_B, H_B, W_B) of the intact model."""
    regions = RegionGraph(model)
    names = (regions.segment(span.origin).exit, regions.segment(span.removed[-1]).exit)
    recorder = _Recorder(regions.module, names)
    flags = [(m, m.training) for m in model.modules()]
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            for index, (x, _) in enumerate(loader):
                if index >= batches:
                    break
                recorder.run(x.to(device))
    finally:
        for module, flag in flags:
            module.training = flag
    return torch.cat(recorder.kept[names[0]]), torch.cat(recorder.kept[names[1]])
