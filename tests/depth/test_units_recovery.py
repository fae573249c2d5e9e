"""Units pruned while a cut network recovers: when the last of them go (MAC clock, not wall time)."""

import pytest
import torch

import neuroprune as npr
from neuroprune.depth.recovery import fine_tune_pruning_units
from neuroprune.errors import ConfigError


def _batches(count=10):
    generator = torch.Generator().manual_seed(0)
    return [(torch.randn(16, 1, 16, 16, generator=generator), torch.randint(0, 4, (16,), generator=generator))
            for _ in range(count)]


def _lenet():
    torch.manual_seed(0)
    return npr.create_model("lenet5", in_channels=1, image_size=16, num_classes=4)


@pytest.mark.parametrize("prune_until", [0.3, 0.6, 1.0])
def test_the_last_units_go_by_the_share_of_fine_tuning_asked_and_the_target_is_met(mac_clock, prune_until):
    loader = _batches()
    model = _lenet()
    small, _, pruner = fine_tune_pruning_units(model, loader, target_speedup=1.25, latency_batch_sizes=(1,),
                                               example_inputs=loader[0][0], epochs=2, prune_until=prune_until)
    total = 2 * len(loader)
    removing = [record["step"] for record in pruner.history
                if any(layer["pruned_now"] for layer in record["layers"].values())]
    assert removing, "no unit went"
    assert max(removing) <= round(prune_until * total)
    assert pruner.schedule.stop_step == round(prune_until * total)
    assert pruner.is_target_reached
    assert npr.count_params(small) < npr.count_params(_lenet())


@pytest.mark.parametrize("prune_until", [0.0, 0.05, 1.5, True])
def test_a_share_outside_the_fine_tuning_is_refused_before_any_training(mac_clock, prune_until):
    model = _lenet()
    before = {name: value.clone() for name, value in model.state_dict().items()}
    with pytest.raises(ConfigError, match=r"prune_until must be in \(0\.05, 1\]"):
        fine_tune_pruning_units(model, _batches(2), target_speedup=1.25, latency_batch_sizes=(1,),
                                example_inputs=torch.zeros(1, 1, 16, 16), epochs=1, prune_until=prune_until)
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
