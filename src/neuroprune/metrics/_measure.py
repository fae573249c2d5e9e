"""One call that measures everything: size, compute and latency of a model."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ._counting import count_nonzero_params, count_params
from ._forward import batch_size_of
from .latency import measure_latency
from .macs import count_macs, count_sparse_macs
from .size import weight_bytes

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metrics:
    """Size, compute and speed of a model (see the functions that compute each field).

    Attributes:
        params: parameter count (:func:`count_params`).
        nonzero_params: non-zero parameters, masked weights by their masked value.
        macs: dense multiply-accumulates per sample (:func:`count_macs`).
        sparse_macs: multiply-accumulates per sample with non-zero weights only.
        weight_bytes: size of the weights as a safetensors file.
        latency_ms_batch1: median latency of one sample, or ``None`` when not measured.
        latency_ms_batch: median latency of a batch of ``latency_batch_size``, or ``None``.
        latency_batch_size: the batch size of ``latency_ms_batch``, or ``None``.
        threads: ``torch.get_num_threads()`` during the measurement.
    """

    params: int
    nonzero_params: int
    macs: int
    sparse_macs: int
    weight_bytes: int
    latency_ms_batch1: float | None
    latency_ms_batch: float | None
    latency_batch_size: int | None
    threads: int

    def to_dict(self) -> dict[str, int | float | None]:
        """The fields as a plain dict, e.g. for a JSON or CSV row.

        Returns:
            Field name to value, in declaration order.

        Example:
            >>> measure(nn.Linear(8, 4), torch.randn(2, 8), latency=False).to_dict()["macs"]
            32
        """
        return dataclasses.asdict(self)


def measure(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    latency: bool = True,
    large_batch: int = 64,
    repeats: int = 30,
) -> Metrics:
    """Measure a model's parameters, MACs, weight size and latency.

    Args:
        model: the model, on the same device as ``example_input``.
        example_input: one batch, batch dimension first; MACs are per sample of it.
        latency: time the model; ``False`` leaves the latency fields ``None``.
        large_batch: batch size of the second latency measurement; the example's samples
            are repeated in turn to fill it.
        repeats: timed runs per latency measurement (see :func:`measure_latency`).

    Returns:
        A frozen :class:`Metrics`.

    Raises:
        NeuropruneError: a bad input or option, or a model whose output has NaN or inf.

    Example:
        >>> metrics = measure(nn.Linear(8, 4), torch.randn(2, 8), latency=False)
        >>> metrics.params, metrics.macs
        (36, 32)
    """
    batch_size = batch_size_of(example_input)
    if large_batch < 1:
        raise ConfigError(f"large_batch must be at least 1, got {large_batch}")
    latency_batch1 = latency_batch = None
    threads = torch.get_num_threads()
    if latency:
        # Sample i of the big batch is sample i mod batch_size of the example.
        picks = torch.arange(large_batch, device=example_input.device) % batch_size
        single = measure_latency(model, example_input[:1], repeats=repeats)
        batched = measure_latency(model, example_input[picks], repeats=repeats)
        latency_batch1, latency_batch, threads = single.median_ms, batched.median_ms, batched.threads
    metrics = Metrics(
        params=count_params(model),
        nonzero_params=count_nonzero_params(model),
        macs=count_macs(model, example_input),
        sparse_macs=count_sparse_macs(model, example_input),
        weight_bytes=weight_bytes(model),
        latency_ms_batch1=latency_batch1,
        latency_ms_batch=latency_batch,
        latency_batch_size=large_batch if latency else None,
        threads=threads,
    )
    logger.debug("measured %s", metrics)
    return metrics
