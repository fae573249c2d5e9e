"""Files from someone else: every broken or hostile field is one clear ModelError, and sizes
declared in a model description are checked against the weights file before anything is allocated."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import neuroprune as npr
from neuroprune import ModelError
from neuroprune.runs.train import load_trained
from neuroprune.storage import load_torch


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    npr.save_model(nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)), tmp_path)
    return tmp_path


def _edit(folder, change):
    path = folder / "model.json"
    document = json.loads(path.read_text())
    change(document["architecture"]["layers"])
    path.write_text(json.dumps(document))


@pytest.mark.parametrize("change, message", [
    (lambda layers: layers[1]["args"].update(out_features=10**12), "do not fit"),
    (lambda layers: layers[1]["args"].update(out_features=-4), "cannot be built|malformed"),
    (lambda layers: layers.__setitem__(1, "Linear"), "cannot be built|malformed"),
    (lambda layers: layers[1].__setitem__("args", [16, 8]), "cannot be built|malformed"),
    (lambda layers: layers[1]["args"].update(in_features="sixteen"), "cannot be built|malformed"),
])
def test_malformed_layer_entries_are_one_clear_error(saved, change, message):
    _edit(saved, change)
    with pytest.raises(ModelError, match=message):
        npr.load_model(saved)


def test_a_huge_declared_layer_is_refused_without_allocating_it(saved):
    _edit(saved, lambda layers: layers[1]["args"].update(out_features=10**7))  # 640 MB of weights if built
    script = textwrap.dedent(f"""
        import resource, neuroprune as npr
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            npr.load_model({str(saved)!r})
        except npr.ModelError as exc:
            print("refused:", str(exc)[:80])
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    lines = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert lines[0].startswith("refused:")
    assert int(lines[1]) < 200  # MB of peak memory added by the load: nothing near the declared size


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"{not json", b"[" * 100000 + b"]" * 100000, b"[]"])
def test_broken_model_json_is_one_clear_error(saved, content):
    (saved / "model.json").write_bytes(content)
    with pytest.raises(ModelError, match="model.json"):
        npr.load_model(saved)


def test_an_empty_checkpoint_file_is_one_clear_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(ModelError, match="checkpoint.pt"):
        load_torch(tmp_path / "checkpoint.pt")


def _trained_folder(tmp_path):
    torch.manual_seed(0)
    model = npr.create_model("resnet20", in_channels=1, image_size=16, width=0.125)
    npr.save_model(model, tmp_path)
    document = json.loads((tmp_path / "model.json").read_text())
    document["metadata"] = {"model": "resnet20", "model_options": {"in_channels": 1, "image_size": 16, "width": 0.125}}
    (tmp_path / "model.json").write_text(json.dumps(document))
    return tmp_path


def test_a_training_checkpoint_with_a_hostile_width_is_refused_before_building(tmp_path):
    folder = _trained_folder(tmp_path)
    model, _ = load_trained("resnet20", folder, {})
    assert model.conv1.out_channels == 2
    document = json.loads((folder / "model.json").read_text())
    document["metadata"]["model_options"]["width"] = 10000  # 29 TB of weights if built
    (folder / "model.json").write_text(json.dumps(document))
    with pytest.raises(ModelError, match="do not fit"):
        load_trained("resnet20", folder, {})
    (folder / "model.json").write_text("{garbage")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_trained("resnet20", folder, {})


def test_a_yaml_anchor_bomb_under_a_known_key_is_refused_in_bounded_memory(tmp_path):
    import tracemalloc

    from neuroprune import ConfigError
    from neuroprune.config import SynapticConfig, load_config

    value = '&a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]'
    for name in "bcdefgh":  # each level: the previous one, then 8 more references to it
        value = f"&{name} [{value}, {', '.join(['*' + chr(ord(name) - 1)] * 8)}]"
    text = f"seed: {value}\n"
    path = tmp_path / "bomb.yaml"
    path.write_text(text)  # under 1 KB; 9^8 items when expanded
    assert path.stat().st_size < 1024
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as caught:
            load_config(SynapticConfig, path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(str(caught.value)) < 400
    assert peak < 20 * 2**20


def test_a_width_that_conflicts_with_the_checkpoint_is_refused(tmp_path):
    folder = _trained_folder(tmp_path)  # trained at width 0.125
    with pytest.raises(ModelError, match=r"--width 0.5 .* width 0.125"):
        load_trained("resnet20", folder, {"in_channels": 1, "image_size": 16, "width": 0.5})
    model, used = load_trained("resnet20", folder, {"in_channels": 1, "image_size": 16})  # no width given
    assert used["width"] == 0.125 and model.conv1.out_channels == 2
    model, _ = load_trained("resnet20", folder, {"width": 0.125})  # the same width, given
    assert model.conv1.out_channels == 2


def test_depth_with_a_conflicting_width_says_so(tmp_path):
    from click.testing import CliRunner

    from neuroprune.cli import main

    folder = _trained_folder(tmp_path / "base")
    result = CliRunner().invoke(main, ["depth", "--model", "resnet20", "--dataset", "digits", "--pad-to", "16",
                                       "--width", "0.5", "--checkpoint", str(folder), "--cut", "relu:layer3.0",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert "--width 0.5 was given" in line and "trained at width 0.125" in line
