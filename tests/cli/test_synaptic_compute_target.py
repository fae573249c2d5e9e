"""`neuroprune synaptic --target-macs / --target-speedup`: a compute target, recorded in result.json."""

import json

import pytest
from click.testing import CliRunner

from neuroprune.cli import main
from neuroprune.cli.synaptic import _print_synaptic_summary


def _run(args):
    return CliRunner().invoke(main, args)


def test_target_macs_prunes_units_to_the_target_and_records_what_it_did(tmp_path):
    out = tmp_path / "run"
    result = _run(["synaptic", "--dataset", "digits", "--epochs", "3", "--target-macs", "0.4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "result.json").read_text())
    assert saved["pruner"]["granularity"] == "unit" and saved["pruner"]["requested_granularity"] == "auto"
    assert "compute target" in saved["pruner"]["granularity_reason"]
    assert saved["macs_ratio"] == pytest.approx(0.4, rel=0.1)  # MACs, not wall time
    assert saved["macs_compact"] == pytest.approx(saved["macs_ratio"] * saved["macs_dense"])
    assert {"batch_1", "batch_64", "threads"} <= set(saved["latency_ms"])


def test_target_speedup_is_calibrated_recorded_and_checked_by_the_run_timing(tmp_path, mac_clock):
    # the calibration is timed by a MACs clock (deterministic); the run's own latency table is wall time
    out = tmp_path / "run"
    result = _run(["synaptic", "--dataset", "digits", "--model", "lenet5", "--epochs", "2", "--target-speedup", "1.5",
                   "--speedup-batch", "32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "result.json").read_text())
    calibration = saved["pruner"]["latency_calibration"]
    assert saved["pruner"]["target_speedup"] == 1.5 and saved["pruner"]["target_macs"] is None
    assert set(calibration["points"]) == {"32"} and calibration["speedup"] == 1.5
    assert saved["pruner"]["target_latency"] == calibration["layer_share"] < 1 / 1.5  # the overhead costs layers
    assert saved["checks"][-1]["compute_fraction"] <= calibration["layer_share"] + 1e-9
    assert any("retimed" in check for check in saved["checks"])
    check = saved["speedup_target"]
    assert set(check["measured"]) == {"batch_1", "batch_32", "batch_64", "batch_256"}
    assert set(check["reached"]) == {"batch_32"}
    assert check["reached"]["batch_32"] == (check["measured"]["batch_32"] >= 0.9 * 1.5)
    assert "target speed-up 1.5x" in result.output


def test_a_speedup_out_of_reach_is_refused_before_training_in_one_line(tmp_path, mac_clock):
    result = _run(["synaptic", "--dataset", "digits", "--model", "lenet5", "--target-speedup", "3",
                   "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert "target_speedup 3 is out of reach" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run" / "result.json").exists()


def test_two_targets_are_refused_by_name(tmp_path):
    result = _run(["synaptic", "--dataset", "digits", "--target-macs", "0.4", "--target-sparsity", "0.8",
                   "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert "one target" in result.output


def _summary(granularity: str, speedups: dict[int, float]) -> dict:
    latency = {f"batch_{size}": {"dense": 1.0, "compact": 1.0 / speedup, "speedup": speedup, "rounds": 5}
               for size, speedup in speedups.items()}
    return {"model": "resnet20", "dataset": "digits", "test_accuracy": 0.98, "pruned_fraction": 0.3,
            "params_compact": 100, "params_dense": 200, "macs_compact": 10, "macs_dense": 30, "macs_ratio": 1 / 3,
            "train_seconds": 1.0, "latency_ms": {**latency, "threads": 1},
            "pruner": {"granularity": granularity, "requested_granularity": "auto", "granularity_reason": "auto"}}


def test_the_summary_says_where_the_compacted_model_is_not_faster(tmp_path, capsys):
    _print_synaptic_summary(_summary("unit", {1: 0.97, 64: 1.30, 256: 1.88}), tmp_path)
    [note] = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert "not measurably faster than dense at batch 1 (0.97x):" in note and "batch 64 (" not in note
    assert "--target-speedup" in note
    _print_synaptic_summary(_summary("unit", {1: 1.46, 64: 1.29, 256: 1.67}), tmp_path)
    assert "not measurably faster" not in capsys.readouterr().out
