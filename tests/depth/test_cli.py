"""``neuroprune train`` and ``neuroprune depth`` end to end on digits with a tiny ResNet."""

import json
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner

from neuroprune.cli.depth import depth_group
from neuroprune.cli.train import train_command
from neuroprune.depth import load_graph_model

TINY = ["--model", "resnet20", "--dataset", "digits", "--width", "0.125", "--pad-to", "16",
        "--limit-train", "128", "--limit-test", "64", "--batch-size", "64"]


@pytest.fixture(scope="module")
def cli() -> click.Group:
    group = click.Group("neuroprune")
    group.add_command(train_command)
    group.add_command(depth_group)
    return group


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, cli: click.Group) -> Path:
    out = tmp_path_factory.mktemp("base")
    result = CliRunner().invoke(cli, ["train", *TINY, "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_weights_and_architecture(base: Path) -> None:
    assert (base / "model.safetensors").is_file()
    saved = json.loads((base / "model.json").read_text())
    assert saved["metadata"]["model"] == "resnet20" and saved["metadata"]["model_options"]["width"] == 0.125
    assert saved["architecture"]["format"] == "neuroprune.graph/1"


def test_candidates_lists_cuts(cli: click.Group, base: Path) -> None:
    result = CliRunner().invoke(cli, ["depth", "candidates", *TINY[:8], "--checkpoint", str(base), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert any(r["cut"] == "layer1.2:layer3.0" and r["crosses_stages"] for r in rows)


def test_depth_cut_writes_result_and_model(cli: click.Group, base: Path, tmp_path: Path) -> None:
    args = ["depth", *TINY, "--checkpoint", str(base), "--cut", "layer1.0:layer3.1", "--translator-epochs", "1",
            "--finetune-epochs", "1", "--distill", "--latency-repeats", "3", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "result.json").read_text())
    for key in ("method", "model", "dataset", "cut", "accuracy_base", "accuracy_pruned", "params_base", "params_pruned",
                "macs_base", "macs_pruned", "latency_ms_base", "latency_ms_pruned", "recovery"):
        assert key in saved, key
    assert saved["cut"]["translator"]["in_shape"] == [2, 16, 16] and saved["params_pruned"] < saved["params_base"]
    assert set(saved["latency_ms_pruned"]) == {"batch_1", "batch_64"}
    assert [p["name"] for p in saved["recovery"]["phases"]] == ["translator", "finetune"]
    model, _ = load_graph_model(tmp_path)
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)


def test_search_with_config_file(cli: click.Group, base: Path, tmp_path: Path) -> None:
    config = tmp_path / "search.yaml"
    config.write_text("max_evaluated: 2\nsearch_epochs: 1\nsearch_limit_train: 64\ntranslator_epochs: 1\n"
                      "latency_repeats: 3\n")
    result = CliRunner().invoke(cli, ["depth", "search", "-c", str(config), *TINY, "--checkpoint", str(base),
                                      "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "run" / "candidates.json").read_text())
    assert sum(r["accuracy"] is not None for r in rows) == 2
    assert json.loads((tmp_path / "run" / "result.json").read_text())["search"]["evaluated"] == 2


def test_errors_are_one_line(cli: click.Group, base: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["depth", *TINY, "--checkpoint", str(base), "--cut", "layer3.0:layer1.1",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2 and "does not come after" in result.output and "valid cuts" in result.output
    result = CliRunner().invoke(cli, ["depth", *TINY, "--checkpoint", str(base), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "exactly one of cut" in result.output
    lone = tmp_path / "lone"  # weights without the model.json that records their width
    lone.mkdir()
    (lone / "model.safetensors").write_bytes((base / "model.safetensors").read_bytes())
    result = CliRunner().invoke(cli, ["depth", *TINY, "--width", "0.25", "--checkpoint", str(lone),
                                      "--cut", "relu:layer3.0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "conv1.weight: file (2, 1, 3, 3) vs model (4, 1, 3, 3)" in result.output


def _watch_splits(monkeypatch, depth_run, search: str) -> tuple[dict[int, str], list[str]]:
    """Make ``depth_run.<search>`` record the split of its eval and train loaders, in that order."""
    made: dict[int, str] = {}
    seen: list[str] = []
    real_loader, real_search = depth_run.create_loader, getattr(depth_run, search)

    def remembering_loader(name, split, *args, **kwargs):
        loader = real_loader(name, split, *args, **kwargs)
        made[id(loader)] = split
        return loader

    def watched_search(pruner, train_loader, eval_loader, **kwargs):
        seen.extend([made[id(eval_loader)], made[id(train_loader)]])
        return real_search(pruner, train_loader, eval_loader, **kwargs)

    monkeypatch.setattr(depth_run, "create_loader", remembering_loader)
    monkeypatch.setattr(depth_run, search, watched_search)
    return made, seen


def test_the_search_chooses_on_the_validation_split_never_on_test(base: Path, tmp_path: Path, monkeypatch) -> None:
    import neuroprune.runs.depth as depth_run
    from neuroprune.depth.config import DepthConfig

    made, seen = _watch_splits(monkeypatch, depth_run, "search_cuts")
    config = DepthConfig(model="resnet20", dataset="digits", width=0.125, pad_to=16, limit_train=128, limit_test=64,
                         batch_size=64, checkpoint=str(base), search=True, max_evaluated=2, search_epochs=1,
                         search_limit_train=64, translator_epochs=1, latency_repeats=2)
    result = depth_run.run_depth(config, tmp_path)
    assert seen == ["validation", "fit"]
    assert result["selection_split"] == "validation" and result["validation_size"] == 144  # 10% of digits' train
    assert "test" in made.values()  # the test split is still there, for the final numbers only
    assert set(result["latency"]) >= {"batch_1", "batch_64", "threads", "rounds", "repeats"}


def test_greedy_search_cuts_several_spans_chosen_on_validation(base: Path, tmp_path: Path, monkeypatch,
                                                               cli: click.Group) -> None:
    import neuroprune.runs.depth as depth_run

    _, seen = _watch_splits(monkeypatch, depth_run, "greedy_cuts")
    out = tmp_path / "greedy"
    result = CliRunner().invoke(cli, ["depth", "search", *TINY, "--checkpoint", str(base),
                                      "--search-strategy", "greedy", "--efficiency", "macs", "--max-macs", "40000",
                                      "--finetune-epochs", "1", "--latency-repeats", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert seen == ["validation", "fit"]
    saved = json.loads((out / "result.json").read_text())
    steps = json.loads((out / "candidates.json").read_text())
    assert saved["search"]["strategy"] == "greedy" and saved["selection_split"] == "validation"
    assert saved["cut"]["cut"] == steps[-1]["cut"] and len(saved["cut"]["spans"]) == saved["cut"]["cut"].count(",") + 1
    assert saved["macs_pruned"] <= 40000 < saved["macs_base"] and saved["macs_pruned"] == steps[-1]["macs"]
    assert f"cut {saved['cut']['cut']} " in result.output
    model, spec = load_graph_model(out)
    assert spec["cut"] == saved["cut"]["cut"] and model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)


def test_greedy_search_refuses_a_fixed_bridge(cli: click.Group, base: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["depth", "search", *TINY, "--checkpoint", str(base),
                                      "--search-strategy", "greedy", "--bridge", "translator",
                                      "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "leave bridge unset or 'auto'" in result.output


def test_several_given_cuts(cli: click.Group, base: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["depth", *TINY, "--checkpoint", str(base),
                                      "--cut", "layer2.0:layer2.2,relu:layer1.1", "--bridge", "auto",
                                      "--translator-epochs", "0", "--latency-repeats", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["cut"]["cut"] == "relu:layer1.1,layer2.0:layer2.2" and saved["cut"]["bridge"] == "identity"
    assert [s["removed"] for s in saved["cut"]["spans"]] == [["layer1.0"], ["layer2.1"]]
    assert saved["cut"]["removed"] == ["layer1.0", "layer2.1"] and "origin" not in saved["cut"]
    model, _ = load_graph_model(tmp_path)
    assert "layer1.0.conv1.weight" not in model.state_dict() and "layer1.1.conv1.weight" in model.state_dict()


def test_cuts_then_units_in_one_recovery(cli: click.Group, tmp_path: Path, mac_clock) -> None:
    """The cut network loses units while it is fine-tuned, until the (MAC) clock says 1.25x faster again."""
    wide = [*TINY[:4], "--width", "0.5", *TINY[6:]]  # 8/16/32 channels: room for units to go
    assert CliRunner().invoke(cli, ["train", *wide, "--epochs", "1", "--out", str(tmp_path / "base")]).exit_code == 0
    common = ["depth", *wide, "--checkpoint", str(tmp_path / "base"), "--cut", "layer1.0:layer2.1",
              "--translator-epochs", "1", "--latency-repeats", "3"]
    result = CliRunner().invoke(cli, [*common, "--then-units-speedup", "1.25", "--out", str(tmp_path / "no")])
    assert result.exit_code == 2 and "set finetune_epochs >= 1" in result.output
    result = CliRunner().invoke(cli, [*common, "--finetune-epochs", "2", "--then-units-speedup", "1.25",
                                      "--out", str(tmp_path / "cut")])
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "cut" / "result.json").read_text())
    units = saved["units"]
    assert units["target_speedup"] == 1.25 and units["latency_batch_sizes"] == [1, 64] and units["epochs"] == 2
    assert units["max_unit_ratio"] == 1.0 and units["prune_until"] == 0.6
    assert units["latency_calibration"]["speedup"] == 1.25 and set(units["speedup_over_cut"]) == {"batch_1", "batch_64"}
    # a fixed half of the time at batch 1 stays: 1.25x leaves (1/1.25 - 0.5) / 0.5 = 60% of the layers' MACs
    assert 0.45 < units["macs_fraction"] < 0.7
    assert [p["name"] for p in saved["recovery"]["phases"]] == ["translator", "finetune"]
    assert saved["channels"] is None
    model, _ = load_graph_model(tmp_path / "cut")
    cut_only = CliRunner().invoke(cli, [*common, "--finetune-epochs", "1", "--out", str(tmp_path / "plain")])
    assert cut_only.exit_code == 0, cut_only.output
    plain = json.loads((tmp_path / "plain" / "result.json").read_text())
    assert plain["units"] is None and saved["macs_pruned"] < 0.75 * plain["macs_pruned"]
    assert saved["params_pruned"] < plain["params_pruned"]
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)
    # half of every space kept leaves at least a quarter of the conv MACs: 1.9x is out of reach, and said so
    capped = CliRunner().invoke(cli, [*common, "--finetune-epochs", "1", "--then-units-speedup", "1.9",
                                      "--then-units-max-ratio", "0.5", "--out", str(tmp_path / "capped")])
    assert capped.exit_code == 2, capped.output
    assert "out of reach" in capped.output and "50% of every unit space's units removed" in capped.output
    assert "Traceback" not in capped.output


@pytest.mark.parametrize(("options", "message"), [
    ({"then_units_speedup": 1.0, "finetune_epochs": 1}, "must be > 1"),
    ({"then_units_batch": 64}, "then_units_batch goes with then_units_speedup"),
    ({"then_units_speedup": 2.0, "finetune_epochs": 1, "then_channels": 0.5}, "choose one way to narrow"),
    ({"then_units_speedup": 2.0, "finetune_epochs": 1, "then_units_batch": 0}, "then_units_batch must be >= 1"),
    ({"then_units_max_ratio": 0.5}, "then_units_max_ratio goes with then_units_speedup"),
    ({"then_units_speedup": 2.0, "finetune_epochs": 1, "then_units_max_ratio": 0.0}, r"must be in \(0, 1\]"),
    ({"then_units_speedup": 2.0, "finetune_epochs": 1, "then_units_max_ratio": 1.5}, r"must be in \(0, 1\]"),
    ({"then_units_until": 0.3}, "then_units_until goes with then_units_speedup"),
    ({"then_units_speedup": 2.0, "finetune_epochs": 1, "then_units_until": 0.05}, r"must be in \(0\.05, 1\]"),
    ({"then_units_speedup": 2.0, "finetune_epochs": 1, "then_units_until": 1.2}, r"must be in \(0\.05, 1\]"),
])
def test_then_units_options_are_checked_before_any_work(options, message) -> None:
    from neuroprune.depth.config import DepthConfig
    from neuroprune.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        DepthConfig(model="resnet20", cut="layer1.0:layer2.1", **options)
