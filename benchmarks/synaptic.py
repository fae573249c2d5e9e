"""Benchmark: synaptic pruning vs dense, magnitude (Han et al. 2015) and random pruning.

For every (data set, model, seed):
  dense      the network trained for E epochs without pruning
  synaptic   the same network, seed and batch order, trained for E epochs with SynapticPruner
  magnitude  the dense network pruned per layer to the synaptic run's sparsity by |W|, then
             retrained for R epochs with the pruned weights held at zero (prune + retrain)
  random     the same with uniformly random connections removed
Plus the training-step overhead of the pruner (masks + activity hooks + checks) against
plain training, timed in the same process with interleaved repeats.

Writes benchmarks/results/synaptic.json and synaptic.md. Example:
    python benchmarks/synaptic.py --datasets mnist fashion-mnist --models mlp --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

import neuroprune as npr
from neuroprune.config import from_dict
from neuroprune.runs._common import environment, lr_schedule_callbacks, make_optimizer

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"])
    parser.add_argument("--models", nargs="+", default=["mlp", "lenet5"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, help="override the config's epochs")
    parser.add_argument("--retrain-epochs", type=int, help="magnitude/random retraining epochs [default: epochs // 2]")
    parser.add_argument("--limit-train", type=int, help="use only the first N training samples (quick runs)")
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
    runs = []
    for dataset in args.datasets:
        for model in args.models:
            config = _config(dataset, model, args)
            overhead = _overhead(config)
            for seed in args.seeds:
                runs.append(_one_seed(config, seed, args.retrain_epochs or max(config["epochs"] // 2, 1)))
                runs[-1]["overhead"] = overhead
                _save(args, runs)
                print(json.dumps({k: runs[-1][k] for k in ("dataset", "model", "seed")}), "done", flush=True)
    _save(args, runs)


def _config(dataset: str, model: str, args: argparse.Namespace) -> dict[str, Any]:
    path = CONFIGS / f"synaptic_{model}_{dataset.replace('-', '_')}.yaml"
    import yaml

    config = yaml.safe_load(path.read_text()) if path.is_file() else {}
    config.update(dataset=dataset, model=model)
    if args.epochs:
        config["epochs"] = args.epochs
    if args.limit_train:
        config["limit_train"] = args.limit_train
    config = npr.config.to_dict(from_dict(npr.config.SynapticConfig, config, source=str(path)))
    config["config_file"] = str(path.relative_to(CONFIGS.parent)) if path.is_file() else None
    return config


def _data(config: dict[str, Any], seed: int):
    train = npr.create_loader(config["dataset"], "train", config["batch_size"], seed=seed, limit=config["limit_train"])
    test = npr.create_loader(config["dataset"], "test", 1000)
    return train, test


def _build(config: dict[str, Any], seed: int) -> nn.Module:
    info = npr.dataset_info(config["dataset"])
    torch.manual_seed(seed)
    return npr.create_model(config["model"], in_channels=info.in_channels, image_size=info.image_size,
                            num_classes=info.num_classes)


def _pruner(model: nn.Module, config: dict[str, Any]) -> npr.SynapticPruner:
    keys = ("criterion", "alpha", "patience", "check_every", "warmup_steps", "stop_step", "min_fan_in",
            "max_fraction_per_check", "target_sparsity", "sample_every")
    return npr.SynapticPruner(model, **{k: config[k] for k in keys})


def _optimizer(model: nn.Module, config: dict[str, Any], lr: float | None = None) -> torch.optim.Optimizer:
    return make_optimizer(model, config["optimizer"], lr or config["lr"], config["momentum"], config["weight_decay"])


def _fit(model: nn.Module, train, test, config: dict[str, Any], epochs: int, lr: float | None = None, callbacks=()):
    optimizer = _optimizer(model, config, lr)
    schedule = lr_schedule_callbacks(optimizer, config["lr_schedule"], epochs)
    return npr.fit(model, train, epochs=epochs, optimizer=optimizer, eval_loader=test, callbacks=[*callbacks, *schedule])


def _one_seed(config: dict[str, Any], seed: int, retrain_epochs: int) -> dict[str, Any]:
    train, test = _data(config, seed)
    example = next(iter(test))[0][:1]
    epochs = config["epochs"]

    dense = _build(config, seed)
    dense_history = _fit(dense, train, test, config, epochs)

    model = _build(config, seed)
    pruner = _pruner(model, config)
    history = _fit(model, train, test, config, epochs, callbacks=[pruner])
    pruner.remove_hooks()
    sparsity = {row["name"]: row["pruned"] / row["total"] for row in pruner.layer_summary()}
    model.eval()
    synaptic_small = pruner.compact()

    result: dict[str, Any] = {
        "dataset": config["dataset"], "model": config["model"], "seed": seed, "epochs": epochs,
        "retrain_epochs": retrain_epochs,
        "dense": _summary(dense_history, dense, example),
        "synaptic": {**_summary(history, synaptic_small, example), "pruned_fraction": pruner.sparsity(),
                     "per_layer_pruned": sparsity, "checks": len(pruner.history)},
    }
    for method, make_masks in (("magnitude", npr.magnitude_masks), ("random", npr.random_masks)):
        pruned = copy.deepcopy(dense)
        masks = make_masks(pruned, sparsity) if method == "magnitude" else make_masks(pruned, sparsity, seed=seed)
        held = npr.apply_masks(pruned, masks)  # as a callback it masks the retraining optimizer's steps
        before = npr.evaluate(pruned, test)["accuracy"]
        # Han et al. retrain at a lower learning rate than the original training
        retrain = _fit(pruned, train, test, config, retrain_epochs, lr=config["lr"] * 0.1, callbacks=[held])
        live = sum(int((pruned.get_submodule(name).weight != 0).sum()) for name in masks)
        if live > sum(int(m.sum()) for m in masks.values()):
            raise RuntimeError(f"{method}: pruned weights grew back during retraining")
        pruned.eval()
        result[method] = {**_summary(retrain, npr.compact_sequential(pruned), example),
                          "accuracy_before_retrain": before,
                          "pruned_fraction": 1 - sum(int(m.sum()) for m in masks.values()) / pruner.num_connections}
    dense_final = dense_history[-1]["test_accuracy"]
    for method in ("dense", "synaptic"):
        curve = [r["test_accuracy"] for r in (dense_history if method == "dense" else history)]
        reached = [i + 1 for i, acc in enumerate(curve) if acc >= dense_final]
        result[method]["epochs_to_dense_final_accuracy"] = reached[0] if reached else None
    return result


def _summary(history: list[dict[str, Any]], compact: nn.Module, example: torch.Tensor) -> dict[str, Any]:
    return {
        "test_accuracy": history[-1]["test_accuracy"],
        "accuracy_per_epoch": [r["test_accuracy"] for r in history],
        "train_seconds": sum(r["seconds"] for r in history),
        "params": npr.count_params(compact),
        "macs": npr.count_macs(compact, example),
    }


def _overhead(config: dict[str, Any], repeats: int = 5) -> dict[str, Any]:
    """CPU seconds per training step with and without the pruner, interleaved, same process.

    Each timed stretch covers two check intervals of the config's schedule (warm-up
    skipped), so the checks are part of what is timed. CPU time of this process, not wall
    time, so other jobs on a shared machine disturb the ratio less.
    """
    steps = 2 * config["check_every"]
    train, _ = _data(config, 0)
    batches = []
    while len(batches) < steps:
        batches += [b for _, b in zip(range(steps - len(batches)), train)]
    timings: dict[str, list[float]] = {"plain": [], "pruner": []}
    for _ in range(repeats):
        for mode in ("plain", "pruner"):
            model = _build(config, 0)
            optimizer = _optimizer(model, config)
            pruner = _pruner(model, {**config, "warmup_steps": 0, "stop_step": None}) if mode == "pruner" else None
            if pruner is not None:
                pruner.optimizer = optimizer
            started = time.process_time()
            for x, y in batches:
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x), y).backward()
                optimizer.step()
                if pruner is not None:
                    pruner.step()
            timings[mode].append((time.process_time() - started) / len(batches))
    plain, pruned = statistics.median(timings["plain"]), statistics.median(timings["pruner"])
    return {"plain_ms_per_step": 1e3 * plain, "pruner_ms_per_step": 1e3 * pruned, "overhead": pruned / plain - 1,
            "steps": steps, "repeats": repeats, "batch_size": config["batch_size"],
            "check_every": config["check_every"], "clock": "process CPU time"}


def _overhead_table(args: argparse.Namespace) -> None:
    """Only the training-step overhead, for each sample_every value (no training runs)."""
    rows = []
    for dataset in args.datasets:
        for model in args.models:
            config = _config(dataset, model, args)
            for every in args.sample_every:
                rows.append({"dataset": dataset, "model": model, "sample_every": every,
                             **_overhead({**config, "sample_every": every})})
                print(json.dumps(rows[-1]), flush=True)
    lines = ["# Pruner overhead by sample_every", "", f"Command: `python benchmarks/synaptic.py {' '.join(sys.argv[1:])}`",
             "", "Process CPU time per training step over two check intervals, interleaved with plain training, "
             "median of 5.", "", "| data set | model | sample_every | plain ms/step | with pruner ms/step | overhead |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {r['model']} | {r['sample_every']} | {r['plain_ms_per_step']:.2f} | "
              f"{r['pruner_ms_per_step']:.2f} | {100 * r['overhead']:+.1f}% |" for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    npr._io.write_json(args.out / f"{args.name}.json", {"command": " ".join(sys.argv), "rows": rows,
                                                        "environment": environment()})
    npr._io.atomic_write_bytes(args.out / f"{args.name}.md", ("\n".join(lines) + "\n").encode())


def _save(args: argparse.Namespace, runs: list[dict[str, Any]]) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"command": "python benchmarks/synaptic.py " + " ".join(sys.argv[1:]), "environment": environment(),
               "runs": runs}
    npr._io.write_json(args.out / f"{args.name}.json", payload)
    npr._io.atomic_write_bytes(args.out / f"{args.name}.md", _markdown(payload).encode())


def _markdown(payload: dict[str, Any]) -> str:
    lines = [f"# Synaptic pruning benchmark\n\nCommand: `{payload['command']}`\n",
             f"Machine: {payload['environment']['processor']}, torch {payload['environment']['versions']['torch']}, "
             f"{payload['environment']['torch_threads']} threads.\n",
             "Accuracy is test accuracy after the last epoch, mean ± std over seeds. Params and MACs are those of the "
             "compacted model (dead units removed). Magnitude and random are pruned to the synaptic run's per-layer "
             "sparsity, then retrained.\n",
             "| data set | model | method | seeds | accuracy % | pruned % | params | MACs | epochs to dense final acc. |",
             "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in payload["runs"]:
        groups.setdefault((run["dataset"], run["model"]), []).append(run)
    for (dataset, model), runs in groups.items():
        for method in ("dense", "synaptic", "magnitude", "random"):
            rows = [r[method] for r in runs]
            acc = [100 * r["test_accuracy"] for r in rows]
            pruned = [100 * r.get("pruned_fraction", 0.0) for r in rows]
            reach = [r.get("epochs_to_dense_final_accuracy") for r in rows]
            reach_text = "-" if method in ("magnitude", "random") else ", ".join("never" if e is None else str(e) for e in reach)
            lines.append(f"| {dataset} | {model} | {method} | {len(rows)} | {_ms(acc)} | {_ms(pruned, 1)} | "
                         f"{statistics.mean(r['params'] for r in rows):,.0f} | {statistics.mean(r['macs'] for r in rows):,.0f} | "
                         f"{reach_text} |")
    lines += ["", "Training-step overhead of the pruner (activity hooks, masks, checks on the config's schedule) vs "
              "plain training: process CPU time over two check intervals, same process, interleaved repeats, median:", "",
              "| data set | model | plain ms/step | with pruner ms/step | overhead |", "|---|---|---|---|---|"]
    for (dataset, model), runs in groups.items():
        o = runs[0]["overhead"]
        lines.append(f"| {dataset} | {model} | {o['plain_ms_per_step']:.2f} | {o['pruner_ms_per_step']:.2f} | "
                     f"{100 * o['overhead']:+.1f}% |")
    return "\n".join(lines) + "\n"


def _ms(values: list[float], digits: int = 2) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


if __name__ == "__main__":
    main()
