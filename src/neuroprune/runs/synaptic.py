"""``neuroprune synaptic``: train with synaptic pruning (and optionally without), compact, report."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from .._io import save_model, write_json
from ..config import SynapticConfig, to_dict
from ..data import create_loader, dataset_info
from ..engine import Checkpointer, fit
from ..metrics import count_macs, count_params, measure_latency
from ..models import create_model
from ..synaptic import SynapticPruner
from ._common import environment, lr_schedule_callbacks, make_optimizer, seeded_model, write_history_csv

log = logging.getLogger(__name__)
EVAL_BATCH = 1000
LATENCY_BATCH = 256


def run_synaptic(config: SynapticConfig, out_dir: str | Path, *, show_progress: bool = False) -> dict[str, Any]:
    """Run one synaptic-pruning experiment and write its files into ``out_dir``.

    Files: ``result.json``, ``history.csv``, ``config.json`` (resolved config and
    environment), ``model.safetensors`` + ``model.json`` (the compacted model),
    ``checkpoint.pt`` (the last epoch of the pruned run).

    Returns:
        The contents of ``result.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"config": to_dict(config), "environment": environment()})
    info = dataset_info(config.dataset)
    train = create_loader(
        config.dataset, "train", config.batch_size, root=config.data_root, seed=config.seed, limit=config.limit_train
    )
    test = create_loader(config.dataset, "test", EVAL_BATCH, root=config.data_root, limit=config.limit_test)

    def build() -> torch.nn.Module:
        return create_model(
            config.model, in_channels=info.in_channels, image_size=info.image_size, num_classes=info.num_classes
        )

    dense: dict[str, Any] | None = None
    if config.compare_dense:
        log.info("training the dense network")
        dense_model = seeded_model(build, config.seed)
        dense_history = _train(dense_model, config, train, test, [], show_progress)
        dense = {
            "test_accuracy": dense_history[-1]["test_accuracy"],
            "train_seconds": sum(r["seconds"] for r in dense_history),
            "history": dense_history,
        }

    log.info("training with synaptic pruning")
    model = seeded_model(build, config.seed)
    pruner = SynapticPruner(
        model,
        criterion=config.criterion,
        alpha=config.alpha,
        patience=config.patience,
        check_every=config.check_every,
        warmup_steps=config.warmup_steps,
        stop_step=config.stop_step,
        min_fan_in=config.min_fan_in,
        max_fraction_per_check=config.max_fraction_per_check,
        target_sparsity=config.target_sparsity,
    )
    history = _train(model, config, train, test, [pruner, Checkpointer(out / "checkpoint.pt", pruner)], show_progress)
    pruner.remove_hooks()

    model.eval()
    small = pruner.compact().eval()
    example = next(iter(test))[0]
    with torch.inference_mode():
        compact_error = float((model(example) - small(example)).abs().max())
    dense_arch = build()
    save_model(small, out, {"dataset": config.dataset, "input_shape": list(example.shape[1:]), "source": config.model})

    result: dict[str, Any] = {
        "method": "synaptic",
        "dataset": config.dataset,
        "model": config.model,
        "epochs": config.epochs,
        "seed": config.seed,
        "test_accuracy": history[-1]["test_accuracy"],
        "connections_total": pruner.num_connections,
        "connections_pruned": pruner.num_connections - pruner.num_live,
        "pruned_fraction": pruner.sparsity(),
        "per_layer": _per_layer(pruner, small),
        "params_dense": count_params(dense_arch),
        "params_compact": count_params(small),
        "macs_dense": count_macs(dense_arch, example[:1]),
        "macs_compact": count_macs(small, example[:1]),
        "compact_max_abs_diff": compact_error,
        "train_seconds": sum(r["seconds"] for r in history),
        "latency_ms": _latency(dense_arch, small, example),
        "history": history,
        "checks": pruner.history,
        "pruner": {
            "criterion": config.criterion,
            "alpha": config.alpha,
            "patience": config.patience,
            "check_every": config.check_every,
            "warmup_steps": config.warmup_steps,
            "stop_step": config.stop_step,
            "min_fan_in": config.min_fan_in,
            "max_fraction_per_check": config.max_fraction_per_check,
            "target_sparsity": config.target_sparsity,
        },
    }
    if dense is not None:
        result["dense"] = dense
    write_history_csv(out / "history.csv", {"synaptic": history, **({"dense": dense["history"]} if dense else {})})
    write_json(out / "result.json", result)
    return result


def _train(model, config: SynapticConfig, train, test, callbacks, show_progress: bool) -> list[dict[str, Any]]:
    optimizer = make_optimizer(model, config.optimizer, config.lr, config.momentum, config.weight_decay)
    callbacks = [*callbacks, *lr_schedule_callbacks(optimizer, config.lr_schedule, config.epochs)]
    return fit(
        model, train, epochs=config.epochs, optimizer=optimizer, eval_loader=test, callbacks=callbacks,
        show_progress=show_progress,
    )


def _per_layer(pruner: SynapticPruner, small: torch.nn.Module) -> list[dict[str, Any]]:
    """Pruned connections per layer, and units the compaction removed."""
    compact_widths = {
        name: module.weight.shape[0] for name, module in small.named_children() if hasattr(module, "weight")
    }
    rows = []
    for row in pruner.layer_summary():
        kept = compact_widths.get(row["name"].replace(".", "_"), row["units"])
        rows.append({
            "name": row["name"],
            "total": row["total"],
            "pruned": row["pruned"],
            "pruned_fraction": row["pruned"] / row["total"],
            "units": row["units"],
            "dead_units": row["units"] - kept,
        })
    return rows


def _latency(dense: torch.nn.Module, small: torch.nn.Module, example: torch.Tensor) -> dict[str, Any]:
    """Median CPU latency of the dense architecture and the compacted model, same process."""
    big_batch = example.repeat((LATENCY_BATCH + len(example) - 1) // len(example), 1, 1, 1)[:LATENCY_BATCH]
    result: dict[str, Any] = {}
    for label, batch in (("batch_1", example[:1]), (f"batch_{LATENCY_BATCH}", big_batch)):
        started = time.perf_counter()
        d = measure_latency(dense, batch)
        c = measure_latency(small, batch)
        result[label] = {"dense": d.median_ms, "compact": c.median_ms, "speedup": d.median_ms / c.median_ms}
        log.debug("latency %s measured in %.1fs", label, time.perf_counter() - started)
    result["threads"] = torch.get_num_threads()
    return result
