import pytest
import torch
from torch import nn

from neuroprune import ModelError, SynapticPruner, create_model


def _train(model, pruner, optimizer, steps, shape=(16, 1, 8, 8), seed=0):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(shape, generator=generator)
        y = torch.randint(0, 10, (shape[0],), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        pruner.step()


def _aggressive(model, optimizer=None, **kw):
    options = dict(alpha=0.8, patience=2, check_every=3, max_fraction_per_check=0.5, optimizer=optimizer)
    options.update(kw)
    return SynapticPruner(model, **options)


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
        lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3),
        lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=1e-2),
    ],
    ids=["sgd-momentum", "adam-l2", "adamw"],
)
def test_pruned_weights_stay_exactly_zero_through_optimizer_steps(make_optimizer):
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(32, 16))
    optimizer = make_optimizer(model.parameters())
    pruner = _aggressive(model, optimizer)
    _train(model, pruner, optimizer, steps=30)
    pruner_masks = {name: pruner.mask(name) for name in pruner.layers}
    assert pruner.sparsity() > 0.3
    # keep training without further checks: momentum and moments must not revive anything
    pruner.schedule = type(pruner.schedule)(check_every=10_000)
    _train(model, pruner, optimizer, steps=40, seed=1)
    for name, module in pruner.layers.items():
        pruned = pruner_masks[name] == 0
        assert torch.equal(pruner.mask(name), pruner_masks[name])
        assert (module.weight[pruned] == 0).all()
        for value in optimizer.state[module.weight].values():
            if torch.is_tensor(value) and value.shape == module.weight.shape:
                assert (value[pruned] == 0).all()


def test_masks_leave_parameters_and_state_dict_keys_as_they_were():
    model = create_model("mlp", image_size=8, hidden=(8,))
    before = {id(p) for p in model.parameters()}
    keys = set(model.state_dict())
    SynapticPruner(model)
    assert {id(p) for p in model.parameters()} == before
    assert set(model.state_dict()) == keys


def test_without_an_optimizer_step_still_keeps_pruned_weights_zero():
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(16,))
    pruner = SynapticPruner(model, alpha=2.0, patience=1, check_every=1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)  # not given to the pruner
    _train(model, pruner, optimizer, steps=5)
    assert pruner.optimizer is None and pruner.sparsity() > 0
    for name, module in pruner.layers.items():
        assert (module.weight[pruner.mask(name) == 0] == 0).all()


def test_state_dict_round_trips_masks_counters_and_step():
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(32, 16))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    pruner = _aggressive(model, optimizer)
    _train(model, pruner, optimizer, steps=13)
    state = pruner.state_dict()
    assert set(state["masks"]) == {"fc1.weight", "fc2.weight", "fc3.weight"}

    fresh_model = create_model("mlp", image_size=8, hidden=(32, 16))
    fresh_model.load_state_dict(model.state_dict())
    fresh = _aggressive(fresh_model)
    fresh.load_state_dict(state)
    assert fresh.step_count == 13
    for name in pruner.layers:
        assert torch.equal(fresh.mask(name), pruner.mask(name))
        assert torch.equal(fresh.counters[name], pruner.counters[name])
        assert (fresh.layers[name].weight[fresh.mask(name) == 0] == 0).all()


def test_load_state_dict_names_mismatched_layers_and_shapes():
    pruner = SynapticPruner(create_model("mlp", image_size=8, hidden=(32,)))
    other = SynapticPruner(create_model("mlp", image_size=8, hidden=(16,)))
    with pytest.raises(ModelError, match="fc1.weight"):
        pruner.load_state_dict(other.state_dict())
    deeper = SynapticPruner(create_model("mlp", image_size=8, hidden=(32, 8)))
    with pytest.raises(ModelError, match="fc3.weight"):
        pruner.load_state_dict(deeper.state_dict())


def test_target_sparsity_is_reached_at_stop_step_and_not_passed():
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(32, 16))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    pruner = _aggressive(model, optimizer, alpha=2.0, patience=1, check_every=1, stop_step=10, target_sparsity=0.3,
                         max_fraction_per_check=None)
    _train(model, pruner, optimizer, steps=20)
    assert pruner.sparsity() == pytest.approx(0.3, abs=1.5 / pruner.num_connections)
    assert not pruner.tracker.is_active


def test_model_without_prunable_layers_is_a_clear_error():
    with pytest.raises(ModelError, match="no Linear or Conv2d"):
        SynapticPruner(nn.Sequential(nn.ReLU(), nn.Flatten()))
    with pytest.raises(ModelError, match="prunable layers are"):
        SynapticPruner(create_model("mlp", image_size=8), layers=["nope"])


def test_hooks_are_removed_and_removal_is_idempotent():
    model = create_model("lenet5", image_size=8)
    pruner = SynapticPruner(model)
    assert pruner.tracker.num_hooks == 4
    pruner.remove_hooks()
    pruner.remove_hooks()
    assert all(not m._forward_hooks for m in model.modules())


def test_finalize_keeps_pruned_weights_zero_in_the_same_parameters():
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(32, 16))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    pruner = _aggressive(model, optimizer)
    _train(model, pruner, optimizer, steps=12)
    masks = {name: pruner.mask(name) for name in pruner.layers}
    stored = {name: m.weight for name, m in pruner.layers.items()}
    x = torch.randn(4, 1, 8, 8)
    expected = model(x)
    pruner.finalize()
    assert set(model.state_dict()) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"}
    assert torch.allclose(model(x), expected)
    for name, module in pruner.layers.items():
        assert module.weight is stored[name]
        assert torch.equal((module.weight != 0).float() * masks[name], (module.weight != 0).float())
    assert pruner.sparsity() > 0


def test_sample_every_gathers_activity_on_every_nth_step_only():
    model = create_model("mlp", image_size=8, hidden=(8,))
    pruner = SynapticPruner(model, check_every=100, sample_every=3)
    active = []
    for _ in range(9):
        active.append(pruner.tracker.is_active)
        pruner.step()
    # step n (1-based) is tracked when n % 3 == 0
    assert active == [False, False, True, False, False, True, False, False, True]
    with pytest.raises(Exception, match="sample_every"):
        SynapticPruner(create_model("mlp", image_size=8), sample_every=0)


class _NoisySGD(torch.optim.SGD):
    """An optimizer whose rule moves even a weight with zero gradient and state."""

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(torch.randn_like(p) * 1e-3)


def test_a_custom_optimizer_that_moves_zero_weights_cannot_revive_pruned_ones():
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(32, 16))
    optimizer = _NoisySGD(model.parameters(), lr=0.05)
    pruner = _aggressive(model, optimizer)
    _train(model, pruner, optimizer, steps=30)
    assert pruner.sparsity() > 0.3
    for name, module in pruner.layers.items():
        assert (module.weight[pruner.mask(name) == 0] == 0).all()
