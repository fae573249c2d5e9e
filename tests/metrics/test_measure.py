import dataclasses

import pytest
import torch
from torch import nn

from neuroprune.metrics import Metrics, count_macs, measure, weight_bytes


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 3))


def test_measure_without_latency() -> None:
    model = _model()
    with torch.no_grad():
        model[1].weight[:3] = 0.0  # 36 of 72 first-layer weights
    x = torch.randn(2, 3, 4)
    metrics = measure(model, x, latency=False)
    assert metrics.params == (72 + 6) + (18 + 3)
    assert metrics.nonzero_params == metrics.params - 36
    assert metrics.macs == 72 + 18 == count_macs(model, x)
    assert metrics.sparse_macs == 36 + 18
    assert metrics.weight_bytes == weight_bytes(model)
    assert metrics.latency_ms_batch1 is None and metrics.latency_ms_batch is None
    assert metrics.latency_batch_size is None
    assert metrics.threads == torch.get_num_threads()


def test_measure_with_latency_and_to_dict() -> None:
    metrics = measure(_model(), torch.randn(3, 3, 4), large_batch=8, repeats=3)
    assert metrics.latency_ms_batch1 is not None and metrics.latency_ms_batch1 > 0
    assert metrics.latency_ms_batch is not None and metrics.latency_ms_batch > 0
    assert metrics.latency_batch_size == 8
    row = metrics.to_dict()
    assert list(row) == [field.name for field in dataclasses.fields(Metrics)]
    assert row["macs"] == metrics.macs


def test_metrics_are_frozen() -> None:
    metrics = measure(_model(), torch.randn(1, 3, 4), latency=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        metrics.macs = 0  # type: ignore[misc]
