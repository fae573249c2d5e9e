"""`neuroprune synaptic`: targets, granularity and the automatic check schedule from the command line."""

import json
from collections import OrderedDict

import pytest
from click.testing import CliRunner
from torch import nn

import neuroprune as npr
from neuroprune.cli import main
from neuroprune.config import SynapticConfig
from neuroprune.models._registry import _DESCRIPTIONS, _MODELS
from neuroprune.runs.synaptic import run_synaptic


def _run(args):
    return CliRunner().invoke(main, args)


def test_digits_with_default_options_prunes_more_than_half(tmp_path):
    # 15 epochs of 8x8 digits are a few hundred optimizer steps: "auto" still gives ~55 checks
    out = tmp_path / "run"
    result = _run(["synaptic", "--dataset", "digits", "--epochs", "15", "--no-measure-latency", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "result.json").read_text())
    assert saved["pruned_fraction"] > 0.5
    assert saved["pruner"]["requested_schedule"]["check_every"] == "auto"
    assert len(saved["checks"]) >= 30


def test_unit_granularity_with_a_target_writes_a_faster_smaller_model(tmp_path):
    out = tmp_path / "run"
    result = _run(["synaptic", "--dataset", "digits", "--epochs", "4", "--granularity", "unit", "--target-sparsity",
                   "0.8", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "result.json").read_text())
    assert saved["pruned_fraction"] >= 0.8 - 1e-6
    assert saved["params_compact"] < 0.3 * saved["params_dense"]
    assert saved["compact_max_abs_diff"] < 1e-4
    assert saved["pruner"]["granularity"] == "unit"
    for label in ("batch_1", "batch_256"):
        timing = saved["latency_ms"][label]
        assert timing["speedup"] > 0 and timing["rounds"] >= 3


def test_none_clears_what_the_yaml_file_sets(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("dataset: digits\nepochs: 2\ntarget_sparsity: 0.9\nstop_step: 20\n")
    out = tmp_path / "run"
    result = _run(["synaptic", "-c", str(config), "--target-sparsity", "none", "--stop-step", "none",
                   "--max-fraction-per-check", "0.2", "--no-measure-latency", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["target_sparsity"] is None and saved["stop_step"] is None
    assert saved["max_fraction_per_check"] == 0.2


def test_a_per_check_cap_beside_a_target_is_refused_by_name(tmp_path):
    result = _run(["synaptic", "--dataset", "digits", "--target-sparsity", "0.9", "--max-fraction-per-check", "0.2",
                   "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "max_fraction_per_check" in result.output and "Traceback" not in result.output


def test_a_step_option_that_is_not_a_number_or_auto_is_refused(tmp_path):
    result = _run(["synaptic", "--dataset", "digits", "--check-every", "often", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "check-every" in result.output
    result = _run(["synaptic", "--dataset", "digits", "--check-every", "none", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "auto" in result.output


def test_a_residual_network_is_pruned_by_channels_and_compacted_exactly(tmp_path):
    out = tmp_path / "run"
    result = _run(["synaptic", "--dataset", "digits", "--model", "resnet20", "--epochs", "3", "--granularity", "unit",
                   "--target-sparsity", "0.7", "--no-measure-latency", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "result.json").read_text())
    assert saved["params_compact"] < 0.7 * saved["params_dense"]
    assert saved["compact_max_abs_diff"] < 1e-4
    loaded, _ = npr.load_model(out)
    dense = npr.create_model("resnet20", in_channels=1, image_size=8)
    assert npr.count_params(loaded) == saved["params_compact"] < npr.count_params(dense)
    # channels of a stage are shared by its blocks through the residual sums: they shrink together
    stage3 = {loaded.layer3[0].downsample[0].out_channels, loaded.fc.in_features,
              *(block.conv2.out_channels for block in loaded.layer3)}
    assert len(stage3) == 1


class _Gate(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return self.fc(x) if x.mean() > 0 else x  # branches on a value: torch.fx cannot trace it


@pytest.fixture
def untraceable_model():
    name = "gated_mlp_for_tests"

    @npr.register_model(name, "an MLP with a data-dependent branch")
    def gated(in_channels=1, image_size=8, num_classes=10):
        return nn.Sequential(OrderedDict([("flatten", nn.Flatten()),
                                          ("fc", nn.Linear(in_channels * image_size ** 2, 16)),
                                          ("gate", _Gate(16)), ("head", nn.Linear(16, num_classes))]))

    yield name
    _MODELS.pop(name)
    _DESCRIPTIONS.pop(name)


def test_a_model_that_cannot_be_compacted_is_refused_before_training(tmp_path, untraceable_model):
    out = tmp_path / "run"
    config = SynapticConfig(dataset="digits", model=untraceable_model, epochs=8)
    with pytest.raises(npr.ModelError, match=r"'gate'.*does not start"):
        run_synaptic(config, out)
    assert not (out / "checkpoint.pt").exists() and not (out / "result.json").exists()
