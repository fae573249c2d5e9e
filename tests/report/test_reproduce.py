"""reproduce: the package's benchmark suite runs as a subprocess; the page sets ours beside the claims."""

import dataclasses
import importlib
import json
import textwrap

import pytest
from click.testing import CliRunner

from neuroprune.cli.reproduce import reproduce_command
from neuroprune.errors import NeuropruneError
from neuroprune.report.check import page_problems
from neuroprune.report.claims import PAPERS, UNKNOWN
from neuroprune.report.reproduce import RECIPES, reproduce

reproduce_module = importlib.import_module("neuroprune.report.reproduce")  # the package exports a function of that name


def _side(accuracy, middle, **extra):
    """One method's numbers in a run: three epochs, the first the same for every method."""
    return {"test_accuracy": accuracy, "accuracy_per_epoch": [0.95, middle, accuracy], "seconds": 1.0, **extra}


def _pruned(accuracy, middle, target, params):
    return _side(accuracy, middle, pruned_fraction=target, params_compact=params,
                 per_layer_pruned={"fc1": target, "fc2": target})


def _synaptic_run(seed, dense, at90, at95):
    """A run of ``benchmarks/synaptic.py --sparsities 0.9 0.95``; ``at*`` are (synaptic, GMP) accuracies."""
    return {"dataset": "mnist", "model": "mlp", "seed": seed, "epochs": 3, "config": {"criterion": "deviation"},
            "dense": _side(dense, 0.97),
            "targets": {"0.9": {"synaptic": _pruned(at90[0], 0.975, 0.9, 180000),
                                "gmp": _pruned(at90[1], 0.97, 0.9, 240000)},
                        "0.95": {"synaptic": _pruned(at95[0], 0.96, 0.95, 150000),
                                 "gmp": _pruned(at95[1], 0.97, 0.95, 220000)}}}


def _synaptic_payload():
    runs = [_synaptic_run(0, 0.9800, (0.9812, 0.9790), (0.9760, 0.9770)),
            _synaptic_run(1, 0.9820, (0.9822, 0.9802), (0.9780, 0.9750))]
    return {"command": "python benchmarks/synaptic.py --sparsities 0.9 0.95", "environment": {"processor": "x86_64"},
            "runs": runs}


def test_a_share_printed_as_the_range_edge_is_within_the_range(tmp_path):
    payload = _synaptic_payload()
    for run in payload["runs"]:  # a run pruned a hair more than its 90% target, as a real schedule does
        run["targets"]["0.9"]["synaptic"]["pruned_fraction"] = 0.90004
    results = tmp_path / "synaptic.json"
    results.write_text(json.dumps(payload))
    markdown = reproduce("zhao2021", tmp_path / "page", results=results).markdown.read_text()
    assert "90.0% within, 95.0% above the range" in markdown


def test_zhao2021_page_puts_our_numbers_beside_the_claims(tmp_path):
    results = tmp_path / "synaptic.json"
    results.write_text(json.dumps(_synaptic_payload()))
    files = reproduce("zhao2021", tmp_path / "page", results=results)

    assert page_problems(files.html) == []
    markdown = files.markdown.read_text()
    # connections removed: the targets, set against the paper's range
    assert "59–90%" in markdown and "90.0% (target 90%), 95.0% (target 95%)" in markdown
    assert "90.0% within, 95.0% above the range" in markdown
    # accuracy vs dense at each target, per seed
    assert "98.17% vs 98.10% (+0.07 pt) | yes (pruned higher in 2 of 2 seeds)" in markdown
    assert "97.70% vs 98.10% (-0.40 pt) | no (pruned higher in 0 of 2 seeds)" in markdown
    # faster learning: per-epoch accuracy of synaptic vs dense
    assert "ahead in 2, behind in 0 of 3 epochs; mean gap +0.19 pt | yes (more epochs ahead than behind)" in markdown
    assert "ahead in 0, behind in 2 of 3 epochs; mean gap -0.47 pt | no (more epochs behind than ahead)" in markdown
    assert "LeNet-300-100: 98.17 ± 0.07% at 90%, 97.70 ± 0.14% at 95%" in markdown
    assert UNKNOWN in markdown  # per-data-set accuracies of the paper
    # Han et al.'s 92% beside GMP and synaptic at our nearest target, 90%
    assert "| 92%; 1.64% → 1.59% | 90.0%; 1.90% → 2.04% | 90.0%; 1.83% |" in markdown
    assert "not run (no mnist lenet5 in the benchmark's --datasets and --models)" in markdown
    # peers: dense, synaptic, GMP, the per-seed difference, pruned shares and compacted params
    assert ("| LeNet-300-100 on MNIST | 90% | 2 | 98.10 ± 0.14 | 98.17 ± 0.07 | 97.96 ± 0.08 | +0.21 ± 0.01 | "
            "90.0 ± 0.0 / 90.0 ± 0.0 | 180,000 / 240,000 |") in markdown
    assert "| 95% | 2 | 98.10 ± 0.14 | 97.70 ± 0.14 | 97.60 ± 0.14 | +0.10 ± 0.28 |" in markdown
    assert "Zhu, S. Gupta" in markdown and "overhead" not in markdown.lower()
    figures = sorted(p.name for p in (tmp_path / "page" / "figures").glob("*.png"))
    assert figures == ["zhao2021-epochs-mnist-mlp.png", "zhao2021-sparsity.png"]


def test_zhao2021_page_refuses_other_formats_and_names_the_command(tmp_path):
    old = {"runs": [{"dataset": "mnist", "model": "mlp", "seed": 0, "dense": _side(0.98, 0.97),
                     "synaptic": _pruned(0.98, 0.97, 0.75, 1000), "magnitude": _pruned(0.97, 0.96, 0.75, 1000),
                     "overhead": {"overhead": 0.2}}]}
    for payload, reason in ((old, "runs without 'targets'"), ({"rows": []}, "no 'runs'"), ({"runs": []}, "no 'runs'")):
        results = tmp_path / "synaptic.json"
        results.write_text(json.dumps(payload))
        with pytest.raises(NeuropruneError, match=reason) as caught:
            reproduce("zhao2021", tmp_path / "page", results=results)
        assert "python -m neuroprune.bench synaptic --sparsities" in str(caught.value)
    assert not (tmp_path / "page" / "index.html").exists()


def test_camacho2022_page_says_the_papers_numbers_are_unknown(tmp_path):
    results = tmp_path / "depth.json"
    results.write_text(json.dumps({"command": "python benchmarks/depth.py --quick", "runs": [{
        "model": "resnet20", "dataset": "cifar10",
        "base": {"accuracy": 0.90, "params": 270000, "macs": 41000000, "latency_ms": 2.0},
        "depth": {"accuracy": 0.88, "params": 200000, "macs": 30000000, "latency_ms": 1.5, "cut": "layer2.0:layer3.0"},
        "identity": {"accuracy": 0.86, "params": 210000, "macs": 32000000, "latency_ms": 1.6},
    }]}))
    files = reproduce("camacho2022", tmp_path / "page", results=results)

    assert page_problems(files.html) == []
    markdown = files.markdown.read_text()
    assert markdown.count(UNKNOWN) >= 4
    assert "93.53% → 93.64%; 2.57x" in markdown  # Torch-Pruning's ResNet-56
    assert "88.00%" in markdown and "-2.00 pt" in markdown and "1.37x" in markdown
    assert len(list((tmp_path / "page" / "figures").glob("*.png"))) == 2


def test_reproduce_runs_the_suite_as_a_module(tmp_path, monkeypatch):
    # what the quick recipe yields: one seed, one target, the synaptic run named after its criterion
    run = _synaptic_run(0, 0.9800, (0.9812, 0.9790), (0.9760, 0.9770))
    del run["targets"]["0.95"]
    run["targets"]["0.9"]["synaptic:deviation"] = run["targets"]["0.9"].pop("synaptic")
    payload = json.dumps({"command": None, "runs": [run]})
    stand_in = tmp_path / "modules" / "stand_in_bench"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("")
    # a stand-in for python -m neuroprune.bench: records its arguments, writes the results where it is told
    (stand_in / "__main__.py").write_text(textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        suite, args = sys.argv[1], sys.argv[2:]
        out, name = Path(args[args.index("--out") + 1]), args[args.index("--name") + 1]
        payload = json.loads({payload!r})
        payload["command"] = suite + " " + " ".join(args)
        (out / (name + ".json")).write_text(json.dumps(payload))
    """))
    monkeypatch.setattr(reproduce_module, "BENCH_MODULE", "stand_in_bench")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "modules"))
    files = reproduce("zhao2021", tmp_path / "page", quick=True, extra_args=["--seeds", "0", "1"])

    command = json.loads(files.results.read_text())["command"]
    assert command.startswith("synaptic " + " ".join(RECIPES["zhao2021"].quick)) and "--seeds 0 1 --out" in command
    assert files.results.parent == tmp_path / "page" / "benchmark"
    assert page_problems(files.html) == []
    markdown = files.markdown.read_text()
    assert "--sparsities 0.9 --seeds 0 1" in markdown and "Quick mode" in markdown
    assert "| LeNet-300-100 on MNIST | 90% | 1 | 98.00 | 98.12 | 97.90 | +0.22 |" in markdown
    # one target draws no accuracy-vs-sparsity curve
    assert [p.name for p in (tmp_path / "page" / "figures").glob("*.png")] == ["zhao2021-epochs-mnist-mlp.png"]

    (stand_in / "__main__.py").write_text("import sys; sys.exit(3)")
    with pytest.raises(NeuropruneError, match="synaptic suite failed with exit status 3"):
        reproduce("zhao2021", tmp_path / "page2", quick=True)


@pytest.mark.slow
def test_reproduce_needs_no_checkout(tmp_path, monkeypatch):
    """The real synaptic suite, from the package, in a folder that is no checkout (digits: bundled, seconds)."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(reproduce_command, ["zhao2021", "--quick", "--", "--datasets", "digits",
                                                    "--epochs", "1", "--limit-train", "300"])
    assert result.exit_code == 0, result.output
    page = tmp_path / "reproduce" / "zhao2021"
    payload = json.loads((page / "benchmark" / "synaptic.json").read_text())
    assert payload["command"].startswith("python -m neuroprune.bench synaptic --datasets mnist")
    assert [run["dataset"] for run in payload["runs"]] == ["digits"]
    gmp = payload["runs"][0]["targets"]["0.9"]["gmp"]  # GMP's compacted size, for the page's params column
    assert 0 < gmp["params_compact"] <= 50_610  # LeNet-300-100 on 8x8 digits has 50,610 parameters dense
    assert page_problems(page / "index.html") == [] and (page / "report.md").is_file()


def test_a_missing_suite_dependency_is_one_line_before_anything_runs(tmp_path, monkeypatch):
    recipe = dataclasses.replace(RECIPES["camacho2022"], needs=(("no_such_module_np", "bench"),))
    monkeypatch.setitem(RECIPES, "camacho2022", recipe)
    result = CliRunner().invoke(reproduce_command, ["camacho2022", "--quick", "--out", str(tmp_path / "page")])
    assert result.exit_code == 2 and 'pip install "neuroprune[bench]"' in result.output
    assert "Traceback" not in result.output and not (tmp_path / "page").exists()
    with pytest.raises(NeuropruneError, match="needs no_such_module_np"):
        reproduce("camacho2022", tmp_path / "page", quick=True)


def test_claims_mark_unknown_figures_as_unknown():
    assert all(claim.value is None for claim in PAPERS["camacho2022"].claims)
    assert all(claim.shown == UNKNOWN for claim in PAPERS["camacho2022"].claims)
    han = PAPERS["han2015"].claims
    assert han[0].numbers == {"pruned": 0.92, "error_dense": 0.0164, "error_pruned": 0.0159}
    assert han[1].numbers["error_pruned"] == 0.0077


def test_camacho2022_page_reads_the_depth_benchmarks_models_and_variants(tmp_path):
    def variant(accuracy, params, macs, b1, b64, **extra):
        return {"accuracy": accuracy, "params": params, "macs": macs, "recovery": [], "latency_ms_b1": b1,
                "latency_ms_b64": b64, **extra}

    payload = {"dataset": "fashion-mnist", "settings": {"models": "vgg16:0.25"}, "environment": {"processor": "x86_64"},
               "models": {"vgg16:0.25": {
                   "model": "vgg16", "width": 0.25,
                   "variants": {
                       "base": variant(0.91, 930000, 20000000, 1.0, 30.0, train_seconds=100.0),
                       "depth (search)": variant(0.89, 300000, 8000000, 0.4, 12.0, cut="features.9:features.23",
                                                 translator="conv1x1 32->128 -> relu", accuracy_after_search=0.7),
                       "identity": variant(0.88, 800000, 15000000, 0.8, 25.0, cut="features.30:features.40"),
                       "torch-pruning (same MACs)": variant(0.90, 350000, 8000000, 0.7, 14.0, channel_ratio=0.4),
                   },
                   "search_rows": [{"cut": "features.9:features.23", "params": 300000, "macs": 8000000,
                                    "latency_ms": 0.4, "accuracy": 0.7, "score": 0.8}],
               }}}
    results = tmp_path / "depth.json"
    results.write_text(json.dumps(payload))
    files = reproduce("camacho2022", tmp_path / "page", results=results)

    assert page_problems(files.html) == []
    markdown = files.markdown.read_text()
    assert "vgg16 (width 0.25) on fashion-mnist, depth (search): 89.00% vs 91.00%" in markdown
    assert "| torch-pruning (same MACs) |" in markdown and "channel ratio 0.4" in markdown
    assert "2.50x" in markdown  # MACs 20M / 8M and batch-1 latency 1.0 / 0.4
    assert "Candidates scored by the search: vgg16 (width 0.25) on fashion-mnist" in markdown
    assert "settings models=vgg16:0.25" in markdown  # no command in the file: its settings stand in
