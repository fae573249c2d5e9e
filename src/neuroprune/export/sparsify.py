"""``sparsify``: per layer, time the dense and the CSR kernel and keep the faster one.

Whether a sparse kernel wins depends on the layer's shape, its density, the batch size
and the CPU, so it is measured rather than guessed: each ``nn.Linear`` is timed in
isolation on the input it really receives in the model (captured with a forward
pre-hook), dense and CSR interleaved round by round so that background load hits both
alike. In a flat chain a layer is timed the way the chain will run it: at batch 1 as a
matrix-vector product, and after a CSR layer on that layer's transposed output (which
spares the CSR kernel a transpose). Convolutions stay dense (no sparse convolution
kernel is offered).
"""

from __future__ import annotations

import copy
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from ..errors import ConfigError
from ..metrics import measure_latency
from ..structure.traits import has_role
from .chain import InferenceChain, matrix_vector
from .sparse import SparseLinear

logger = logging.getLogger(__name__)

KINDS = ("dense", "csr")


@dataclass(frozen=True)
class LayerChoice:
    """The kernel chosen for one Linear layer and the timings behind the choice.

    Attributes:
        name: the layer's module path.
        kind: ``"dense"``, ``"csr"``, or ``"hybrid"`` (CSR from batch size ``dense_below`` on,
            the dense weight below it: CSR lost at the small and won at the large batch sizes).
        density: non-zero weights over all weights.
        dense_ms: batch size -> median milliseconds of the dense layer.
        csr_ms: batch size -> median milliseconds of the CSR layer (empty if not measured).
        dense_below: for ``"hybrid"``, the smallest measured batch size at which CSR won.
    """

    name: str
    kind: str
    density: float
    dense_ms: dict[int, float] = field(default_factory=dict)
    csr_ms: dict[int, float] = field(default_factory=dict)
    dense_below: int = 0

    def to_dict(self) -> dict[str, object]:
        """JSON-able form (batch sizes become string keys)."""
        return {
            "kind": self.kind,
            "dense_below": self.dense_below,
            "density": self.density,
            "dense_ms": {str(b): ms for b, ms in self.dense_ms.items()},
            "csr_ms": {str(b): ms for b, ms in self.csr_ms.items()},
        }


def sparsify(
    model: nn.Module,
    example_input: torch.Tensor | Sequence[torch.Tensor],
    *,
    candidates: Sequence[str] = KINDS,
    rounds: int = 5,
    repeats: int = 20,
    max_density: float = 0.5,
    use_chain: bool = True,
    threads: int | None = None,
) -> tuple[nn.Module, dict[str, LayerChoice]]:
    """A copy of ``model`` in which each Linear layer uses the faster of the dense and CSR kernels.

    Pruned weights are read as they are (zeros in the weight). A layer becomes a
    :class:`SparseLinear` if CSR is faster at every batch size given, a hybrid one
    (dense weight kept for small batches) if CSR loses only at the smaller batch sizes,
    and stays dense otherwise. A flat ``nn.Sequential`` comes back as an
    :class:`InferenceChain` (same children and keys).

    Args:
        model: any module; its Linear layers are candidates. The model is not changed.
        example_input: one batch, or several (e.g. batch 1 and batch 256), batch first.
        candidates: kernels to consider, a subset of ``("dense", "csr")``.
        rounds: interleaved rounds of timing per layer and batch; the median is kept.
        repeats: timed calls per round (see :func:`neuroprune.metrics.measure_latency`).
        max_density: layers denser than this are kept dense without timing (CSR cannot
            win there: it reads an index per weight on top of the weight).
        use_chain: return a flat ``nn.Sequential`` as an :class:`InferenceChain`.
        threads: torch threads during timing (``None``: the current setting). On a
            loaded machine one thread gives stable timings; OpenMP threads that wait
            for a busy core make multi-threaded timings erratic.

    Returns:
        ``(new_model, choices)``: the model in eval mode, and layer name ->
        :class:`LayerChoice` for every Linear layer.

    Raises:
        ConfigError: an unknown candidate or a non-positive ``rounds``/``repeats``.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        >>> fast, choices = sparsify(net, torch.randn(1, 1, 8, 8), rounds=1, repeats=3)
        >>> sorted(choices)
        ['1', '3']
    """
    unknown = sorted(set(candidates) - set(KINDS))
    if unknown or not candidates:
        raise ConfigError(f"unknown kernel candidates {unknown or list(candidates)}; choose from {list(KINDS)}")
    if rounds < 1 or repeats < 1:
        raise ConfigError(f"rounds and repeats must be at least 1, got {rounds} and {repeats}")
    inputs = [example_input] if isinstance(example_input, torch.Tensor) else list(example_input)
    new = copy.deepcopy(model).eval()
    for param in new.parameters():
        param.requires_grad_(False)
    layer_inputs = _capture_linear_inputs(new, inputs)

    forced = None if set(candidates) == set(KINDS) else candidates[0]  # a single candidate is always used
    is_chain = use_chain and type(new) is nn.Sequential
    choices: dict[str, LayerChoice] = {}
    is_transposed = False  # the next Linear receives a CSR layer's transposed output (chains only)
    # in a chain every position counts, a module used at two places included (named_children() yields it once)
    for name, module in list(new._modules.items() if is_chain else new.named_modules()):
        if isinstance(module, SparseLinear):  # chosen by an earlier export
            kind = "hybrid" if module.dense_below else "csr"
            choices[name] = LayerChoice(name, kind, module.density, dense_below=module.dense_below)
            is_transposed = True
            continue
        if not isinstance(module, nn.Linear):
            # elementwise layers between two Linear layers keep a transposed activation transposed
            is_transposed = is_transposed and has_role(module, "activation", "passthrough")
            continue
        density = float(torch.count_nonzero(module.weight)) / module.weight.numel()
        if forced == "dense" or (forced is None and density > max_density):
            choices[name] = LayerChoice(name, "dense", density)
            is_transposed = False
            continue
        sparse = SparseLinear.from_linear(module)
        dense_ms: dict[int, float] = {}
        csr_ms: dict[int, float] = {}
        for x in layer_inputs.get(name, []):
            batch = int(x.shape[0])
            x = _as_received(x, is_chain, is_transposed)
            dense_ms[batch], csr_ms[batch] = _time_pair(_step(module, x, is_chain), _step(sparse, x, is_chain),
                                                        _step_input(x, is_chain), rounds, repeats, threads)
        kind, dense_below = ("csr", 0) if forced == "csr" else _decide(dense_ms, csr_ms)
        choices[name] = LayerChoice(name, kind, density, dense_ms, csr_ms, dense_below)
        logger.info("layer %s (density %.3f): dense %s ms, csr %s ms -> %s", name, density, dense_ms, csr_ms, kind)
        is_transposed = kind != "dense"
        if kind != "dense":
            sparse = SparseLinear.from_linear(module, dense_below=dense_below)
            if name == "":
                new = sparse  # the model is itself a single Linear layer
            else:
                new.set_submodule(name, sparse)
    if use_chain and type(new) is nn.Sequential:
        new = InferenceChain.from_sequential(new)
    return new.eval(), choices


def _decide(dense_ms: dict[int, float], csr_ms: dict[int, float]) -> tuple[str, int]:
    """(kind, dense_below): CSR where it wins at every batch size, hybrid where it wins from some size on."""
    wins = [(batch, csr_ms[batch] < dense_ms[batch]) for batch in sorted(csr_ms)]
    if not wins or not any(won for _, won in wins):
        return "dense", 0
    if all(won for _, won in wins):
        return "csr", 0
    first = next(i for i, (_, won) in enumerate(wins) if won)
    if all(won for _, won in wins[first:]):  # loses only at the small batch sizes
        return "hybrid", wins[first][0]
    return "dense", 0


def _capture_linear_inputs(model: nn.Module, inputs: list[torch.Tensor]) -> dict[str, list[torch.Tensor]]:
    """Layer name -> the input each Linear receives, once per example batch."""
    captured: dict[str, list[torch.Tensor]] = {}
    handles: list[RemovableHandle] = []

    def hook_for(name: str):
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            captured.setdefault(name, []).append(args[0].detach().clone())
        return hook

    try:
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear):
                handles.append(module.register_forward_pre_hook(hook_for(name)))
        with torch.inference_mode():
            for x in inputs:
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    return captured


class _VectorStep(nn.Module):
    """A Linear or SparseLinear applied to one sample as a vector, as an InferenceChain runs it at batch 1."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return matrix_vector(self.layer, x)


def _is_single(x: torch.Tensor) -> bool:
    return x.dim() == 2 and x.shape[0] == 1


def _as_received(x: torch.Tensor, is_chain: bool, is_transposed: bool) -> torch.Tensor:
    """``x`` in the memory layout the layer will see: after a CSR layer, the (N, in) view of an (in, N) tensor."""
    if is_chain and is_transposed and x.dim() == 2 and x.shape[0] > 1:
        return x.t().contiguous().t()
    return x


def _step(layer: nn.Module, x: torch.Tensor, is_chain: bool) -> nn.Module:
    return _VectorStep(layer) if is_chain and _is_single(x) else layer


def _step_input(x: torch.Tensor, is_chain: bool) -> torch.Tensor:
    return x.reshape(-1) if is_chain and _is_single(x) else x


def _time_pair(
    dense: nn.Module, sparse: nn.Module, x: torch.Tensor, rounds: int, repeats: int, threads: int | None
) -> tuple[float, float]:
    """Median ms of ``dense`` and ``sparse`` on ``x``, interleaved over ``rounds``."""
    dense_runs: list[float] = []
    sparse_runs: list[float] = []
    for _ in range(rounds):
        for layer, runs in ((dense, dense_runs), (sparse, sparse_runs)):
            runs.append(measure_latency(layer, x, warmup=2, repeats=repeats, threads=threads,
                                        max_seconds=2.0).median_ms)
    return statistics.median(dense_runs), statistics.median(sparse_runs)
