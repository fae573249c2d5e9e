"""target_speedup: the layer share a speed-up needs, calibrated on thinned networks (MACs, not wall time)."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuroprune as npr
from neuroprune.errors import ConfigError, ModelError
from neuroprune.masks import prunable_layers
from neuroprune.synaptic import SynapticPruner
from neuroprune.synaptic import latency as latency_module
from neuroprune.synaptic import pruner as pruner_module
from neuroprune.synaptic.latency import LatencyCalibration, _monotone, calibrate_speedup
from neuroprune.synaptic.units import find_unit_groups


def _lenet():
    torch.manual_seed(0)
    return npr.create_model("lenet5", in_channels=1, image_size=16, num_classes=4)


def test_calibration_finds_the_layer_share_that_the_overhead_leaves_for_a_speedup(clocks):
    model = _lenet()
    layers = prunable_layers(model)
    x = torch.randn(2, 1, 16, 16)
    costs = clocks.mac_costs(layers, model, x)
    calibration = calibrate_speedup(model, find_unit_groups(model, layers), costs, layers, x, 1.5,
                                    batch_sizes=(1,), time_share=clocks.overhead_and_macs(0.5))
    # half the time is overhead: 1/1.5 of the time leaves 2/1.5 - 1 = 1/3 of the layers' time, not 2/3
    assert calibration.layer_share == pytest.approx(1 / 3, abs=0.02)
    assert calibration.predicted_speedups()[1] == pytest.approx(1.5, rel=0.02)
    assert LatencyCalibration.from_dict(calibration.to_dict()) == calibration


def test_a_speedup_beyond_the_thinnest_network_is_refused_with_what_it_reaches(clocks):
    model = _lenet()
    layers = prunable_layers(model)
    x = torch.randn(2, 1, 16, 16)
    with pytest.raises(ConfigError, match=r"out of reach.*at most 1\.\d\dx at batch 1"):
        calibrate_speedup(model, find_unit_groups(model, layers), clocks.mac_costs(layers, model, x), layers, x, 2.5,
                          batch_sizes=(1,), time_share=clocks.overhead_and_macs(0.5))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # pure clocks
@given(cap=st.floats(0.05, 1.0), speedup=st.floats(1.05, 2.5))
def test_no_thinned_network_loses_more_of_a_space_than_the_unit_cap_allows(clocks, cap, speedup):
    """Calibration times only networks the pruner may reach: the cap holds in every one, or the target is refused."""
    model = _lenet()
    layers = prunable_layers(model)
    groups = find_unit_groups(model, layers)
    x = torch.randn(2, 1, 16, 16)
    clock = clocks.overhead_and_macs(0.5)
    widths = []

    def time_share(dense, thinned, batch):
        modules = dict(thinned.named_modules())
        widths.append({g.name: modules[g.name].weight.shape[0] for g in groups})
        return clock(dense, thinned, batch)

    try:
        calibration = calibrate_speedup(model, groups, clocks.mac_costs(layers, model, x), layers, x, speedup,
                                        batch_sizes=(1,), time_share=time_share, max_unit_ratio=cap)
    except ConfigError as exc:
        assert "out of reach" in str(exc)
        assert ("max_unit_ratio" in str(exc)) == (cap < 1)
    else:
        assert calibration.predicted_speedups()[1] >= speedup * 0.98
    assert widths and all(kept[g.name] >= g.kept_at_least(cap) for kept in widths for g in groups)


def test_a_capped_pruner_refuses_a_speedup_only_emptying_spaces_would_buy(mac_clock):
    x = torch.randn(2, 1, 16, 16)
    # uncapped, one unit per space leaves ~1% of the MACs: 1.9x is in reach (half the time is overhead)
    assert _pruner(_lenet(), None, x, speedup=1.9).latency_calibration is not None
    with pytest.raises(ConfigError, match=r"out of reach.*50% of every unit space's units removed \(max_unit_ratio\)"):
        SynapticPruner(_lenet(), granularity="unit", target_speedup=1.9, example_inputs=x[:1], max_unit_ratio=0.5,
                       check_every=2, warmup_steps=0, stop_step=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.01, 1.5), min_size=1, max_size=8))
def test_timed_points_are_made_monotone_without_moving_the_dense_point(times):
    shares = sorted({1.0 - 0.1 * (i + 1) for i in range(len(times))}, reverse=True)
    points = [(1.0, 1.0), *zip(shares, times, strict=True)]
    smoothed = _monotone(points)
    assert [m for m, _ in smoothed] == [m for m, _ in points]
    assert smoothed[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(later[1] <= earlier[1] + 1e-12 for earlier, later in zip(smoothed, smoothed[1:], strict=False))
    if all(b <= a for a, b in zip([1.0, *times], times, strict=False)):
        assert [t for _, t in smoothed[1:]] == pytest.approx(times)  # already monotone: unchanged


def _trained_pruner(steps, train_steps):
    """A LeNet pruned to a 1.5x speed-up for ``steps`` steps: its data, model, optimizer and pruner."""
    x, y = torch.randn(16, 1, 16, 16), torch.randint(0, 4, (16,))
    model = _lenet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    pruner = _pruner(model, optimizer, x)
    train_steps(model, pruner, optimizer, x, y, steps)
    return x, y, model, optimizer, pruner


def _pruner(model, optimizer, x, speedup=1.5):
    return SynapticPruner(model, granularity="unit", target_speedup=speedup, example_inputs=x[:1], check_every=2,
                          warmup_steps=0, stop_step=20, optimizer=optimizer)


def test_a_speedup_target_is_reached_within_ten_percent_where_the_uncalibrated_model_misses(mac_clock, train_steps):
    model = _lenet()
    x, y = torch.randn(16, 1, 16, 16), torch.randint(0, 4, (16,))
    dense = _lenet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    pruner = _pruner(model, optimizer, x)
    assert pruner.target_latency == pytest.approx(1 / 3, abs=0.02)
    train_steps(model, pruner, optimizer, x, y, 24)
    pruner.finalize()
    small = pruner.compact().eval()
    clock = mac_clock
    for size in (1, 64):
        batch = x[:1].repeat(size, 1, 1, 1)
        assert 1 / clock(dense, small, batch) >= 0.9 * 1.5
    # counted as before, 1/1.5 of the layers' time left would give (0.5 + 0.5 * 2/3) of the time: 1.2x
    assert 1 / (0.5 + 0.5 * (1 / 1.5)) < 0.9 * 1.5


def test_a_resumed_speedup_target_keeps_its_calibration_and_a_changed_target_is_refused(mac_clock, clocks,
                                                                                       monkeypatch, train_steps):
    x, y, model, optimizer, pruner = _trained_pruner(8, train_steps)
    state = pruner.state_dict()
    assert LatencyCalibration.from_dict(state["latency_calibration"]) == pruner.latency_calibration

    # a second process times a busier machine: its own calibration differs, the saved one counts
    monkeypatch.setattr(latency_module, "measured_time_share", clocks.overhead_and_macs(0.3))
    resumed_model = _lenet()
    resumed_model.load_state_dict(model.state_dict())
    resumed_optimizer = torch.optim.SGD(resumed_model.parameters(), lr=0.01)
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    resumed = _pruner(resumed_model, resumed_optimizer, x)
    assert resumed.target_latency != pytest.approx(pruner.target_latency, abs=1e-3)
    resumed.load_state_dict(state)
    assert resumed.target_latency == pruner.target_latency
    assert resumed.sparsity_schedule.final_sparsity == pruner.sparsity_schedule.final_sparsity
    train_steps(model, pruner, optimizer, x, y, 16)
    train_steps(resumed_model, resumed, resumed_optimizer, x, y, 16)
    for name in pruner.layers:
        assert torch.equal(pruner.mask(name), resumed.mask(name)), name

    other = _pruner(_lenet(), None, x, speedup=1.3)
    with pytest.raises(ModelError, match="1.5x speed-up"):
        other.load_state_dict(state)
    without = {key: value for key, value in state.items() if key != "latency_calibration"}
    with pytest.raises(ModelError, match="no latency calibration"):
        _pruner(_lenet(), None, x).load_state_dict(without)


def test_speedup_targets_are_checked_before_any_timing():
    model = _lenet()
    x = torch.randn(1, 1, 16, 16)
    for bad in (1.0, 0.5, float("inf"), True, "2"):
        with pytest.raises(ConfigError, match="target_speedup must be a number > 1"):
            SynapticPruner(model, granularity="unit", target_speedup=bad, example_inputs=x)
    with pytest.raises(ConfigError, match="one compute target"):
        SynapticPruner(model, granularity="unit", target_speedup=2.0, target_latency=0.5, example_inputs=x)
    with pytest.raises(ConfigError, match="latency_batch_sizes"):
        SynapticPruner(model, granularity="unit", target_speedup=2.0, latency_batch_sizes=(0,), example_inputs=x)


def weights_read(dense, thinned, batch):
    """A clock the latency model (MACs) does not know: time goes to reading weights, plus overhead."""
    def cost(model):
        reading = npr.count_params(model)
        return 0.2 * npr.count_params(dense) + reading + npr.count_macs(model, batch[:1]) * len(batch) / 1e4
    return cost(thinned) / cost(dense)


def _pruned_speedups(monkeypatch, clocks, train_steps, retime_at):
    monkeypatch.setattr(pruner_module, "time_per_weight", clocks.mac_costs)  # the model: MACs
    monkeypatch.setattr(latency_module, "measured_time_share", weights_read)  # the machine: weights
    monkeypatch.setattr(pruner_module, "RETIME_AT", retime_at)
    model, dense = _lenet(), _lenet()
    x, y = torch.randn(16, 1, 16, 16), torch.randint(0, 4, (16,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    pruner = SynapticPruner(model, granularity="unit", target_speedup=1.6, example_inputs=x[:1], check_every=1,
                            warmup_steps=0, stop_step=40, optimizer=optimizer)
    train_steps(model, pruner, optimizer, x, y, 44)
    pruner.finalize()
    small = pruner.compact().eval()
    return pruner, [1 / weights_read(dense, small, x[:1].repeat(size, 1, 1, 1)) for size in (1, 64)]


def test_the_pruned_network_is_retimed_during_pruning_and_its_own_speed_corrects_the_target(monkeypatch, clocks,
                                                                                          train_steps):
    pruner, speedups = _pruned_speedups(monkeypatch, clocks, train_steps, (0.3, 0.5, 0.7))
    retimed = [record["retimed"] for record in pruner.history if "retimed" in record]
    # timed at 30% and 50% of the schedule at least (once the target is met, checks end)
    assert 2 <= len(retimed) <= 3 and len(pruner.latency_calibration.pruned[1]) == len(retimed)
    assert pruner.target_latency == retimed[-1]["new_layer_share"]
    assert speedups == pytest.approx([1.6, 1.6], rel=0.1)
    # thinned alike, the network pruned by activity per MAC would have been pruned past the target
    _, uncorrected = _pruned_speedups(monkeypatch, clocks, train_steps, ())
    assert min(uncorrected) > 1.1 * 1.6


def test_a_pruner_whose_state_is_loaded_before_planning_times_no_network(mac_clock, monkeypatch, train_steps):
    x, _, _, _, pruner = _trained_pruner(6, train_steps)
    state = pruner.state_dict()

    def no_timing(*args):
        raise AssertionError("a resumed pruner timed a network")

    monkeypatch.setattr(latency_module, "measured_time_share", no_timing)
    resumed = SynapticPruner(_lenet(), granularity="unit", target_speedup=1.5, example_inputs=x[:1],
                             warmup_steps=0, stop_step=20)  # check_every auto: planned when training starts
    assert resumed.latency_calibration is None
    resumed.load_state_dict(state)
    resumed.plan(40)
    assert resumed.latency_calibration == pruner.latency_calibration
