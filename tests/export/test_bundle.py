"""``export_run`` and ``neuroprune export``: files written, checks recorded, clear errors on bad run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import neuroprune as npr
from neuroprune.cli.export import export_command
from neuroprune.export import InferenceChain, export_run, load_exported
from neuroprune.saved_models import save_model
from neuroprune.storage import save_torch

FAST = {"rounds": 1, "repeats": 2, "batch_sizes": (1, 4)}


def test_safetensors_export_records_kernels_and_matches_the_run(run_dir: Path, batch: torch.Tensor) -> None:
    result = export_run(run_dir, format="safetensors", **FAST)
    assert result.folder == run_dir / "export"
    assert {p.name for p in result.files} == {"model.safetensors", "model.json", "export.json"}
    report = json.loads((result.folder / "export.json").read_text())
    assert set(report["layers"]) == {"fc1", "fc2", "fc3"}
    assert {layer["kind"] for layer in report["layers"].values()} <= {"dense", "csr", "hybrid"}
    assert report["checks"]["max_abs_diff_vs_masked"] < 1e-4
    model, metadata = load_exported(result.folder)
    assert isinstance(model, InferenceChain)
    assert metadata["kernels"] == {name: layer["kind"] for name, layer in report["layers"].items()}
    source, _ = npr.load_model(run_dir)
    with torch.inference_mode():
        torch.testing.assert_close(model(batch), source(batch), rtol=1e-5, atol=1e-5)


def test_dense_export_is_loadable_by_load_model(run_dir: Path, tmp_path: Path) -> None:
    result = export_run(run_dir, tmp_path / "dense", use_sparse=False, **FAST)
    _, metadata = npr.load_model(result.folder)
    assert set(metadata["kernels"].values()) == {"dense"}


def test_onnx_export_is_checked_with_onnxruntime(run_dir: Path) -> None:
    pytest.importorskip("onnxruntime")
    result = export_run(run_dir, format="onnx")
    assert (result.folder / "model.onnx").is_file()
    assert result.report["checks"]["onnxruntime_max_abs_diff"] < 1e-4


def test_depth_run_folder_exports(tmp_path: Path) -> None:
    depth = pytest.importorskip("neuroprune.depth")
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = npr.create_model("resnet20", in_channels=1, image_size=8, num_classes=10, width=0.25).eval()
    pruner = depth.DepthPruner(model, example_inputs=torch.randn(2, 1, 8, 8))
    small = pruner.plan(cut=pruner.candidates()[-1].cut).apply().eval()
    depth.save_graph_model(small, tmp_path / "run", {"input_shape": [1, 8, 8]})
    onnx_result = export_run(tmp_path / "run", format="onnx")
    assert onnx_result.report["checks"]["onnxruntime_max_abs_diff"] < 1e-4
    result = export_run(tmp_path / "run", tmp_path / "st", **FAST)
    assert result.report["source_format"] == "neuroprune.fx/1"  # a depth cut is a traced graph
    assert result.report["checks"]["max_abs_diff_vs_source"] == 0.0


@pytest.mark.parametrize("missing", ["model.json", "model.safetensors"])
def test_missing_file_is_named_with_what_to_do(run_dir: Path, missing: str) -> None:
    (run_dir / missing).unlink()
    with pytest.raises(npr.ModelError, match=rf"missing {missing}.*re-run the experiment"):
        export_run(run_dir, **FAST)


def test_missing_folder_missing_input_shape_and_export_over_the_run(run_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(npr.ModelError, match="does not exist"):
        export_run(tmp_path / "nowhere", **FAST)
    with pytest.raises(npr.ConfigError, match="must differ from the run folder"):
        export_run(run_dir, run_dir, **FAST)
    spec = json.loads((run_dir / "model.json").read_text())
    del spec["metadata"]["input_shape"]
    (run_dir / "model.json").write_text(json.dumps(spec))
    with pytest.raises(npr.ConfigError, match="--input-shape"):
        export_run(run_dir, **FAST)


def test_weights_of_a_different_architecture_are_rejected(run_dir: Path) -> None:
    other = npr.create_model("mlp", in_channels=1, image_size=8, num_classes=10, hidden=(32,))
    save_model(other, run_dir / "other")
    (run_dir / "model.safetensors").write_bytes((run_dir / "other" / "model.safetensors").read_bytes())
    with pytest.raises(npr.ModelError, match=r"fc1\.weight.*same run"):
        export_run(run_dir, **FAST)


def test_checkpoint_of_a_different_architecture_is_rejected(run_dir: Path) -> None:
    other = npr.create_model("lenet5", in_channels=1, image_size=8, num_classes=10)
    save_torch(run_dir / "checkpoint.pt", {"model": other.state_dict()})
    with pytest.raises(npr.ModelError, match="checkpoint.pt holds a different architecture"):
        export_run(run_dir, **FAST)


def test_checkpoint_from_another_run_is_rejected(run_dir: Path, make_masked) -> None:
    save_torch(run_dir / "checkpoint.pt", {"model": make_masked(seed=1).state_dict()})
    with pytest.raises(npr.ModelError, match="different runs"):
        export_run(run_dir, **FAST)


def test_cli_exports_and_reports_errors_in_one_line(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(export_command, [str(run_dir), "--out", str(tmp_path / "out"), "--batch-sizes", "1,4",
                                        "--rounds", "1", "--repeats", "2"])
    assert ok.exit_code == 0, ok.output
    assert "fc1" in ok.output and "wrote" in ok.output
    assert (tmp_path / "out" / "export.json").is_file()
    (run_dir / "model.json").unlink()
    bad = runner.invoke(export_command, [str(run_dir)])
    assert bad.exit_code == 2
    assert "missing model.json" in bad.output
