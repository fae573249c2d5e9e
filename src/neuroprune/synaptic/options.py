"""What a SynapticPruner refuses to be created with: each argument checked before any work.

Pure functions of the arguments (no model is touched), so a bad value fails with its name
and the range it must lie in, not later inside training.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import ConfigError
from .criteria import Criterion, create_criterion
from .granularity import AUTO as AUTO_GRANULARITY
from .tracker import CRITERIA

GRANULARITIES = ("auto", "connection", "unit", "both")


def checked_criterion(criterion: str | Criterion, fold_bias: bool | None) -> Criterion:
    """The criterion object of ``criterion`` (a name or an instance), checked against ``fold_bias``."""
    if not isinstance(criterion, Criterion) and criterion not in CRITERIA:
        raise ConfigError(f"criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}")
    scorer = create_criterion(criterion)
    if fold_bias and not scorer.knows_input_means:
        raise ConfigError(f"fold_bias needs a criterion that tracks mean inputs (deviation, normalised); "
                          f"got criterion {scorer.name!r}")
    return scorer


def check_counts(sample_every: Any, total_steps: Any) -> None:
    """Refuse a ``sample_every`` or ``total_steps`` that is not a whole number >= 1."""
    if not isinstance(sample_every, int) or isinstance(sample_every, bool) or sample_every < 1:
        raise ConfigError(f"sample_every must be an integer >= 1, got {sample_every!r}")
    if total_steps is not None and (not isinstance(total_steps, int) or total_steps < 1):
        raise ConfigError(f"total_steps must be an integer >= 1, got {total_steps!r}")


def checked_unit_ratio(value: Any) -> float:
    """``max_unit_ratio`` as a float, refused outside (0, 1]."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
        raise ConfigError(f"max_unit_ratio must be in (0, 1], got {value!r}")
    return float(value)


def check_targets(granularity: str, target_sparsity: float | None, target_macs: float | None,
                  target_latency: float | None, target_speedup: float | None, latency_batch_sizes: tuple[int, ...],
                  max_fraction_per_check: float | None, example_inputs: torch.Tensor | None) -> float | None:
    """Refuse targets that cannot be met as given; the compute target (a speed-up's inverse until calibrated)."""
    if granularity not in GRANULARITIES:
        raise ConfigError(f"granularity must be one of {', '.join(GRANULARITIES)}; got {granularity!r}")
    if target_sparsity is not None and not 0 < target_sparsity < 1:
        raise ConfigError(f"target_sparsity must be in (0, 1), got {target_sparsity!r}")
    given = [name for name, value in (("target_macs", target_macs), ("target_latency", target_latency),
                                      ("target_speedup", target_speedup)) if value is not None]
    if len(given) > 1:
        raise ConfigError(f"give one compute target, not {' and '.join(given)}")
    _check_speedup(target_speedup, latency_batch_sizes)
    if target_latency is not None:
        _check_batch_sizes(latency_batch_sizes)
    # a speed-up's layer share is known once the pruner calibrates it; its inverse stands in for the checks
    compute_target = target_macs if target_macs is not None else target_latency
    if target_speedup is not None:
        compute_target = 1.0 / target_speedup
    _check_compute_target(compute_target, target_sparsity, max_fraction_per_check, example_inputs, granularity)
    if max_fraction_per_check is not None and target_sparsity is not None:
        raise ConfigError(
            "max_fraction_per_check limits pruning without a target; with target_sparsity the sparsity schedule "
            "sets how much goes at each check: drop one of the two"
        )
    return compute_target


def _check_speedup(target_speedup: float | None, batch_sizes: tuple[int, ...]) -> None:
    if target_speedup is None:
        return
    if isinstance(target_speedup, bool) or not isinstance(target_speedup, (int, float)) \
            or not 1 < target_speedup < math.inf:
        raise ConfigError(f"target_speedup must be a number > 1 (2: twice as fast); got {target_speedup!r}")
    _check_batch_sizes(batch_sizes)


def _check_batch_sizes(batch_sizes: tuple[int, ...]) -> None:
    if not batch_sizes or not all(isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in batch_sizes):
        raise ConfigError(f"latency_batch_sizes must be whole numbers >= 1; got {batch_sizes!r}")


def _check_compute_target(target_macs: float | None, target_sparsity: float | None,
                          max_fraction_per_check: float | None, example_inputs: torch.Tensor | None,
                          granularity: str) -> None:
    """Refuse a compute target (target_macs or target_latency) that cannot be met as given."""
    if target_macs is None:
        return
    if isinstance(target_macs, bool) or not isinstance(target_macs, (int, float)) or not 0 < target_macs < 1:
        raise ConfigError(f"a compute target (target_macs, target_latency) must be in (0, 1): the share of the dense "
                          f"network's left; got {target_macs!r}")
    if target_sparsity is not None or max_fraction_per_check is not None:
        raise ConfigError("a compute target sets how much goes at each check: drop target_sparsity and "
                          "max_fraction_per_check")
    if example_inputs is None:
        raise ConfigError("a compute target needs example_inputs= (one input batch) to know each layer's cost")
    if granularity not in ("unit", AUTO_GRANULARITY):
        raise ConfigError(f"a compute target removes whole units: use granularity 'unit' or 'auto', "
                          f"not {granularity!r}")
