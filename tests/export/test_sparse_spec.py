"""Models with CSR layers survive a safetensors + JSON round trip; bad files give clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import neuroprune as npr
from neuroprune.export import (
    InferenceChain,
    SparseLinear,
    load_sparse_model,
    save_sparse_model,
    sparsify,
)


def _sparse_model(batch: torch.Tensor, masked: torch.nn.Module) -> InferenceChain:
    model, _ = sparsify(npr.compact_sequential(masked), batch, candidates=("csr",), rounds=1, repeats=1)
    return model


def test_round_trip_keeps_outputs_and_layer_kinds(tmp_path: Path, batch: torch.Tensor, make_masked) -> None:
    model = _sparse_model(batch, make_masked())
    save_sparse_model(model, tmp_path, {"input_shape": [1, 8, 8]})
    loaded, metadata = load_sparse_model(tmp_path)
    assert metadata == {"input_shape": [1, 8, 8]}
    assert isinstance(loaded, InferenceChain) and isinstance(loaded.fc1, SparseLinear)
    layers = json.loads((tmp_path / "model.json").read_text())["architecture"]["layers"]
    assert [entry["type"] for entry in layers if entry["name"].startswith("fc")] == ["SparseLinear"] * 3
    with torch.inference_mode():
        torch.testing.assert_close(loaded(batch), model(batch))


def test_hybrid_layer_round_trips_with_its_dense_weight(tmp_path: Path, batch: torch.Tensor, make_masked) -> None:
    small = npr.compact_sequential(make_masked())
    model = InferenceChain.from_sequential(small)
    model.fc1 = SparseLinear.from_linear(small.fc1, dense_below=8)
    save_sparse_model(model, tmp_path)
    loaded, _ = load_sparse_model(tmp_path)
    assert loaded.fc1.dense_below == 8 and loaded.fc1.dense_weight is not None
    with torch.inference_mode():
        for x in (batch[:1], batch.repeat(2, 1, 1, 1)):  # batch 1 (dense part) and 10 (CSR part)
            torch.testing.assert_close(loaded(x), small(x), rtol=1e-5, atol=1e-5)


def test_weights_of_another_model_are_rejected_with_the_keys_named(
    tmp_path: Path, batch: torch.Tensor, make_masked
) -> None:
    save_sparse_model(_sparse_model(batch, make_masked()), tmp_path)
    other = tmp_path / "other"
    save_sparse_model(_sparse_model(batch, make_masked(sparsity=0.5)), other)
    (tmp_path / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(npr.ModelError, match=r"fc1\.(col_indices|values|crow_indices)"):
        load_sparse_model(tmp_path)


def test_missing_weights_file_is_named(tmp_path: Path, batch: torch.Tensor, make_masked) -> None:
    save_sparse_model(_sparse_model(batch, make_masked()), tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(npr.ModelError, match="model.safetensors is missing"):
        load_sparse_model(tmp_path)


def test_module_placed_twice_survives_sparsify_and_the_round_trip(tmp_path: Path, batch: torch.Tensor) -> None:
    # one ReLU object at two positions: nn.Module.named_children() yields it once
    torch.manual_seed(0)
    relu = torch.nn.ReLU()
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), relu, torch.nn.Linear(32, 32), relu,
                                torch.nn.Linear(32, 10)).eval()
    with torch.no_grad():
        for layer in (model[1], model[3]):
            layer.weight[layer.weight.abs() < 0.1] = 0
    chain, _ = sparsify(model, batch, candidates=("csr",), rounds=1, repeats=1)
    assert len(chain) == len(model)
    save_sparse_model(chain, tmp_path)
    loaded, _ = load_sparse_model(tmp_path)
    with torch.inference_mode():
        torch.testing.assert_close(chain(batch), model(batch))
        torch.testing.assert_close(loaded(batch), model(batch))
