"""`neuroprune synaptic --pretrained`: pruning while fine-tuning from the published weights."""

import json

import pytest
import torch
import yaml
from click.testing import CliRunner

from neuroprune.cli import main
from neuroprune.models import efficientnet


@pytest.fixture
def published(monkeypatch):
    """Stand-in published weights (seeded, the real names and shapes); counts the loads."""
    torch.manual_seed(1)
    state = efficientnet.efficientnet_lite0_body(32).state_dict()
    loads = []

    def pretrained_state(name):
        loads.append(name)
        return state

    monkeypatch.setattr(efficientnet, "pretrained_state", pretrained_state)
    return loads


def _config(tmp_path, **extra):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "model": "efficientnet_lite0", "model_args": {"resolution": 32}, "dataset": "digits", "epochs": 1,
        "limit_train": 32, "limit_test": 32, "target_sparsity": 0.5, "granularity": "connection",
        "measure_latency": False, **extra}))
    return str(path)


def test_pretrained_starts_the_run_and_its_dense_peer_from_the_published_weights(tmp_path, published):
    alone = CliRunner().invoke(main, ["synaptic", "-c", _config(tmp_path), "--pretrained",
                                      "--out", str(tmp_path / "alone")])
    assert alone.exit_code == 0, alone.output
    loads_alone = len(published)
    assert loads_alone >= 1 and set(published) == {"efficientnet_lite0"}
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["synaptic", "-c", _config(tmp_path), "--pretrained", "--compare-dense",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert len(published) == 2 * loads_alone + 1  # the same loads again, and one more: the dense peer's start
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["pretrained"] is True


def test_without_pretrained_the_published_weights_are_not_read(tmp_path, published):
    result = CliRunner().invoke(main, ["synaptic", "-c", _config(tmp_path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert published == []


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "mlp", "--pretrained"], "pretrained weights are known for efficientnet_lite0, not mlp"),
    (["--model", "efficientnet_lite0", "--pretrained", "--weights", "start.safetensors"], "not both"),
])
def test_pretrained_refuses_what_it_cannot_start_from(tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["synaptic", "--dataset", "digits", *args, "--out", str(out)])
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert not out.exists()
