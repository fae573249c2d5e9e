"""Several cuts in one plan, and the greedy search that removes one segment at a time."""

import copy

import pytest
import torch
from torch import nn

from neuroprune.depth import Budgets, DepthPruner, init_translator, score
from neuroprune.depth.greedy import greedy_cuts, segments
from neuroprune.depth.recovery import translator_modules
from neuroprune.engine import evaluate, fit
from neuroprune.errors import ConfigError, NeuropruneError
from neuroprune.metrics import count_macs


@pytest.fixture
def trained(tiny, digits_train) -> nn.Module:
    model = tiny("resnet20", width=0.25)
    fit(model, digits_train, epochs=3, lr=0.05)
    return model.eval()


def test_several_identity_cuts_equal_skipping_those_residual_branches(tiny, example) -> None:
    model = tiny("resnet20").eval()
    pruner = DepthPruner(model, example_inputs=example)
    plan = pruner.plan("layer2.0:layer2.2,relu:layer1.1", bridge="auto")
    assert [s.cut for s in plan.spans] == ["relu:layer1.1", "layer2.0:layer2.2"]  # network order
    assert plan.bridges == ("identity", "identity") and plan.cut == "relu:layer1.1,layer2.0:layer2.2"
    small = plan.apply()
    names = {name for name, _ in small.named_children()} | {n for n, _ in small.named_modules()}
    assert "layer1.0" not in names and "layer2.1" not in names and "layer1.1" in names
    by_hand = copy.deepcopy(model)
    by_hand.layer1[0], by_hand.layer2[1] = nn.Identity(), nn.Identity()
    torch.testing.assert_close(small(example), by_hand(example))
    assert "layer1.0.conv1.weight" in model.state_dict()  # the intact model is untouched


def test_auto_bridges_with_a_translator_where_shapes_change(tiny, example) -> None:
    pruner = DepthPruner(tiny("resnet20"), example_inputs=example)
    plan = pruner.plan(["relu:layer1.1", ("layer1.2", "layer3.0")], bridge="auto")
    assert plan.bridges == ("identity", "translator") and plan.bridge == "mixed"
    small = plan.apply()
    assert len(translator_modules(small)) == 1 and small(example).shape == (2, 10)
    with pytest.raises(ConfigError, match="several cuts|2 cuts"):
        _ = plan.span


def test_each_translator_of_a_plan_is_fitted_to_its_own_cut(tiny, example, digits_train) -> None:
    model = tiny("resnet20").eval()
    pruner = DepthPruner(model, example_inputs=example)
    plan = pruner.plan("relu:layer2.0,layer2.1:layer3.1")
    small = plan.apply()
    first, second = translator_modules(small)
    before = [t.conv.weight.clone() for t in (first, second)]
    init_translator(small, model, plan.spans[1], digits_train, batches=2)
    assert torch.equal(first.conv.weight, before[0]) and not torch.equal(second.conv.weight, before[1])
    init_translator(small, model, plan.spans[0], digits_train, batches=2)
    assert not torch.equal(first.conv.weight, before[0])


def test_overlapping_or_unbridgeable_cuts_are_refused(tiny, example) -> None:
    pruner = DepthPruner(tiny("resnet20"), example_inputs=example)
    with pytest.raises(ConfigError, match="overlap"):
        pruner.plan("relu:layer1.2,layer1.0:layer2.0")
    with pytest.raises(ConfigError, match="nn.Identity cannot bridge layer1.2:layer3.0"):
        pruner.plan("relu:layer1.1,layer1.2:layer3.0", bridge="identity")
    with pytest.raises(ConfigError, match="bridge must be"):
        pruner.plan("relu:layer1.1", bridge="skip")


def test_segments_are_the_blocks_of_a_resnet(tiny, example) -> None:
    pruner = DepthPruner(tiny("resnet20"), example_inputs=example)
    removed = [tuple(u.name for u in pruner.units[a:b]) for a, b in segments(pruner)]
    assert removed == [(f"layer{stage}.{block}",) for stage in (1, 2, 3) for block in range(3)]


def test_greedy_keeps_the_best_scoring_removal_and_stops_at_the_budget(trained, example, digits_train,
                                                                        digits_test) -> None:
    pruner = DepthPruner(trained, example_inputs=example)
    base_macs = count_macs(trained, example[:1])
    found = greedy_cuts(pruner, digits_train, digits_test, budgets=Budgets(max_macs=int(0.7 * base_macs)),
                        efficiency="macs")
    macs = [step["macs"] for step in found.steps]
    assert macs == sorted(macs, reverse=True) and macs[-1] <= 0.7 * base_macs < macs[-2]
    assert [s["meets_budget"] for s in found.steps] == [False] * (len(macs) - 1) + [True]
    assert found.cut == found.steps[-1]["cut"]
    # the first step really is the best single removal: try each one by hand
    by_hand = []
    for start, end in segments(pruner):
        cut = f"{pruner.units[start - 1].name}:{pruner.units[end].name}"
        plan = pruner.plan(cut, bridge="auto")
        small = plan.apply()
        for span, bridge in zip(plan.spans, plan.bridges, strict=True):
            if bridge == "translator":
                init_translator(small, trained, span, digits_train)
        accuracy = evaluate(small, digits_test)["accuracy"]
        by_hand.append((score(accuracy, count_macs(small, example[:1]), base_macs), cut))
    assert found.steps[0]["score"] == pytest.approx(max(by_hand)[0])
    assert found.steps[0]["cut"] in [cut for s, cut in by_hand if s == pytest.approx(max(by_hand)[0])]


def test_greedy_without_budget_stops_when_nothing_pays_off(tiny, example, digits_train, digits_test) -> None:
    pruner = DepthPruner(tiny("resnet20"), example_inputs=example)
    everything = greedy_cuts(pruner, digits_train, digits_test, tau=0.0)  # only cost counts: remove all it can
    scores = [step["score"] for step in everything.steps]
    assert len(scores) == len(segments(pruner)) and scores == sorted(scores) and everything.cut == "relu:avgpool"
    with pytest.raises(NeuropruneError, match="no segment could be removed"):
        greedy_cuts(pruner, digits_train, digits_test, tau=1.0, efficiency="params")  # untrained: no gain


def test_greedy_latency_budget_is_measured(trained, example, digits_train, digits_test) -> None:
    pruner = DepthPruner(trained, example_inputs=example)
    found = greedy_cuts(pruner, digits_train, digits_test, budgets=Budgets(max_latency_ms=1e6), latency_repeats=2,
                        latency_rounds=1, efficiency="latency")
    assert len(found.steps) == 1 and found.steps[0]["speedup"] > 0 and found.base["latency_ms"] > 0
    with pytest.raises(NeuropruneError, match="does not meet the budgets"):
        greedy_cuts(pruner, digits_train, digits_test, budgets=Budgets(max_params=1))


def test_greedy_stops_at_a_measured_speedup(trained, example, digits_train, digits_test) -> None:
    pruner = DepthPruner(trained, example_inputs=example)
    found = greedy_cuts(pruner, digits_train, digits_test, budgets=Budgets(min_speedup=1.3), latency_repeats=3,
                        latency_rounds=1)
    assert found.steps[-1]["speedup"] >= 1.3 and all(s["speedup"] < 1.3 for s in found.steps[:-1])
    with pytest.raises(ConfigError, match="min_speedup"):
        Budgets(min_speedup=0)
