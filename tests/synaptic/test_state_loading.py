"""A pruner state that does not fit is refused whole: nothing is half-restored."""

import copy

import pytest
import torch

from neuroprune.errors import ModelError
from neuroprune.models import create_model
from neuroprune.synaptic import SynapticPruner


def _pruned_pair() -> tuple[torch.nn.Module, SynapticPruner, dict]:
    torch.manual_seed(0)
    model = create_model("mlp", in_channels=1, image_size=8, num_classes=10)
    pruner = SynapticPruner(model, target_sparsity=0.5, total_steps=100)
    good = pruner.state_dict()
    good["masks"]["fc1.weight"][:, :5] = 0  # a state that prunes something
    good["step"] = 7
    return model, pruner, good


@pytest.mark.parametrize("spoil", [
    lambda s: s["unit_counters"].update({"nope.weight": torch.zeros(3, dtype=torch.int32)}),
    lambda s: s.update(step="seven"),
    lambda s: s.update(step=-1),
    lambda s: s.update(activity={"sums": {"fc1.weight": torch.zeros(3)}, "batches": {}}),
    lambda s: s.update(activity="lots"),
    lambda s: s.update(history="none"),
    lambda s: s["masks"].update({"fc1.weight": torch.full_like(s["masks"]["fc1.weight"], 2)}),
    lambda s: s["counters"].update({"fc1.weight": "zeros"}),
])
def test_a_bad_state_changes_nothing(spoil) -> None:
    model, pruner, good = _pruned_pair()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    before = copy.deepcopy(pruner.state_dict())
    bad = copy.deepcopy(good)
    spoil(bad)
    with pytest.raises(ModelError, match="pruner state"):
        pruner.load_state_dict(bad)
    after = pruner.state_dict()
    assert after["step"] == before["step"]
    for key in before["masks"]:
        assert torch.equal(after["masks"][key], before["masks"][key])
        assert torch.equal(after["counters"][key], before["counters"][key])
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    pruner.load_state_dict(good)  # the good state still loads
    assert pruner.state_dict()["step"] == 7 and int(pruner.state_dict()["masks"]["fc1.weight"][:, :5].sum()) == 0
