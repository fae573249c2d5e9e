"""The synaptic benchmark's bookkeeping: appended runs merge, learning speed and the criterion table."""

import argparse
import json

import pytest
import torch

from neuroprune.bench import synaptic as bench
from neuroprune.bench import synaptic_report as report


def _method(per_epoch, validation=None):
    result = {"test_accuracy": per_epoch[-1], "accuracy_per_epoch": per_epoch}
    if validation:
        result.update(validation_accuracy=validation[-1], validation_per_epoch=validation)
    return result


def _run(seed, targets, dense=None):
    run = {"dataset": "fashion-mnist", "model": "resnet20", "seed": seed, "epochs": 3, "inputs": "standard",
           "config": {"epochs": 3, "limit_train": 100, "model_args": None}, "targets": targets}
    if dense:
        run["dense"] = dense
    return run


def test_appended_pieces_merge_into_one_run_per_seed():
    first = [_run(0, {"0.9": {"gmp": _method([0.5, 0.6])}}, dense=_method([0.6, 0.8]))]
    second = [_run(0, {"0.9": {"synaptic:normalised": _method([0.7, 0.79])}}), _run(1, {"0.9": {}})]
    merged = bench._merge(first, second)
    assert [r["seed"] for r in merged] == [0, 1]
    assert set(merged[0]["targets"]["0.9"]) == {"gmp", "synaptic:normalised"} and "dense" in merged[0]
    other = _run(0, {})
    other["config"] = {**other["config"], "epochs": 5}
    with pytest.raises(SystemExit, match="epochs"):
        bench._merge(merged, [other])


def test_learning_speed_is_the_first_epoch_within_half_a_point_of_dense():
    runs = [_run(0, {"0.9": {"synaptic:normalised": _method([0.70, 0.796, 0.80], [0.6, 0.7, 0.9]),
                             "gmp": _method([0.70, 0.78, 0.79], [0.6, 0.7, 0.7])}},
                 dense=_method([0.75, 0.79, 0.80], [0.7, 0.8, 0.85]))]
    report.learning_speed(runs)
    row = runs[0]["targets"]["0.9"]
    assert row["synaptic:normalised"]["epoch_reaching_dense"] == {"test": 2, "validation": 3}
    assert row["gmp"]["epoch_reaching_dense"] == {"test": None, "validation": None}
    assert runs[0]["dense"]["epoch_reaching_dense"] == {"test": 3, "validation": 3}


def test_the_table_marks_the_validation_choice_and_compares_with_the_better_gmp():
    runs = [_run(seed, {"0.9": {"synaptic:normalised": _method([0.81], [0.90]), "gmp": _method([0.80], [0.80]),
                                "gmp-layer": _method([0.83], [0.85])}}, dense=_method([0.84], [0.9]))
            for seed in (0, 1)]
    report.learning_speed(runs)
    payload = {"commands": ["python benchmarks/synaptic.py ..."], "command": "",
               "environment": {"processor": "x", "versions": {"torch": torch.__version__}, "torch_threads": 1},
               "runs": runs}
    text = report.study_markdown(payload)
    assert "| 90% | **synaptic:normalised** | 0, 1 | 90.00 ± 0.00 | 81.00 ± 0.00 | -2.00 ± 0.00 |" in text
    assert "| 0% | dense | 0, 1 |" in text


def test_scaled_inputs_keep_batches_and_undo_the_normalisation():
    loader = [(torch.zeros(2, 1, 28, 28), torch.tensor([0, 1]))]
    raw = bench._Scaled(loader, "fashion-mnist", "raw")
    x, y = next(iter(raw))
    info = bench.npr.dataset_info("fashion-mnist")
    assert torch.allclose(x, torch.full_like(x, 255 * info.mean[0])) and y.tolist() == [0, 1]
    scaled = bench._Scaled(loader, "fashion-mnist", "per-feature")
    again = bench._Scaled(loader, "fashion-mnist", "per-feature")
    assert torch.equal(scaled.scale, again.scale) and 0.1 <= float(scaled.scale.min()) < float(scaled.scale.max()) <= 10


def test_a_piece_with_the_dense_run_alone_renders_as_a_study_table(tmp_path):
    # a study run piece by piece: the dense piece has no synaptic or GMP row to put in the two-method table
    payload = {"command": "python -m neuroprune.bench synaptic --methods dense", "commands": [],
               "environment": {"processor": "x", "versions": {"torch": torch.__version__}, "torch_threads": 1},
               "runs": [_run(0, {"0.9": {}}, dense=_method([0.6, 0.8]))]}
    args = argparse.Namespace(out=tmp_path, name="piece", plot=False)
    bench._write_reports(payload, args)
    text = (tmp_path / "piece.md").read_text()
    assert "| 0% | dense | 0 |" in text and "80.00" in text


def test_a_labelled_variant_sits_beside_the_default_row_with_its_pruner_options(tmp_path):
    common = ["--datasets", "digits", "--models", "mlp", "--epochs", "1", "--seeds", "0", "--sparsities", "0.5",
              "--methods", "synaptic", "--criteria", "magnitude", "--append", "--out", str(tmp_path), "--name", "v"]
    bench.main(common)
    bench.main([*common, "--set", "alpha=0.1", "--label", " alpha 0.1"])
    payload = json.loads((tmp_path / "v.json").read_text())
    row = payload["runs"][0]["targets"]["0.5"]
    assert set(row) == {"synaptic:magnitude", "synaptic:magnitude alpha 0.1"}
    assert row["synaptic:magnitude"]["pruner"]["alpha"] == 0.5
    assert row["synaptic:magnitude alpha 0.1"]["pruner"]["alpha"] == 0.1
    assert "| 50% | synaptic:magnitude alpha 0.1 | 0 |" in (tmp_path / "v.md").read_text()


def test_the_small_budget_regime_trains_the_start_once_and_every_method_starts_from_it(tmp_path, monkeypatch):
    monkeypatch.setattr("neuroprune.bench._start_cache.CACHE", tmp_path / "starts")
    fits = []
    real_fit = bench._timed_fit
    monkeypatch.setattr(bench, "_timed_fit", lambda *a, **k: fits.append(a[3]["lr"]) or real_fit(*a, **k))
    # a learning rate of ~0 in the last epoch: a network loaded from the start keeps the start's accuracy
    common = ["--datasets", "digits", "--models", "mlp", "--epochs", "2", "--seeds", "0", "--sparsities", "0.5",
              "--prune-epochs", "1", "--prune-lr", "1e-12", "--append", "--out", str(tmp_path), "--name", "b"]
    bench.main([*common, "--methods", "dense"])
    bench.main([*common, "--methods", "gmp"])
    assert len(fits) == 3 and fits[0] > 1e-6 and fits[1:] == [1e-12, 1e-12]  # the start is trained once
    assert len(list((tmp_path / "starts").glob("*.safetensors"))) == 1
    run = json.loads((tmp_path / "b.json").read_text())["runs"][0]
    assert run["start"]["epochs"] == 2 and run["epochs"] == 1 and run["config"]["lr"] == 1e-12
    assert run["dense"]["test_accuracy"] == run["start"]["test_accuracy"]
    text = (tmp_path / "b.md").read_text()
    assert "trained 2 epochs at lr 0.05 first, then every method 1 epoch at lr 1e-12" in text
    assert "| 0% | start | 0 |" in text and "| 50% | gmp | 0 |" in text


@pytest.mark.parametrize("extra", [["--sparsities", "0.5", "--prune-lr", "0.01"],
                                   ["--sparsities", "0.5", "--prune-epochs", "0"],
                                   ["--units", "0.5", "--prune-epochs", "1"]])
def test_small_budget_options_that_cannot_apply_are_refused(extra, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--datasets", "digits", "--models", "mlp", *extra])
    assert "--prune-" in capsys.readouterr().err
