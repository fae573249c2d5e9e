"""build_report on a real (tiny) synaptic run: files, links, tables, errors."""

import json
import shutil

import pytest
from click.testing import CliRunner

from neuroprune.cli.report import report_command
from neuroprune.errors import NeuropruneError
from neuroprune.report import build_report, load_run
from neuroprune.report.check import page_problems


def test_report_writes_a_page_that_only_references_its_own_files(digits_run, tmp_path):
    files = build_report([digits_run], tmp_path / "report")

    assert files.html == tmp_path / "report" / "index.html"
    assert page_problems(files.html) == []
    page = files.html.read_text()
    assert "http://" not in page and "https://" not in page
    # accuracy per epoch, live connections over steps, pruned share per layer
    assert len(files.figures) == 3
    for figure in files.figures:
        assert figure.is_file() and figure.stat().st_size > 1000
        assert f'src="{figure.relative_to(files.html.parent).as_posix()}"' in page


def test_markdown_holds_the_comparison_table(digits_run, tmp_path):
    result = json.loads((digits_run / "result.json").read_text())
    markdown = build_report([digits_run], tmp_path / "report").markdown.read_text()

    assert "| run | data set | model |" in markdown
    assert f"{100 * result['test_accuracy']:.2f}%" in markdown
    assert f"{100 * result['dense']['test_accuracy']:.2f}%" in markdown
    assert f"{100 * result['pruned_fraction']:.1f}%" in markdown
    for layer in result["per_layer"]:
        assert f"| {layer['name']} |" in markdown


def test_two_runs_with_the_same_folder_name_get_distinct_rows(digits_run, tmp_path):
    copy = tmp_path / "elsewhere" / digits_run.name
    shutil.copytree(digits_run, copy)
    files = build_report([digits_run, copy], tmp_path / "report")

    lines = files.markdown.read_text().splitlines()
    table = [line for line in lines if line.startswith("| ") and "digits | mlp" in line]
    assert len(table) == 2 and table[0].split("|")[1] != table[1].split("|")[1]
    assert page_problems(files.html) == []


def test_a_run_without_dense_or_checks_still_renders(digits_run, tmp_path):
    run = tmp_path / "partial"
    shutil.copytree(digits_run, run)
    result = json.loads((run / "result.json").read_text())
    for key in ("dense", "checks", "latency_ms", "per_layer"):
        result.pop(key)
    (run / "result.json").write_text(json.dumps(result))

    files = build_report([run], tmp_path / "report")
    assert [f.name for f in files.figures] == ["accuracy.png"]
    assert page_problems(files.html) == []


def test_a_folder_without_result_json_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NeuropruneError, match=r"empty.*result\.json"):
        load_run(tmp_path / "empty")
    with pytest.raises(NeuropruneError, match="missing.*does not exist"):
        build_report([tmp_path / "missing"], tmp_path / "report")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "result.json").write_text("{\"method\": ")
    with pytest.raises(NeuropruneError, match="broken"):
        load_run(tmp_path / "broken")


def test_report_command_writes_the_page_and_fails_cleanly(digits_run, tmp_path):
    ok = CliRunner().invoke(report_command, [str(digits_run), "--out", str(tmp_path / "r")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "r" / "index.html").is_file() and (tmp_path / "r" / "report.md").is_file()

    (tmp_path / "empty").mkdir()
    bad = CliRunner().invoke(report_command, [str(tmp_path / "empty"), "--out", str(tmp_path / "r2")])
    assert bad.exit_code == 2
    assert "result.json" in bad.output and "empty" in bad.output and "Traceback" not in bad.output


def test_page_problems_catches_missing_and_external_files(tmp_path):
    (tmp_path / "index.html").write_text(
        '<html><body><img src="figures/gone.png"><img src="https://example.com/x.png">'
        '<a href="../outside.html">x</a><script>1</script></body></html>'
    )
    problems = page_problems(tmp_path / "index.html")
    assert any("missing file: figures/gone.png" in p for p in problems)
    assert any("outside the report: https://example.com/x.png" in p for p in problems)
    assert any("leaves the report folder" in p for p in problems)
    assert any("<script>" in p for p in problems)


def _depth_run(folder):
    """A depth run folder as runs/depth.py writes it (numbers made up, fields as written)."""
    folder.mkdir()
    cut = {"origin": "layer1.2", "destination": "layer3.0", "removed": ["layer2.0", "layer2.1", "layer2.2"],
           "bridge": "translator", "translator": {"description": "maxpool 2x2 -> conv1x1 16->32 -> relu"},
           "params_removed": 20000, "macs_removed": 3000000}
    result = {"method": "depth", "model": "resnet20", "dataset": "fashion-mnist", "cut": cut,
              "accuracy_base": 0.90, "accuracy_pruned": 0.87, "params_base": 68642, "params_pruned": 49000,
              "macs_base": 10000000, "macs_pruned": 7000000,
              "latency_ms_base": {"batch_1": 0.9, "batch_64": 40.0},
              "latency_ms_pruned": {"batch_1": 0.6, "batch_64": 25.0},
              "recovery": {"epochs": 3}}
    (folder / "result.json").write_text(json.dumps(result))
    candidates = [{"cut": f"a{i}:b{i}", "removed": ["x", "y", "z"], "in_shape": [16, 8, 8], "params": 50000 + i,
                   "macs": 7000000 + 1000 * i, "latency_ms": None, "accuracy": 0.8 if i < 2 else None,
                   "score": 0.7 if i < 2 else None} for i in range(5)]
    (folder / "candidates.json").write_text(json.dumps(candidates))
    return folder


def test_depth_run_gets_its_table_candidates_and_tradeoff_figures(digits_run, tmp_path):
    files = build_report([digits_run, _depth_run(tmp_path / "depth")], tmp_path / "report")

    assert page_problems(files.html) == []
    names = {f.name for f in files.figures}
    assert {"depth-accuracy-vs-macs.png", "depth-accuracy-vs-latency.png"} <= names
    markdown = files.markdown.read_text()
    row = "| depth | fashion-mnist | resnet20 | layer1.2:layer3.0 | maxpool 2x2 -> conv1x1 16->32 -> relu |"
    assert row in markdown
    assert "batch 1: 0.900 → 0.600 (1.50x)" in markdown and "1.43x" in markdown  # MACs 10M / 7M
    assert "Candidate cuts: depth" in markdown and "| a4:b4 |" in markdown
    assert "3: x … z" in markdown  # removed units, shortened


def test_a_greedy_depth_run_shows_its_steps(tmp_path):
    folder = _depth_run(tmp_path / "greedy")
    result = json.loads((folder / "result.json").read_text())
    result["search"] = {"strategy": "greedy", "steps": 5}
    result["cut"] = {"cut": "a1:b1,c1:d1", "bridge": "mixed", "removed": ["x", "y"], "spans": []}
    (folder / "result.json").write_text(json.dumps(result))
    markdown = build_report([folder], tmp_path / "report").markdown.read_text()
    assert "Greedy search steps: greedy" in markdown and "Candidate cuts" not in markdown
    assert "a1:b1,c1:d1" in markdown
