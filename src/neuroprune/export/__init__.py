"""Export of pruned models: CSR execution where it is measured to be faster, safetensors and ONNX files.

Example:
    >>> from neuroprune.export import sparsify
    >>> fast, choices = sparsify(model, [x[:1], x])          # doctest: +SKIP
    >>> {name: c.kind for name, c in choices.items()}        # doctest: +SKIP
    {'fc1': 'csr', 'fc2': 'csr', 'fc3': 'dense'}
"""

from .bundle import FORMATS, ExportResult, export_run, load_exported, load_run_model
from .chain import InferenceChain
from .onnx import dense_equivalent, export_onnx, onnx_max_abs_diff
from .sparse import SparseLinear
from .sparse_spec import (
    from_sparse_spec,
    load_sparse_model,
    save_sparse_model,
    to_sparse_spec,
)
from .sparsify import LayerChoice, sparsify

__all__ = [
    "FORMATS",
    "ExportResult",
    "InferenceChain",
    "LayerChoice",
    "SparseLinear",
    "dense_equivalent",
    "export_onnx",
    "export_run",
    "from_sparse_spec",
    "load_exported",
    "load_run_model",
    "load_sparse_model",
    "onnx_max_abs_diff",
    "save_sparse_model",
    "sparsify",
    "to_sparse_spec",
]
