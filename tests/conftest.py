"""Fixtures shared by every test folder."""

from types import SimpleNamespace

import pytest
from torch import nn

import neuroprune as npr
from neuroprune.synaptic import latency, pruner
from neuroprune.synaptic.compute import LATENCY_SCALE, positions_per_weight


def _macs(model, batch):
    return npr.count_macs(model, batch[:1])


def overhead_and_macs(overhead_share):
    """A deterministic clock: a network's time is a fixed overhead plus batch x MACs.

    ``overhead_share`` is the overhead's share of the dense network's time at batch 1, the
    part no pruning removes (module calls, batch norm, activations on a real machine).
    """
    def time_share(dense, thinned, batch):
        overhead = overhead_share / (1 - overhead_share) * _macs(dense, batch)
        return (overhead + len(batch) * _macs(thinned, batch)) / (overhead + len(batch) * _macs(dense, batch))
    return time_share


def mac_costs(layers, model, example_inputs, batch_sizes=(1, 64), repeats=10):
    """time_per_weight's stand-in: each weight costs its MACs, scaled so the layers sum to LATENCY_SCALE."""
    positions = positions_per_weight(layers, model, example_inputs)
    total = sum(positions[name] * module.weight.numel() for name, module in layers.items())
    return {name: LATENCY_SCALE * positions[name] / total for name in layers}


@pytest.fixture
def clocks():
    """The deterministic stand-ins for timing: ``mac_costs`` (per layer), ``overhead_and_macs(share)`` (networks)."""
    return SimpleNamespace(mac_costs=mac_costs, overhead_and_macs=overhead_and_macs, macs=_macs)


@pytest.fixture
def mac_clock(monkeypatch):
    """Every timing a speed-up target takes counted in MACs, with half the dense batch-1 time as overhead."""
    monkeypatch.setattr(pruner, "time_per_weight", mac_costs)
    monkeypatch.setattr(latency, "measured_time_share", overhead_and_macs(0.5))
    return overhead_and_macs(0.5)


def _train_steps(model, pruner, optimizer, x, y, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        pruner.step()


@pytest.fixture
def train_steps():
    """``train_steps(model, pruner, optimizer, x, y, steps)``: steps on one batch, the pruner stepping after each."""
    return _train_steps
