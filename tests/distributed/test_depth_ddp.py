"""``neuroprune train`` and ``neuroprune depth --cut`` under torchrun: two Gloo processes on 127.0.0.1.

Rank 0 alone prints and writes files; accuracies cover the whole test split (summed over the
ranks); the search refuses to run in more than one process.
"""

from __future__ import annotations

import json

from neuroprune import create_loader
from neuroprune.engine import evaluate
from neuroprune.runs.train import load_trained

MODEL = ["--model", "resnet20", "--width", "0.25", "--dataset", "digits", "--pad-to", "16"]


def test_torchrun_trains_and_depth_prunes_data_parallel_and_rank_zero_writes(tmp_path, torchrun):
    base, pruned = tmp_path / "base", tmp_path / "pruned"
    done = torchrun("train", *MODEL, "--epochs", "1", "--batch-size", "32", "--out", str(base))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("weights in") == 1  # only rank 0 prints
    trained = json.loads((base / "result.json").read_text())
    assert trained["processes"] == {"world_size": 2}
    assert 0 <= trained["test_accuracy"] <= 1 and "lr" in trained["history"][0]  # the engine's EpochLRScheduler

    done = torchrun("depth", *MODEL, "--checkpoint", str(base), "--cut", "layer1.2:layer3.0", "--translator-epochs",
                     "1", "--finetune-epochs", "1", "--batch-size", "32", "--latency-repeats", "3", "--out",
                     str(pruned))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("results in") == 1
    result = json.loads((pruned / "result.json").read_text())
    assert 0 <= result["accuracy_pruned"] <= 1
    assert [p["name"] for p in result["recovery"]["phases"]] == ["translator", "finetune"]
    assert result["params_pruned"] < result["params_base"]
    assert (pruned / "model.safetensors").is_file()

    # the base accuracy is that of one process on the whole test split, not one rank's half
    model, _ = load_trained("resnet20", base, {"in_channels": 1, "image_size": 16, "num_classes": 10})
    whole = create_loader("digits", "test", 1000, pad_to=16)
    assert abs(result["accuracy_base"] - evaluate(model, whole)["accuracy"]) < 1e-9


def test_depth_search_refuses_several_processes(tmp_path, torchrun):
    # `depth search` goes through the same run_depth check as the flag
    done = torchrun("depth", "--search", *MODEL, "--out", str(tmp_path / "search"))
    # each rank exits with status 2 and the message before loading anything; torchrun then
    # exits 1 itself and names the ranks' exit code in its report
    assert done.returncode != 0
    assert done.stderr.count("error: the cut search runs in one process, not 2") == 2
    assert "exitcode  : 2" in done.stderr
    assert not (tmp_path / "search").exists()
