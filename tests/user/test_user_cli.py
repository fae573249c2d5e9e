"""The CLI on one's own model, weights and data; every bad input is one line and exit status 2."""

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from neuroprune import load_model
from neuroprune.cli import main
from neuroprune.models import create_model

FAST = ["--epochs", "1", "--batch-size", "16", "--no-measure-latency", "--device", "cpu"]


def _run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _error_line(result):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_synaptic_on_a_model_file_and_an_image_folder(model_file, images, tmp_path):
    out = tmp_path / "run"
    result = _run(["synaptic", "--model", f"{model_file}:Net", "--data", images, "--granularity", "unit",
                   *FAST, "--out", out])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["model"] == f"{model_file}:Net" and config["data"] == str(images)
    assert json.loads((out / "result.json").read_text())["dataset"] == str(images)
    small, metadata = load_model(out)  # the compacted model rebuilds without the factory
    assert small(torch.zeros(1, 1, 8, 8)).shape == (1, 3) and metadata["input_shape"] == [1, 8, 8]
    # depth candidates of the compacted run: --checkpoint rebuilds it from model.json
    result = _run(["depth", "candidates", "--model", f"{model_file}:Net", "--checkpoint", out, "--json"])
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.output), list)


def test_module_path_model_args_from_yaml_and_npz_data(model_module, npz, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {model_module}:Net\nmodel_args:\n  hidden: 6\ndata: {npz}\n")
    out = tmp_path / "run"
    result = _run(["train", "-c", config, *FAST[:4], "--device", "cpu", "--out", out])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "model.json").read_text())["metadata"]
    assert saved["model_options"]["hidden"] == 6 and saved["model"] == f"{model_module}:Net"
    assert json.loads((out / "config.json").read_text())["config"]["model_args"] == {"hidden": 6}
    result = _run(["depth", "candidates", "-c", config, "--checkpoint", out, "--json"])
    assert result.exit_code == 0, result.output


def test_weights_that_fit_start_the_run(model_file, images, tmp_path):
    torch.manual_seed(3)
    state = create_model(f"{model_file}:Net", num_classes=3).state_dict()
    weights = tmp_path / "start.safetensors"
    save_file(state, str(weights))
    out = tmp_path / "run"
    result = _run(["synaptic", "--model", f"{model_file}:Net", "--data", images, "--weights", weights,
                   "--compare-dense", "--lr", "1e-9", "--patience", "100", "--granularity", "connection", *FAST,
                   "--out", out])
    assert result.exit_code == 0, result.output
    # nothing pruned, lr ~ 0: the compacted model is the starting one
    small, _ = load_model(out)
    assert torch.allclose(small.state_dict()["0.weight"], state["0.weight"], atol=1e-6)


def test_mismatched_weights_name_the_first_key(model_file, images, tmp_path):
    torch.manual_seed(3)
    weights = tmp_path / "other.safetensors"
    save_file(create_model(f"{model_file}:Net", num_classes=3, hidden=9).state_dict(), str(weights))
    line = _error_line(_run(["synaptic", "--model", f"{model_file}:Net", "--data", images, "--weights", weights,
                             *FAST, "--out", tmp_path / "run"]))
    assert "'6.weight' is (9, 128) in the file but (16, 128) in the model" in line
    assert not (tmp_path / "run").exists()


def _broken_image(images):
    (images / "1" / "broken.png").write_bytes(b"not a png")
    return images, "broken.png is not a readable image"


def _empty_class(images):
    (images / "9").mkdir()
    return images, "holds no images"


def _mixed_sizes(images):
    from PIL import Image

    Image.new("L", (9, 9)).save(images / "2" / "odd.png")
    return images, "odd.png is 9x9 pixels"


def _labels_out_of_range(images):
    import numpy as np

    path = images.parent / "labels.npz"
    x = np.zeros((4, 1, 8, 8), np.uint8)
    np.savez(path, x_train=x, y_train=np.array([0, 1, 0, 1]), x_test=x, y_test=np.array([0, 5, 1, 0]))
    return path, "labels.npz: y_test holds labels 0..5"


def _missing(images):
    return images.parent / "nowhere", "nowhere does not exist"


@pytest.mark.parametrize("make", [_broken_image, _empty_class, _mixed_sizes, _labels_out_of_range, _missing])
@pytest.mark.parametrize("command", [["synaptic"], ["train"]])
def test_bad_data_is_one_line_naming_the_file(model_file, images, tmp_path, make, command):
    data, message = make(images)
    line = _error_line(_run([*command, "--model", f"{model_file}:Net", "--data", data, *FAST[:4],
                             "--out", tmp_path / "run"]))
    assert message in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("reference, message", [
    ("{file}:Missing", "has no 'Missing'"),
    ("{file}:broken", "raised ValueError while building the model"),
    ("{dir}/absent.py:Net", "absent.py does not exist"),
    ("no_such_module_xyz:Net", "cannot import module 'no_such_module_xyz'"),
    ("{file}:", "is not a model reference"),
])
def test_bad_model_references_are_one_line(model_file, images, tmp_path, reference, message):
    reference = reference.format(file=model_file, dir=tmp_path)
    for command in (["synaptic"], ["train"], ["depth", "candidates"]):
        extra = [] if command[0] == "depth" else ["--out", tmp_path / "run"]
        line = _error_line(_run([*command, "--model", reference, "--data", images, *extra]))
        assert message in line


def test_a_model_that_does_not_fit_the_data_is_refused_before_training(model_file, tmp_path, write_images):
    big = write_images(tmp_path / "big", classes=2, per_class=8, size=16)
    line = _error_line(_run(["depth", "candidates", "--model", f"{model_file}:Net", "--data", big]))
    assert "cannot run on inputs of shape (1, 1, 16, 16)" in line


def test_depth_candidates_with_the_compacted_weights_builds_the_compacted_model(model_file, images, tmp_path):
    out = tmp_path / "run"
    args = ["synaptic", "--model", f"{model_file}:Net", "--data", images, "--granularity", "unit", *FAST]
    assert _run([*args, "--out", out]).exit_code == 0
    # the compacted weights cannot fit the factory's widths; model.json beside them describes their model
    by_weights = _run(["depth", "candidates", "--model", f"{model_file}:Net", "--weights", out / "model.safetensors",
                       "--json"])
    assert by_weights.exit_code == 0, by_weights.output
    assert f"note: {out / 'model.safetensors'} belongs to the model described in" in by_weights.output
    by_checkpoint = _run(["depth", "candidates", "--model", f"{model_file}:Net", "--checkpoint", out, "--json"])
    listed = by_weights.output[by_weights.output.index("["):]
    assert json.loads(listed) == json.loads(by_checkpoint.output)


def test_weights_that_fit_no_model_say_to_use_checkpoint(model_file, images, tmp_path):
    out = tmp_path / "run"
    assert _run(["synaptic", "--model", f"{model_file}:Net", "--data", images, *FAST, "--out", out]).exit_code == 0
    result = json.loads((out / "result.json").read_text())
    assert result["params_compact"] < result["params_dense"]  # narrower than the factory builds
    line = _error_line(_run(["synaptic", "--model", f"{model_file}:Net", "--data", images, "--weights",
                             out / "model.safetensors", *FAST, "--out", tmp_path / "again"]))
    assert "do not fit my_net.py:Net" in line and f"pass --checkpoint {out}" in line


def test_image_size_needs_data(tmp_path):
    line = _error_line(_run(["synaptic", "--image-size", "8", "--out", tmp_path / "run"]))
    assert "give --data PATH" in line


def test_resume_finds_the_model_file_and_data_from_another_folder(model_file, images, tmp_path, monkeypatch):
    monkeypatch.chdir(model_file.parent)
    out = tmp_path / "run"
    args = ["synaptic", "--model", "my_net.py:Net", "--data", "../images", "--granularity", "connection", *FAST]
    assert _run([*args, "--out", out]).exit_code == 0
    (out / "result.json").unlink()  # as if the run had stopped after its last checkpoint
    monkeypatch.chdir(tmp_path.parent)
    result = _run(["synaptic", "--resume", out])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "result.json").read_text())["model"] == f"{model_file}:Net"
