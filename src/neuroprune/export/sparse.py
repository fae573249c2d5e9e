"""``SparseLinear``: a Linear layer whose weight is stored and multiplied in CSR form.

A pruned layer keeps its zeros in a dense weight, so the dense kernel still multiplies
them. Stored as CSR (compressed sparse rows: ``crow_indices``, ``col_indices``,
``values``), only the remaining connections are read. Two formulations are used, each
chosen for MKL's sparse kernels (what they gain end to end is in
``benchmarks/results/speed.md``):

* batch 1: ``y = addmv(b, W_csr, x)``, a sparse matrix-vector product;
* batch N: ``y^T = addmm(b, W_csr, x^T)`` with ``x^T`` contiguous, i.e. the transposed
  formulation ``(W @ x^T)^T``. MKL's sparse kernel is faster on a row-major ``(in, N)``
  right-hand side than on the column-major view ``x.t()``, and dense @ CSR
  (``x @ W^T``) is slower than either. The result is returned as
  the transposed view of ``(out, N)``, so a following ``SparseLinear`` gets a contiguous
  ``x^T`` without copying.

Indices are int32 where they fit: with int64 indices torch converts them for MKL on
every call.

MKL's sparse kernels carry a fixed cost of a few microseconds per call, so a small
layer can lose at batch 1 and win at batch 256. Such a layer may also keep its dense
weight and use it below a batch size (``dense_below``): the "hybrid" choice of
:func:`~neuroprune.export.sparsify`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_INT32_MAX = 2**31 - 1


@contextmanager
def _quiet_csr() -> Iterator[None]:
    # torch warns on every CSR construction that the layout is in beta; we know.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        yield


class SparseLinear(nn.Module):
    """``y = x W^T + b`` with ``W`` held as CSR tensors; for inference (no gradients).

    The CSR components and the bias are buffers, so ``state_dict()`` holds only plain
    dense tensors (``crow_indices``, ``col_indices``, ``values``, ``bias``, and
    ``dense_weight`` for a hybrid layer) that safetensors can store.

    Args:
        crow_indices: (out_features + 1,) row offsets into ``col_indices``/``values``.
        col_indices: (nnz,) input index of each stored weight.
        values: (nnz,) the stored weights.
        in_features: width of the input.
        bias: (out_features,) or ``None``.
        dense_below: batches smaller than this use the dense weight (0: always CSR).
        dense_weight: (out_features, in_features), required when ``dense_below > 0``.

    Example:
        >>> dense = nn.Linear(6, 3)
        >>> with torch.no_grad():
        ...     dense.weight[:, :4] = 0.0
        >>> layer = SparseLinear.from_linear(dense)
        >>> layer.nnz
        6
        >>> x = torch.randn(2, 6)
        >>> torch.allclose(layer(x), dense(x), atol=1e-6)
        True
    """

    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    values: torch.Tensor
    bias: torch.Tensor | None
    dense_weight: torch.Tensor | None

    def __init__(
        self,
        crow_indices: torch.Tensor,
        col_indices: torch.Tensor,
        values: torch.Tensor,
        in_features: int,
        bias: torch.Tensor | None = None,
        *,
        dense_below: int = 0,
        dense_weight: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if dense_below > 0 and dense_weight is None:
            raise ValueError("a SparseLinear with dense_below > 0 needs its dense_weight")
        self.in_features = int(in_features)
        self.out_features = int(crow_indices.numel()) - 1
        self.dense_below = int(dense_below)
        self.register_buffer("crow_indices", crow_indices.detach().clone())
        self.register_buffer("col_indices", col_indices.detach().clone())
        self.register_buffer("values", values.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        kept_dense = None if dense_below <= 0 or dense_weight is None else dense_weight.detach().clone()
        self.register_buffer("dense_weight", kept_dense)
        # (CSR weight, bias, bias column), built from the buffers on first use
        self._weight: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None] | None = None

    @classmethod
    def from_linear(cls, layer: nn.Linear, *, dense_below: int = 0) -> SparseLinear:
        """The CSR form of ``layer``'s current (masked, if parametrized) weight.

        Args:
            layer: the layer to convert (not changed).
            dense_below: keep the dense weight too and use it for batches smaller than this.
        """
        with torch.no_grad(), _quiet_csr():
            weight = layer.weight.detach()  # (out, in); the masked value under a parametrization
            csr = weight.to_sparse_csr()
            crow, col = csr.crow_indices(), csr.col_indices()
            if csr.values().numel() <= _INT32_MAX:
                crow, col = crow.to(torch.int32), col.to(torch.int32)
            bias = None if layer.bias is None else layer.bias.detach()
            return cls(crow, col, csr.values(), weight.shape[1], bias, dense_below=dense_below, dense_weight=weight)

    @classmethod
    def empty(cls, in_features: int, out_features: int, nnz: int, *, bias: bool = True,
              index_dtype: torch.dtype = torch.int32, dense_below: int = 0) -> SparseLinear:
        """A layer with buffers of the right shapes, to load a state_dict into."""
        return cls(
            torch.zeros(out_features + 1, dtype=index_dtype),
            torch.zeros(nnz, dtype=index_dtype),
            torch.zeros(nnz),
            in_features,
            torch.zeros(out_features) if bias else None,
            dense_below=dense_below,
            dense_weight=torch.zeros(out_features, in_features) if dense_below > 0 else None,
        )

    @property
    def nnz(self) -> int:
        """Number of stored (unpruned) weights."""
        return int(self.values.numel())

    @property
    def density(self) -> float:
        """Stored weights over ``in_features * out_features``."""
        return self.nnz / max(1, self.in_features * self.out_features)

    def weight_csr(self) -> torch.Tensor:
        """The (out, in) weight as a ``torch.sparse_csr`` tensor (cached)."""
        return self.operands()[0]

    def operands(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(CSR weight, bias (out,), bias as a column (out, 1)), built once and cached.

        At batch 1 the whole product takes a few microseconds, so even the attribute
        lookups of buffers (``nn.Module.__getattr__``) are worth caching.
        """
        if self._weight is None:
            # Built outside inference mode so that the cache can be used in both modes.
            with torch.inference_mode(False), _quiet_csr():
                weight = torch.sparse_csr_tensor(
                    self.crow_indices, self.col_indices, self.values,
                    (self.out_features, self.in_features), check_invariants=False,
                )
                bias = self.bias
                self._weight = (weight, bias, None if bias is None else bias.unsqueeze(1))
        return self._weight

    def to_dense_weight(self) -> torch.Tensor:
        """The (out, in) weight as a dense tensor, zeros included."""
        if self.dense_weight is not None:
            return self.dense_weight.clone()
        return self.weight_csr().to_dense()

    def to_linear(self) -> nn.Linear:
        """An ``nn.Linear`` computing the same function (for ONNX export or training)."""
        layer = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None)
        with torch.no_grad():
            layer.weight.copy_(self.to_dense_weight())
            if self.bias is not None:
                layer.bias.copy_(self.bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias, bias_column = self.operands()
        lead = x.shape[:-1]
        rows = x.numel() // self.in_features
        if rows < self.dense_below and self.dense_weight is not None:
            return F.linear(x, self.dense_weight, bias)
        if rows == 1:
            row = x.reshape(-1)  # (in,)
            out = torch.mv(weight, row) if bias is None else torch.addmv(bias, weight, row)
            return out.view(*lead, -1)  # (1, out)
        xt = x.reshape(rows, self.in_features).t()  # (in, N)
        if not xt.is_contiguous():
            xt = xt.contiguous()
        out_t = torch.mm(weight, xt) if bias_column is None else torch.addmm(bias_column, weight, xt)  # (out, N)
        out = out_t.t()  # (N, out), a view: the next SparseLinear reads out_t without a copy
        return out if x.dim() == 2 else out.reshape(*lead, self.out_features)

    def vector_operands(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) for a batch-1 matrix-vector product: CSR, or dense for a hybrid layer."""
        weight, bias, _ = self.operands()
        if self.dense_below > 1 and self.dense_weight is not None:
            return self.dense_weight, bias
        return weight, bias

    def __getstate__(self) -> dict[str, Any]:
        # The cached CSR tensor has no storage that copy/pickle could reach; rebuild it instead.
        return {**super().__getstate__(), "_weight": None}

    def _apply(self, fn: Any, recurse: bool = True) -> SparseLinear:
        self._weight = None  # buffers may have moved or changed dtype
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        self._weight = None  # rebuilt from the loaded buffers on the next forward
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        hybrid = f", dense_below={self.dense_below}" if self.dense_below else ""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"nnz={self.nnz}, density={self.density:.3f}, bias={self.bias is not None}{hybrid}")
