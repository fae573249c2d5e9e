"""Benchmark: MAC-aware synaptic unit pruning beside Torch-Pruning's gradual channel pruning, at equal measured latency.

One model, data set and seed per command; the run is added to ``<out>/<name>.json`` (a run
of the same model, data set and seed is replaced) and ``<name>.md`` is rewritten from all
runs. Every variant uses the model's ``configs/synaptic_<model>_<dataset>.yaml`` recipe
(optimizer, learning rate and its schedule, batch size), the same epochs, the same seeded
initial weights and the same batch order, and trains on the ``fit`` part of the training set:

  dense      the network trained without pruning.
  synaptic   ``SynapticPruner(granularity="unit", target_macs=T)`` (``--target-macs``) or
             ``target_speedup=N`` (``--target-speedup``: the share of layer cost that leaves 1/N
             of the dense time is measured on thinned copies of the network before training and
             re-timed on the pruned network during it): the cubic schedule of the checks
             (warm-up 5%, a check every 1%, target at 60% of training) counts MACs, and units go
             by downstream activity per MAC their removal saves; then compacted.
  tp         Torch-Pruning gradual channel pruning during the same training: its
             ``iterative_steps`` are our checks (same steps, same cubic ramp), one ratio for
             every layer, classifier kept; L2 ``MagnitudeImportance`` (``tp@bN``) and/or, with
             ``--tp-importance magnitude taylor``, ``TaylorImportance`` (|w * dL/dw| of the
             check's training batch; ``tp-taylor@bN``). The ratio is bisected *before* training,
             on the final shape only (a uniform ratio fixes the shape whatever the weights),
             until that shape runs as fast as the synaptic compacted model: once at batch 1
             (``tp@b1``) and once at batch 64 (``tp@b64``; trained only if its ratio differs).
             Pruned layers get new Parameters, so their momentum restarts at each Torch-Pruning
             step (Torch-Pruning leaves optimizer state to its user).
  scratch    the synaptic compacted model's shape, re-initialised and trained from scratch.

Nothing is chosen on the test split: the target is given, the ratio is matched on latency
alone. Accuracy is reported on the validation tenth and on the test split. Latency:
``neuroprune.metrics.compare_latency`` (interleaved rounds in one process, ``--threads``
threads, median of per-round ratios to dense), batch 1 and 64, after all training.

Examples (each ~10 minutes on one thread):
    python benchmarks/units.py --dataset mnist --model mlp --target-macs 0.2 --epochs 8 --limit-train 20000
    python benchmarks/units.py --dataset mnist --model lenet5 --target-macs 0.3 --epochs 6 --limit-train 20000
    python benchmarks/units.py --dataset fashion-mnist --model resnet20 --target-macs 0.4 --epochs 3 \\
        --limit-train 10000
    python benchmarks/units.py --dataset fashion-mnist --model resnet20 --target-speedup 2 --epochs 4 \\
        --limit-train 10000 --tp-importance taylor --name units_speedup
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch import nn

import neuroprune as npr
from neuroprune.runs._common import environment
from neuroprune.storage import atomic_write_bytes, write_json

from ._common import DEFAULT_OUT, command
from .synaptic import (
    PRUNER_KEYS,
    _batch_of,
    _build,
    _config,
    _fit,
    _interleaved,
    _widths,
)
from .synaptic_report import mean_std
from .torch_pruning_peer import prune_channels_to_latency, require_torch_pruning

BATCHES = (1, 64)
TP_IMPORTANCES = ("magnitude", "taylor")


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, out: Path | None = None) -> None:
    """Run the suite with the command-line arguments ``argv`` (default: this process's).

    ``prog`` is the command the results record (default ``python -m neuroprune.bench
    units``); ``out`` is the default of ``--out`` (default ``benchmarks/results``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    prog = prog or command("units")
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--seed", type=int, default=0)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--target-macs", type=float, help="share of dense MACs the synaptic run keeps")
    target.add_argument("--target-speedup", type=float,
                        help="measured speed-up over dense the synaptic run aims at (at batch 1 and 64, or "
                             "--speedup-batch)")
    parser.add_argument("--speedup-batch", type=int, help="with --target-speedup: the one batch size it is met at")
    parser.add_argument("--tp-importance", choices=TP_IMPORTANCES, nargs="+", default=["magnitude"],
                        help="Torch-Pruning's channel importance; each one trains its own rows (tp@bN for "
                             "magnitude, tp-taylor@bN for taylor) [default: magnitude]")
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--limit-train", type=int, help="first N images of the fit split")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override config options")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training and timing [default: 1]")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved latency rounds of the final table")
    parser.add_argument("--parallel", action="store_true",
                        help="train independent variants in separate processes (dense with synaptic, except with "
                             "--target-speedup, whose in-run timing needs the machine alone; then the "
                             "Torch-Pruning rows with scratch); final timing stays in this process, after all "
                             "training")
    parser.add_argument("--out", type=Path, default=out or DEFAULT_OUT)
    parser.add_argument("--name", default="units")
    parser.add_argument("--merge", type=Path, nargs="+", help="only combine the runs of these JSON files into --name")
    parser.add_argument("--note", action="append", default=[], help="with --merge: a line for the report's notes")
    args = parser.parse_args(argv)
    args.command = " ".join([prog, *argv])  # as the results record it
    if args.merge:
        merged: dict[str, Any] = {"runs": [], "notes": args.note}
        for path in args.merge:
            merged["runs"] += json.loads(path.read_text())["runs"]
        args.out.mkdir(parents=True, exist_ok=True)
        write_json(args.out / f"{args.name}.json", merged)
        atomic_write_bytes(args.out / f"{args.name}.md", markdown(merged).encode())
        return
    if args.target_macs is None and args.target_speedup is None:
        parser.error("give --target-macs or --target-speedup (or --merge)")
    if args.speedup_batch is not None and args.target_speedup is None:
        parser.error("--speedup-batch goes with --target-speedup")
    require_torch_pruning()  # before any training: every run has Torch-Pruning rows
    torch.set_num_threads(args.threads)
    args.units, args.sparsities, args.sample_every = None, None, None  # what the synaptic suite's _config reads
    config = _config(args.dataset, args.model, args)
    config.update(granularity="unit", target_sparsity=None, target_macs=None, target_speedup=None)
    started = time.perf_counter()
    run = bench(config, args)
    run["wall_seconds"] = time.perf_counter() - started
    save(args, run)
    print(json.dumps({k: run[k] for k in ("dataset", "model", "seed")}), "done", flush=True)


def loaders(config: dict[str, Any], seed: int) -> tuple[Any, Any, Any]:
    fit = npr.create_loader(config["dataset"], "fit", config["batch_size"], seed=seed, limit=config["limit_train"])
    validation = npr.create_loader(config["dataset"], "validation", 1000)
    test = npr.create_loader(config["dataset"], "test", 1000)
    return fit, validation, test


def accuracy(model: nn.Module, loader: Any) -> float:
    return float(npr.evaluate(model, loader)["accuracy"])


def bench(config: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    seed = args.seed
    fit, validation, test = loaders(config, seed)
    x = next(iter(test))[0][:1]
    total_steps = config["epochs"] * len(fit)
    rows: dict[str, dict[str, Any]] = {}
    models: dict[str, nn.Module] = {}
    # --parallel: independent trainings in separate processes (each at --threads); a busy machine
    # shares its cores per process, and every run keeps its own seed, data order and recipe
    pool = ProcessPoolExecutor(max_workers=3, mp_context=multiprocessing.get_context("fork")) if args.parallel else None

    def run(job: Any, *job_args: Any) -> Future:
        if pool is not None:
            return pool.submit(_clocked, job, *job_args)
        done: Future = Future()
        done.set_result(_clocked(job, *job_args))
        return done

    def finish(label: str, outcome: tuple[nn.Module, list[dict[str, Any]], float, dict[str, Any]]) -> None:
        model, history, seconds, extra = outcome
        model.eval()
        models[label] = model
        rows[label] = {"validation_accuracy": accuracy(model, validation), "test_accuracy": accuracy(model, test),
                       "validation_per_epoch": [r["test_accuracy"] for r in history], "train_seconds": seconds,
                       "params": npr.count_params(model), "macs": npr.count_macs(model, x), "widths": _widths(model),
                       **extra}
        print(label, json.dumps({k: rows[label][k] for k in ("validation_accuracy", "test_accuracy", "macs")}),
              flush=True)

    target = synaptic_target(args)
    # a speed-up target times the network while it is pruned: trained beside dense it would be
    # calibrated on a busier machine than the lone final timing judges it on, so dense then
    # trains later, beside the Torch-Pruning runs (after their ratios are matched, also timed)
    is_timed_in_training = "target_speedup" in target
    synaptic = run(train_synaptic, config, seed, args.threads, target, x, total_steps)
    if not is_timed_in_training:
        finish("dense", run(train_dense, config, seed, args.threads).result())
    finish("synaptic", synaptic.result())
    small = models["synaptic"]
    checks = rows["synaptic"].pop("check_steps")

    # Torch-Pruning, ratio matched on latency at batch 1 and at batch 64 (on the final shape, before training)
    matched: dict[int, tuple[float, float]] = {}
    for batch in BATCHES:
        _, ratio, relative = prune_channels_to_latency(_build(config, seed), _batch_of(x, batch), small, steps=7)
        matched[batch] = (ratio, relative)
        print(f"tp ratio matched at batch {batch}: {ratio:.4f} ({relative:.3f}x the synaptic model)", flush=True)
    jobs: dict[str, Future] = {}
    if is_timed_in_training:
        jobs["dense"] = run(train_dense, config, seed, args.threads)
    matched_at: dict[str, list[int]] = {}
    for importance in args.tp_importance:
        for batch in BATCHES:
            same = [b for b in BATCHES if b < batch and abs(matched[b][0] - matched[batch][0]) < 0.02]
            if same:  # the ratio of a smaller batch already fits: one training run serves both
                matched_at[tp_label(importance, same[0])].append(batch)
                continue
            label = tp_label(importance, batch)
            matched_at[label] = [batch]
            jobs[label] = run(train_tp, config, seed, args.threads, x, matched[batch], checks, importance)
    jobs["scratch"] = run(train_scratch, config, seed, args.threads, small)
    for label, job in jobs.items():
        finish(label, job.result())
        if label in matched_at:
            rows[label]["matched_at"] = matched_at[label]
    if pool is not None:
        pool.shutdown()

    order = ["dense", "synaptic", *(label for label in jobs if label != "dense")]  # dense: the baseline
    rows = {label: rows[label] for label in order}
    timed = {label: models[label] for label in order if label != "scratch"}  # scratch: the synaptic shape
    latency = {f"batch_{b}": _interleaved(timed, _batch_of(x, b), args.rounds) for b in BATCHES}
    latency["threads"] = torch.get_num_threads()
    return {"dataset": config["dataset"], "model": config["model"], "seed": seed, "epochs": config["epochs"],
            "limit_train": config["limit_train"], "config": config, "target": synaptic_target(args),
            "tp_importance": args.tp_importance, "parallel": args.parallel, "rows": rows, "latency": latency}


def tp_label(importance: str, batch: int) -> str:
    """The row of Torch-Pruning with ``importance``, its ratio matched at ``batch``."""
    return f"tp@b{batch}" if importance == "magnitude" else f"tp-{importance}@b{batch}"


def synaptic_target(args: argparse.Namespace) -> dict[str, Any]:
    """The compute target of the synaptic run, as ``SynapticPruner`` keywords."""
    if args.target_speedup is None:
        return {"target_macs": args.target_macs}
    batches = BATCHES if args.speedup_batch is None else (args.speedup_batch,)
    return {"target_speedup": args.target_speedup, "latency_batch_sizes": list(batches)}


def _clocked(job: Any, *job_args: Any) -> tuple[nn.Module, Any, float, dict[str, Any]]:
    """``job(*job_args)`` with the wall-clock times it ran between in its row (``ran_between``, epoch seconds)."""
    started = time.time()
    model, history, seconds, extra = job(*job_args)
    return model, history, seconds, {**extra, "ran_between": [started, time.time()]}


def _timed(model: nn.Module, config: dict[str, Any], seed: int, threads: int,
           callbacks: list[Any]) -> tuple[Any, float]:
    torch.set_num_threads(threads)
    fit, validation, _ = loaders(config, seed)
    started = time.perf_counter()
    history = _fit(model, fit, validation, config, callbacks)
    return history, time.perf_counter() - started


def train_dense(config: dict[str, Any], seed: int, threads: int) -> tuple[nn.Module, Any, float, dict[str, Any]]:
    model = _build(config, seed)
    history, seconds = _timed(model, config, seed, threads, [])
    return model.eval(), history, seconds, {}


def train_synaptic(config: dict[str, Any], seed: int, threads: int, target: dict[str, Any], x: torch.Tensor,
                   total_steps: int) -> tuple[nn.Module, Any, float, dict[str, Any]]:
    torch.set_num_threads(threads)  # the speed-up target is timed when the schedule is planned
    model = _build(config, seed)
    pruner = npr.SynapticPruner(model, **{k: config[k] for k in PRUNER_KEYS}, **target,
                                example_inputs=x, total_steps=total_steps)
    history, seconds = _timed(model, config, seed, threads, [pruner])
    pruner.remove_hooks()
    model.eval()
    small = pruner.compact().eval()
    with torch.inference_mode():
        error = float((model(x) - small(x)).abs().max())
    assert pruner.schedule is not None
    checks = list(pruner.schedule.check_steps(total_steps))
    calibration = pruner.latency_calibration
    return small, history, seconds, {
        **target, "macs_fraction": pruner.macs_fraction(), "compact_max_abs_diff": error,
        "latency_calibration": None if calibration is None else calibration.to_dict(),
        "checks": len(checks), "check_steps": checks, "check_every": pruner.schedule.check_every,
        "warmup_steps": pruner.schedule.warmup_steps}


def train_tp(config: dict[str, Any], seed: int, threads: int, x: torch.Tensor, matched: tuple[float, float],
             checks: list[int], importance: str) -> tuple[nn.Module, Any, float, dict[str, Any]]:
    ratio, relative = matched
    model = _build(config, seed)
    gradual = GradualChannels(model, x, ratio, checks, importance)
    history, seconds = _timed(model, config, seed, threads, [gradual])
    return model.eval(), history, seconds, {"ratio": ratio, "bisection_relative_speed": relative,
                                            "tp_steps": gradual.steps_taken, "importance": gradual.importance_name}


def train_scratch(config: dict[str, Any], seed: int, threads: int,
                  small: nn.Module) -> tuple[nn.Module, Any, float, dict[str, Any]]:
    model = reinitialised(small, seed)
    history, seconds = _timed(model, config, seed, threads, [])
    return model.eval(), history, seconds, {}


class GradualChannels:
    """Torch-Pruning channel pruning as a training callback: one ``step()`` at each of ``checks``.

    The ratio after check j of K is ``ratio * (1 - (1 - j/K)^3)``: the cubic ramp the
    synaptic pruner's schedule follows over the same checks. ``importance`` ``"taylor"`` ranks
    channels by |w * dL/dw|, with the gradients of the training step just taken (the trainer
    clears them at the start of the next step, not after the optimizer's).
    """

    def __init__(self, model: nn.Module, example_inputs: torch.Tensor, ratio: float, checks: list[int],
                 importance: str = "magnitude") -> None:
        tp = require_torch_pruning()
        if importance not in TP_IMPORTANCES:
            raise ValueError(f"importance must be one of {TP_IMPORTANCES}, got {importance!r}")

        self.model = model
        self.checks = set(checks)
        self.steps_taken = 0
        count = len(checks)

        def cubic(final: float, steps: int) -> list[float]:
            return [final * (1 - (1 - j / steps) ** 3) for j in range(steps + 1)]

        head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1:]
        scorer = tp.importance.TaylorImportance() if importance == "taylor" else tp.importance.MagnitudeImportance(p=2)
        self.importance_name = "TaylorImportance()" if importance == "taylor" else "MagnitudeImportance(p=2)"
        self.pruner = tp.pruner.MetaPruner(
            model, example_inputs, importance=scorer, pruning_ratio=ratio,
            iterative_steps=count, iterative_pruning_ratio_scheduler=cubic, ignored_layers=head)

    def on_step_end(self, trainer: Any) -> None:
        if trainer.step not in self.checks:
            return
        was_training = self.model.training
        self.pruner.step()
        self.model.train(was_training)
        self.steps_taken += 1
        # pruned layers hold new Parameters: the optimizer steps the model's current ones
        params = [p for p in self.model.parameters() if p.requires_grad]
        kept = {id(p) for p in params}
        optimizer = trainer.optimizer
        optimizer.param_groups[0]["params"] = params
        for old in [p for p in optimizer.state if id(p) not in kept]:
            del optimizer.state[old]


def reinitialised(model: nn.Module, seed: int) -> nn.Module:
    """A copy of ``model`` with every layer's parameters drawn afresh (seeded)."""
    fresh = copy.deepcopy(model).train()
    torch.manual_seed(seed)
    for module in fresh.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return fresh


# ---- reports --------------------------------------------------------------------------------


def save(args: argparse.Namespace, run: dict[str, Any]) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{args.name}.json"
    payload = json.loads(path.read_text()) if path.is_file() else {"runs": []}
    key = (run["dataset"], run["model"], run["seed"])
    payload["runs"] = [r for r in payload["runs"] if (r["dataset"], r["model"], r["seed"]) != key] + [run]
    run["command"] = args.command
    run["environment"] = environment()
    write_json(path, payload)
    atomic_write_bytes(args.out / f"{args.name}.md", markdown(payload).encode())


def markdown(payload: dict[str, Any]) -> str:
    lines = ["# Synaptic unit pruning (MAC- or latency-aware) vs Torch-Pruning at equal measured latency", "",
             "Accuracy (%) on the test split (validation in brackets), mean over seeds. Speed-up over dense: median of "
             "per-round ratios, interleaved rounds in one process; *tp@bN*: Torch-Pruning's ratio bisected so its "
             "final shape runs as fast as the synaptic model at batch N (L2 magnitude importance; *tp-taylor@bN*: "
             "Taylor importance, |w * dL/dw|). *scratch* has the synaptic model's shape "
             "(same latency). Commands and per-run settings are in the JSON file.", ""]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in payload["runs"]:
        groups.setdefault((run["dataset"], run["model"]), []).append(run)
    for (dataset, model), runs in groups.items():
        runs.sort(key=lambda r: r["seed"])
        first = runs[0]
        lines += [f"## {model} on {dataset}: seeds {[r['seed'] for r in runs]}, {first['epochs']} epochs, "
                  f"{first['limit_train'] or 'all'} training images, {_target_text(first)}, "
                  f"{first['latency']['threads']} thread(s)", "",
                  f"Command (seed {first['seed']}): `{first.get('command', '')}`", "",
                  "| variant | test acc | (validation) | params | MACs | widths (seed 0) | speed-up b1 | speed-up b64 |"
                  " ms b1 | ms b64 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        labels = list(dict.fromkeys(label for run in runs for label in run["rows"]))
        for label in labels:
            present = [(r, served) for r in runs if (served := _serving(r, label)) is not None]
            test = [100 * r["rows"][served]["test_accuracy"] for r, served in present]
            val = [100 * r["rows"][served]["validation_accuracy"] for r, served in present]
            # scratch has the synaptic shape: its latency is the synaptic model's
            timed = [(r, "synaptic" if served == "scratch" else served) for r, served in present]
            speed = [[r["latency"][f"batch_{b}"]["speedup"][t] for r, t in timed] for b in BATCHES]
            ms = [[r["latency"][f"batch_{b}"]["ms"][t] for r, t in timed] for b in BATCHES]
            example, served = present[0]
            row = example["rows"][served]
            name = label + (f" (ratio {row['ratio']:.3f}, matched at b{'/b'.join(map(str, row['matched_at']))})"
                            if "ratio" in row else "")
            if len(present) < len(runs):
                name += f" (seeds {', '.join(str(r['seed']) for r, _ in present)})"
            lines.append(f"| {name} | {mean_std(test)} | ({mean_std(val)}) | {row['params']:,} | {row['macs']:,} | "
                         f"{_widths_text(row['widths'], example['rows']['dense']['widths'])} | "
                         f"{statistics.median(speed[0]):.2f}x | {statistics.median(speed[1]):.2f}x | "
                         f"{statistics.median(ms[0]):.3f} | {statistics.median(ms[1]):.2f} |")
        lines.append("")
    lines += [f"- {note}" for note in payload.get("notes", [])]
    return "\n".join(lines) + "\n"


def _serving(run: dict[str, Any], label: str) -> str | None:
    """The row of ``run`` that stands for ``label``: itself, or the Torch-Pruning row whose ratio also fit that batch.

    When the ratios matched at two batch sizes agree, one training run serves both
    (``matched_at``), and it counts in both rows of the table.
    """
    if label in run["rows"]:
        return label
    prefix, _, batch = label.rpartition("@b")
    if not batch.isdigit():
        return None
    for other, row in run["rows"].items():
        if other.rpartition("@b")[0] == prefix and int(batch) in row.get("matched_at", []):
            return other
    return None


def _widths_text(widths: list[int], dense: list[int], listed: int = 16) -> str:
    """Every layer's width for a small network; for a deep one the total and its share of dense's (list: JSON)."""
    if len(widths) <= listed:
        return str(widths)
    return f"{sum(widths):,} units in {len(widths)} layers ({100 * sum(widths) / sum(dense):.0f}% of dense)"


def _target_text(run: dict[str, Any]) -> str:
    target = run.get("target", {"target_macs": run.get("target_macs")})  # older runs kept target_macs alone
    if "target_speedup" in target:
        batches = "/".join(f"b{b}" for b in target["latency_batch_sizes"])
        return f"target {target['target_speedup']:g}x measured speed-up at {batches}"
    return f"target {100 * target['target_macs']:.0f}% of dense MACs"


if __name__ == "__main__":
    main()
