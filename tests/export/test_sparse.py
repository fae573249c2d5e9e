"""SparseLinear, InferenceChain and sparsify compute exactly what the dense/masked model computes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import neuroprune as npr
from neuroprune.export import InferenceChain, SparseLinear, sparsify


def _pruned_linear(bias: bool = True) -> nn.Linear:
    torch.manual_seed(0)
    layer = nn.Linear(20, 7, bias=bias)
    with torch.no_grad():
        layer.weight.mul_((torch.rand_like(layer.weight) < 0.2).float())
    return layer


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 20), (9, 20), (3, 4, 20)])
def test_sparse_linear_matches_dense(bias: bool, shape: tuple[int, ...]) -> None:
    dense = _pruned_linear(bias)
    sparse = SparseLinear.from_linear(dense)
    x = torch.randn(*shape)
    with torch.inference_mode():
        expected, got = dense(x), sparse(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert sparse.nnz == int(torch.count_nonzero(dense.weight))


@pytest.mark.parametrize("shape", [(1, 20), (2, 20), (9, 20)])
def test_hybrid_layer_matches_dense_on_both_sides_of_its_threshold(shape: tuple[int, ...]) -> None:
    dense = _pruned_linear()
    hybrid = SparseLinear.from_linear(dense, dense_below=4)
    x = torch.randn(*shape)
    with torch.inference_mode():
        torch.testing.assert_close(hybrid(x), dense(x), rtol=1e-5, atol=1e-6)
        chain = InferenceChain.from_sequential(nn.Sequential(hybrid, nn.ReLU()))
        torch.testing.assert_close(chain(x), torch.relu(dense(x)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("dense_ms", "csr_ms", "expected"),
    [
        ({1: 1.0, 256: 9.0}, {1: 0.5, 256: 4.0}, ("csr", 0)),
        ({1: 1.0, 256: 9.0}, {1: 2.0, 256: 4.0}, ("hybrid", 256)),
        ({1: 1.0, 256: 9.0}, {1: 0.5, 256: 10.0}, ("dense", 0)),  # wins only at the small batch: keep dense
        ({1: 1.0, 256: 9.0}, {1: 2.0, 256: 10.0}, ("dense", 0)),
    ],
)
def test_kernel_decision_rule(dense_ms: dict[int, float], csr_ms: dict[int, float], expected: tuple[str, int]) -> None:
    from neuroprune.export.sparsify import _decide

    assert _decide(dense_ms, csr_ms) == expected


def test_sparse_linear_works_outside_inference_mode_and_round_trips_to_linear() -> None:
    dense = _pruned_linear()
    sparse = SparseLinear.from_linear(dense)
    x = torch.randn(4, 20)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), dense(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(sparse.to_linear()(x), dense(x), rtol=1e-5, atol=1e-6)
    assert sparse.col_indices.dtype == torch.int32  # int64 would be converted for MKL on every call
    assert set(sparse.state_dict()) == {"crow_indices", "col_indices", "values", "bias"}


def test_chained_sparse_layers_pass_the_transposed_layout_along() -> None:
    first, second = _pruned_linear(), nn.Linear(7, 3)
    model = nn.Sequential(first, nn.ReLU(), second)
    chain = InferenceChain.from_sequential(nn.Sequential(SparseLinear.from_linear(first), nn.ReLU(),
                                                         SparseLinear.from_linear(second)))
    x = torch.randn(6, 20)
    with torch.inference_mode():
        torch.testing.assert_close(chain(x), model(x), rtol=1e-5, atol=1e-6)


def test_inference_chain_leaves_its_input_alone_and_keeps_hooks_working() -> None:
    model = nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(16, 4), nn.ReLU())
    chain = InferenceChain.from_sequential(model)
    x = torch.randn(3, 1, 4, 4)
    before = x.clone()
    with torch.inference_mode():
        torch.testing.assert_close(chain(x), model(x))
        viewing = InferenceChain.from_sequential(nn.Sequential(nn.Unflatten(1, (4, 4)), nn.ReLU()))
        flat = torch.randn(2, 16)
        flat_before = flat.clone()
        torch.testing.assert_close(viewing(flat), torch.relu(flat_before).view(2, 4, 4))
        assert torch.equal(flat, flat_before)  # Unflatten returns a view: its ReLU must not run in place
    assert torch.equal(x, before)  # the first ReLU must not run in place on the caller's tensor
    assert npr.count_macs(chain, x) == 16 * 4  # count_macs relies on forward hooks


@pytest.mark.parametrize("candidates", [("dense", "csr"), ("csr",), ("dense",)])
def test_sparsify_output_equals_masked_model(candidates: tuple[str, ...], batch: torch.Tensor, make_masked) -> None:
    masked = make_masked()
    before = {k: v.clone() for k, v in masked.state_dict().items()}
    fast, choices = sparsify(masked, [batch[:1], batch], candidates=candidates, rounds=1, repeats=2)
    assert set(choices) == {"fc1", "fc2", "fc3"}
    kinds = {c.kind for c in choices.values()}
    if candidates == ("csr",):
        assert kinds == {"csr"} and isinstance(fast.fc1, SparseLinear)
    if candidates == ("dense",):
        assert kinds == {"dense"} and not any(isinstance(m, SparseLinear) for m in fast.modules())
    with torch.inference_mode():
        for x in (batch[:1], batch):
            torch.testing.assert_close(fast(x), masked(x), rtol=1e-5, atol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in masked.state_dict().items())  # input model untouched


def test_sparsify_records_timings_for_each_batch_size(batch: torch.Tensor, make_masked) -> None:
    masked = make_masked()
    _, choices = sparsify(masked, [batch[:1], batch], rounds=1, repeats=2)
    fc1 = choices["fc1"]
    assert set(fc1.dense_ms) == set(fc1.csr_ms) == {1, 5}
    assert all(ms > 0 for ms in [*fc1.dense_ms.values(), *fc1.csr_ms.values()])
    assert fc1.density == pytest.approx(float((masked.fc1.weight != 0).float().mean()))
    if fc1.kind == "csr":  # chosen only where it was faster at every batch size
        assert all(fc1.csr_ms[b] < fc1.dense_ms[b] for b in fc1.dense_ms)


def test_sparsify_keeps_dense_layers_dense_without_timing(batch: torch.Tensor) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8))
    _, choices = sparsify(model, batch, rounds=1, repeats=2)
    assert choices["1"].kind == "dense" and choices["1"].csr_ms == {}


def test_sparsify_rejects_unknown_candidates(batch: torch.Tensor, make_masked) -> None:
    with pytest.raises(npr.ConfigError, match="bsr"):
        sparsify(make_masked(), batch, candidates=("bsr",))
