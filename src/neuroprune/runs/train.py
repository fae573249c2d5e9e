"""``neuroprune train``: train a base model and save it (safetensors weights + architecture JSON).

Also home of :func:`load_trained`, which rebuilds such a base model for later commands.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .. import distributed as dist_utils
from .._user_options import dataset_of
from ..data import create_loader, dataset_info
from ..depth.config import TrainConfig
from ..depth.graph_spec import save_graph_model
from ..engine import EpochLRScheduler, fit
from ..engine.precision import resolve_device
from ..errors import ModelError
from ..models import create_model
from ..models.weights_file import build_model
from ..saved_models import check_against_file, load_matching_state, load_model, read_json_file
from ..storage import load_torch, write_json
from ._checks import check_savable
from ._common import (
    EVAL_BATCH,
    check_global_batch,
    discards_unstarted_folder,
    make_optimizer,
    seeded_model,
    start_run_folder,
    write_history_csv,
)

log = logging.getLogger(__name__)


def model_options(dataset: str, width: float, pad_to: int | None, weights: str | None = None,
                  pretrained: bool = False, model_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """The keyword arguments ``create_model`` needs for ``dataset`` (padded to ``pad_to``), then ``model_args``."""
    info = dataset_info(dataset)
    options: dict[str, Any] = {"in_channels": info.in_channels, "image_size": pad_to or info.image_size,
                               "num_classes": info.num_classes, **(model_args or {})}
    if width != 1.0:
        options["width"] = width
    if weights is not None:
        options["weights"] = weights
    if pretrained:
        options["pretrained"] = True
    return options


@discards_unstarted_folder
def run_train(
    config: TrainConfig, out_dir: str | Path, *, show_progress: bool = False, overwrite: bool = False
) -> dict[str, Any]:
    """Train ``config.model`` on ``config.dataset`` and write its files into ``out_dir``.

    It trains on the ``fit`` part of the training set (90%); the ``validation`` tenth stays
    unseen, so a later depth search can choose its cut on images the network never saw.

    Files: ``model.safetensors`` + ``model.json`` (graph spec, registry name and options),
    ``result.json``, ``history.csv``, ``config.json`` (resolved config and environment).

    Runs data-parallel under ``torchrun`` (see ``docs/distributed.md``): ``batch_size`` is the
    global batch the processes share, the test accuracy is summed over all of them, and only
    rank 0 writes files.

    A folder that already holds a run is refused unless ``overwrite`` is set; a run that
    fails before training leaves no folder behind (or none of its files, if it existed).

    Returns:
        The contents of ``result.json`` on rank 0; an empty dict on the other ranks.

    Raises:
        ConfigError: ``batch_size`` does not divide among the processes, or ``out_dir``
            holds an earlier run and ``overwrite`` is not set.
    """
    out = Path(out_dir)
    rank, world = dist_utils.rank(), dist_utils.world_size()
    check_global_batch(config.batch_size, world)
    start_run_folder(out, config, world, overwrite=overwrite)
    dataset = dataset_of(config)
    options = model_options(dataset, config.width, config.pad_to, config.weights, config.pretrained, config.model_args)
    # the validation tenth of the training set stays unseen: depth pruning chooses its cut there
    train = create_loader(dataset, "fit", config.batch_size, root=config.data_root, seed=config.seed,
                          limit=config.limit_train, pad_to=config.pad_to, rank=rank, world_size=world)
    test = create_loader(dataset, "test", EVAL_BATCH, root=config.data_root, limit=config.limit_test,
                         pad_to=config.pad_to, rank=rank, world_size=world)
    device = resolve_device(config.device)
    model = seeded_model(lambda: build_model(config.model, **options), config.seed).to(device)
    check_savable(model, config.model)  # before training: a model the graph spec cannot describe is not saved
    optimizer = make_optimizer(model, config.optimizer, config.lr, config.momentum, config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    log.info("training %s on %s for %d epochs", config.model, dataset, config.epochs)
    history = fit(model, train, epochs=config.epochs, optimizer=optimizer, eval_loader=test,
                  callbacks=[EpochLRScheduler(schedule)], show_progress=show_progress, precision=config.precision)
    if not dist_utils.is_main_process():
        return {}
    model = model.cpu()
    # the trained weights replace whatever the model started from (a file, ImageNet weights)
    metadata = {"model": config.model, "model_options": {k: v for k, v in options.items()
                                                         if k not in ("weights", "pretrained")},
                "dataset": dataset, "pad_to": config.pad_to, "input_shape": list(next(iter(test))[0].shape[1:])}
    save_graph_model(model, out, metadata)
    result = {"method": "train", "model": config.model, "dataset": dataset, "epochs": config.epochs,
              "test_accuracy": history[-1]["test_accuracy"], "train_seconds": sum(r["seconds"] for r in history),
              "checkpoint": str(out / "model.safetensors"), "history": history,
              "processes": {"world_size": world}, "device": str(device), "precision": config.precision,
              "train_split": "fit"}
    write_history_csv(out / "history.csv", {"train": history})
    write_json(out / "result.json", result)
    return result


def load_trained(
    model: str, checkpoint: str | Path | None, options: dict[str, Any]
) -> tuple[nn.Module, dict[str, Any]]:
    """Build registry model ``model`` and load ``checkpoint`` into it.

    ``checkpoint`` is a ``.safetensors`` file or a folder holding ``model.safetensors``;
    when a ``model.json`` written by :func:`run_train` sits beside it, its model options
    (width, input size) are used, so the checkpoint fits without repeating them. A model a
    pruning run saved (compacted by ``synaptic``, cut by ``depth``) is rebuilt from its
    ``model.json`` alone, whatever ``model`` is.

    Returns:
        ``(model, options used)``.

    Raises:
        ModelError: the checkpoint belongs to another model, or its tensors do not fit
            (the message names the mismatched keys and shapes).
    """
    if checkpoint is None:
        return build_model(model, **options), options
    path = Path(checkpoint)
    weights = path / "model.safetensors" if path.is_dir() else path
    if not weights.is_file():
        raise ModelError(
            f"checkpoint {weights} does not exist; pass the model.safetensors written by `neuroprune train`"
        )
    described = weights.with_suffix(".json")
    if described.is_file():
        document = read_json_file(described)
        saved = document.get("metadata", {}) if isinstance(document, dict) else None
        if not isinstance(saved, dict) or not isinstance(saved.get("model_options", {}), dict):
            raise ModelError(f"{described} is not the model description `neuroprune train` writes")
        if "model" not in saved and isinstance(document.get("architecture"), dict):
            return _load_saved(weights, options)  # compacted or depth-pruned: rebuilt from model.json alone
        if saved.get("model") not in (None, model):
            raise ModelError(f"checkpoint {weights} holds a {saved['model']!r} model, not {model!r}; "
                             f"pass --model {saved['model']}")
        if "model_options" in saved:
            _check_same_width(options, saved["model_options"], weights)
        options = {**options, **saved.get("model_options", {})}
    if weights.suffix == ".safetensors":
        # sizes come from files that may be someone else's: check them before allocating
        check_against_file(lambda: create_model(model, **options), weights, described)
        net = create_model(model, **options)
        try:
            tensors = load_file(str(weights))
        except (SafetensorError, OSError) as exc:
            raise ModelError(f"{weights} is not a valid safetensors file: {exc}") from None
    else:
        net = create_model(model, **options)
        tensors = load_torch(weights)
    load_matching_state(net, tensors, source=str(weights))
    return net.eval(), options


def _load_saved(weights: Path, options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """A model a pruning run saved (its shapes are its own), with the input shape it recorded."""
    net, metadata = load_model(weights.parent, weights.stem)
    shape = metadata.get("input_shape")
    if isinstance(shape, list) and len(shape) == 3 and all(isinstance(n, int) and n > 0 for n in shape):
        options = {**options, "in_channels": shape[0], "image_size": shape[1]}
    return net, options


def _check_same_width(given: dict[str, Any], saved: dict[str, Any], weights: Path) -> None:
    """Refuse a width the user asked for that differs from the one the checkpoint was trained at.

    The saved options win otherwise (the weights only fit them), so a conflicting request
    would be dropped without a word. :func:`model_options` leaves the default width 1 out,
    so only a width other than 1 counts as asked for: ``--width 1`` cannot be told apart
    from no ``--width`` at all, and then the checkpoint's width is used.
    """
    if "width" not in given:
        return
    trained = saved.get("width", 1.0)
    if isinstance(trained, bool) or not isinstance(trained, (int, float)):
        return  # a malformed width: building the model from it reports that
    if given["width"] != trained:
        raise ModelError(f"--width {given['width']:g} was given, but checkpoint {weights} was trained at width "
                         f"{trained:g} and its weights only fit that; drop --width or pass --width {trained:g}")
