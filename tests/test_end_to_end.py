"""The main job, small: synaptic pruning of the MLP on real handwritten digits."""

import csv
import json

import torch

from neuroprune import create_loader, load_model
from neuroprune.config import SynapticConfig
from neuroprune.runs.synaptic import run_synaptic


def test_synaptic_run_on_digits_prunes_most_connections_and_still_classifies(tmp_path):
    config = SynapticConfig(dataset="digits", model="mlp", epochs=12, batch_size=32, lr=0.05,
                            alpha=0.5, patience=3, check_every=15, warmup_steps=45, compare_dense=True)
    result = run_synaptic(config, tmp_path)

    assert result["pruned_fraction"] > 0.6
    assert result["test_accuracy"] > 0.9
    assert result["test_accuracy"] > result["dense"]["test_accuracy"] - 0.03
    assert result["params_compact"] < result["params_dense"]
    assert result["macs_compact"] < result["macs_dense"]
    assert result["compact_max_abs_diff"] < 1e-4
    assert result["connections_pruned"] == sum(row["pruned"] for row in result["per_layer"])
    for key in ("method", "dataset", "model", "epochs", "seed", "connections_total", "train_seconds", "per_layer"):
        assert key in result
    assert json.loads((tmp_path / "result.json").read_text())["pruned_fraction"] == result["pruned_fraction"]

    with open(tmp_path / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["run"] for r in rows} == {"synaptic", "dense"} and len(rows) == 24

    # the compacted model rebuilds from its two files alone and gives the reported accuracy
    small, metadata = load_model(tmp_path)
    small.eval()
    correct = total = 0
    with torch.inference_mode():
        for x, y in create_loader("digits", "test", 256):
            correct += int((small(x).argmax(1) == y).sum())
            total += len(y)
    assert abs(correct / total - result["test_accuracy"]) < 1e-9
    assert metadata["dataset"] == "digits"
