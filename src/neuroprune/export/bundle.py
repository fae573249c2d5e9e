"""Exporting a run folder: load its pruned model, check it, write an export folder.

A run folder (``neuroprune synaptic`` or ``neuroprune depth``) holds the pruned model as
``model.safetensors`` + ``model.json``. The spec's format says how to rebuild it:

* ``neuroprune.sequential/1``: a compacted synaptic model (:func:`neuroprune.load_model`);
* ``neuroprune.sparse/1``: an earlier export with CSR layers (:mod:`.sparse_spec`);
* ``neuroprune.graph/1``: a depth-pruned model, rebuilt by ``neuroprune.depth.load_graph_model``.

A synaptic run also keeps ``checkpoint.pt``, the masked (uncompacted) model; when it is
there, the export checks that the compacted model computes what the masked one computes,
which catches files from different runs or architectures before anything is written.

The export folder holds ``model.safetensors`` + ``model.json`` (format
``safetensors``) or ``model.onnx`` (format ``onnx``), and ``export.json``: the checks,
and for each Linear layer the kernel chosen and the timings behind the choice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import RUN_CONFIG_SCHEMA
from ..errors import ConfigError, ModelError, NeuropruneError
from ..json_files import MAX_RUN_FILE_BYTES, read_json
from ..saved_models import load_model, read_json_file, save_model
from ..storage import load_torch, write_json
from .chain import InferenceChain
from .onnx import export_onnx, onnx_max_abs_diff
from .sparse import SparseLinear
from .sparse_spec import FORMAT as SPARSE_FORMAT
from .sparse_spec import load_sparse_model, save_sparse_model
from .sparsify import LayerChoice, sparsify

logger = logging.getLogger(__name__)

FORMATS = ("safetensors", "onnx")
SEQUENTIAL_FORMAT = "neuroprune.sequential/1"
GRAPH_FORMAT = "neuroprune.graph/1"
FX_FORMAT = "neuroprune.fx/1"  # a depth cut of a traced graph
_REQUIRED = ("model.json", "model.safetensors")
_HOW_TO_FIX = (
    "export reads the model.json and model.safetensors that `neuroprune synaptic` or `neuroprune depth` "
    "writes into its --out folder; pass that folder, or re-run the experiment to recreate them"
)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_run` wrote.

    Attributes:
        folder: the export folder.
        files: paths of the files written, ``export.json`` last.
        choices: Linear layer name -> kernel choice (empty for ONNX).
        report: the contents of ``export.json``.
    """

    folder: Path
    files: list[Path]
    choices: dict[str, LayerChoice] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def load_run_model(run_dir: str | Path) -> tuple[nn.Module, dict[str, Any], str]:
    """Rebuild the pruned model a run folder holds. Returns ``(model, metadata, spec_format)``.

    Raises:
        ModelError: files are missing, the spec format is unknown, or the weights do not
            fit the spec; the message names what is wrong and what to do.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ModelError(f"run folder {run} does not exist; {_HOW_TO_FIX}")
    missing = [name for name in _REQUIRED if not (run / name).is_file()]
    if missing:
        raise ModelError(f"run folder {run} is missing {', '.join(missing)}; {_HOW_TO_FIX}")
    document = read_json_file(run / "model.json")
    spec_format = document.get("architecture", {}).get("format") if isinstance(document, dict) else None
    if not isinstance(spec_format, str):
        raise ModelError(f"{run / 'model.json'} is not a neuroprune model description (it names no architecture "
                         f"format); {_HOW_TO_FIX}")
    try:
        if spec_format == SEQUENTIAL_FORMAT:
            model, metadata = load_model(run)
        elif spec_format == SPARSE_FORMAT:
            model, metadata = load_sparse_model(run)
        elif spec_format in (GRAPH_FORMAT, FX_FORMAT):
            model, metadata = _graph_loader()(run)
        else:
            raise ModelError(f"{run / 'model.json'} has unknown architecture format {spec_format!r}")
    except ModelError as exc:
        raise ModelError(
            f"cannot load the model in {run}: {exc}. model.json and model.safetensors must come from the same "
            "run; re-run the experiment or restore both files"
        ) from None
    return model.eval(), metadata, spec_format


def export_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    format: str = "safetensors",
    batch_sizes: Sequence[int] = (1, 256),
    use_sparse: bool = True,
    input_shape: Sequence[int] | None = None,
    rounds: int = 5,
    repeats: int = 20,
    threads: int | None = None,
) -> ExportResult:
    """Export the pruned model of ``run_dir`` into ``out_dir`` (default ``run_dir/export``).

    Args:
        run_dir: a run folder holding ``model.json`` + ``model.safetensors``.
        out_dir: the export folder (created; files in it are overwritten atomically).
        format: ``"safetensors"`` (weights + spec, CSR layers where they are faster) or
            ``"onnx"`` (``model.onnx`` with a dynamic batch axis, checked with onnxruntime).
        batch_sizes: batch sizes at which dense and CSR kernels are timed; a layer gets
            CSR where it is faster at all of them, a hybrid (dense below the first batch
            size where CSR wins) where it loses only at the smaller ones.
        use_sparse: if False, every layer stays dense (no timing).
        input_shape: one sample's shape, e.g. ``(1, 28, 28)``; default: the run's
            ``input_shape`` metadata.
        rounds: interleaved timing rounds per layer and batch size.
        repeats: timed calls per round.
        threads: torch threads while timing (``None``: the current setting).

    Returns:
        An :class:`ExportResult`.

    Raises:
        ModelError: the run folder is incomplete or inconsistent (see :func:`load_run_model`).
        ConfigError: an unknown format, a bad batch size, no input shape, or ``out_dir``
            is the run folder itself (its model would be overwritten).

    Example:
        >>> result = export_run("runs/mlp_mnist", format="onnx")   # doctest: +SKIP
        >>> result.files[0].name
        'model.onnx'
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if not batch_sizes or any(int(b) < 1 for b in batch_sizes):
        raise ConfigError(f"batch sizes must be positive integers, got {list(batch_sizes)}")
    run = Path(run_dir)
    model, metadata, spec_format = load_run_model(run)
    shape = _input_shape(input_shape, metadata, run)
    generator = torch.Generator().manual_seed(0)
    check_input = torch.randn(8, *shape, generator=generator)
    report: dict[str, Any] = {
        "format": format,
        "source": str(run.resolve()),
        "source_format": spec_format,
        "input_shape": list(shape),
        "threads": threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "checks": {"max_abs_diff_vs_masked": _check_against_masked(model, run, check_input)},
    }
    out = Path(out_dir) if out_dir is not None else run / "export"
    if out.resolve() == run.resolve():
        raise ConfigError(f"the export folder must differ from the run folder {run}: its model files would be replaced")
    out.mkdir(parents=True, exist_ok=True)
    metadata = {**metadata, "exported_from": str(run.resolve())}

    choices: dict[str, LayerChoice] = {}
    if format == "onnx":
        path = export_onnx(model, check_input[:1], out / "model.onnx")
        report["checks"]["onnxruntime_max_abs_diff"] = onnx_max_abs_diff(path, model, check_input)
        files = [path]
    else:
        exported, choices = _choose_kernels(model, spec_format, shape, batch_sizes, use_sparse, rounds, repeats,
                                            threads)
        report["layers"] = {name: choice.to_dict() for name, choice in choices.items()}
        report["batch_sizes"] = [int(b) for b in batch_sizes]
        with torch.inference_mode():
            expected = model(check_input)
            diff = float((exported(check_input) - expected).abs().max())
        report["checks"]["max_abs_diff_vs_source"] = diff
        if diff > 1e-4 * max(1.0, float(expected.abs().max())):
            logger.warning("the exported model differs from %s by up to %.3g", run, diff)
        kernels = {name: choice.kind for name, choice in choices.items()}
        files = _save(exported, out, {**metadata, "kernels": kernels}, spec_format)
    write_json(out / "export.json", report)
    files.append(out / "export.json")
    logger.info("exported %s to %s", run, out)
    return ExportResult(folder=out, files=files, choices=choices, report=report)


def load_exported(folder: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Load the model of a safetensors export folder (or any run folder). Returns ``(model, metadata)``.

    A flat chain comes back as an :class:`InferenceChain` (the lean forward); ``metadata``
    has ``kernels``: layer name -> ``"dense"``, ``"csr"`` or ``"hybrid"`` for an export folder.
    """
    model, metadata, _ = load_run_model(folder)
    if type(model) is nn.Sequential:
        model = InferenceChain.from_sequential(model)
    return model, metadata


def _graph_loader() -> Any:
    try:
        from ..depth import load_graph_model
    except ImportError as exc:
        raise ModelError(
            f"this run holds a depth-pruned model (format {GRAPH_FORMAT!r}) but neuroprune.depth cannot load it ({exc})"
        ) from None
    return load_graph_model


def _graph_saver() -> Any:
    from ..depth import save_graph_model

    return save_graph_model


def _input_shape(given: Sequence[int] | None, metadata: dict[str, Any], run: Path) -> tuple[int, ...]:
    shape = given if given is not None else metadata.get("input_shape")
    if not shape or any(int(s) < 1 for s in shape):
        raise ConfigError(
            f"no input shape: {run / 'model.json'} has no metadata 'input_shape'; pass one, e.g. --input-shape 1,28,28"
        )
    return tuple(int(s) for s in shape)


def _check_against_masked(model: nn.Module, run: Path, x: torch.Tensor) -> float | None:
    """Max |compacted - masked| on ``x`` when the run kept a synaptic checkpoint, else None.

    Raises:
        ModelError: the checkpoint holds another architecture or computes something else.
    """
    checkpoint, result_path = run / "checkpoint.pt", run / "result.json"
    if not checkpoint.is_file() or not result_path.is_file():
        return None
    result = read_json(result_path, what="the result.json a neuroprune run writes", max_bytes=MAX_RUN_FILE_BYTES,
                       schema={"method": "string", "model": "string"}, error=ModelError)
    if result.get("method") != "synaptic" or "model" not in result:
        return None
    masked = _masked_model(result["model"], load_torch(checkpoint), x, model, run)
    with torch.inference_mode():
        expected, got = masked(x), model(x)
    diff = float((expected - got).abs().max())
    tolerance = 1e-4 * max(1.0, float(expected.abs().max()))
    if diff > tolerance:
        raise ModelError(
            f"the model in {run / 'model.safetensors'} does not compute what the masked model in {checkpoint} "
            f"computes (max difference {diff:.3g}); the files come from different runs; re-run the experiment"
        )
    return diff


def _masked_model(name: str, checkpoint: Any, x: torch.Tensor, compact: nn.Module, run: Path) -> nn.Module:
    """The run's architecture rebuilt by name, holding the checkpoint's masked weights."""
    from ..models import create_model

    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise ModelError(f"{run / 'checkpoint.pt'} holds no 'model' weights; re-run the experiment")
    with torch.inference_mode():
        num_classes = int(compact(x[:1]).shape[-1])
    options: dict[str, Any] = {"in_channels": x.shape[1], "image_size": x.shape[-1], "num_classes": num_classes}
    options.update(_model_options(run))
    model = create_model(name, **options)
    expected, state = model.state_dict(), checkpoint["model"]
    wrong = sorted(set(expected) ^ set(state)) + [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if wrong:
        raise ModelError(
            f"{run / 'checkpoint.pt'} holds a different architecture than {name!r} in result.json "
            f"(mismatched: {', '.join(wrong[:6])}); the run folder mixes files from different runs; "
            f"re-run the experiment"
        )
    model.load_state_dict(state)
    return model.eval()


def _model_options(run: Path) -> dict[str, Any]:
    """Architecture options (``width``, ``hidden``) recorded in the run's config.json, if any."""
    path = run / "config.json"
    if not path.is_file():
        return {}
    saved = read_json(path, what="the config.json a neuroprune run writes", error=ModelError,
                      schema={**RUN_CONFIG_SCHEMA, "config.width": "number|null", "config.hidden": "array|null",
                              "config.hidden[]": "integer"})
    config = saved.get("config", {})
    return {key: config[key] for key in ("width", "hidden") if config.get(key) is not None}


def _choose_kernels(
    model: nn.Module,
    spec_format: str,
    shape: tuple[int, ...],
    batch_sizes: Sequence[int],
    use_sparse: bool,
    rounds: int,
    repeats: int,
    threads: int | None,
) -> tuple[nn.Module, dict[str, LayerChoice]]:
    # Only flat chains can be saved with CSR layers (the sparse spec describes a chain).
    is_chain = spec_format in (SEQUENTIAL_FORMAT, SPARSE_FORMAT)
    candidates = ("dense", "csr") if use_sparse and is_chain else ("dense",)
    if use_sparse and not is_chain:
        logger.info("a %s model is not a flat chain: its Linear layers stay dense", spec_format)
    inputs = [torch.randn(int(b), *shape) for b in batch_sizes]
    return sparsify(model, inputs, candidates=candidates, rounds=rounds, repeats=repeats, use_chain=is_chain,
                    threads=threads)


def _save(model: nn.Module, out: Path, metadata: dict[str, Any], spec_format: str) -> list[Path]:
    if isinstance(model, nn.Sequential) and any(isinstance(m, SparseLinear) for m in model.children()):
        save_sparse_model(model, out, metadata)
    elif spec_format in (GRAPH_FORMAT, FX_FORMAT):
        _graph_saver()(model, out, metadata)
    elif isinstance(model, nn.Sequential):
        save_model(model, out, metadata)  # all dense: loadable by neuroprune.load_model as well
    else:
        raise NeuropruneError(f"cannot save a {type(model).__name__} as safetensors + spec")
    return [out / "model.safetensors", out / "model.json"]
