"""A run killed with SIGKILL and resumed ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from neuroprune.cli import main
from neuroprune.engine import load_checkpoint

REPO = Path(__file__).resolve().parents[2]
# Dense run first, then the pruned run with a cosine schedule; checks every 7 steps fall
# mid-epoch (46 steps per epoch), so the checkpoint carries half-gathered activity.
ARGS = [
    "synaptic", "--dataset", "digits", "--epochs", "10", "--batch-size", "32", "--check-every", "7",
    "--warmup-steps", "5", "--lr-schedule", "cosine", "--compare-dense", "--no-measure-latency",
]


@pytest.fixture
def one_thread():
    """The subprocess runs on one thread (OMP_NUM_THREADS=1); in-process runs must match it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _invoke(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output


# Outer limits only, far beyond what the run needs on a slow machine: each wait ends at its
# event (a file appearing, the process exiting), never at a guess of how long the run takes.
OUTER_LIMIT_SECONDS = 600


def _kill_after_first_checkpoint(out: Path, args: list[str] = ARGS, checkpoint: str = "checkpoint.pt") -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen([sys.executable, "-m", "neuroprune", *args, "--out", str(out)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    given_up = time.monotonic() + OUTER_LIMIT_SECONDS
    # the event: that training run's first epoch is done; the run going first ends the wait too
    while not (out / checkpoint).exists():
        if process.poll() is not None or time.monotonic() > given_up:
            process.kill()
            _, err = process.communicate(timeout=OUTER_LIMIT_SECONDS)
            pytest.fail(f"the run ended (or hung) before its first checkpoint: {err.decode()}")
        time.sleep(0.002)  # a file has no event to wait on; this poll costs nothing
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=OUTER_LIMIT_SECONDS)
    return process.returncode


def test_sigkilled_run_resumes_to_the_uninterrupted_result(tmp_path, one_thread):
    reference = tmp_path / "reference"
    _invoke([*ARGS, "--out", str(reference)])

    out = tmp_path / "killed"
    assert _kill_after_first_checkpoint(out) == -signal.SIGKILL
    assert not (out / "result.json").exists()
    stopped_at = load_checkpoint(out / "checkpoint.pt")["epoch"]
    assert 1 <= stopped_at < 10

    _invoke(["synaptic", "--resume", str(out)])

    expected, got = (json.loads((folder / "result.json").read_text()) for folder in (reference, out))
    assert got["test_accuracy"] == expected["test_accuracy"]
    assert got["dense"]["test_accuracy"] == expected["dense"]["test_accuracy"]
    assert got["pruned_fraction"] == expected["pruned_fraction"] > 0.3
    assert got["checks"] == expected["checks"]
    assert [r["test_loss"] for r in got["history"]] == [r["test_loss"] for r in expected["history"]]
    final, final_expected = load_checkpoint(out / "checkpoint.pt"), load_checkpoint(reference / "checkpoint.pt")
    for key, mask in final_expected["pruner"]["masks"].items():
        assert torch.equal(final["pruner"]["masks"][key], mask), key
    for key, weight in final_expected["model"].items():
        assert torch.equal(final["model"][key], weight), key


def test_a_run_killed_while_its_gmp_comparison_trains_resumes_to_the_uninterrupted_result(tmp_path, one_thread):
    args = [*ARGS, "--compare-gmp", "--no-compare-dense"]
    reference = tmp_path / "reference"
    _invoke([*args, "--out", str(reference)])

    out = tmp_path / "killed"
    assert _kill_after_first_checkpoint(out, args, "gmp_checkpoint.pt") == -signal.SIGKILL
    assert not (out / "result.json").exists() and (out / "checkpoint.pt").exists()
    assert 1 <= load_checkpoint(out / "gmp_checkpoint.pt")["epoch"] < 10

    _invoke(["synaptic", "--resume", str(out)])

    expected, got = (json.loads((folder / "result.json").read_text()) for folder in (reference, out))
    assert got["gmp"]["test_accuracy"] == expected["gmp"]["test_accuracy"]
    assert got["gmp"]["pruned_fraction"] == expected["gmp"]["pruned_fraction"] > 0.3
    assert [r["test_loss"] for r in got["gmp"]["history"]] == [r["test_loss"] for r in expected["gmp"]["history"]]
    final, final_expected = (load_checkpoint(folder / "gmp_checkpoint.pt") for folder in (out, reference))
    for key, mask in final_expected["pruner"]["masks"].items():
        assert torch.equal(final["pruner"]["masks"][key], mask), key


def test_resume_takes_no_other_options(tmp_path):
    result = CliRunner().invoke(main, ["synaptic", "--resume", str(tmp_path), "--epochs", "3"])
    assert result.exit_code == 2 and "--epochs" in result.output and "config.json" in result.output


def test_resume_of_a_folder_without_a_run_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["synaptic", "--resume", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "config.json" in result.output and "Traceback" not in result.output


def test_same_seed_gives_identical_results(tmp_path, one_thread):
    args = [*ARGS[:4], "2", "--limit-train", "300", "--check-every", "3", "--no-measure-latency"]
    results = []
    for name in ("a", "b"):
        _invoke([*args, "--out", str(tmp_path / name)])
        result = json.loads((tmp_path / name / "result.json").read_text())
        for record in result["history"]:
            record.pop("seconds")
        result.pop("train_seconds")
        results.append(result)
    assert results[0] == results[1]
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == (tmp_path / "b" / "model.safetensors").read_bytes()
