import pytest
import torch
from torch import nn

from neuroprune.errors import NeuropruneError
from neuroprune.metrics import Latency, measure_latency


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 4))


def test_latency_is_positive_and_ordered() -> None:
    model = _model()
    result = measure_latency(model, torch.randn(4, 16), warmup=1, repeats=7)
    assert isinstance(result, Latency)
    assert result.median_ms > 0
    assert 0 < result.p10_ms <= result.median_ms <= result.p90_ms
    assert result.repeats == 7
    assert result.batch_size == 4
    assert result.threads == torch.get_num_threads()
    assert model.training  # put back in training mode afterwards


def test_threads_are_set_and_restored() -> None:
    before = torch.get_num_threads()
    result = measure_latency(_model(), torch.randn(1, 16), warmup=0, repeats=3, threads=1)
    assert result.threads == 1
    assert torch.get_num_threads() == before


def test_time_budget_stops_after_three_runs() -> None:
    result = measure_latency(_model(), torch.randn(1, 16), warmup=2, repeats=50, max_seconds=1e-9)
    assert result.repeats == 3


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_broken_model_is_refused(bad: float) -> None:
    model = _model()
    with torch.no_grad():
        model[0].weight[0, 0] = bad
    with pytest.raises(NeuropruneError, match="model output contains (NaN|inf)"):
        measure_latency(model, torch.randn(2, 16), warmup=0, repeats=3)


def test_threads_restored_when_model_is_refused() -> None:
    before = torch.get_num_threads()
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.bias.fill_(float("nan"))
    with pytest.raises(NeuropruneError, match="NaN"):
        measure_latency(model, torch.randn(1, 2), threads=1)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("options", [{"repeats": 0}, {"warmup": -1}, {"threads": 0}, {"max_seconds": 0.0}])
def test_bad_options_are_refused(options: dict) -> None:
    with pytest.raises(NeuropruneError):
        measure_latency(_model(), torch.randn(1, 16), **options)


def test_compare_latency_interleaves_rounds_and_reports_ratios_to_the_baseline():
    import torch
    from torch import nn

    from neuroprune import ConfigError
    from neuroprune.metrics import compare_latency

    big, small = nn.Linear(1024, 1024), nn.Linear(1024, 8)  # 128x the arithmetic
    before = torch.get_num_threads()
    result = compare_latency({"big": big, "small": small}, torch.randn(64, 1024), rounds=3, repeats=5, threads=1)
    assert torch.get_num_threads() == before
    assert result.baseline == "big" and result.speedup["big"] == 1.0
    assert result.speedup["small"] > 1.0
    assert (result.rounds, result.repeats, result.threads, result.batch_size) == (3, 5, 1, 64)
    with pytest.raises(ConfigError, match="baseline"):
        compare_latency({"big": big}, torch.randn(2, 1024), baseline="other")
