"""ONNX files of compacted synaptic and depth-pruned models compute what PyTorch computes (onnxruntime)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

import neuroprune as npr
from neuroprune.export import InferenceChain, export_onnx, sparsify
from neuroprune.export.onnx import dense_equivalent

ort = pytest.importorskip("onnxruntime")


def _run_onnx(path: Path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x.numpy()})
    return torch.from_numpy(np.asarray(out))


def test_compacted_synaptic_model_round_trips(tmp_path: Path, batch: torch.Tensor, make_masked) -> None:
    small = npr.compact_sequential(make_masked()).eval()
    path = export_onnx(small, batch[:1], tmp_path / "mlp.onnx")
    with torch.inference_mode():
        for x in (batch[:1], batch):  # exported at batch 1; the batch axis is dynamic
            torch.testing.assert_close(_run_onnx(path, x), small(x), rtol=1e-4, atol=1e-5)


def test_model_with_csr_layers_exports_as_dense_gemm(tmp_path: Path, batch: torch.Tensor, make_masked) -> None:
    masked = make_masked()
    fast, _ = sparsify(npr.compact_sequential(masked), batch, candidates=("csr",), rounds=1, repeats=1)
    path = export_onnx(fast, batch, tmp_path / "sparse.onnx")
    with torch.inference_mode():
        torch.testing.assert_close(_run_onnx(path, batch), masked(batch), rtol=1e-4, atol=1e-5)


def test_depth_pruned_model_round_trips(tmp_path: Path) -> None:
    depth = pytest.importorskip("neuroprune.depth")
    torch.manual_seed(0)
    model = npr.create_model("resnet20", in_channels=1, image_size=8, num_classes=10, width=0.25).eval()
    x = torch.randn(3, 1, 8, 8)
    pruner = depth.DepthPruner(model, example_inputs=x)
    cuts = [span.cut for span in pruner.candidates()]
    small = pruner.plan(cut=cuts[len(cuts) // 2]).apply().eval()
    assert any(isinstance(m, depth.Translator) for m in small.modules())
    path = export_onnx(small, x[:1], tmp_path / "depth.onnx")
    with torch.inference_mode():
        torch.testing.assert_close(_run_onnx(path, x), small(x), rtol=1e-4, atol=1e-5)


def test_dense_equivalent_keeps_a_module_placed_twice(batch: torch.Tensor) -> None:
    relu = torch.nn.ReLU()  # one object at two positions: named_children() yields it once
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 16), relu, torch.nn.Linear(16, 10), relu)
    dense = dense_equivalent(InferenceChain(OrderedDict(model._modules)))
    assert len(dense) == len(model)
    with torch.inference_mode():
        torch.testing.assert_close(dense(batch), model(batch))
