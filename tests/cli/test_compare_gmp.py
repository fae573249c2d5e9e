"""--compare-gmp: the strongest peer at equal connections, trained beside the synaptic run and shown with it."""

from __future__ import annotations

import csv
import json

from click.testing import CliRunner

from neuroprune.cli import main

ARGS = ["synaptic", "--dataset", "digits", "--epochs", "4", "--target-sparsity", "0.8", "--compare-gmp",
        "--no-measure-latency"]


def test_gmp_prunes_as_many_connections_on_the_same_schedule_and_is_printed_beside_the_run(tmp_path):
    out = tmp_path / "run"
    printed = CliRunner().invoke(main, [*ARGS, "--out", str(out)])
    assert printed.exit_code == 0, printed.output
    result = json.loads((out / "result.json").read_text())
    gmp, pruner = result["gmp"], result["pruner"]

    assert abs(gmp["pruned_fraction"] - result["pruned_fraction"]) < 0.005  # equal connections, up to rounding
    assert gmp["schedule"] == {"begin_step": pruner["warmup_steps"], "end_step": pruner["stop_step"],
                               "update_every": pruner["check_every"], "scope": "global"}
    assert 0.5 < gmp["test_accuracy"] <= 1 and len(gmp["history"]) == 4
    assert 0 < gmp["params_compact"] <= result["params_dense"]
    assert "GMP" in printed.output and f"{100 * gmp['test_accuracy']:.2f}%" in printed.output
    assert "dense" not in result  # only what was asked for

    with (out / "history.csv").open() as rows:
        runs = {row["run"] for row in csv.DictReader(rows)}
    assert runs == {"synaptic", "gmp"}

    report = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "page")])
    assert report.exit_code == 0, report.output
    page = (tmp_path / "page" / "report.md").read_text()
    assert "accuracy GMP" in page and f"{100 * gmp['test_accuracy']:.2f}%" in page


def test_a_run_that_prunes_nothing_has_no_gmp_to_compare(tmp_path):
    out = tmp_path / "run"
    args = [a for a in ARGS if a not in ("--target-sparsity", "0.8")]
    printed = CliRunner().invoke(main, [*args, "--granularity", "connection", "--patience", "1000",
                                        "--out", str(out)])
    assert printed.exit_code == 0, printed.output
    result = json.loads((out / "result.json").read_text())
    assert result["pruned_fraction"] == 0 and "gmp" not in result


def test_gmp_compacted_model_is_timed_in_the_same_rounds(tmp_path):
    out = tmp_path / "run"
    args = [a for a in ARGS if a != "--no-measure-latency"]
    printed = CliRunner().invoke(main, [*args, "--epochs", "2", "--out", str(out)])
    assert printed.exit_code == 0, printed.output
    latency = json.loads((out / "result.json").read_text())["latency_ms"]
    for label in ("batch_1", "batch_64", "batch_256"):
        entry = latency[label]
        assert entry["gmp"] > 0 and entry["compact"] > 0 and entry["dense"] > 0
        # the peer is timed in the same rounds as dense and ours, each speed-up relative to dense
        assert entry["gmp_speedup"] > 0 and entry["speedup"] > 0
    assert f"({latency['batch_1']['gmp_speedup']:.2f}x)" in printed.output
