"""ONNX export of pruned models, and a check that onnxruntime computes the same outputs.

ONNX has no CSR matrix product, so :class:`SparseLinear` layers are written as the
equivalent dense ``Gemm`` (the compacted model's weights, zeros included); runtimes with
their own sparse optimisations can rediscover the zeros. The TorchScript-based exporter
(``dynamo=False``) is used: it needs no extra package (the torch.export-based one needs
``onnxscript``) and handles the flat chains and residual graphs neuroprune saves. The
batch axis is dynamic.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from ..errors import NeuropruneError
from ..storage import atomic_write_bytes
from .chain import InferenceChain
from .sparse import SparseLinear

logger = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "output"
DEFAULT_OPSET = 17


def dense_equivalent(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every SparseLinear as ``nn.Linear`` and chains as plain Sequentials."""
    if isinstance(model, SparseLinear):
        return model.to_linear()
    new = copy.deepcopy(model)
    for name, module in list(new.named_modules()):
        if isinstance(module, SparseLinear):
            new.set_submodule(name, module.to_linear())
    if isinstance(new, InferenceChain):
        # _modules, not named_children(): a module used at two places is kept at both
        new = nn.Sequential(OrderedDict((name, module) for name, module in new._modules.items() if module is not None))
    return new.eval()


def export_onnx(model: nn.Module, example_input: torch.Tensor, path: str | Path, *, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model`` as an ONNX file with input ``input`` and output ``output`` (dynamic batch).

    Args:
        model: the model to export (SparseLinear layers become dense Gemm).
        example_input: one batch with the model's input shape, batch first.
        path: the ``.onnx`` file to write (atomically).
        opset: ONNX opset version.

    Returns:
        The path written.

    Raises:
        NeuropruneError: the exporter rejects the model (the message carries its reason).

    Example:
        >>> export_onnx(nn.Sequential(nn.Linear(4, 2)), torch.randn(1, 4), "/tmp/tiny.onnx").name
        'tiny.onnx'
    """
    path = Path(path)
    exportable = dense_equivalent(model)
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of one that needs onnxscript.
            warnings.simplefilter("ignore", category=DeprecationWarning)
            torch.onnx.export(
                exportable,
                (example_input,),
                buffer,  # type: ignore[arg-type]  # file-like objects are accepted
                dynamo=False,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=opset,
            )
    except Exception as exc:  # the exporter raises many unrelated types
        raise NeuropruneError(f"ONNX export of {type(model).__name__} failed: {str(exc).splitlines()[0]}") from exc
    atomic_write_bytes(path, buffer.getvalue())
    logger.info("wrote %s (%d bytes)", path, len(buffer.getvalue()))
    return path


def onnx_max_abs_diff(path: str | Path, model: nn.Module, example_input: torch.Tensor) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's outputs on ``example_input``.

    Raises:
        NeuropruneError: onnxruntime is not installed.
    """
    try:
        import onnxruntime
    except ImportError:
        raise NeuropruneError("checking an ONNX file needs onnxruntime: pip install onnxruntime") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run([OUTPUT_NAME], {INPUT_NAME: example_input.detach().cpu().numpy()})
    with torch.inference_mode():
        torch_out = model.eval()(example_input)
    return float((torch.from_numpy(onnx_out) - torch_out).abs().max())
