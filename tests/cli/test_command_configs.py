"""export and report read their options from --config too; flags win, unknown keys are named."""

from click.testing import CliRunner

from neuroprune.cli import main
from neuroprune.config import SynapticConfig
from neuroprune.runs.synaptic import run_synaptic


def _run(tmp_path):
    run = tmp_path / "run"
    run_synaptic(SynapticConfig(dataset="digits", epochs=1, check_every=5, limit_train=300, measure_latency=False), run)
    return run


def test_export_and_report_take_yaml_options_and_flags_override(tmp_path):
    run = _run(tmp_path)
    config = tmp_path / "export.yaml"
    config.write_text(f"format: onnx\nrounds: 1\nrepeats: 1\nout: {tmp_path / 'from_yaml'}\n")
    result = CliRunner().invoke(main, ["export", str(run), "-c", str(config), "--out", str(tmp_path / "from_flag")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "from_flag" / "model.onnx").is_file() and not (tmp_path / "from_yaml").exists()

    config = tmp_path / "report.yaml"
    config.write_text(f"title: Digits check\nout: {tmp_path / 'page'}\n")
    result = CliRunner().invoke(main, ["report", str(run), "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "<title>Digits check" in (tmp_path / "page" / "index.html").read_text()


def test_unknown_keys_are_named(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("formt: onnx\n")
    result = CliRunner().invoke(main, ["export", str(tmp_path), "-c", str(config)])
    assert result.exit_code == 2 and "formt" in result.output
    result = CliRunner().invoke(main, ["report", str(tmp_path), "-c", str(config)])
    assert result.exit_code == 2 and "formt" in result.output
