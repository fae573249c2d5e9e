"""``neuroprune depth``: cut a trained model (given cut or search), recover it, measure, save.

Files in the output folder: ``result.json``, ``model.safetensors`` + ``model.json`` (the
pruned model as a graph spec), ``config.json`` (resolved config and environment), and for
a search ``candidates.json`` / ``candidates.csv`` (every candidate with its measurements).

A given cut runs data-parallel under ``torchrun`` (see ``docs/distributed.md``): ``batch_size``
is the global batch the processes share, accuracies are summed over all of them (the whole
test split), and rank 0 alone measures parameters, MACs and latency and writes the files. The
search runs in one process.
"""

from __future__ import annotations

import copy
import csv
import io
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import distributed as dist_utils
from .._user_options import dataset_of
from ..data import create_loader
from ..depth.blocks import BlockSpan
from ..depth.config import DepthConfig
from ..depth.graph_spec import save_graph_model
from ..depth.greedy import greedy_cuts
from ..depth.init import init_translators, translator_after
from ..depth.pruner import DepthPlan, DepthPruner
from ..depth.recovery import PhaseResult, fine_tune, fine_tune_pruning_units, recover
from ..depth.search import Budgets, search_cuts
from ..engine import evaluate
from ..engine.precision import resolve_device
from ..errors import ConfigError
from ..metrics import compare_latency, count_macs, count_params
from ..storage import atomic_write_bytes, write_json
from ..structure.channel_pruning import prune_channels
from ._checks import check_runs_on
from ._common import (
    EVAL_BATCH,
    check_global_batch,
    discards_unstarted_folder,
    start_run_folder,
)
from .train import load_trained, model_options

log = logging.getLogger(__name__)
LATENCY_BATCHES = (1, 64)
LATENCY_ROUNDS = 5


def prepare(config: DepthConfig) -> tuple[nn.Module, DepthPruner, Any, Any]:
    """Load the trained model and the data; returns ``(model, pruner, train loader, test loader)``.

    Recovery trains on the ``fit`` part of the training set; the ``validation`` part is kept
    for choosing the cut (:func:`validation_loader`), the test split for the final numbers.
    Under a process group the loaders are this rank's shards (the train batches of the
    global ``batch_size``, and its share of the test split).
    """
    rank, world = dist_utils.rank(), dist_utils.world_size()
    # a trained checkpoint replaces the starting weights: ImageNet ones matter only without one
    options = model_options(dataset_of(config), config.width, config.pad_to, config.weights,
                            pretrained=config.pretrained and config.checkpoint is None, model_args=config.model_args)
    model, _ = load_trained(config.model, config.checkpoint, options)
    device = resolve_device(config.device)
    model = model.to(device)
    train = create_loader(dataset_of(config), "fit", config.batch_size, root=config.data_root, seed=config.seed,
                          limit=config.limit_train, pad_to=config.pad_to, rank=rank, world_size=world)
    test = create_loader(dataset_of(config), "test", EVAL_BATCH, root=config.data_root, limit=config.limit_test,
                         pad_to=config.pad_to, rank=rank, world_size=world)
    example = next(iter(test))[0][:1].to(device)
    check_runs_on(model, example, config.model)  # a model built for other data fails here, named
    return model, DepthPruner(model, example_inputs=example), train, test


def validation_loader(config: DepthConfig) -> Any:
    """The held-out part of the training set every choice of the run is made on."""
    return create_loader(dataset_of(config), "validation", EVAL_BATCH, root=config.data_root, pad_to=config.pad_to)


def compare_speed(base: nn.Module, pruned: nn.Module, example: torch.Tensor, repeats: int,
                  rounds: int = LATENCY_ROUNDS) -> dict[str, Any]:
    """CPU latency of base and pruned at batch 1 and 64: interleaved rounds, one process, fixed threads."""
    timing: dict[str, Any] = {"threads": torch.get_num_threads(), "rounds": rounds, "repeats": repeats}
    for batch in LATENCY_BATCHES:
        compared = compare_latency({"base": base, "pruned": pruned}, example[:1].repeat(batch, 1, 1, 1),
                                   rounds=rounds, repeats=repeats)
        timing[f"batch_{batch}"] = {"base_ms": compared.median_ms["base"], "pruned_ms": compared.median_ms["pruned"],
                                    "speedup": compared.speedup["pruned"]}
    return timing


@discards_unstarted_folder
def run_depth(config: DepthConfig, out_dir: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Run one depth-pruning experiment and write its files into ``out_dir``.

    Returns:
        The contents of ``result.json`` on rank 0; an empty dict on the other ranks.

    Raises:
        ConfigError: a search under more than one process, or ``batch_size`` does not
            divide among the processes.
    """
    out = Path(out_dir)
    world = dist_utils.world_size()
    if config.search and world > 1:
        raise ConfigError(f"the cut search runs in one process, not {world}: start it without torchrun "
                          "(a given --cut runs data-parallel)")
    check_global_batch(config.batch_size, world)
    start_run_folder(out, config, world, overwrite=overwrite)  # refuses an earlier run unless overwrite
    torch.manual_seed(config.seed)
    model, pruner, train, test = prepare(config)
    example = pruner.example_inputs
    sharded = dist_utils.is_distributed()
    accuracy_base = evaluate(model, test, distributed=sharded, precision=config.precision)["accuracy"]
    cut, search_info = _choose_cut(config, pruner, train, out)
    plan = pruner.plan(cut, bridge=config.resolved_bridge, kernel_size=config.kernel_size,
                       use_batchnorm=config.use_batchnorm)
    log.info("%s", plan)
    small, phases, narrowed, translator_init = _recover(config, plan, model, train, test, example)
    accuracy_pruned = evaluate(small, test, distributed=sharded, precision=config.precision)["accuracy"]
    if not dist_utils.is_main_process():
        return {}
    device = example.device
    model, small, example = model.cpu(), small.cpu(), example.cpu()  # saved and timed on the CPU
    speed = compare_speed(model, small, example, config.latency_repeats)
    save_graph_model(small, out, {"source_model": config.model, "dataset": dataset_of(config), "pad_to": config.pad_to,
                                  "input_shape": list(example.shape[1:]), "cut": plan.cut})
    result = {
        "method": "depth",
        "model": config.model,
        "dataset": dataset_of(config),
        "cut": cut_record(plan, small),
        "accuracy_base": accuracy_base,
        "accuracy_pruned": accuracy_pruned,
        "params_base": count_params(model),
        "params_pruned": count_params(small),
        "macs_base": count_macs(model, example),
        "macs_pruned": count_macs(small, example),
        "latency": speed,
        "latency_ms_base": {key: speed[key]["base_ms"] for key in speed if key.startswith("batch_")},
        "latency_ms_pruned": {key: speed[key]["pruned_ms"] for key in speed if key.startswith("batch_")},
        "latency_threads": speed["threads"],
        "recovery": {"phases": [p.to_dict() for p in phases], "epochs": sum(p.epochs for p in phases),
                     "seconds": sum(p.seconds for p in phases), "distilled": config.distill,
                     "translator_init": translator_init if "translator" in plan.bridges else None},
        "channels": narrowed.get("channels"),
        "units": narrowed.get("units"),
        "search": search_info,
        # recovery trains on the fit part; a search chooses on the validation part; test is reported
        "selection_split": "validation" if config.search else None,
        "validation_size": search_info["validation_size"] if search_info else None,
        "device": str(device),
        "precision": config.precision,
    }
    write_json(out / "result.json", result)
    return result


def _choose_cut(config: DepthConfig, pruner: DepthPruner, train: Any, out: Path) -> tuple[str, dict[str, Any] | None]:
    """The cut to make: the given one, or a search's choice (with its summary, chosen on the validation part)."""
    if config.search and config.search_strategy == "greedy":
        return _greedy(config, pruner, train, validation_loader(config), out)
    if config.search:
        span, search_info = _search(config, pruner, validation_loader(config), out)
        return span.cut, search_info
    return config.cut, None  # type: ignore[return-value]  # a run without a search has a cut (checked by the config)


def _recover(
    config: DepthConfig, plan: DepthPlan, model: nn.Module, train: Any, test: Any, example: torch.Tensor
) -> tuple[nn.Module, list[PhaseResult], dict[str, Any], str]:
    """Apply ``plan`` and recover the result (pruning units while it is fine-tuned, or channels after, if asked).

    Returns the recovered model, the recovery phases, result.json's ``channels`` or ``units``
    entry (empty when neither was asked) and how the translators started.
    """
    small = plan.apply()
    # least squares fits the translator's conv alone: with batch norm after it, the start is random
    translator_init = config.translator_init if config.kernel_size == 1 and not config.use_batchnorm else "random"
    if translator_init == "lstsq":
        init_translators(small, plan, train)
    _share_rank_zero_state(small)  # each rank fitted the translator on its own shard
    teacher = copy.deepcopy(model).eval() if config.distill else None
    units = config.then_units_speedup is not None  # then the fine-tuning phase prunes units: run it below
    phases = recover(small, train, translator_epochs=config.translator_epochs, translator_lr=config.translator_lr,
                     finetune_epochs=0 if units else config.finetune_epochs, finetune_lr=config.finetune_lr,
                     teacher=teacher, distill_weight=config.distill_weight, temperature=config.temperature,
                     eval_loader=test, precision=config.precision)
    if units:
        small, phase, record = _units_while_fine_tuning(config, small, train, test, teacher, example)
        return small, [*phases, phase], {"units": record}, translator_init
    if config.then_channels is not None:
        small = prune_channels(small, config.then_channels)
        if config.channels_epochs > 0:
            phases.append(fine_tune(small, train, epochs=config.channels_epochs, lr=config.finetune_lr, teacher=teacher,
                                    distill_weight=config.distill_weight, temperature=config.temperature,
                                    eval_loader=test, precision=config.precision))
        return small, phases, {"channels": {"ratio": config.then_channels, "epochs": config.channels_epochs}}, (
            translator_init)
    return small, phases, {}, translator_init


def _units_while_fine_tuning(
    config: DepthConfig, small: nn.Module, train: Any, test: Any, teacher: nn.Module | None, example: torch.Tensor
) -> tuple[nn.Module, PhaseResult, dict[str, Any]]:
    """Fine-tune the cut network while units go until it is ``then_units_speedup`` x faster (see
    :func:`~neuroprune.depth.recovery.fine_tune_pruning_units`).

    Returns the compacted network, the fine-tuning phase and result.json's ``units`` entry
    (with the speed-up over the cut network measured after compaction, interleaved here).
    """
    batches = (config.then_units_batch,) if config.then_units_batch is not None else LATENCY_BATCHES
    cut_network = copy.deepcopy(small).eval()  # what the speed-up is measured against
    compact, phase, pruner = fine_tune_pruning_units(
        small, train, target_speedup=config.then_units_speedup, latency_batch_sizes=batches, example_inputs=example,
        max_unit_ratio=config.then_units_max_ratio, prune_until=config.then_units_until,
        epochs=config.finetune_epochs, lr=config.finetune_lr,
        teacher=teacher, distill_weight=config.distill_weight, temperature=config.temperature, eval_loader=test,
        precision=config.precision)
    calibration = pruner.latency_calibration
    record: dict[str, Any] = {
        "target_speedup": config.then_units_speedup, "latency_batch_sizes": list(batches),
        "max_unit_ratio": config.then_units_max_ratio, "prune_until": config.then_units_until,
        "epochs": config.finetune_epochs, "criterion": pruner.criterion, "macs_fraction": pruner.macs_fraction(),
        "latency_calibration": None if calibration is None else calibration.to_dict(),
    }
    if dist_utils.is_main_process():  # on the CPU, as the run's other timings
        timed = compare_speed(cut_network.cpu(), copy.deepcopy(compact).cpu(), example.cpu(), config.latency_repeats)
        record["speedup_over_cut"] = {key: timed[key]["speedup"] for key in timed if key.startswith("batch_")}
    return compact, phase, record


def _share_rank_zero_state(model: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers (nothing to do in one process)."""
    if not dist_utils.is_distributed():
        return
    with torch.no_grad():
        for tensor in model.state_dict().values():
            dist_utils.broadcast_(tensor)


def cut_record(plan: DepthPlan, small: nn.Module) -> dict[str, Any]:
    """The ``cut`` entry of result.json: the cuts, removed units and bridges.

    ``cut`` is the joined form (``a:b,c:d``); ``spans`` has one entry per cut. A one-cut plan
    also gives its ``origin``, ``destination`` and ``translator`` at the top.
    """
    spans: list[dict[str, Any]] = []
    for span, bridge in zip(plan.spans, plan.bridges, strict=True):
        translator: Any = translator_after(small, span.origin) if bridge == "translator" else None
        described = translator.config() | {"description": translator.describe()} if translator else None
        spans.append({"cut": span.cut, "origin": span.origin, "destination": span.destination,
                      "removed": list(span.removed), "bridge": bridge, "translator": described,
                      "params_removed": span.params_removed, "macs_removed": span.macs_removed})
    record: dict[str, Any] = {
        "cut": plan.cut, "bridge": plan.bridge, "removed": [name for s in spans for name in s["removed"]],
        "params_removed": sum(s["params_removed"] for s in spans),
        "macs_removed": sum(s["macs_removed"] for s in spans),
        "spans": spans,
    }
    if len(spans) == 1:
        record.update(origin=spans[0]["origin"], destination=spans[0]["destination"], translator=spans[0]["translator"])
    return record


def _greedy(
    config: DepthConfig, pruner: DepthPruner, train: Any, validation: Any, out: Path
) -> tuple[str, dict[str, Any]]:
    """Remove segments greedily, scored on ``validation``; save the steps; returns the cuts and a summary."""
    budgets = Budgets(config.max_params, config.max_macs, config.max_latency_ms, config.latency_batch,
                      config.min_speedup)
    started = time.perf_counter()
    found = greedy_cuts(pruner, train, validation, tau=config.tau, budgets=budgets, efficiency=config.efficiency,
                        latency_repeats=config.latency_repeats, precision=config.precision)
    write_json(out / "candidates.json", found.steps)
    return found.cut, {"strategy": "greedy", "seconds": time.perf_counter() - started, "base": found.base,
                       "best": found.steps[-1], "steps": len(found.steps), "selection_split": "validation",
                       "validation_size": len(validation.dataset), "table": "candidates.json"}


def _search(config: DepthConfig, pruner: DepthPruner, validation: Any, out: Path) -> tuple[BlockSpan, dict[str, Any]]:
    """Score the candidates on ``validation`` and save the table; returns the winner and a summary."""
    short = create_loader(dataset_of(config), "fit", config.batch_size, root=config.data_root, seed=config.seed,
                          limit=config.search_limit_train or config.limit_train, pad_to=config.pad_to)
    budgets = Budgets(config.max_params, config.max_macs, config.max_latency_ms, config.latency_batch,
                      config.min_speedup)
    started = time.perf_counter()
    found = search_cuts(pruner, short, validation, tau=config.tau, budgets=budgets, efficiency=config.efficiency,
                        translator_epochs=config.search_epochs, translator_lr=config.translator_lr,
                        max_evaluated=config.max_evaluated, kernel_size=config.kernel_size,
                        use_batchnorm=config.use_batchnorm, translator_init=config.translator_init,
                        precision=config.precision, latency_repeats=config.latency_repeats,
                        bridge=config.resolved_bridge)
    write_candidates(out, found.rows)
    return found.best, {"strategy": "single", "seconds": time.perf_counter() - started, "base": found.base,
                        "best": found.rows[0], "evaluated": sum(r["accuracy"] is not None for r in found.rows),
                        "candidates": len(found.rows), "selection_split": "validation",
                        "validation_size": len(validation.dataset), "table": "candidates.json"}


def write_candidates(out: Path, rows: list[dict[str, Any]]) -> None:
    """``candidates.json`` and ``candidates.csv``: one row per candidate cut."""
    write_json(out / "candidates.json", rows)
    columns = ["cut", "origin", "destination", "in_shape", "out_shape", "params_removed", "macs_removed",
               "translator", "params", "macs", "latency_ms", "speedup", "meets_budget", "accuracy", "score"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "candidates.csv", buffer.getvalue().encode())
