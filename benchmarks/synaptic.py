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

Plus (``--sample-every``) the pruner's training-step overhead: process CPU time per step
with and without the pruner, interleaved, same process.

Writes ``<out>/<name>.json`` and ``<name>.md``. Examples:
    python benchmarks/synaptic.py --datasets mnist fashion-mnist --models mlp --sparsities 0.9 0.95 0.98
    python benchmarks/synaptic.py --datasets mnist --models mlp lenet5 --units 0.8 --name synaptic_units
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

import neuroprune as npr
from neuroprune.storage import atomic_write_bytes, write_json
from neuroprune.config import SynapticConfig, from_dict, to_dict
from neuroprune.export import InferenceChain
from neuroprune.metrics import compare_latency
from neuroprune.runs._common import environment, lr_schedule_callbacks, make_optimizer

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PRUNER_KEYS = ("criterion", "alpha", "patience", "check_every", "warmup_steps", "stop_step", "min_fan_in",
               "max_fraction_per_check", "sample_every", "fold_bias", "granularity")
LATENCY_BATCH = {"mlp": 256, "lenet5": 64, "cifar_cnn": 64}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument("--name", default="synaptic", help="stem of the output files")
    parser.add_argument("--sample-every", type=int, nargs="+",
                        help="time the pruner's overhead at these sample_every values instead of training")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for training and timing; small models train fastest on one [default: 1]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.sample_every:
        _overhead_table(args)
        return
    if not args.sparsities and args.units is None:
        parser.error("give --sparsities, --units or --sample-every")
    runs: list[dict[str, Any]] = []
    for dataset in args.datasets:
        for model in args.models:
            config = _config(dataset, model, args)
            for seed in args.seeds:
                if args.sparsities:
                    runs.append(_sparsity_runs(config, seed, args.sparsities))
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


def _data(config: dict[str, Any], seed: int) -> tuple[Any, Any]:
    train = npr.create_loader(config["dataset"], "train", config["batch_size"], seed=seed, limit=config["limit_train"])
    test = npr.create_loader(config["dataset"], "test", 1000)
    return train, test


def _build(config: dict[str, Any], seed: int, **options: Any) -> nn.Module:
    info = npr.dataset_info(config["dataset"])
    torch.manual_seed(seed)
    return npr.create_model(config["model"], in_channels=info.in_channels, image_size=info.image_size,
                            num_classes=info.num_classes, **options)


def _fit(model: nn.Module, train: Any, test: Any, config: dict[str, Any], callbacks: list[Any]) -> list[dict[str, Any]]:
    optimizer = make_optimizer(model, config["optimizer"], config["lr"], config["momentum"], config["weight_decay"])
    schedule = lr_schedule_callbacks(optimizer, config["lr_schedule"], config["epochs"])
    return npr.fit(model, train, epochs=config["epochs"], optimizer=optimizer, eval_loader=test,
                   callbacks=[*callbacks, *schedule])


def _synaptic(model: nn.Module, config: dict[str, Any], **options: Any) -> npr.SynapticPruner:
    return npr.SynapticPruner(model, **{k: config[k] for k in PRUNER_KEYS}, **options)


def _summary(history: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    return {"test_accuracy": history[-1]["test_accuracy"], "accuracy_per_epoch": [r["test_accuracy"] for r in history],
            "seconds": seconds}


def _timed_fit(model: nn.Module, train: Any, test: Any, config: dict[str, Any], callbacks: list[Any]) -> dict[str, Any]:
    started = time.perf_counter()
    history = _fit(model, train, test, config, callbacks)
    return _summary(history, time.perf_counter() - started)


def _sparsity_runs(config: dict[str, Any], seed: int, targets: list[float]) -> dict[str, Any]:
    train, test = _data(config, seed)
    total_steps = config["epochs"] * len(train)
    result: dict[str, Any] = {"dataset": config["dataset"], "model": config["model"], "seed": seed,
                              "epochs": config["epochs"], "config": config, "targets": {}}
    result["dense"] = _timed_fit(_build(config, seed), train, test, config, [])
    for target in targets:
        model = _build(config, seed)
        pruner = _synaptic(model, config, target_sparsity=target)
        synaptic = _timed_fit(model, train, test, config, [pruner])
        pruner.remove_hooks()
        model.eval()
        small = pruner.compact()
        synaptic.update(pruned_fraction=pruner.sparsity(), params_compact=npr.count_params(small),
                        per_layer_pruned={r["name"]: r["pruned"] / r["total"] for r in pruner.layer_summary()})
        model = _build(config, seed)
        gmp_pruner = npr.GradualMagnitudePruner.for_training(
            model, final_sparsity=target, total_steps=total_steps, update_every=pruner.schedule.check_every)
        gmp = _timed_fit(model, train, test, config, [gmp_pruner])
        model.eval()
        gmp.update(pruned_fraction=gmp_pruner.sparsity(), params_compact=npr.count_params(npr.compact_sequential(model)),
                   per_layer_pruned={r["name"]: r["pruned"] / r["total"] for r in gmp_pruner.layer_summary()})
        result["targets"][str(target)] = {"synaptic": synaptic, "gmp": gmp}
    return result


def _unit_runs(config: dict[str, Any], seed: int, target: float, rounds: int, granularity: str) -> dict[str, Any]:
    train, test = _data(config, seed)
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
    train, _ = _data(config, 0)
    check_every = config["check_every"] if isinstance(config["check_every"], int) else max(1, len(train) * config["epochs"] // 100)
    steps = 2 * check_every
    batches: list[Any] = []
    while len(batches) < steps:
        batches += [b for _, b in zip(range(steps - len(batches)), train)]
    timings: dict[str, list[float]] = {"plain": [], "pruner": []}
    for round_ in range(repeats):
        for mode in ("plain", "pruner") if round_ % 2 == 0 else ("pruner", "plain"):
            model = _build(config, 0)
            optimizer = make_optimizer(model, config["optimizer"], config["lr"], config["momentum"], config["weight_decay"])
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
    ratios = [p / q for p, q in zip(timings["pruner"], timings["plain"])]
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
    lines = ["# Pruner overhead by sample_every", "", f"Command: `python benchmarks/synaptic.py {' '.join(sys.argv[1:])}`",
             "", "Process CPU time per training step over two check intervals, with and without the pruner in "
             f"alternating order; overhead = median over {rows[0]['repeats'] if rows else 0} rounds of the per-round "
             f"ratio, with its quartiles; {torch.get_num_threads()} thread(s).", "",
             "| data set | model | criterion | sample_every | plain ms/step | with pruner ms/step | overhead (quartiles) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['model']} | {r['criterion']} | {r['sample_every']} | {r['plain_ms_per_step']:.2f} | "
              f"{r['pruner_ms_per_step']:.2f} | {100 * r['overhead']:+.1f}% ({100 * r['overhead_quartiles'][0]:+.1f}% "
              f"to {100 * r['overhead_quartiles'][2]:+.1f}%) |" for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{args.name}.json", {"command": " ".join(sys.argv), "rows": rows, "environment": environment()})
    atomic_write_bytes(args.out / f"{args.name}.md", ("\n".join(lines) + "\n").encode())


# ---- reports --------------------------------------------------------------------------------


def _save(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"command": "python benchmarks/synaptic.py " + " ".join(sys.argv[1:]), "environment": environment(),
               "runs": runs}
    write_json(args.out / f"{args.name}.json", payload)
    text = _sparsity_markdown(payload) if "targets" in runs[0] else _unit_markdown(payload)
    atomic_write_bytes(args.out / f"{args.name}.md", text.encode())


def _groups(runs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["dataset"], run["model"]), []).append(run)
    return groups


def _header(payload: dict[str, Any], title: str) -> list[str]:
    env = payload["environment"]
    return [f"# {title}\n", f"Command: `{payload['command']}`\n",
            f"Machine: {env['processor']}, torch {env['versions']['torch']}, {env['torch_threads']} thread(s).\n"]


def _sparsity_markdown(payload: dict[str, Any]) -> str:
    granularity = payload["runs"][0]["config"].get("granularity", "connection")
    lines = _header(payload, f"Synaptic pruning (granularity {granularity!r}) vs gradual magnitude pruning")
    lines += ["Test accuracy (%) after the last epoch, mean ± std over seeds; same model, recipe, epochs, seeds and "
              "batch order for every column. Params: the compacted model (dead units removed).\n",
              "| data set | model | seeds | pruned | dense | synaptic | GMP | synaptic - GMP | params synaptic / GMP |",
              "|---|---|---|---|---|---|---|---|---|"]
    for (dataset, model), runs in _groups(payload["runs"]).items():
        dense = [100 * r["dense"]["test_accuracy"] for r in runs]
        for target in runs[0]["targets"]:
            syn = [100 * r["targets"][target]["synaptic"]["test_accuracy"] for r in runs]
            gmp = [100 * r["targets"][target]["gmp"]["test_accuracy"] for r in runs]
            diff = [s - g for s, g in zip(syn, gmp)]
            params = [statistics.mean(r["targets"][target][m]["params_compact"] for r in runs) for m in ("synaptic", "gmp")]
            lines.append(f"| {dataset} | {model} | {len(runs)} | {100 * float(target):.0f}% | {_ms(dense)} | {_ms(syn)} | "
                         f"{_ms(gmp)} | {_ms(diff, signed=True)} | {params[0]:,.0f} / {params[1]:,.0f} |")
    return "\n".join(lines) + "\n"


def _unit_markdown(payload: dict[str, Any]) -> str:
    granularity = payload["runs"][0].get("granularity", "unit")
    lines = _header(payload, f"Synaptic pruning at granularity {granularity!r}: accuracy and speed")
    lines += ["Test accuracy (%), mean ± std over seeds. *scratch*: the compacted model's final shape trained from "
              "scratch with the same recipe. Speed-up over dense: median over interleaved rounds in one process; "
              "*lean* is the compacted model in the export's inference chain.\n",
              f"| data set | model | seeds | pruned | widths (seed 0) | dense | synaptic ({granularity}) | scratch, same shape | "
              "speed-up compact | speed-up lean |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for (dataset, model), runs in _groups(payload["runs"]).items():
        acc = {m: [100 * r[m]["test_accuracy"] for r in runs if m in r] for m in ("dense", "synaptic", "scratch")}
        pruned = [100 * r["synaptic"]["pruned_fraction"] for r in runs]
        batches = [k for k in runs[0]["latency"] if k.startswith("batch_")]
        speed = {v: " / ".join(f"{statistics.mean(r['latency'][b]['speedup'][v] for r in runs):.2f}x "
                               f"(b{b.removeprefix('batch_')})" for b in batches)
                 for v in ("compact", "lean")}
        lines.append(f"| {dataset} | {model} | {len(runs)} | {_ms(pruned, 1)}% | {runs[0]['synaptic']['widths']} | "
                     f"{_ms(acc['dense'])} | {_ms(acc['synaptic'])} | {_ms(acc['scratch']) if acc['scratch'] else '—'} | "
                     f"{speed['compact']} | "
                     f"{speed['lean']} |")
    return "\n".join(lines) + "\n"


def _ms(values: list[float], digits: int = 2, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if len(values) == 1:
        return f"{values[0]:{sign}.{digits}f}"
    return f"{statistics.mean(values):{sign}.{digits}f} ± {statistics.stdev(values):.{digits}f}"


if __name__ == "__main__":
    main()
