"""Wall-clock inference latency: median and spread over repeated forward passes."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, NeuropruneError
from ._forward import batch_size_of, eval_mode, output_tensors

logger = logging.getLogger(__name__)

# Fewest timed runs kept when the time budget cuts measurement short: enough for a median.
_MIN_REPEATS = 3


@dataclass(frozen=True)
class Latency:
    """Latency of one forward pass of a batch, in milliseconds.

    Attributes:
        median_ms: median over the timed runs.
        p10_ms: 10th percentile (linear interpolation between runs).
        p90_ms: 90th percentile.
        repeats: how many runs were timed (fewer than asked when the time budget ran out).
        threads: ``torch.get_num_threads()`` during the measurement.
        batch_size: the batch size of the timed input.
    """

    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    threads: int
    batch_size: int


def measure_latency(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    warmup: int = 5,
    repeats: int = 30,
    threads: int | None = None,
    max_seconds: float | None = 10.0,
) -> Latency:
    """Time forward passes of ``model`` on ``example_input`` in eval and inference mode.

    One untimed call checks that the output is finite, ``warmup`` untimed calls follow,
    then up to ``repeats`` calls are timed one by one with ``time.perf_counter``. Training
    flags and the torch thread count are restored afterwards.

    Args:
        model: the model to time, on the same device as ``example_input``.
        example_input: the batch to time, batch dimension first.
        warmup: untimed calls before timing.
        repeats: timed calls.
        threads: if given, ``torch.set_num_threads(threads)`` for the measurement.
        max_seconds: time budget for the warm-up and for the timed calls, each; once spent,
            the phase stops early (the timed phase after at least 3 calls). ``None``: no budget.

    Returns:
        A :class:`Latency` with the median, 10th and 90th percentile in milliseconds.

    Raises:
        NeuropruneError: the output contains NaN or inf, or an option is out of range.

    Example:
        >>> result = measure_latency(nn.Linear(8, 4), torch.randn(1, 8), repeats=5)
        >>> result.p10_ms <= result.median_ms <= result.p90_ms
        True
    """
    batch_size = batch_size_of(example_input)
    _check_options(warmup, repeats, threads, max_seconds)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        used_threads = torch.get_num_threads()
        with eval_mode(model), torch.inference_mode():
            _check_finite(model(example_input))
            _run(model, example_input, warmup, max_seconds, min_calls=0)
            seconds = _run(model, example_input, repeats, max_seconds, min_calls=min(_MIN_REPEATS, repeats))
    finally:
        if threads is not None:
            torch.set_num_threads(previous_threads)
    if len(seconds) < repeats:
        logger.info("latency: time budget of %.1f s spent after %d of %d runs", max_seconds, len(seconds), repeats)
    ordered = sorted(1000.0 * s for s in seconds)
    return Latency(
        median_ms=_percentile(ordered, 0.5),
        p10_ms=_percentile(ordered, 0.1),
        p90_ms=_percentile(ordered, 0.9),
        repeats=len(ordered),
        threads=used_threads,
        batch_size=batch_size,
    )


def _run(model: nn.Module, x: torch.Tensor, calls: int, max_seconds: float | None, *, min_calls: int) -> list[float]:
    """Seconds taken by each of up to ``calls`` forward passes, stopping once the budget is spent."""
    seconds: list[float] = []
    phase_start = time.perf_counter()
    for _ in range(calls):
        _synchronize(x)
        start = time.perf_counter()
        model(x)
        _synchronize(x)
        end = time.perf_counter()
        seconds.append(end - start)
        if max_seconds is not None and len(seconds) >= min_calls and end - phase_start > max_seconds:
            break
    return seconds


def _synchronize(x: torch.Tensor) -> None:
    # CUDA kernels run asynchronously; without a sync the timer would stop at launch.
    if x.is_cuda:
        torch.cuda.synchronize(x.device)


def _check_finite(output: object) -> None:
    for tensor in output_tensors(output):
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        if torch.isnan(tensor).any():
            found = "NaN"
        elif torch.isinf(tensor).any():
            found = "inf"
        else:
            continue
        raise NeuropruneError(
            f"model output contains {found}; latency of a broken model is meaningless — "
            "check the weights (and the input) for NaN or inf values"
        )


def _check_options(warmup: int, repeats: int, threads: int | None, max_seconds: float | None) -> None:
    if warmup < 0:
        raise ConfigError(f"warmup must be 0 or more, got {warmup}")
    if repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {repeats}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1 (or None to keep the current setting), got {threads}")
    if max_seconds is not None and not max_seconds > 0:
        raise ConfigError(f"max_seconds must be positive (or None for no budget), got {max_seconds}")


def _percentile(ordered: list[float], q: float) -> float:
    """The ``q`` quantile of sorted values, interpolating linearly (numpy's default)."""
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class LatencyComparison:
    """Latencies of several models timed in interleaved rounds in one process.

    Attributes:
        median_ms: model -> median over rounds of its per-round median latency.
        speedup: model -> median over rounds of (baseline ms / model ms) in the same round.
        baseline: the model the speed-ups are relative to.
        rounds: interleaved rounds.
        repeats: timed calls per model and round.
        threads: torch threads during the measurement.
        batch_size: batch size of the timed input.
    """

    median_ms: dict[str, float]
    speedup: dict[str, float]
    baseline: str
    rounds: int
    repeats: int
    threads: int
    batch_size: int

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-able fields."""
        return {"median_ms": self.median_ms, "speedup": self.speedup, "baseline": self.baseline,
                "rounds": self.rounds, "repeats": self.repeats, "threads": self.threads,
                "batch_size": self.batch_size}


def compare_latency(
    models: dict[str, nn.Module],
    example_input: torch.Tensor,
    *,
    baseline: str | None = None,
    rounds: int = 5,
    repeats: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    max_seconds: float | None = None,
) -> LatencyComparison:
    """Time ``models`` against each other fairly: interleaved rounds, same process, same threads.

    Every round times each model in turn (``warmup`` untimed calls, then the median of
    ``repeats`` timed ones), so a change of machine load between rounds touches every model
    alike; the speed-up is the median over rounds of the per-round ratio to the baseline.

    Args:
        models: label -> model, all on the device of ``example_input``.
        example_input: the batch to time.
        baseline: the label speed-ups are relative to (default: the first).
        rounds: interleaved rounds (at least 1).
        repeats: timed calls per model and round.
        warmup: untimed calls per model and round.
        threads: torch threads for the whole comparison (default: the current setting).
        max_seconds: time budget of each model's warm-up and timed calls in a round (see
            :func:`measure_latency`); None: every call runs.

    Raises:
        ConfigError: no models, an unknown baseline, or rounds/repeats below 1.
    """
    if not models:
        raise ConfigError("compare_latency needs at least one model")
    baseline = next(iter(models)) if baseline is None else baseline
    if baseline not in models:
        raise ConfigError(f"baseline {baseline!r} is not one of the models {sorted(models)}")
    if rounds < 1:
        raise ConfigError(f"rounds must be at least 1, got {rounds}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        used_threads = torch.get_num_threads()
        per_round: dict[str, list[float]] = {label: [] for label in models}
        for _ in range(rounds):
            for label, model in models.items():
                timed = measure_latency(model, example_input, warmup=warmup, repeats=repeats,
                                        max_seconds=max_seconds)
                per_round[label].append(timed.median_ms)
    finally:
        torch.set_num_threads(previous_threads)
    base = per_round[baseline]
    return LatencyComparison(
        median_ms={label: _percentile(sorted(values), 0.5) for label, values in per_round.items()},
        speedup={label: _percentile(sorted(b / v for b, v in zip(base, values, strict=True)), 0.5)
                 for label, values in per_round.items()},
        baseline=baseline, rounds=rounds, repeats=repeats, threads=used_threads,
        batch_size=batch_size_of(example_input),
    )
