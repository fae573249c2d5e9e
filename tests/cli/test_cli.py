import json

import pytest
from click.testing import CliRunner

from neuroprune.cli import main

BASE = ["synaptic", "--dataset", "digits", "--epochs", "1"]


def _run(args):
    return CliRunner().invoke(main, args)


def test_unknown_dataset_and_model_list_the_valid_names(tmp_path):
    result = _run(["synaptic", "--dataset", "imagenet", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "digits" in result.output and "fashion-mnist" in result.output
    result = _run(["synaptic", "--model", "resnet9000", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "mlp" in result.output and "lenet5" in result.output


@pytest.mark.parametrize(
    "flag, value, option",
    [("--alpha", "0", "alpha"), ("--alpha", "-1", "alpha"), ("--patience", "0", "patience"),
     ("--check-every", "0", "check_every"), ("--batch-size", "0", "batch_size"), ("--lr", "0", "lr"),
     ("--max-fraction-per-check", "2", "max_fraction_per_check"), ("--target-sparsity", "1", "target_sparsity")],
)
def test_out_of_range_options_are_rejected_by_name(tmp_path, flag, value, option):
    result = _run([*BASE, flag, value, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert option in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run" / "result.json").exists()


def test_yaml_config_unknown_key_and_wrong_type(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("alpah: 0.5\n")
    result = _run([*BASE, "-c", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "alpah" in result.output
    config.write_text("patience: three\n")
    result = _run([*BASE, "-c", str(config), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "patience" in result.output


def test_cli_flags_override_yaml(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("dataset: digits\nepochs: 1\npatience: 7\nalpha: 0.3\ncheck_every: 5\nlimit_train: 200\n")
    out = tmp_path / "run"
    result = _run(["synaptic", "-c", str(config), "--patience", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "config.json").read_text())["config"]
    assert saved["patience"] == 2 and saved["alpha"] == 0.3 and saved["limit_train"] == 200
    assert json.loads((out / "result.json").read_text())["pruner"]["patience"] == 2


def test_diverging_run_exits_with_a_clear_message(tmp_path):
    result = _run([*BASE, "--lr", "90", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "loss became" in result.output and "lower learning rate" in result.output


def test_models_command_lists_registered_models():
    result = _run(["models"])
    assert result.exit_code == 0 and "lenet5" in result.output and "cifar_cnn" in result.output
