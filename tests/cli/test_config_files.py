"""Config files: shipped configs load, values are range-checked by name, the resolved config is saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from neuroprune.cli import main
from neuroprune.config import SynapticConfig, from_dict, load_config, load_run_config
from neuroprune.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("synaptic_*.yaml")), ids=lambda p: p.stem)
def test_shipped_synaptic_configs_load_and_match_their_names(path):
    config = load_config(SynapticConfig, path)
    assert path.stem == f"synaptic_{config.model}_{config.dataset.replace('-', '_')}"  # benchmarks/synaptic.py's naming


def test_every_benchmark_pair_has_a_config():
    for model in ("mlp", "lenet5"):
        for dataset in ("mnist", "fashion_mnist"):
            assert (CONFIGS / f"synaptic_{model}_{dataset}.yaml").is_file()


@pytest.mark.parametrize(
    "line, key",
    [("alpha: -1", "alpha"), ("momentum: 1.5", "momentum"), ("epochs: 0", "epochs"), ("lr: .nan", "lr"),
     ("weight_decay: .inf", "weight_decay"), ("criterion: loudest", "criterion"), ("seed: -3", "seed"),
     ("warmup_steps: 10\nstop_step: 5", "stop_step"), ("patience: 2.5", "patience"), ("optimizer: [sgd]", "optimizer"),
     ("compare_dense: 1", "compare_dense"), ("target_sparsity: 1.0", "target_sparsity")],
)
def test_out_of_range_and_mistyped_yaml_values_are_named(tmp_path, line, key):
    path = tmp_path / "c.yaml"
    path.write_text(f"dataset: digits\n{line}\n")
    with pytest.raises(ConfigError, match=key):
        load_config(SynapticConfig, path)
    result = CliRunner().invoke(main, ["synaptic", "-c", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and key in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # rejected before anything ran


@pytest.mark.parametrize("criterion", ["deviation", "normalised", "normalised-layerwise"])
def test_fold_bias_is_accepted_with_every_criterion_that_tracks_mean_inputs(criterion):
    # The config accepts exactly what the pruner accepts: a run is not refused by one and allowed by the other.
    assert from_dict(SynapticConfig, {"criterion": criterion, "fold_bias": True}).fold_bias is True


def test_fold_bias_without_mean_inputs_is_refused_naming_the_criteria_that_have_them():
    with pytest.raises(ConfigError, match=r"fold_bias needs .*deviation.*normalised.*got criterion magnitude"):
        from_dict(SynapticConfig, {"criterion": "magnitude", "fold_bias": True})


def test_from_dict_leaves_its_argument_alone():
    values = {"lr": 1, "dataset": "digits"}
    assert from_dict(SynapticConfig, values).lr == 1.0
    assert values == {"lr": 1, "dataset": "digits"}


def test_config_json_holds_config_seed_versions_and_revision(tmp_path):
    out = tmp_path / "run"
    args = ["synaptic", "--dataset", "digits", "--epochs", "1", "--limit-train", "64", "--seed", "4",
            "--no-measure-latency", "--out", str(out)]
    assert CliRunner().invoke(main, args).exit_code == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["seed"] == 4 and saved["config"]["seed"] == 4 and saved["config"]["limit_train"] == 64
    assert saved["environment"]["versions"]["torch"] and "git_revision" in saved["environment"]
    assert saved["processes"] == {"world_size": 1, "backend": None}
    assert load_run_config(SynapticConfig, out) == load_config(SynapticConfig, None, saved["config"])


@pytest.mark.parametrize("text, where", [("epochs: [1, 2\nlr: 0.1\n", "line 2, column 3"),
                                         ("dataset: digits\nepochs: 2\n  lr: 3\n", "line 3, column 5"),
                                         ("\tepochs: 2\n", "line 1, column 1")])
def test_a_yaml_syntax_error_is_one_line_with_its_place(tmp_path, text, where):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="is not valid YAML") as caught:
        load_config(SynapticConfig, path)
    assert "\n" not in str(caught.value) and where in str(caught.value)


@pytest.mark.parametrize("text, key", [("dataset: digits\nepochs: 2\nlr: 0.1\nepochs: 20\n", "'epochs'"),
                                       ("batch-size: 16\nbatch_size: 32\n", "batch_size")])
def test_a_key_given_twice_is_refused(tmp_path, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"{key}.*twice"):
        load_config(SynapticConfig, path)


def test_a_merge_key_may_still_be_overridden(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("<<: {epochs: 3, lr: 0.5}\nepochs: 4\ndataset: digits\n")
    config = load_config(SynapticConfig, path)
    assert (config.epochs, config.lr) == (4, 0.5)
