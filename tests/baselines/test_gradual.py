"""Gradual magnitude pruning: the polynomial schedule and GradualMagnitudePruner."""

import copy

import pytest
import torch
from torch import nn

import neuroprune as npr
from neuroprune import ConfigError, GradualMagnitudePruner, ModelError, PolynomialSparsity

# ---- the schedule ---------------------------------------------------------------------------


def test_schedule_is_zero_before_begin_and_final_from_end_on():
    s = PolynomialSparsity(final_sparsity=0.8, begin_step=10, end_step=50)
    assert [s.at(t) for t in (0, 5, 9)] == [0.0, 0.0, 0.0]
    assert s.at(10) == 0.0  # the ramp starts at initial_sparsity
    assert s.at(50) == s.at(51) == s.at(10_000) == 0.8


def test_schedule_is_cubic_and_monotone():
    s = PolynomialSparsity(final_sparsity=0.8, begin_step=100, end_step=200)
    assert s.at(150) == pytest.approx(0.8 * (1 - 0.5**3))
    values = [s.at(t) for t in range(0, 300)]
    assert all(a <= b for a, b in zip(values, values[1:], strict=False))
    # pruning is front-loaded: more than half of the final share is gone a quarter of the way in
    assert s.at(125) > 0.4


def test_schedule_starts_at_initial_sparsity_and_follows_the_exponent():
    s = PolynomialSparsity(final_sparsity=0.9, begin_step=0, end_step=10, initial_sparsity=0.5, exponent=1.0)
    assert s.at(0) == pytest.approx(0.5)
    assert s.at(5) == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"final_sparsity": 1.0}, "final_sparsity"),
        ({"final_sparsity": 0.0}, "final_sparsity"),
        ({"initial_sparsity": 0.5}, "initial_sparsity"),
        ({"begin_step": -1}, "begin_step"),
        ({"end_step": 10}, "end_step"),
        ({"begin_step": 1.5}, "begin_step"),
        ({"exponent": 0}, "exponent"),
    ],
)
def test_schedule_rejects_bad_values_naming_the_field(kwargs, field):
    values = {"final_sparsity": 0.5, "begin_step": 10, "end_step": 20} | kwargs
    with pytest.raises(ConfigError, match=field):
        PolynomialSparsity(**values)


# ---- the pruner -----------------------------------------------------------------------------


def tiny_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4))


def train_steps(model, optimizer, steps, pruner=None, seed=0):
    """Run ``steps`` optimizer steps on random data; yield the step number after each ``pruner.step()``."""
    generator = torch.Generator().manual_seed(seed)
    for step in range(1, steps + 1):
        x = torch.randn(16, 8, generator=generator)
        y = torch.randint(0, 4, (16,), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        yield step, pruner.step() if pruner is not None else False


def pruned_positions(pruner):
    return {name: pruner.mask(name) == 0 for name in pruner.layers}


def test_each_update_prunes_exactly_the_scheduled_count():
    model = tiny_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    pruner = GradualMagnitudePruner(
        model, final_sparsity=0.75, begin_step=5, end_step=27, update_every=4, optimizer=optimizer
    )
    updated_at = []
    before = pruned_positions(pruner)
    for step, updated in train_steps(model, optimizer, 40, pruner):
        if updated:
            updated_at.append(step)
            expected = round(pruner.schedule.at(step) * pruner.num_connections)
            assert pruner.num_connections - pruner.num_live == expected
            now = pruned_positions(pruner)
            assert all(bool((now[n] | ~before[n]).all()) for n in now)  # nothing pruned comes back
            before = now
    assert updated_at == [5, 9, 13, 17, 21, 25, 27]
    assert [record["step"] for record in pruner.history] == updated_at
    assert pruner.sparsity() == pytest.approx(0.75, abs=1 / pruner.num_connections)
    counts = [record["pruned_fraction"] for record in pruner.history]
    assert counts == sorted(counts) and counts[-1] == pruner.sparsity()


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
        lambda p: torch.optim.Adam(p, lr=0.01),
    ],
    ids=["sgd-momentum", "adam"],
)
def test_pruned_weights_stay_zero_after_more_steps(make_optimizer):
    model = tiny_mlp()
    optimizer = make_optimizer(model.parameters())
    pruner = GradualMagnitudePruner(
        model, final_sparsity=0.6, begin_step=3, end_step=9, update_every=3, optimizer=optimizer
    )
    for _ in train_steps(model, optimizer, 30, pruner):
        pass
    assert pruner.sparsity() == pytest.approx(0.6, abs=1 / pruner.num_connections)
    for name, layer in pruner.layers.items():
        pruned = pruner.mask(name) == 0
        assert bool(pruned.any())
        assert bool((layer.weight[pruned] == 0).all())
        for value in optimizer.state[layer.weight].values():
            if torch.is_tensor(value) and value.shape == layer.weight.shape:
                assert bool((value[pruned] == 0).all())  # momentum / Adam moments cannot revive them


def test_global_scope_prunes_the_smallest_magnitudes_across_layers():
    model = tiny_mlp()
    with torch.no_grad():
        model[0].weight.mul_(0.01)  # the first layer's weights are all tiny
    magnitudes = {name: m.weight.detach().abs().clone()
                  for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    pruner = GradualMagnitudePruner(model, final_sparsity=0.5, begin_step=0, end_step=1, update_every=1)
    assert pruner.step()  # step 1 is end_step
    pruned = torch.cat([magnitudes[n][pruner.mask(n) == 0] for n in pruner.layers])
    live = torch.cat([magnitudes[n][pruner.mask(n) == 1] for n in pruner.layers])
    assert len(pruned) == round(0.5 * pruner.num_connections)
    assert pruned.max() <= live.min()
    assert bool((pruner.mask("0") == 0).all())  # the tiny layer went first, entirely
    assert pruner.layer_summary()[0] == {"name": "0", "total": 128, "pruned": 128, "units": 16,
                                         "units_without_input": 16}


def test_layer_scope_gives_every_layer_the_same_share():
    model = tiny_mlp()
    with torch.no_grad():
        model[0].weight.mul_(0.01)
    pruner = GradualMagnitudePruner(model, final_sparsity=0.5, begin_step=0, end_step=1, scope="layer")
    pruner.step()
    for row in pruner.layer_summary():
        assert row["pruned"] == round(0.5 * row["total"])
        name = row["name"]
        weight = pruner.layers[name].weight.detach().abs()
        assert weight[pruner.mask(name) == 0].max() <= weight[pruner.mask(name) == 1].min()


def test_state_dict_round_trip_restores_masks_step_and_history():
    model = tiny_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    pruner = GradualMagnitudePruner(model, final_sparsity=0.7, begin_step=2, end_step=10, update_every=2,
                                    optimizer=optimizer)
    for _ in train_steps(model, optimizer, 6, pruner):
        pass
    state = pruner.state_dict()
    assert set(state["masks"]) == {"0.weight", "2.weight", "4.weight"}
    assert state["masks"]["0.weight"].dtype == torch.uint8

    fresh_model = tiny_mlp(seed=1)
    fresh = GradualMagnitudePruner(fresh_model, final_sparsity=0.7, begin_step=2, end_step=10, update_every=2)
    fresh.load_state_dict(copy.deepcopy(state))
    assert fresh.step_count == 6 and fresh.history == pruner.history
    for name in pruner.layers:
        assert torch.equal(fresh.mask(name), pruner.mask(name))
        assert bool((fresh.layers[name].weight[fresh.mask(name) == 0] == 0).all())
    assert fresh.sparsity() == pruner.sparsity()

    state["masks"]["9.weight"] = state["masks"].pop("4.weight")
    with pytest.raises(ModelError, match="9.weight"):
        fresh.load_state_dict(state)


def test_fit_on_digits_reaches_the_final_sparsity():
    model = npr.create_model("mlp", image_size=8, hidden=(32, 16))
    loader = npr.create_loader("digits", "train", 64, limit=512)  # 8 batches per epoch
    epochs = 3
    pruner = GradualMagnitudePruner.for_training(model, final_sparsity=0.8, total_steps=epochs * len(loader))
    assert (pruner.schedule.begin_step, pruner.schedule.end_step, pruner.update_every) == (1, 14, 1)
    history = npr.fit(model, loader, epochs=epochs, lr=0.05, callbacks=[pruner])
    assert pruner.sparsity() == pytest.approx(0.8, abs=1 / pruner.num_connections)
    assert history[-1]["pruned_fraction"] == pruner.sparsity()
    assert history[0]["pruned_fraction"] < history[-1]["pruned_fraction"]
    assert pruner.optimizer is not None  # fit's optimizer was attached and keeps the masks
    for name, layer in pruner.layers.items():
        assert bool((layer.weight[pruner.mask(name) == 0] == 0).all())
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    pruner.finalize()
    assert pruner.optimizer is None


def test_fit_with_another_optimizer_than_the_pruners_is_an_error():
    model = tiny_mlp()
    attached = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner = GradualMagnitudePruner(model, final_sparsity=0.5, begin_step=1, end_step=4, optimizer=attached)
    data = torch.utils.data.TensorDataset(torch.randn(32, 8), torch.randint(0, 4, (32,)))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    with pytest.raises(ConfigError, match="another optimizer"):
        npr.fit(model, loader, epochs=1, callbacks=[pruner])  # fit builds its own SGD
    npr.fit(model, loader, epochs=1, optimizer=attached, callbacks=[pruner])
    assert pruner.sparsity() == 0.5


def test_finalize_removes_the_optimizer_hooks():
    model = tiny_mlp()
    optimizer = torch.optim.Adam(model.parameters())
    pruner = GradualMagnitudePruner(model, final_sparsity=0.5, begin_step=1, end_step=2, optimizer=optimizer)
    assert optimizer._optimizer_step_pre_hooks
    assert pruner.finalize() is model
    pruner.finalize()  # idempotent
    assert not optimizer._optimizer_step_pre_hooks and not optimizer._optimizer_step_post_hooks


def test_for_training_splits_the_run():
    pruner = GradualMagnitudePruner.for_training(tiny_mlp(), final_sparsity=0.9, total_steps=2000)
    assert (pruner.schedule.begin_step, pruner.schedule.end_step, pruner.update_every) == (100, 1200, 20)
    assert pruner.schedule.final_sparsity == 0.9


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"update_every": 0}, ConfigError, "update_every"),
        ({"scope": "model"}, ConfigError, "scope"),
        ({"final_sparsity": 1.5}, ConfigError, "final_sparsity"),
        ({"end_step": 1}, ConfigError, "end_step"),
        ({"layers": ["0", "nope"]}, ModelError, "nope"),
        ({"layers": []}, ModelError, "nothing to prune"),
    ],
)
def test_bad_arguments_are_explained(kwargs, error, match):
    values = {"final_sparsity": 0.5, "begin_step": 1, "end_step": 10} | kwargs
    with pytest.raises(error, match=match):
        GradualMagnitudePruner(tiny_mlp(), **values)


def test_for_training_rejects_a_run_too_short_to_ramp():
    with pytest.raises(ConfigError, match="total_steps"):
        GradualMagnitudePruner.for_training(tiny_mlp(), final_sparsity=0.5, total_steps=1, end_fraction=0.4)
    with pytest.raises(ConfigError, match="begin_fraction"):
        GradualMagnitudePruner.for_training(tiny_mlp(), final_sparsity=0.5, total_steps=100, begin_fraction=0.7)


def test_the_old_import_paths_still_work():
    from neuroprune.baselines import apply_masks, magnitude_masks, random_masks
    from neuroprune.baselines.oneshot import apply_masks as oneshot_apply

    assert apply_masks is oneshot_apply and npr.magnitude_masks is magnitude_masks
    assert npr.random_masks is random_masks
