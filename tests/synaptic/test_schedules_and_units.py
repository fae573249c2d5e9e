"""Target sparsity on a schedule, automatic check schedules, unit granularity, bias folding."""

import warnings

import pytest
import torch
from torch import nn

from neuroprune import ConfigError, ModelError, SynapticPruner, compact_sequential, create_loader, create_model, fit
from neuroprune.synaptic.schedule import resolve_schedule
from neuroprune.synaptic.selection import select_weakest


def _train(model, pruner, optimizer, steps, seed=0, shape=(16, 1, 8, 8)):
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(shape, generator=generator)
        y = torch.randint(0, 10, (shape[0],), generator=generator)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        pruner.step()


@pytest.mark.parametrize("alpha", [0.01, 0.5, 5.0])
def test_target_is_met_at_every_check_whatever_alpha(alpha):
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(32, 16))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    pruner = SynapticPruner(model, alpha=alpha, check_every=2, warmup_steps=4, stop_step=24, target_sparsity=0.8,
                            optimizer=optimizer)
    _train(model, pruner, optimizer, steps=30)
    assert [record["step"] for record in pruner.history] == list(range(6, 25, 2))
    for record in pruner.history:
        # within one connection of the cubic schedule's share at that step
        assert record["pruned_fraction"] == pytest.approx(record["scheduled_fraction"],
                                                          abs=1.0 / pruner.num_connections)
    fractions = [record["pruned_fraction"] for record in pruner.history]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(0.8, abs=1.0 / pruner.num_connections)


def test_weak_connections_go_before_others_under_a_quota():
    scores = {"a": torch.tensor([0.1, 0.2, 0.3, 0.4]), "b": torch.tensor([0.05, 0.9])}
    eligible = {"a": torch.tensor([True, True, True, True]), "b": torch.tensor([True, True])}
    preferred = {"a": torch.tensor([False, False, True, True]), "b": torch.tensor([False, True])}
    picked = select_weakest(scores, eligible, preferred, quota=4)
    # the three preferred first (0.3, 0.4, 0.9), then the weakest other (0.05)
    assert picked["a"].tolist() == [False, False, True, True]
    assert picked["b"].tolist() == [True, True]
    costs = {"a": torch.tensor([5.0, 1, 1, 1]), "b": torch.tensor([1.0, 1])}
    picked = select_weakest(scores, eligible, {k: torch.zeros_like(v) for k, v in eligible.items()}, 5, costs)
    assert picked["b"].tolist() == [True, False] and picked["a"].tolist() == [True, False, False, False]


def test_auto_schedule_scales_with_the_run():
    schedule = resolve_schedule("auto", "auto", "auto", total_steps=1000)
    assert (schedule.check_every, schedule.warmup_steps, schedule.stop_step) == (10, 50, 600)
    short = resolve_schedule("auto", "auto", "auto", total_steps=40)
    assert len(short.check_steps(40)) >= 3
    with pytest.raises(ConfigError, match="total_steps"):
        resolve_schedule("auto", 0, None, total_steps=None)
    with pytest.raises(ConfigError, match="'auto'"):
        resolve_schedule("often", 0, None, total_steps=100)


def test_fit_on_a_small_data_set_gets_several_checks_and_prunes():
    torch.manual_seed(0)
    loader = create_loader("digits", "train", batch_size=64, limit=640)  # 10 steps an epoch
    model = create_model("mlp", image_size=8, hidden=(32, 16))
    pruner = SynapticPruner(model, alpha=0.8, patience=2)
    fit(model, loader, epochs=6, lr=0.05, callbacks=[pruner])
    assert pruner.schedule.check_every == 1 and len(pruner.history) >= 30
    assert pruner.sparsity() > 0.2


def test_a_schedule_that_can_never_prune_warns_before_training():
    loader = create_loader("digits", "train", batch_size=64, limit=640)
    model = create_model("mlp", image_size=8, hidden=(16,))
    pruner = SynapticPruner(model, check_every=200, warmup_steps=0, stop_step=None)
    with pytest.warns(UserWarning, match="nothing can be pruned"):
        fit(model, loader, epochs=1, lr=0.05, callbacks=[pruner])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SynapticPruner(create_model("mlp", image_size=8), total_steps=400)  # "auto": no warning


def test_sample_every_larger_than_the_check_interval_is_refused():
    with pytest.raises(ConfigError, match="sample_every"):
        SynapticPruner(create_model("mlp", image_size=8), check_every=4, sample_every=5)


def test_masks_on_another_optimizer_than_the_one_that_steps_are_refused():
    model = create_model("mlp", image_size=8, hidden=(16,))
    held = torch.optim.SGD(model.parameters(), lr=0.1)
    stepped = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner = SynapticPruner(model, check_every=1, optimizer=held)
    loader = create_loader("digits", "train", batch_size=64, limit=128)
    with pytest.raises(ConfigError, match="another optimizer"):
        fit(model, loader, epochs=1, optimizer=stepped, callbacks=[pruner])


def test_half_precision_activations_give_finite_activity():
    conv = nn.Conv2d(4, 8, 3, padding=1)
    pruner = SynapticPruner(nn.Sequential(conv), check_every=1, criterion="contribution")
    x = torch.full((8, 4, 32, 32), 40.0)
    pruner.tracker._hook_for("0")(conv, (x.half(),), conv(x).half())  # the sum of |x| alone is 1.3M > fp16 max
    activity = pruner.tracker.activity()["0"]
    assert torch.isfinite(activity).all()
    assert torch.allclose(activity, conv.weight.detach().abs() * 40.0)


@pytest.mark.parametrize("model_name", ["mlp", "lenet5"])
def test_unit_granularity_removes_whole_units_and_compacts_exactly(model_name):
    torch.manual_seed(0)
    model = create_model(model_name, image_size=8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    pruner = SynapticPruner(model, granularity="unit", check_every=1, warmup_steps=2, stop_step=12,
                            target_sparsity=0.7, optimizer=optimizer)
    _train(model, pruner, optimizer, steps=15)
    assert pruner.sparsity() >= 0.7 - 1e-6
    removed_any = False
    for group in pruner.unit_groups:
        (writer,), (reader,) = group.writers, group.readers  # a chain: one layer on each side
        rows = pruner.mask(writer).flatten(1).sum(dim=1) == 0
        units = rows.numel()
        outgoing = pruner.mask(reader).reshape(pruner.mask(reader).shape[0], units, -1)
        # a removed unit lost every connection entering it and every connection leaving it
        assert (outgoing[:, rows].sum() == 0).item()
        removed_any |= bool(rows.any())
    assert removed_any
    model.eval()
    small = pruner.compact()
    x = torch.randn(5, 1, 8, 8)
    assert torch.allclose(model(x), small(x), atol=1e-5)
    widths = [m.weight.shape[0] for m in small.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    original = [m.weight.shape[0] for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert widths[-1] == original[-1] and sum(widths[:-1]) < sum(original[:-1])


def test_unit_granularity_names_the_problem_on_a_model_it_cannot_pair():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.b(self.a(x) + x)

    with pytest.raises(ModelError, match="unit granularity"):
        SynapticPruner(Branchy(), granularity="unit", check_every=1)


def test_deviation_criterion_folds_a_constant_input_into_the_bias():
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.7, -1.0], [-1.0, 1.2, 1.0]]))
    model = nn.Sequential(layer)
    pruner = SynapticPruner(model, criterion="deviation", alpha=0.5, patience=1, check_every=1, min_fan_in=0,
                            max_fraction_per_check=1.0)
    assert pruner.fold_bias
    x = torch.randn(64, 3)
    x[:, 1] = 2.5  # input 1 never varies: its connections carry a constant
    model.train()
    before = model(x).detach()
    pruner.step()  # check: std of input 1 is 0, so both its connections are weak and go
    assert torch.equal(pruner.mask("0")[:, 1], torch.zeros(2))
    assert torch.allclose(model(x), before, atol=1e-5)  # the constant moved into the bias


def test_fold_bias_needs_a_criterion_that_knows_the_mean():
    with pytest.raises(ConfigError, match="fold_bias"):
        SynapticPruner(create_model("mlp", image_size=8), criterion="contribution", fold_bias=True, check_every=1)


def test_unit_counters_round_trip_through_state_dict():
    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(16, 8))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    pruner = SynapticPruner(model, granularity="both", alpha=0.9, patience=2, check_every=2, warmup_steps=0,
                            stop_step=None, optimizer=optimizer)
    _train(model, pruner, optimizer, steps=7)
    fresh = SynapticPruner(create_model("mlp", image_size=8, hidden=(16, 8)), granularity="both", check_every=2)
    fresh.load_state_dict(pruner.state_dict())
    for name, counters in pruner.unit_counters.items():
        assert torch.equal(fresh.unit_counters[name], counters)
    assert compact_sequential(model) is not None


class _StopAfter:
    """Ends training after ``epochs`` epochs (after the checkpoint of that epoch is written)."""

    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, trainer):
        trainer.should_stop = trainer.epoch >= self.epochs


def _scheduled_run(path, stop=None, resume_from=None):
    from neuroprune import Checkpointer
    from neuroprune.engine import resume

    torch.manual_seed(0)
    model = create_model("mlp", image_size=8, hidden=(32, 16))
    pruner = SynapticPruner(model, granularity="both", target_sparsity=0.7)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loader = create_loader("digits", "train", 32, seed=2, limit=320)
    trainer = resume(resume_from, model, optimizer, pruner=pruner) if resume_from else None
    callbacks = [pruner, Checkpointer(path, pruner), *([_StopAfter(stop)] if stop else [])]
    fit(model, loader, epochs=4, optimizer=optimizer, callbacks=callbacks, trainer=trainer)
    return model, pruner


def test_an_interrupted_scheduled_run_resumes_to_the_same_masks_and_weights(tmp_path):
    model, pruner = _scheduled_run(tmp_path / "full.pt")
    _scheduled_run(tmp_path / "part.pt", stop=1)  # "killed" after the first of four epochs
    resumed, resumed_pruner = _scheduled_run(tmp_path / "part.pt", resume_from=tmp_path / "part.pt")
    assert pruner.sparsity() == pytest.approx(0.7, abs=0.02)
    for name in pruner.layers:
        assert torch.equal(resumed_pruner.mask(name), pruner.mask(name))
    for name, counters in pruner.unit_counters.items():
        assert torch.equal(resumed_pruner.unit_counters[name], counters)
    for key, value in model.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key
