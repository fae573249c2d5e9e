"""Benchmark: synaptic pruning vs dense training and gradual magnitude pruning (GMP).

Two tables, each over data sets, models and seeds, with one recipe for every method
(the model's ``configs/synaptic_<model>_<dataset>.yaml``: epochs, optimizer, learning-rate
schedule, batch size, seed and batch order):

``--sparsities 0.9 0.95 0.98`` (accuracy at a given sparsity):
  dense      the network trained without pruning
  synaptic   the same run with ``SynapticPruner(target_sparsity=s)``: a cubic schedule from
             5% to 60% of training sets how many connections are gone at each check, the
             activity rule which
  gmp        gradual magnitude pruning (Zhu & Gupta 2017, ``GradualMagnitudePruner``):
             global |w|, the same cubic schedule, updates as often as synaptic checks

``--units s`` (speed from removing whole units):
  dense      as above
  synaptic   ``SynapticPruner(granularity="unit", target_sparsity=s)`` (``--granularity both``:
             units and single connections), then compacted
  scratch    a network of the compacted model's final shape, trained from scratch with the
             same recipe (the reason to prune at all is to beat it)
  Latency of dense, compacted and the compacted model in the lean inference chain
  (``neuroprune export``'s dense path), interleaved rounds in this process, median per-round
  speed-up, at ``--threads`` threads.

``--sparsities ... --methods dense synaptic gmp gmp-layer --criteria normalised deviation magnitude``
(the criterion study): every synaptic criterion through the same pruner and schedule, beside
GMP with one global ranking (``gmp``) and with every layer pruned to the target (``gmp-layer``,
Zhu & Gupta's own setting). ``--validation`` trains on the ``fit`` part of the training set and
evaluates the held-out ``validation`` part after every epoch as well as the test set, so a
criterion can be chosen on validation. ``--append`` merges the runs into an existing JSON (under
a lock, so several commands, one per seed or method, can fill one file). The table then gives,
for every run, the first epoch at which validation and test accuracy reach the same seed's
dense final accuracy minus 0.5 points (the "learning faster" claim); ``--plot`` draws the test
accuracy per epoch (seed 0) with :func:`neuroprune.report.plots.line_chart`.

``--prune-epochs K`` (the small-budget regime): the network is first trained without pruning
with the recipe (once per seed and setting, cached between commands), and every method starts
from those weights: dense keeps training, synaptic and GMP prune, for K epochs at ``--prune-lr``
(default a tenth of the recipe's). The table gains a *start* row (the trained network itself).

``--inputs``: ``standard`` (the loader's per-channel normalisation), ``raw`` (pixels 0-255, no
normalisation) or ``per-feature`` (each input pixel scaled by its own fixed factor 10^u, u
uniform in [-1, 1], drawn once with seed 1234: features on different scales, as in tabular
data): inputs on which a weight's magnitude says little about the signal it carries.

Plus (``--sample-every``) the pruner's training-step overhead: process CPU time per step
with and without the pruner, interleaved, same process.

Writes ``<out>/<name>.json`` and ``<name>.md``. Examples:
    python benchmarks/synaptic.py --datasets mnist fashion-mnist --models mlp --sparsities 0.9 0.95 0.98
    python benchmarks/synaptic.py --datasets mnist --models mlp lenet5 --units 0.8 --name synaptic_units
    python benchmarks/synaptic.py --datasets fashion-mnist --models resnet20 --seeds 0 --sparsities 0.9 \
        --methods synaptic gmp gmp-layer --criteria normalised magnitude --validation --append \
        --set granularity=connection --epochs 4 --limit-train 10000 --name synaptic_bn
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

import neuroprune as npr
from neuroprune.config import SynapticConfig, from_dict, to_dict
from neuroprune.export import InferenceChain
from neuroprune.metrics import compare_latency
from neuroprune.runs._common import environment, lr_schedule_callbacks, make_optimizer
from neuroprune.runs.train import model_options
from neuroprune.storage import atomic_write_bytes, write_json
from neuroprune.synaptic.criteria import list_criteria
from neuroprune.synaptic.schedule import resolve_schedule

from ._common import DEFAULT_OUT, command, waiting_lock
from ._start_cache import cached_start, start_key
from .synaptic_report import learning_speed, plot_curves, sparsity_markdown, start_text, study_markdown, unit_markdown

# the recipes: the package's copy of the repository's configs/synaptic_*.yaml (a test keeps them equal)
CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PRUNER_KEYS = ("criterion", "alpha", "patience", "check_every", "warmup_steps", "stop_step", "min_fan_in",
               "max_fraction_per_check", "max_unit_ratio", "sample_every", "fold_bias", "granularity")
LATENCY_BATCH = {"mlp": 256, "lenet5": 64, "cifar_cnn": 64}
METHODS = ("dense", "synaptic", "gmp", "gmp-layer")
INPUTS = ("standard", "raw", "per-feature")
EVAL_BATCH = 200  # a conv net evaluates about 2x faster per image on one CPU thread than at 1000


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, out: Path | None = None) -> None:
    """Run the suite with the command-line arguments ``argv`` (default: this process's).

    ``prog`` is the command the results record (default ``python -m neuroprune.bench
    synaptic``); ``out`` is the default of ``--out`` (default ``benchmarks/results``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or command("synaptic")
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--models", nargs="+", default=["mlp"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--sparsities", nargs="+", type=float, help="targets of the accuracy table")
    parser.add_argument("--units", type=float, help="target sparsity of the unit-granularity speed table")
    parser.add_argument("--granularity", choices=("unit", "both"), default="unit",
                        help="granularity of the --units table [default: unit]")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override synaptic options of the config for every run (e.g. criterion=contribution)")
    parser.add_argument("--epochs", type=int, help="override the config's epochs (quick runs)")
    parser.add_argument("--limit-train", type=int, help="use only the first N training samples (quick runs)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved latency rounds [default: 7]")
    parser.add_argument("--out", type=Path, default=out or DEFAULT_OUT)
    parser.add_argument("--name", default="synaptic", help="stem of the output files")
    parser.add_argument("--sample-every", type=int, nargs="+",
                        help="time the pruner's overhead at these sample_every values instead of training")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=["dense", "synaptic", "gmp"],
                        help="what to train at each sparsity [default: dense synaptic gmp]")
    parser.add_argument("--criteria", nargs="+", choices=list_criteria(),
                        help="synaptic criteria to compare, each a run [default: the config's criterion]")
    parser.add_argument("--label", default="",
                        help="suffix of this command's synaptic rows, so a variant (e.g. --set alpha=0.1) sits beside "
                             "the default run in one table (e.g. --label ' alpha 0.1')")
    parser.add_argument("--validation", action="store_true",
                        help="train on the 'fit' split and evaluate the 'validation' split every epoch too")
    parser.add_argument("--limit-validation", type=int, help="use only the first N validation samples")
    parser.add_argument("--inputs", choices=INPUTS, default="standard",
                        help="input scaling: standard, raw (0-255 pixels) or per-feature (fixed random scales)")
    parser.add_argument("--prune-epochs", type=int,
                        help="the small-budget regime: train the network with the recipe first (once per seed, "
                             "cached), then every method starts from it and prunes (dense: keeps training) for "
                             "this many epochs")
    parser.add_argument("--prune-lr", type=float,
                        help="peak learning rate of those epochs, same schedule [default: the recipe's / 10]")
    parser.add_argument("--append", action="store_true", help="merge into <name>.json instead of replacing it")
    parser.add_argument("--plot", action="store_true", help="also draw test accuracy per epoch (seed 0) as PNGs")
    parser.add_argument("--render", action="store_true",
                        help="train nothing: rewrite <name>.md (and with --plot the PNGs) from <name>.json")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for training and timing; small models train fastest on one [default: 1]")
    args = parser.parse_args(argv)
    args.command = " ".join([prog, *argv])  # as the results record it
    torch.set_num_threads(args.threads)
    if args.sample_every:
        _overhead_table(args)
        return
    if args.render:
        with _locked(args.name):
            _write_reports(json.loads((args.out / f"{args.name}.json").read_text()), args)
        return
    if not args.sparsities and args.units is None:
        parser.error("give --sparsities, --units or --sample-every")
    if args.prune_lr is not None and not args.prune_epochs:
        parser.error("--prune-lr sets the learning rate of --prune-epochs: give both")
    if args.prune_epochs is not None and (not args.sparsities or args.prune_epochs < 1):
        parser.error("--prune-epochs needs --sparsities (the accuracy table) and a count >= 1")
    runs: list[dict[str, Any]] = []
    for dataset in args.datasets:
        for model in args.models:
            config = _config(dataset, model, args)
            for seed in args.seeds:
                if args.sparsities:
                    runs.append(_sparsity_runs(config, seed, args.sparsities, args))
                else:
                    runs.append(_unit_runs(config, seed, args.units, args.rounds, args.granularity))
                _save(args, runs)
                print(json.dumps({k: runs[-1][k] for k in ("dataset", "model", "seed")}), "done", flush=True)


def _config(dataset: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    path = CONFIGS / f"synaptic_{model}_{dataset.replace('-', '_')}.yaml"
    values = yaml.safe_load(path.read_text()) if path.is_file() else {}
    values.update(dataset=dataset, model=model)
    for item in args.set:
        key, _, text = item.partition("=")
        values[key] = yaml.safe_load(text)
    if args.epochs:
        values["epochs"] = args.epochs
    if args.limit_train:
        values["limit_train"] = args.limit_train
    config = to_dict(from_dict(SynapticConfig, values, source=str(path)))
    config["config_file"] = str(path.relative_to(CONFIGS.parent)) if path.is_file() else None
    return config


def _data(config: dict[str, Any], seed: int, args: argparse.Namespace | None = None) -> tuple[Any, Any, Any]:
    """Train, test and (with ``--validation``) validation loaders, inputs scaled as ``--inputs`` says."""
    use_validation = args is not None and args.validation
    inputs = args.inputs if args is not None else "standard"
    train = npr.create_loader(config["dataset"], "fit" if use_validation else "train", config["batch_size"], seed=seed,
                              limit=config["limit_train"])
    test = npr.create_loader(config["dataset"], "test", EVAL_BATCH)
    validation = (npr.create_loader(config["dataset"], "validation", EVAL_BATCH, limit=args.limit_validation)
                  if use_validation else None)
    if inputs != "standard":
        train, test = _Scaled(train, config["dataset"], inputs), _Scaled(test, config["dataset"], inputs)
        validation = _Scaled(validation, config["dataset"], inputs) if validation is not None else None
    return train, test, validation


class _Scaled:
    """A loader whose images are rescaled: ``raw`` 0-255 pixels, or ``per-feature`` fixed random scales per pixel.

    Batches and their order are the wrapped loader's (``set_epoch`` passes through).
    """

    def __init__(self, loader: Any, dataset: str, inputs: str) -> None:
        info = npr.dataset_info(dataset)
        self.loader = loader
        mean = torch.tensor(info.mean).view(1, -1, 1, 1)
        std = torch.tensor(info.std).view(1, -1, 1, 1)
        if inputs == "raw":  # undo (pixel / 255 - mean) / std
            self.scale, self.shift = 255 * std, 255 * mean
        else:  # per pixel 10^u, u ~ U[-1, 1], the same draw for every run and split
            generator = torch.Generator().manual_seed(1234)
            shape = (1, info.in_channels, info.image_size, info.image_size)
            self.scale, self.shift = 10 ** (2 * torch.rand(shape, generator=generator) - 1), torch.zeros(())

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int) -> None:
        for part in (self.loader, getattr(self.loader, "sampler", None), getattr(self.loader, "batch_sampler", None)):
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)
                return

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in self.loader:
            yield x * self.scale + self.shift, y


def _build(config: dict[str, Any], seed: int, state: dict[str, torch.Tensor] | None = None,
           **options: Any) -> nn.Module:
    torch.manual_seed(seed)
    # every method starts from the same weights: the seed's, the published ones with pretrained, or `state`
    defaults = model_options(config["dataset"], 1.0, None, pretrained=bool(config.get("pretrained")),
                             model_args=config.get("model_args"))
    model = npr.create_model(config["model"], **{**defaults, **options})
    if state is not None:
        model.load_state_dict(state)
    return model


def _trained_start(config: dict[str, Any], seed: int, loaders: tuple[Any, Any, Any],
                   args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    """The small-budget regime: the network trained with ``config``'s recipe, and the pruning phase's recipe.

    Returns ``(phase config, trained weights, what the training reached)``; the phase keeps the
    recipe but runs ``--prune-epochs`` epochs at ``--prune-lr``.
    """
    train, test, validation = loaders

    def train_start() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        model = _build(config, seed)
        summary = _timed_fit(model, train, test, config, [], validation)
        return model.state_dict(), {**summary, "epochs": config["epochs"], "lr": config["lr"]}

    key = start_key(config=config, seed=seed, inputs=args.inputs, validation=args.validation,
                    limit_validation=args.limit_validation)
    state, summary = cached_start(key, train_start)
    phase = {**config, "epochs": args.prune_epochs, "lr": args.prune_lr or config["lr"] / 10}
    return phase, state, summary


class _Validate:
    """Callback: evaluate a validation loader after every epoch (logged as ``validation_accuracy``)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def on_epoch_end(self, trainer: Any) -> None:
        trainer.log(validation_accuracy=npr.evaluate(trainer.model, self.loader)["accuracy"])


def _fit(model: nn.Module, train: Any, test: Any, config: dict[str, Any], callbacks: list[Any],
         validation: Any = None) -> list[dict[str, Any]]:
    optimizer = make_optimizer(model, config["optimizer"], config["lr"], config["momentum"], config["weight_decay"])
    schedule = lr_schedule_callbacks(optimizer, config["lr_schedule"], config["epochs"])
    extra = [_Validate(validation)] if validation is not None else []
    return npr.fit(model, train, epochs=config["epochs"], optimizer=optimizer, eval_loader=test,
                   callbacks=[*callbacks, *schedule, *extra])


def _synaptic(model: nn.Module, config: dict[str, Any], **options: Any) -> npr.SynapticPruner:
    return npr.SynapticPruner(model, **{k: config[k] for k in PRUNER_KEYS}, **options)


def _summary(history: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    summary = {"test_accuracy": history[-1]["test_accuracy"],
               "accuracy_per_epoch": [r["test_accuracy"] for r in history], "seconds": seconds}
    if "validation_accuracy" in history[-1]:
        summary.update(validation_accuracy=history[-1]["validation_accuracy"],
                       validation_per_epoch=[r["validation_accuracy"] for r in history])
    return summary


def _timed_fit(model: nn.Module, train: Any, test: Any, config: dict[str, Any], callbacks: list[Any],
               validation: Any = None) -> dict[str, Any]:
    started = time.perf_counter()
    history = _fit(model, train, test, config, callbacks, validation)
    return _summary(history, time.perf_counter() - started)


def _sparsity_runs(config: dict[str, Any], seed: int, targets: list[float],
                   args: argparse.Namespace) -> dict[str, Any]:
    """One seed: dense, and per target each synaptic criterion and GMP (global, per layer), as ``--methods`` says."""
    train, test, validation = _data(config, seed, args)
    start, start_summary = None, None
    if args.prune_epochs:
        config, start, start_summary = _trained_start(config, seed, (train, test, validation), args)
    total_steps = config["epochs"] * len(train)
    result: dict[str, Any] = {"dataset": config["dataset"], "model": config["model"], "seed": seed,
                              "epochs": config["epochs"], "inputs": args.inputs, "config": config, "targets": {}}
    if start_summary is not None:
        result["start"] = start_summary
    if "dense" in args.methods:
        result["dense"] = _timed_fit(_build(config, seed, start), train, test, config, [], validation)
    check_every = _check_every(config, total_steps)
    for target in targets:
        row: dict[str, Any] = {}
        if "synaptic" in args.methods:
            for criterion in args.criteria or [config["criterion"]]:
                model = _build(config, seed, start)
                pruner = _synaptic(model, {**config, "criterion": criterion}, target_sparsity=target,
                                   total_steps=total_steps)
                run = _timed_fit(model, train, test, config, [pruner], validation)
                pruner.remove_hooks()
                model.eval()
                run.update(pruned_fraction=pruner.sparsity(), params_compact=npr.count_params(pruner.compact()),
                           per_layer_pruned={r["name"]: r["pruned"] / r["total"] for r in pruner.layer_summary()},
                           pruner={k: config[k] for k in PRUNER_KEYS} | {"criterion": criterion})
                row[f"synaptic:{criterion}{args.label}"] = run
        for method, scope in (("gmp", "global"), ("gmp-layer", "layer")):
            if method not in args.methods:
                continue
            model = _build(config, seed, start)
            gmp_pruner = npr.GradualMagnitudePruner.for_training(
                model, final_sparsity=target, total_steps=total_steps, update_every=check_every, scope=scope)
            run = _timed_fit(model, train, test, config, [gmp_pruner], validation)
            model.eval()
            run.update(pruned_fraction=gmp_pruner.sparsity(), params_compact=npr.count_params(npr.compact(model)),
                       per_layer_pruned={r["name"]: r["pruned"] / r["total"] for r in gmp_pruner.layer_summary()})
            row[method] = run
        result["targets"][str(target)] = row
    return result


def _check_every(config: dict[str, Any], total_steps: int) -> int:
    """The synaptic pruner's check interval for this run; GMP updates its masks as often."""
    return resolve_schedule(config["check_every"], config["warmup_steps"], config["stop_step"], total_steps).check_every


def _unit_runs(config: dict[str, Any], seed: int, target: float, rounds: int, granularity: str) -> dict[str, Any]:
    train, test, _ = _data(config, seed)
    result: dict[str, Any] = {"dataset": config["dataset"], "model": config["model"], "seed": seed,
                              "epochs": config["epochs"], "config": config, "target": target,
                              "granularity": granularity}
    dense_model = _build(config, seed)
    result["dense"] = _timed_fit(dense_model, train, test, config, [])
    model = _build(config, seed)
    pruner = _synaptic(model, {**config, "granularity": granularity}, target_sparsity=target)
    result["synaptic"] = _timed_fit(model, train, test, config, [pruner])
    pruner.remove_hooks()
    model.eval()
    small = pruner.compact().eval()
    example = next(iter(test))[0]
    with torch.inference_mode():
        error = float((model(example) - small(example)).abs().max())
    shape = _widths(small)
    result["synaptic"].update(pruned_fraction=pruner.sparsity(), params_compact=npr.count_params(small),
                              widths=shape, compact_max_abs_diff=error)
    options = _shape_options(config["model"], shape)
    if options is not None:
        scratch = _build(config, seed, **options)
        result["scratch"] = {**_timed_fit(scratch, train, test, config, []), "params": npr.count_params(scratch)}
    dense_model.eval()
    lean = InferenceChain.from_sequential(small)
    result["latency"] = {
        f"batch_{batch}": _interleaved({"dense": dense_model, "compact": small, "lean": lean},
                                        _batch_of(example, batch), rounds)
        for batch in (1, LATENCY_BATCH.get(config["model"], 64))
    }
    result["latency"]["threads"] = torch.get_num_threads()
    return result


def _widths(model: nn.Module) -> list[int]:
    """Output units of every Linear/Conv2d layer, in order."""
    return [m.weight.shape[0] for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def _shape_options(model: str, widths: list[int]) -> dict[str, Any] | None:
    """create_model options that give a network of these layer widths, or None (no such factory option)."""
    if model == "mlp":
        return {"hidden": tuple(widths[:-1])}
    if model == "lenet5":
        return {"channels": tuple(widths[:2]), "hidden": widths[2]}
    return None  # e.g. a ResNet's per-layer widths: its factory has one width multiplier


def _batch_of(example: torch.Tensor, size: int) -> torch.Tensor:
    return example.repeat((size + len(example) - 1) // len(example), *([1] * (example.dim() - 1)))[:size]


def _interleaved(variants: dict[str, nn.Module], x: torch.Tensor, rounds: int) -> dict[str, Any]:
    """Median ms per variant, and median over rounds of dense_ms / variant_ms in the same round."""
    timed = compare_latency(variants, x, baseline="dense", rounds=rounds, repeats=30, warmup=3, max_seconds=3.0)
    return {"ms": timed.median_ms, "rounds": rounds, "speedup": timed.speedup}


# ---- pruner overhead ------------------------------------------------------------------------


def _overhead(config: dict[str, Any], sample_every: int, repeats: int = 15) -> dict[str, Any]:
    """CPU time per training step with and without the pruner: the median of per-round ratios.

    Each round trains a fresh model for two check intervals (no warm-up, so the checks are
    part of what is timed) once with and once without the pruner, in alternating order; the
    overhead is the median over rounds of (with / without) - 1, so a slow stretch of a shared
    machine touches both sides of a ratio. Process CPU time, not wall time.
    """
    train, _, _ = _data(config, 0)
    check_every = (config["check_every"] if isinstance(config["check_every"], int)
                   else max(1, len(train) * config["epochs"] // 100))
    steps = 2 * check_every
    batches: list[Any] = []
    while len(batches) < steps:
        batches += [b for _, b in zip(range(steps - len(batches)), train, strict=False)]
    timings: dict[str, list[float]] = {"plain": [], "pruner": []}
    for round_ in range(repeats):
        for mode in ("plain", "pruner") if round_ % 2 == 0 else ("pruner", "plain"):
            model = _build(config, 0)
            optimizer = make_optimizer(model, config["optimizer"], config["lr"], config["momentum"],
                                       config["weight_decay"])
            pruner = None
            if mode == "pruner":
                options = {**config, "check_every": check_every, "warmup_steps": 0, "stop_step": None,
                           "sample_every": sample_every, "granularity": "connection"}
                pruner = _synaptic(model, options, optimizer=optimizer)
            started = time.process_time()
            for x, y in batches:
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
                if pruner is not None:
                    pruner.step()
            timings[mode].append((time.process_time() - started) / len(batches))
    ratios = [p / q for p, q in zip(timings["pruner"], timings["plain"], strict=True)]
    return {"plain_ms_per_step": 1e3 * statistics.median(timings["plain"]),
            "pruner_ms_per_step": 1e3 * statistics.median(timings["pruner"]),
            "overhead": statistics.median(ratios) - 1,
            "overhead_quartiles": [q - 1 for q in statistics.quantiles(ratios, n=4)],
            "steps": steps, "repeats": repeats, "batch_size": config["batch_size"], "check_every": check_every,
            "criterion": config["criterion"], "clock": "process CPU time"}


def _overhead_table(args: argparse.Namespace) -> None:
    rows = []
    for dataset in args.datasets:
        for model in args.models:
            config = _config(dataset, model, args)
            for every in args.sample_every:
                rows.append({"dataset": dataset, "model": model, "sample_every": every, **_overhead(config, every)})
                print(json.dumps(rows[-1]), flush=True)
    lines = ["# Pruner overhead by sample_every", "", f"Command: `{args.command}`",
             "", "Process CPU time per training step over two check intervals, with and without the pruner in "
             f"alternating order; overhead = median over {rows[0]['repeats'] if rows else 0} rounds of the per-round "
             f"ratio, with its quartiles; {torch.get_num_threads()} thread(s).", "",
             "| data set | model | criterion | sample_every | plain ms/step | with pruner ms/step "
             "| overhead (quartiles) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['model']} | {r['criterion']} | {r['sample_every']} | "
              f"{r['plain_ms_per_step']:.2f} | {r['pruner_ms_per_step']:.2f} | {100 * r['overhead']:+.1f}% "
              f"({100 * r['overhead_quartiles'][0]:+.1f}% to {100 * r['overhead_quartiles'][2]:+.1f}%) |" for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{args.name}.json", {"command": args.command, "rows": rows, "environment": environment()})
    atomic_write_bytes(args.out / f"{args.name}.md", ("\n".join(lines) + "\n").encode())


# ---- reports --------------------------------------------------------------------------------


def _save(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    command = args.command
    with _locked(args.name):  # several commands may append to one file at once
        if args.append and path.is_file():
            payload = json.loads(path.read_text())
            payload["runs"] = _merge(payload["runs"], runs)
            payload["commands"] = [*payload.get("commands", [payload["command"]]), command]
            payload["environment"] = environment()
        else:
            payload = {"command": command, "commands": [command], "environment": environment(), "runs": runs}
        _write_reports(payload, args)


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    """Hold an exclusive lock named after the output files (other benchmark processes wait)."""
    with waiting_lock(Path(tempfile.gettempdir()) / f"neuroprune-benchmark-{name}.lock"):
        yield


def _write_reports(payload: dict[str, Any], args: argparse.Namespace) -> None:
    """<name>.json and <name>.md (and with ``--plot``, the accuracy curves) from ``payload``."""
    runs = payload["runs"]
    rows = [row for r in runs for row in r.get("targets", {}).values()]
    # the two-method table needs both methods in every row; anything else (other methods, criteria, a part of a
    # study run piece by piece, such as dense alone) is a study table
    is_study = any(set(row) != {"synaptic", "gmp"} for row in rows)
    if is_study:
        learning_speed(runs)
    write_json(args.out / f"{args.name}.json", payload)
    if is_study:
        text = study_markdown(payload)
    else:
        text = sparsity_markdown(payload) if "targets" in runs[0] else unit_markdown(payload)
    atomic_write_bytes(args.out / f"{args.name}.md", text.encode())
    if args.plot and is_study:
        plot_curves(payload, args.out, args.name)


def _key(run: dict[str, Any]) -> tuple[Any, ...]:
    return (run["dataset"], run["model"], run["seed"], run.get("inputs", "standard"),
            json.dumps(run["config"].get("model_args"), sort_keys=True), start_text(run))


def _merge(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``old`` runs with ``new`` ones merged in: a run of the same seed and setting gains (or replaces) methods."""
    merged = {_key(run): run for run in old}
    for run in new:
        known = merged.get(_key(run))
        if known is None:
            merged[_key(run)] = run
            continue
        for field in ("epochs", "limit_train", "lr", "batch_size", "granularity"):
            if known["config"].get(field) != run["config"].get(field):
                raise SystemExit(f"cannot append: {field} is {run['config'].get(field)!r} here and "
                                 f"{known['config'].get(field)!r} in the file for {_key(run)}")
        if "dense" in run:
            known["dense"] = run["dense"]
        for target, row in run["targets"].items():
            known["targets"].setdefault(target, {}).update(row)
    return list(merged.values())


if __name__ == "__main__":
    main()
