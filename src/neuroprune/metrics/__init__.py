"""Model metrics: parameter counts, MACs, weight size and latency, or all at once with ``measure``."""

from ._counting import count_nonzero_params, count_params
from ._measure import Metrics, measure
from .latency import Latency, LatencyComparison, compare_latency, measure_latency
from .macs import count_macs, count_sparse_macs
from .size import weight_bytes

__all__ = [
    "Latency",
    "LatencyComparison",
    "Metrics",
    "compare_latency",
    "count_macs",
    "count_nonzero_params",
    "count_params",
    "count_sparse_macs",
    "measure",
    "measure_latency",
    "weight_bytes",
]
