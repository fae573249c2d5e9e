"""The suites ship in the package: ``python -m neuroprune.bench``, the checkout's scripts, Torch-Pruning on demand."""

import importlib
import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

import neuroprune
from neuroprune.bench import SUITES, run
from neuroprune.bench.__main__ import main as bench_main
from neuroprune.errors import NeuropruneError

ROOT = Path(__file__).resolve().parents[2]


def test_the_module_lists_the_suites_and_runs_one_from_any_folder(tmp_path, capsys):
    assert bench_main(["--help"]) == 0
    listed = capsys.readouterr().out
    assert all(f"  {suite}" in listed for suite in ("synaptic", "depth", "units", "speed"))
    assert bench_main([]) == 2 and bench_main(["nope"]) == 2
    assert "unknown suite 'nope'" in capsys.readouterr().err
    # a real `python -m` outside the checkout: the suite is found as a module, not as a file of the checkout
    done = subprocess.run([sys.executable, "-m", "neuroprune.bench", "synaptic", "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m neuroprune.bench synaptic") and "--sparsities" in done.stdout


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_the_checkouts_scripts_run_the_package_suites(suite, monkeypatch, capsys):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script puts the checkout's src/ first
    monkeypatch.setattr(sys, "argv", [f"benchmarks/{suite}.py", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(ROOT / "benchmarks" / f"{suite}.py"), run_name="__main__")
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: python benchmarks/{suite}.py") and "--out" in shown
    # by default the script writes into the checkout's benchmarks/results, as before the move
    calls = []
    monkeypatch.setattr("neuroprune.bench.run", lambda *args, **kwargs: calls.append((args, kwargs)) or 0)
    with pytest.raises(SystemExit):
        runpy.run_path(str(ROOT / "benchmarks" / f"{suite}.py"), run_name="__main__")
    assert calls == [((suite,), {"prog": f"python benchmarks/{suite}.py", "out": ROOT / "benchmarks" / "results"})]


def test_torch_pruning_is_imported_only_when_a_suite_needs_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch_pruning", None)  # any import of it now raises ImportError
    from neuroprune.bench import depth, torch_pruning_peer, units

    for module in (torch_pruning_peer, depth, units):
        importlib.reload(module)  # importing the suites needs no Torch-Pruning
    with pytest.raises(NeuropruneError, match=r'pip install "neuroprune\[bench\]"'):
        torch_pruning_peer.require_torch_pruning()
    # the suites stop before any training, with one line
    assert run("depth", ["--models", "resnet20:0.25", "--out", str(tmp_path), "--work", str(tmp_path)]) == 2
    assert run("units", ["--target-macs", "0.5", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") and "neuroprune[bench]" in line for line in err)
    assert list(tmp_path.iterdir()) == []


def test_the_packaged_recipes_are_the_repositorys_configs():
    packaged = Path(neuroprune.__file__).parent / "configs"
    names = sorted(p.name for p in packaged.glob("*.yaml"))
    assert names == sorted(p.name for p in (ROOT / "configs").glob("synaptic_*.yaml"))
    for name in names:
        assert (packaged / name).read_text() == (ROOT / "configs" / name).read_text(), (
            f"src/neuroprune/configs/{name} differs from configs/{name}: the synaptic suite reads the package's copy, "
            "so change both")


def test_the_torch_pruning_peer_narrows_a_network_to_a_mac_target():
    pytest.importorskip("torch_pruning")  # the test extra installs it, as the bench extra does
    import torch
    from torch import nn

    from neuroprune.bench.torch_pruning_peer import prune_channels, prune_channels_to_macs
    from neuroprune.metrics import count_macs

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)).eval()
    x = torch.randn(2, 1, 8, 8)
    dense_macs = count_macs(model, x[:1])
    narrow = prune_channels(model, x, 0.5)
    assert narrow(x).shape == (2, 10) and count_macs(model, x[:1]) == dense_macs  # the original is left as it was
    assert [m.out_channels for m in narrow.modules() if isinstance(m, nn.Conv2d)] == [8, 8]
    smaller, ratio = prune_channels_to_macs(model, x, dense_macs // 2)
    assert 0 < ratio < 0.9 and abs(count_macs(smaller, x[:1]) - dense_macs // 2) < 0.2 * dense_macs
    with pytest.raises(NeuropruneError, match="ratio"):
        prune_channels(model, x, 1.0)


def _step_with(model, gradual, x, y):
    """One training step of ``model`` on (x, y), then the callback, as the trainer calls it."""
    import torch

    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    trainer = type("Trainer", (), {"step": 1, "optimizer": torch.optim.SGD(model.parameters(), lr=0.0)})()
    gradual.on_step_end(trainer)
    return trainer.optimizer


@pytest.mark.parametrize("importance", ["magnitude", "taylor"])
def test_the_gradual_peer_ranks_by_its_importance(importance):
    pytest.importorskip("torch_pruning")
    import torch
    from torch import nn

    from neuroprune.bench.units import GradualChannels

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight.mul_(0.01)
        model[0].weight[0] = 10.0  # the largest filter by far ...
        model[4].weight[:, 0] = 0.0  # ... whose channel nothing reads: its loss gradient is zero
        model[0].bias.fill_(0.1)
    x, y = torch.randn(8, 1, 6, 6), torch.randint(0, 3, (8,))
    gradual = GradualChannels(model, x[:1], 0.25, checks=[1], importance=importance)
    optimizer = _step_with(model, gradual, x, y)
    assert gradual.steps_taken == 1 and model[0].out_channels == 3 and model[4].in_features == 3
    big_filter_kept = bool((model[0].weight.abs() > 5).any())
    assert big_filter_kept == (importance == "magnitude")  # Taylor drops what does not change the loss
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == {id(p) for p in model.parameters()}


def test_the_units_suite_asks_for_one_target(tmp_path, capsys):
    pytest.importorskip("torch_pruning")
    for argv, message in ((["--target-macs", "0.5", "--target-speedup", "2"], "not allowed with argument"),
                          (["--target-macs", "0.5", "--speedup-batch", "64"], "--speedup-batch goes with"),
                          ([], "give --target-macs or --target-speedup")):
        with pytest.raises(SystemExit) as exited:  # argparse's usage error, before any training
            run("units", [*argv, "--out", str(tmp_path)])
        assert exited.value.code == 2 and message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_units_table_lists_a_small_networks_widths_and_sums_a_deep_ones():
    from neuroprune.bench.units import _widths_text

    assert _widths_text([8, 16, 4], [16, 32, 8]) == "[8, 16, 4]"
    assert _widths_text([10] * 20, [40] * 20) == "200 units in 20 layers (25% of dense)"


def test_a_speedup_targets_run_trains_alone_so_its_timing_sees_the_machine_the_final_timing_does(tmp_path):
    pytest.importorskip("torch_pruning")
    # batch 64 only: even an MLP on 8x8 digits reaches 1.2x there, however busy the machine
    argv = ["--dataset", "digits", "--model", "mlp", "--epochs", "1", "--parallel", "--seed", "0",
            "--target-speedup", "1.2", "--speedup-batch", "64", "--out", str(tmp_path), "--name", "alone"]
    assert run("units", argv) in (0, None)
    [result] = json.loads((tmp_path / "alone.json").read_text())["runs"]
    rows = result["rows"]
    assert list(rows)[:2] == ["dense", "synaptic"] and "scratch" in rows
    begun, ended = rows["synaptic"]["ran_between"]
    for label, row in rows.items():
        if label != "synaptic":
            other_begun, other_ended = row["ran_between"]
            assert other_ended <= begun or other_begun >= ended, f"{label} trained while synaptic was timed"
    assert (tmp_path / "alone.md").read_text().count("| dense |") == 1


def test_a_torch_pruning_run_that_fit_both_batch_sizes_counts_in_both_rows_of_the_table():
    from neuroprune.bench.units import markdown

    def row(accuracy, **extra):
        return {"test_accuracy": accuracy, "validation_accuracy": accuracy, "params": 10, "macs": 20,
                "widths": [4], **extra}

    def run(seed, rows):
        speed = {label: 2.0 for label in ["dense", *rows]}
        return {"dataset": "d", "model": "m", "seed": seed, "epochs": 1, "limit_train": None,
                "target": {"target_macs": 0.5},
                "latency": {"threads": 1, **{f"batch_{b}": {"speedup": speed, "ms": speed} for b in (1, 64)}},
                "rows": {"dense": row(0.9), **rows}}

    separate = run(0, {"synaptic": row(0.8), "tp@b1": row(0.6, ratio=0.5, matched_at=[1]),
                       "tp@b64": row(0.7, ratio=0.6, matched_at=[64])})
    shared = run(1, {"synaptic": row(0.8), "tp@b1": row(0.5, ratio=0.5, matched_at=[1, 64])})
    table = {line.split(" | ")[0].split(" (")[0].lstrip("| "): line.split(" | ")[1]
             for line in markdown({"runs": [separate, shared]}).splitlines() if line.startswith("| tp")}
    assert table == {"tp@b1": "55.00 ± 7.07", "tp@b64": "60.00 ± 14.14"}
    only_first = markdown({"runs": [separate, run(1, {"synaptic": row(0.8)})]})
    assert "tp@b64 (ratio 0.600, matched at b64) (seeds 0)" in only_first


def test_the_depth_report_says_when_the_units_target_was_out_of_reach(tmp_path):
    from neuroprune.bench import depth

    row = {"accuracy": 0.9, "params": 10, "macs": 100, "latency_ms_b1": 1.0, "latency_ms_b64": 10.0}
    results = {"settings": {"units": "True"}, "models": {
        "resnet56:0.25": {"variants": {"base": row}, "units_out_of_reach": "target_speedup 1.42 is out of reach"}}}
    depth.write(results, tmp_path, "units_capped")
    report = (tmp_path / "units_capped.md").read_text()
    assert "depth + units: not run, the units' target was out of reach: target_speedup 1.42 is out of reach" in report
    assert json.loads((tmp_path / "units_capped.json").read_text()) == results
    assert sorted(p.name for p in tmp_path.iterdir()) == ["units_capped.json", "units_capped.md"]  # no partial files


def test_the_depth_suite_reads_a_bare_model_name_as_full_width_and_refuses_a_bad_width(tmp_path, capsys):
    from neuroprune.bench.depth import _parse_models

    assert _parse_models("resnet56, vgg16:0.25,efficientnet_lite0:pretrained") == [
        ("resnet56", "1"), ("vgg16", "0.25"), ("efficientnet_lite0", "pretrained")]
    for models in ("resnet56:wide", "resnet56:0", "resnet56:nan", "resnet56:inf", ","):
        assert run("depth", ["--models", models, "--out", str(tmp_path), "--work", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: --models") and "\n" not in err
    assert list(tmp_path.iterdir()) == []  # refused before any training
