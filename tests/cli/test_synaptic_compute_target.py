"""`neuroprune synaptic --target-macs / --target-speedup`: a compute target, recorded in result.json."""

import json

import pytest
from click.testing import CliRunner

from neuroprune.cli import main


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


def test_target_speedup_is_pursued_in_the_latency_model_and_checked_by_the_run_timing(tmp_path):
    out = tmp_path / "run"
    result = _run(["synaptic", "--dataset", "digits", "--epochs", "2", "--target-speedup", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "result.json").read_text())
    assert saved["pruner"]["target_latency"] == 0.5 and saved["pruner"]["target_speedup"] == 2.0
    assert saved["pruner"]["target_macs"] is None and saved["checks"][-1]["compute_fraction"] <= 0.5
    check = saved["speedup_target"]
    assert set(check["measured"]) == {"batch_1", "batch_64", "batch_256"}
    assert check["reached"]["batch_1"] == (check["measured"]["batch_1"] >= 0.9 * 2)
    assert "target speed-up 2x" in result.output


def test_two_targets_are_refused_by_name(tmp_path):
    result = _run(["synaptic", "--dataset", "digits", "--target-macs", "0.4", "--target-sparsity", "0.8",
                   "--out", str(tmp_path / "run")])
    assert result.exit_code != 0
    assert "one target" in result.output
