"""Bad input gets a clear error: invalid cuts list the valid ones, checkpoints name keys, budgets show the closest."""

from pathlib import Path

import pytest
from safetensors.torch import save_file

from neuroprune.depth import Budgets, DepthPruner, search_cuts
from neuroprune.errors import ConfigError, ModelError, NeuropruneError
from neuroprune.runs.train import load_trained


@pytest.fixture
def pruner(tiny, example) -> DepthPruner:
    return DepthPruner(tiny("resnet20"), example_inputs=example)


def test_destination_before_origin(pruner: DepthPruner) -> None:
    with pytest.raises(ConfigError, match=r"destination 'layer1\.1' does not come after origin 'layer3\.0'"
                                          r".*valid cuts: relu:layer1\.1"):
        pruner.plan(cut="layer3.0:layer1.1")


def test_unknown_layer_name(pruner: DepthPruner) -> None:
    with pytest.raises(ConfigError, match=r"unknown origin layer 'layer9\.0'.*valid origins: relu, layer1\.0"):
        pruner.plan(cut=("layer9.0", "layer3.0"))
    with pytest.raises(ConfigError, match=r"unknown destination layer 'nope'"):
        pruner.plan(cut="layer1.0:nope")


def test_cut_that_removes_nothing(pruner: DepthPruner) -> None:
    with pytest.raises(ConfigError, match=r"removes nothing.*valid cuts"):
        pruner.plan(cut="layer1.0:layer1.1")
    with pytest.raises(ConfigError, match="ORIGIN:DESTINATION"):
        pruner.plan(cut="layer1.0")


def test_identity_where_shapes_differ(pruner: DepthPruner) -> None:
    with pytest.raises(ConfigError, match="nn.Identity cannot bridge"):
        pruner.plan(cut="layer1.0:layer3.0", bridge="identity")


def test_checkpoint_that_does_not_fit_names_keys_and_shapes(tmp_path: Path, tiny) -> None:
    other = tiny("resnet20", width=0.25)  # twice as wide as the model it is loaded into
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "w.safetensors"))
    options = {"in_channels": 1, "image_size": 16, "num_classes": 10, "width": 0.125}
    with pytest.raises(ModelError, match=r"conv1\.weight: file \(4, 1, 3, 3\) vs model \(2, 1, 3, 3\)"):
        load_trained("resnet20", tmp_path / "w.safetensors", options)
    with pytest.raises(ModelError, match="missing keys"):
        load_trained("vgg11", tmp_path / "w.safetensors", {**options, "width": 0.25})


def test_budget_no_candidate_meets(pruner: DepthPruner, digits_train, digits_test) -> None:
    with pytest.raises(NeuropruneError,
                       match=r"no candidate meets the budgets \(max_params=10\); closest: relu:avgpool"):
        search_cuts(pruner, digits_train, digits_test, budgets=Budgets(max_params=10))
