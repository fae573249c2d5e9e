import pytest
import torch

from neuroprune.errors import ConfigError
from neuroprune.synaptic import CheckSchedule, LowActivityRule


def _state(shape=(2, 4)):
    return torch.zeros(shape, dtype=torch.int32), torch.ones(shape)


def test_connection_is_pruned_exactly_at_patience_consecutive_weak_checks():
    rule = LowActivityRule(alpha=0.5, patience=3, min_fan_in=0, max_fraction_per_check=1.0)
    counters, mask = _state()
    activity = torch.tensor([[0.01, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])  # (0, 0) is weak
    for check in range(1, 3):
        counters, mask = rule(activity, counters, mask)
        assert mask[0, 0] == 1, f"pruned too early, at check {check}"
        assert counters[0, 0] == check
    counters, mask = rule(activity, counters, mask)
    assert mask[0, 0] == 0
    assert counters[0, 0] == 0
    assert int(mask.sum()) == 7  # nothing else was touched


def test_counter_resets_when_activity_returns():
    rule = LowActivityRule(alpha=0.5, patience=3, min_fan_in=0, max_fraction_per_check=1.0)
    counters, mask = _state()
    weak = torch.tensor([[0.01, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    strong = torch.ones(2, 4)
    for activity in (weak, weak, strong, weak, weak):
        counters, mask = rule(activity, counters, mask)
    assert mask[0, 0] == 1, "two weak checks after a reset must not prune with patience 3"
    assert counters[0, 0] == 2
    counters, mask = rule(weak, counters, mask)
    assert mask[0, 0] == 0


def test_threshold_is_relative_to_mean_of_live_connections():
    rule = LowActivityRule(alpha=0.5, patience=1, min_fan_in=0, max_fraction_per_check=1.0)
    counters, mask = _state((1, 4))
    mask[0, 3] = 0  # pruned; its huge activity must not raise the mean
    activity = torch.tensor([[1.0, 1.0, 0.4, 1000.0]])
    counters, mask = rule(activity, counters, mask)
    # mean over live = 0.8, threshold 0.4: 0.4 is not below it
    assert mask.tolist() == [[1.0, 1.0, 1.0, 0.0]]
    activity = torch.tensor([[1.0, 1.0, 0.39, 1000.0]])
    counters, mask = rule(activity, counters, mask)
    assert mask.tolist() == [[1.0, 1.0, 0.0, 0.0]]


def test_min_fan_in_keeps_the_strongest_inputs_of_each_unit():
    rule = LowActivityRule(alpha=10.0, patience=1, min_fan_in=2, max_fraction_per_check=1.0)
    counters, mask = _state((2, 4))
    activity = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]])  # everything is weak
    counters, mask = rule(activity, counters, mask)
    assert mask.tolist() == [[0, 0, 1, 1], [1, 1, 0, 0]]
    counters, mask = rule(activity, counters, mask)
    assert mask.sum(dim=1).tolist() == [2, 2], "min_fan_in must hold at later checks too"
    # a deferred candidate keeps its count
    assert counters[0, 2] >= 1


def test_max_fraction_per_check_limits_pruning_to_the_weakest():
    rule = LowActivityRule(alpha=10.0, patience=1, min_fan_in=0, max_fraction_per_check=0.25)
    counters, mask = _state((1, 8))
    activity = torch.arange(1, 9, dtype=torch.float32).view(1, 8)
    counters, mask = rule(activity, counters, mask)
    assert mask.tolist() == [[0, 0, 1, 1, 1, 1, 1, 1]]


@pytest.mark.parametrize(
    "kwargs, option",
    [({"alpha": 0}, "alpha"), ({"patience": 0}, "patience"), ({"min_fan_in": -1}, "min_fan_in"),
     ({"max_fraction_per_check": 0}, "max_fraction_per_check"),
     ({"max_fraction_per_check": 1.5}, "max_fraction_per_check")],
)
def test_rule_rejects_bad_options_by_name(kwargs, option):
    with pytest.raises(ConfigError, match=option):
        LowActivityRule(**kwargs)


def test_schedule_checks_after_warmup_every_n_steps_until_stop():
    schedule = CheckSchedule(check_every=10, warmup_steps=5, stop_step=40)
    assert [s for s in range(1, 60) if schedule.is_check(s)] == [15, 25, 35]
    assert not schedule.collects(5) and schedule.collects(6) and schedule.collects(40) and not schedule.collects(41)


@pytest.mark.parametrize("kwargs, option", [({"check_every": 0}, "check_every"), ({"warmup_steps": -1}, "warmup_steps"),
                                            ({"warmup_steps": 10, "stop_step": 5}, "stop_step")])
def test_schedule_rejects_bad_options_by_name(kwargs, option):
    with pytest.raises(ConfigError, match=option):
        CheckSchedule(**kwargs)
