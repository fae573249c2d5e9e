"""Every criterion class scores what its docstring says; the normalised one ignores a unit's weight scale."""

import pytest
import torch
from torch import nn

from neuroprune.errors import ConfigError
from neuroprune.synaptic import ActivityTracker, SynapticPruner
from neuroprune.synaptic.criteria import (
    STATISTICS,
    Contribution,
    Criterion,
    Deviation,
    Hebbian,
    Magnitude,
    NormalisedActivity,
    Presynaptic,
    create_criterion,
    list_criteria,
    register_criterion,
)


def _linear() -> nn.Linear:
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]))
        layer.bias.copy_(torch.tensor([0.5, -1.0]))
    return layer


X = torch.tensor([[1.0, 2.0, 0.0], [3.0, -2.0, 4.0], [2.0, 0.0, -4.0]])


def _scores(criterion: str, layer: nn.Module, *batches: torch.Tensor) -> torch.Tensor:
    tracker = ActivityTracker({"fc": layer}, criterion)
    for batch in batches:
        layer(batch)
    scores = tracker.activity()["fc"]
    tracker.remove()
    return scores


def test_every_name_the_cli_accepts_is_a_registered_class():
    assert set(list_criteria()) >= {"deviation", "contribution", "presynaptic", "hebbian", "magnitude", "normalised"}
    for name in list_criteria():
        criterion = create_criterion(name)
        assert isinstance(criterion, Criterion) and criterion.name == name
        assert set(criterion.statistics) <= set(STATISTICS)
    with pytest.raises(ValueError, match="unknown criterion"):
        create_criterion("loudness")


def test_deviation_is_weight_times_input_std():
    layer = _linear()
    std = X.std(dim=0, unbiased=False)  # population std: what a running mean of x and x^2 gives
    assert torch.allclose(_scores("deviation", layer, X), layer.weight.detach().abs() * std, atol=1e-6)
    assert Deviation().knows_input_means and not Contribution().knows_input_means


def test_contribution_and_presynaptic_use_mean_absolute_input():
    layer = _linear()
    mean_abs = X.abs().mean(dim=0)
    assert torch.allclose(_scores("contribution", layer, X), layer.weight.detach().abs() * mean_abs)
    assert torch.allclose(_scores("presynaptic", layer, X), mean_abs.expand(2, 3))
    assert Presynaptic.statistics == Contribution.statistics == ("input_abs",)


def test_hebbian_is_mean_pre_times_post_activity():
    layer = _linear()
    y = layer(X).detach()
    assert torch.allclose(_scores("hebbian", layer, X), y.abs().t() @ X.abs() / len(X))
    assert Hebbian.statistics == ("coactivity",)


def test_magnitude_gathers_nothing_and_is_the_weight_size():
    layer = _linear()
    tracker = ActivityTracker({"fc": layer}, "magnitude")
    assert tracker.num_hooks == 0
    assert torch.equal(tracker.activity()["fc"], layer.weight.detach().abs())
    assert Magnitude.statistics == ()


def test_normalised_is_the_share_of_the_unit_std_a_connection_carries():
    layer = _linear()
    y = layer(X).detach()
    expected = layer.weight.detach().abs() * X.std(dim=0, unbiased=False) / y.std(dim=0, unbiased=False)[:, None]
    assert torch.allclose(_scores("normalised", layer, X), expected, atol=1e-6)
    # with independent inputs a unit's squared shares sum to 1 (variances add)
    torch.manual_seed(0)
    independent = torch.randn(20000, 3) * torch.tensor([1.0, 3.0, 0.2])
    shares = _scores("normalised", _linear(), independent)
    assert torch.allclose(shares.square().sum(dim=1), torch.ones(2), atol=0.03)


def test_normalised_unit_without_variation_scores_zero():
    layer = _linear()
    with torch.no_grad():
        layer.weight[1].zero_()  # unit 1 outputs its bias whatever comes in
    scores = _scores("normalised", layer, X)
    assert torch.all(scores[1] == 0) and torch.isfinite(scores).all()


def _conv_bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(3 * 5 * 5, 2))


def _all_scores(net: nn.Sequential, criterion: str, x: torch.Tensor) -> dict[str, torch.Tensor]:
    layers = {name: m for name, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    scorer = create_criterion(criterion)
    scorer.prepare(net, layers)  # as the pruner does: post-norm finds the norms that follow
    tracker = ActivityTracker(layers, scorer)
    net.train()
    net(x)
    scores = tracker.activity()
    tracker.remove()
    return scores


@pytest.mark.parametrize("criterion", ["normalised", "magnitude", "deviation"])
def test_behind_batch_norm_scaling_one_filter_by_100_changes_no_normalised_score(criterion):
    x = torch.randn(8, 2, 5, 5, generator=torch.Generator().manual_seed(1))
    net = _conv_bn_net()
    before = _all_scores(net, criterion, x)
    with torch.no_grad():
        net[0].weight[1] *= 100  # the batch norm divides this scale out: the network computes the same
        net[0].bias[1] *= 100
        out_scaled = net(x)
    assert torch.allclose(out_scaled, _conv_bn_net().train()(x), atol=1e-4)  # same function
    after = _all_scores(net, criterion, x)
    changed = {name: not torch.allclose(after[name], before[name], rtol=1e-3, atol=1e-6) for name in before}
    if criterion == "normalised":
        assert not any(changed.values()), changed
    else:
        assert changed["0"]  # magnitude and |w| std(x) rank filter 1's connections 100x higher
        assert torch.allclose(after["0"][1], 100 * before["0"][1], rtol=1e-3)


def test_the_pruner_takes_a_criterion_object_and_folds_bias_only_with_mean_inputs():
    class Loudest(Criterion):
        name = "loudest-test"
        statistics = ("input_abs",)

        def score(self, weight, stats, module):
            return -weight.detach().abs().float()

    with pytest.raises(ValueError, match="statistics"):
        register_criterion(type("Bad", (Criterion,), {"name": "bad", "statistics": ("output_abs",)}))
    model = nn.Sequential(nn.Linear(4, 3))
    pruner = SynapticPruner(model, criterion=Loudest(), check_every=1, warmup_steps=0, stop_step=None)
    assert pruner.criterion == "loudest-test" and pruner.tracker.num_hooks == 1
    with pytest.raises(ConfigError, match="fold_bias"):
        SynapticPruner(nn.Sequential(nn.Linear(4, 3)), criterion="magnitude", fold_bias=True)
    normalised = SynapticPruner(nn.Sequential(nn.Linear(4, 3)), criterion="normalised", fold_bias=True,
                                check_every=1, warmup_steps=0, stop_step=None)
    assert normalised.fold_bias and isinstance(normalised.tracker.scorer, NormalisedActivity)


def test_normalised_statistics_round_trip_through_the_pruner_state():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    pruner = SynapticPruner(model, criterion="normalised", check_every=5, warmup_steps=0, stop_step=None)
    model(torch.randn(4, 1, 6, 6))
    state = pruner.state_dict()
    assert state["activity"]["sums"]["0.weight"].shape == (2, 1 + 3)  # input then output moments, side by side
    before = pruner.tracker.activity()
    fresh = SynapticPruner(model, criterion="normalised", check_every=5, warmup_steps=0, stop_step=None)
    fresh.load_state_dict(state)
    after = fresh.tracker.activity()
    assert all(torch.allclose(before[name], after[name]) for name in before)


@pytest.mark.parametrize("criterion", ["deviation", "contribution", "hebbian", "normalised"])
def test_the_tracker_knows_the_shape_of_every_running_sum(criterion):
    conv = nn.Conv2d(2, 3, 3)
    tracker = ActivityTracker({"conv": conv}, criterion)
    conv(torch.randn(2, 2, 5, 5))
    assert tuple(tracker.state_dict()["sums"]["conv"].shape) == tracker.sum_shape("conv")
    with pytest.raises(ValueError, match="shape"):
        tracker.load_state_dict({"sums": {"conv": torch.zeros(7)}, "batches": {"conv": 1}})


def test_layerwise_hybrid_keeps_the_layer_magnitudes_in_activity_order():
    layer = _linear()
    hybrid = _scores("normalised-layerwise", layer, X)
    activity = _scores("normalised", _linear(), X)
    magnitudes = layer.weight.detach().abs().flatten().sort().values
    assert torch.equal(hybrid.flatten().sort().values, magnitudes)  # same values per layer: same layer budget
    assert torch.equal(hybrid.flatten().argsort(), activity.flatten().argsort())  # order set by activity


def test_post_norm_is_the_normalised_share_times_the_following_norms_scale():
    x = torch.randn(8, 2, 5, 5, generator=torch.Generator().manual_seed(1))
    net = _conv_bn_net()
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([0.5, -2.0, 1.0, 0.0]))  # gamma of the first norm; unit 3 switched off
    normalised = _all_scores(net, "normalised", x)
    post_norm = _all_scores(net, "post-norm", x)
    gamma = torch.tensor([0.5, 2.0, 1.0, 0.0]).view(4, 1, 1, 1)
    assert torch.allclose(post_norm["0"], normalised["0"] * gamma, atol=1e-7)
    assert torch.all(post_norm["0"][3] == 0)  # a unit the norm switches off carries nothing on
    assert torch.allclose(post_norm["3"], normalised["3"] * net[4].weight.detach().abs().view(3, 1, 1, 1))
    assert torch.equal(post_norm["7"], normalised["7"])  # no norm follows the classifier: gamma 1
    with torch.no_grad():  # like the normalised score, it ignores a filter's own scale behind the norm
        net[0].weight[1] *= 100
        net[0].bias[1] *= 100
    assert torch.allclose(_all_scores(net, "post-norm", x)["0"], post_norm["0"], rtol=1e-3, atol=1e-6)


def test_the_pruner_prepares_post_norm_with_the_model_it_prunes():
    net = _conv_bn_net()
    pruner = SynapticPruner(net, criterion="post-norm", check_every=2)
    assert set(pruner.tracker.scorer._norms) == {id(net[0]), id(net[3])}
