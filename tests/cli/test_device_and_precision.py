"""`--device` and `--precision` on the training commands."""

import json

import pytest
from click.testing import CliRunner

from neuroprune.cli import main


def _run(args):
    return CliRunner().invoke(main, args)


def test_synaptic_in_bf16_on_the_cpu_prunes_and_records_device_and_precision(tmp_path):
    out = tmp_path / "run"
    result = _run(["synaptic", "--dataset", "digits", "--model", "mlp", "--epochs", "5", "--precision", "bf16-mixed",
                   "--device", "cpu", "--no-measure-latency", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "result.json").read_text())
    assert (saved["device"], saved["precision"]) == ("cpu", "bf16-mixed")
    assert saved["pruned_fraction"] > 0.3
    assert saved["compact_max_abs_diff"] < 1e-4


def test_a_device_this_machine_lacks_or_an_unknown_precision_is_one_line(tmp_path):
    import torch

    args = ["synaptic", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path / "run")]
    if not torch.cuda.is_available():
        result = _run([*args, "--device", "cuda"])
        assert result.exit_code == 2
        assert "CUDA" in result.output and "Traceback" not in result.output
    result = _run([*args, "--device", "tpu"])
    assert result.exit_code == 2 and "device must be" in result.output
    result = _run([*args, "--precision", "8"])
    assert result.exit_code == 2 and "precision" in result.output


def test_output_folder_problems_are_one_line_with_exit_status_2(tmp_path, monkeypatch):
    import errno

    import neuroprune.storage as storage

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = _run(["synaptic", "--dataset", "digits", "--epochs", "1", "--out", str(blocker / "run")])
    assert result.exit_code == 2, result.output
    assert "not a folder" in result.output and "Traceback" not in result.output

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run" / "x"))

    monkeypatch.setattr(storage.tempfile, "mkstemp", full_disk)
    result = _run(["synaptic", "--dataset", "digits", "--epochs", "1", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "No space left on device" in result.output and "free some disk space" in result.output
    assert len(result.output.strip().splitlines()) == 1



@pytest.mark.parametrize("flag, value", [("--lr", "1e308"), ("--seed", "99999999999999999999"),
                                         ("--epochs", "99999999999999999999")])
def test_values_that_would_fail_after_the_start_are_refused_by_name(tmp_path, flag, value):
    result = _run(["synaptic", "--dataset", "digits", flag, value, "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert flag.removeprefix("--") in result.output and "at most" in result.output
    config = tmp_path / "run.yaml"
    config.write_text(f"{flag.removeprefix('--')}: {'1.0e+308' if value == '1e308' else value}\n")  # YAML 1.1 floats
    result = _run(["synaptic", "-c", str(config), "--dataset", "digits", "--out", str(tmp_path / "run2")])
    assert result.exit_code == 2 and "at most" in result.output
