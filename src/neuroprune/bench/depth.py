"""Depth-pruning benchmark on Fashion-MNIST: base vs depth cut vs Torch-Pruning at equal measured latency.

For each model: train a base network on the ``fit`` part of the training set (90%); search
depth cuts on the held-out ``validation`` tenth, either single cuts (``--strategy single``:
short translator-only recovery each on ``fit``, scored with
tau * accuracy + (1 - tau) * (1 - latency / latency_base)) or several cuts
(``--strategy greedy``: one segment removed at a time, untrained, until ``--speedup`` is
reached at batch 1); fully recover the best cut that is at least ``--speedup`` times faster at
batch 1 (translator, then fine-tuning with distillation); compare with
  * nn.Identity replacing the largest span whose shapes already match, same recovery;
  * Torch-Pruning channel pruning of the base model, bisected until it runs as fast as the
    depth cut (measured, batch 1), same fine-tuning;
  * a milder depth cut followed by channel pruning to that same measured latency;
  * with ``--units``: the evaluated cut whose speed-up in the search is nearest
    sqrt(``--speedup``), then synaptic unit pruning during its fine-tuning (one recovery) until
    it runs ``--speedup`` / (that cut's speed-up) times faster again at batch 1 and 64 (or at
    ``--units-batch``; ``--units-max-ratio`` caps the share of a space's units that may go,
    ``--units-until`` is the share of the fine-tuning after which none goes),
    against Torch-Pruning bisected to its measured latency at batch 1 and, separately, at
    batch 64 (same fine-tuning). Run it alone: every timing of it is only as good as the
    machine is quiet.
Every choice (cut, fast/mild rows) is made on validation; the test split gives only the
final accuracies. Latency: ``neuroprune.metrics.compare_latency`` (interleaved rounds in one
process, fixed threads, median per-round ratio to the base), batch 1 and 64.

Models: ``name:width`` for the CIFAR-style nets (images padded to 32x32), or
``efficientnet_lite0:pretrained`` (ImageNet weights, fine-tuned here; 28-pixel images
upsampled to 64 inside the network; `neuroprune models fetch efficientnet_lite0` first).

Usage:
    python -m neuroprune.bench depth --out DIR    (or, in a checkout, python benchmarks/depth.py)
Needs: `neuroprune data fetch fashion-mnist`, `pip install torch==2.13.0 "neuroprune[bench]"` (Torch-Pruning).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from neuroprune.data import create_loader
from neuroprune.depth import (
    Budgets,
    DepthPruner,
    TrainConfig,
    boundaries,
    fine_tune,
    fine_tune_pruning_units,
    recover,
    search_cuts,
)
from neuroprune.depth.graph_spec import save_graph_model
from neuroprune.depth.greedy import greedy_cuts
from neuroprune.depth.init import init_translators
from neuroprune.engine import evaluate
from neuroprune.errors import ConfigError
from neuroprune.metrics import compare_latency, count_macs, count_params, measure_latency
from neuroprune.runs._common import environment
from neuroprune.runs.train import run_train
from neuroprune.storage import atomic_write_bytes, write_json

from ._common import DEFAULT_OUT, command
from .torch_pruning_peer import prune_channels_to_latency, prune_channels_to_macs, require_torch_pruning

DATASET = "fashion-mnist"


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, out: Path | None = None) -> None:
    """Run the suite with the command-line arguments ``argv`` (default: this process's).

    ``prog`` names the command in the help (default ``python -m neuroprune.bench depth``);
    ``out`` is the default of ``--out`` (default ``benchmarks/results``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog or command("depth"), description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg16:0.25,resnet56:0.25",
                        help="name:width, comma separated (a bare name means width 1); "
                        "efficientnet_lite0:pretrained for the ImageNet network")
    parser.add_argument("--limit-train", type=int, default=4000)
    parser.add_argument("--limit-test", type=int, default=2000)
    parser.add_argument("--limit-validation", type=int, default=None, help="first N of the validation tenth")
    parser.add_argument("--search-train", type=int, default=1000, help="samples for each candidate's short recovery")
    parser.add_argument("--epochs", type=int, default=6, help="base training epochs")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--max-evaluated", type=int, default=8)
    parser.add_argument("--speedup", type=float, default=2.0, help="required batch-1 latency ratio of the depth cut")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1, help="torch threads when timing the final models")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--train-threads", type=int, default=1,
                        help="torch threads for training and the search (one thread suffers least on a busy machine)")
    parser.add_argument("--reuse-base", action="store_true", help="load a base model trained by an earlier run")
    parser.add_argument("--boundary-stride", type=int, default=1,
                        help="search only cuts whose origin and destination are every k-th boundary (fewer candidates)")
    parser.add_argument("--translator-init", choices=["lstsq", "random"], default="random",
                        help="start of every translator: random (authors) or least-squares fit to the base model")
    parser.add_argument("--name", default="depth", help="stem of the result files")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the base's initialisation and of every training run's batch order")
    parser.add_argument("--tau", type=float, default=0.8, help="score weight of accuracy (1.0: rank by accuracy only)")
    parser.add_argument("--search-epochs", type=int, default=1, help="translator-only epochs per searched candidate")
    parser.add_argument("--strategy", choices=["single", "greedy"], default="single",
                        help="single: one cut, candidates scored after a short recovery each; greedy: several cuts, "
                             "one segment removed at a time until --speedup is reached (neuroprune.depth.greedy)")
    parser.add_argument("--units", action="store_true",
                        help="also compare the milder cut + units pruned while it recovers (synaptic, timed speed-up "
                             "target) with Torch-Pruning at its latency, at batch 1 and at batch 64")
    parser.add_argument("--units-batch", type=int, nargs="+", default=[1, 64],
                        help="with --units: the batch sizes the units' speed-up is asked at; their target is --speedup "
                             "over the milder cut's speed-up at the smallest of them (batch 1: as timed in the search; "
                             "larger: timed against the base here)")
    parser.add_argument("--units-max-ratio", type=float, default=1.0,
                        help="with --units: at most this share of any channel space's units goes (1.0: no cap); "
                             "a target only emptying spaces would buy is then reported out of reach")
    parser.add_argument("--units-until", type=float, default=0.6,
                        help="with --units: the last units go at this share of the fine-tuning steps [0.6]")
    parser.add_argument("--deeper", type=float, default=None,
                        help="also compare depth cut + channels vs channels alone at this fraction of the cut's MACs")
    parser.add_argument("--retime", type=Path, nargs="+",
                        help="only time again the variants saved by these result JSON files (in a fresh process)")
    parser.add_argument("--merge", type=Path, nargs="+", help="only combine these result JSON files into --name")
    parser.add_argument("--match-batch64", type=Path, nargs="+",
                        help="only add to these result JSON files a Torch-Pruning row as fast as their depth (search) "
                             "variant at batch 64 (the other rows are matched at batch 1), same fine-tuning")
    parser.add_argument("--note", action="append", default=[], help="with --merge: a line for the report's notes")
    parser.add_argument("--out", type=Path, default=out or DEFAULT_OUT)
    parser.add_argument("--work", type=Path, default=Path("/tmp/neuroprune_bench_depth"))
    args = parser.parse_args(argv)
    if args.retime:
        for path in args.retime:
            retime(path, args)
        return
    if args.match_batch64:
        require_torch_pruning()
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        torch.set_num_threads(args.train_threads)
        for path in args.match_batch64:
            match_batch64(path, args)
        return
    if args.merge:
        merged: dict[str, Any] = {"dataset": DATASET, "runs": [], "models": {}}
        for path in args.merge:
            part = json.loads(path.read_text())
            merged["runs"].append({"file": path.name, "settings": part["settings"], "environment": part["environment"]})
            for key, model in part["models"].items():
                merged["models"][f"{key}, {model.get('translator_init', 'random')} init [{path.stem}]"] = model
        merged["settings"] = {"merged": [p.name for p in args.merge]}
        merged["notes"] = args.note
        write(merged, args.out, args.name)
        return
    models = _parse_models(args.models)
    require_torch_pruning()  # before any training: every model has Torch-Pruning rows
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    torch.set_num_threads(args.train_threads)
    results: dict[str, Any] = {"dataset": DATASET, "settings": {k: str(v) for k, v in vars(args).items()},
                               "environment": environment(), "models": {}}
    for name, width in models:
        item = f"{name}:{width}"
        started = time.perf_counter()
        results["models"][item] = bench_model(name, width, args)
        results["models"][item]["wall_seconds"] = time.perf_counter() - started
        write(results, args.out, args.name)  # after every model, so a partial run still leaves results


def _parse_models(text: str) -> list[tuple[str, str]]:
    """``--models``' items as (name, width); a bare name means width 1."""
    models = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, width = item.partition(":")
        width = width or "1"
        if width != "pretrained" and not _positive_number(width):
            raise ConfigError(f"--models: {item!r} has width {width!r}; give a positive multiplier "
                              "(resnet56:0.5) or 'pretrained' (efficientnet_lite0:pretrained)")
        models.append((name, width))
    if not models:
        raise ConfigError("--models is empty: give name:width items, e.g. vgg16:0.25,resnet56:0.25")
    return models


def _positive_number(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value > 0


def bench_model(name: str, width: str, args: argparse.Namespace) -> dict[str, Any]:
    log = logging.getLogger("bench")
    torch.manual_seed(args.seed)
    base, trained, pad_to = _base(name, width, args)
    train = create_loader(DATASET, "fit", 128, seed=args.seed, limit=args.limit_train, pad_to=pad_to)
    short = create_loader(DATASET, "fit", 128, seed=args.seed + 1, limit=args.search_train, pad_to=pad_to)
    validation = create_loader(DATASET, "validation", 1000, limit=args.limit_validation, pad_to=pad_to)
    test = create_loader(DATASET, "test", 1000, limit=args.limit_test, pad_to=pad_to)
    x = next(iter(test))[0][:1]
    pruner = DepthPruner(base, example_inputs=x)
    base_b1 = measure_latency(base, x, repeats=args.repeats).median_ms  # at --train-threads, as the search times
    started = time.perf_counter()
    search = _search(pruner, short, validation, base_b1, args)
    bridge, evaluated, depth_row, mild_row = search.bridge, search.evaluated, search.fast, search.mild
    search_seconds = time.perf_counter() - started
    log.info("%s: depth cut %s, mild cut %s", name, depth_row["cut"], mild_row["cut"])

    ft = args.finetune_epochs
    variants: dict[str, dict[str, Any]] = {}

    def finish(label: str, model: torch.nn.Module, phases: list[Any], extra: dict[str, Any]) -> None:
        variants[label] = {"model": model, "accuracy": evaluate(model, test)["accuracy"], "params": count_params(model),
                           "macs": count_macs(model, x), "recovery": [p.to_dict() for p in phases], **extra}
        log.info("%s %s: accuracy %.4f", name, label, variants[label]["accuracy"])

    teacher = copy.deepcopy(base).eval()
    variants["base"] = {"model": base, "accuracy": evaluate(base, test)["accuracy"], "params": count_params(base),
                        "macs": count_macs(base, x), "recovery": [], "train_seconds": trained["train_seconds"]}
    def cut(row: dict[str, Any]) -> torch.nn.Module:
        plan = pruner.plan(row["cut"], bridge=bridge)
        model = plan.apply()
        if args.translator_init == "lstsq":
            init_translators(model, plan, train)
        return model

    small = cut(depth_row)
    phases = recover(small, train, translator_epochs=1, finetune_epochs=ft, teacher=teacher, eval_loader=test)
    finish("depth (search)", small, phases, {"cut": depth_row["cut"], "translator": depth_row.get("translator", "auto"),
                                             "validation_accuracy_in_search": depth_row["accuracy"]})

    identity = [s for s in pruner.candidates() if s.is_identity_possible]
    if identity:
        span = max(identity, key=lambda s: s.macs_removed)
        small = pruner.plan(span.cut, bridge="identity").apply()
        finish("identity", small, [fine_tune(small, train, epochs=ft, teacher=teacher, eval_loader=test)],
               {"cut": span.cut})

    reference = variants["depth (search)"]["model"]
    narrow, ratio, relative = prune_channels_to_latency(base, x, reference, repeats=args.repeats)
    finish("torch-pruning (equal latency)", narrow,
           [fine_tune(narrow, train, epochs=ft, teacher=teacher, eval_loader=test)],
           {"channel_ratio": ratio, "speed_vs_depth_cut_when_matched": relative})

    mild_model = cut(mild_row)
    phases = recover(mild_model, train, translator_epochs=1, finetune_epochs=0)
    composite, ratio, relative = prune_channels_to_latency(mild_model, x, reference, repeats=args.repeats)
    phases.append(fine_tune(composite, train, epochs=ft, teacher=teacher, eval_loader=test))
    finish("depth + channels (equal latency)", composite, phases,
           {"cut": mild_row["cut"], "channel_ratio": ratio, "speed_vs_depth_cut_when_matched": relative})
    target = variants["depth (search)"]["macs"]
    units_out_of_reach = None
    if args.units:
        # cuts and units share the speed-up: the cut whose own (searched) speed-up is nearest sqrt(--speedup)
        speedups = [(r, r.get("speedup") or base_b1 / r["latency_ms"]) for r in evaluated]
        halfway, halfway_speedup = min(speedups, key=lambda pair: abs(math.log(pair[1] / math.sqrt(args.speedup))))
        units_out_of_reach = _depth_then_units(cut(halfway), halfway["cut"], halfway_speedup, base, train, test, x,
                                               teacher, args, finish)

    if args.deeper is not None:
        # Compose: the searched cut, then channel pruning of what remains, against channels alone.
        lower = int(target * args.deeper)
        composite, ratio = prune_channels_to_macs(variants["depth (search)"]["model"], x, lower)
        finish(f"depth + channels ({args.deeper:g}x cut MACs)", composite,
               [fine_tune(composite, train, epochs=ft, teacher=teacher, eval_loader=test)],
               {"cut": depth_row["cut"], "channel_ratio": ratio})
        narrow, ratio, relative = prune_channels_to_latency(base, x, composite, repeats=args.repeats)
        finish(f"torch-pruning (latency of depth + channels {args.deeper:g}x)", narrow,
               [fine_tune(narrow, train, epochs=ft, teacher=teacher, eval_loader=test)],
               {"channel_ratio": ratio, "speed_vs_reference_when_matched": relative})

    timing = interleaved_latency({label: e["model"] for label, e in variants.items()}, x, args)
    for label, entry in variants.items():
        entry.update(timing[label])
        # kept so latency can be timed again on a quiet machine
        save_graph_model(entry["model"], args.work / f"{name}_{width}" / "variants", stem=_slug(label))
    rows = {label: {k: v for k, v in e.items() if k != "model"} for label, e in variants.items()}
    extra = {"units_out_of_reach": units_out_of_reach} if units_out_of_reach else {}
    return {"model": name, "width": width, "translator_init": args.translator_init, "variants": rows, **extra,
            "search_seconds": search_seconds, "search_strategy": args.strategy,
            "search_candidates": search.candidates, "search_evaluated": len(evaluated),
            "search_rows": [{k: r[k] for k in ("cut", "params", "macs", "latency_ms", "accuracy", "score")}
                            for r in evaluated]}


def _base(name: str, width: str, args: argparse.Namespace) -> tuple[torch.nn.Module, dict[str, Any], int | None]:
    """The trained base (trained here, or ``--reuse-base``'s), its training record, and the padding it was fed."""
    log = logging.getLogger("bench")
    pretrained = width == "pretrained"
    pad_to = None if pretrained else 32
    width_value = 1.0 if pretrained else float(width)
    config = TrainConfig(model=name, dataset=DATASET, width=width_value, pad_to=pad_to, epochs=args.epochs, lr=0.05,
                         limit_train=args.limit_train, limit_test=args.limit_test, pretrained=pretrained,
                         seed=args.seed)
    folder = args.work / f"{name}_{width}"
    if args.reuse_base and (folder / "result.json").is_file():
        trained = json.loads((folder / "result.json").read_text())
        log.info("reusing the base model in %s", folder)
    else:
        trained = run_train(config, folder, overwrite=True)
    from neuroprune.runs.train import load_trained, model_options

    base, _ = load_trained(name, folder, model_options(DATASET, width_value, pad_to))
    return base, trained, pad_to


class _Search(NamedTuple):
    bridge: str  # what the cuts are planned with
    evaluated: list[dict[str, Any]]  # the rows the search evaluated
    fast: dict[str, Any]  # the cut at --speedup
    mild: dict[str, Any]  # the milder cut that "depth + channels" starts from
    candidates: int


def _search(pruner: DepthPruner, short: Any, validation: Any, base_b1: float, args: argparse.Namespace) -> _Search:
    """Run ``--strategy``'s search: the fast cut, and a milder one for the composite rows."""
    if args.strategy == "greedy":
        greedy = greedy_cuts(pruner, short, validation, budgets=Budgets(min_speedup=args.speedup),
                             efficiency="latency", tau=args.tau, latency_repeats=args.repeats)
        evaluated = greedy.steps
        # the milder cut for "depth + channels": the first step halfway to the target speed-up
        mild = next((r for r in evaluated if r["speedup"] >= 1 + (args.speedup - 1) / 2), evaluated[0])
        return _Search("auto", evaluated, evaluated[-1], mild, sum(r["candidates"] for r in evaluated))
    # Budget 0.75x: the evaluated spread covers cuts above the 2x target too (for the composite).
    names = [u.name for u in pruner.units]
    kept = {names[i - 1] for i in boundaries(pruner.units)[:: args.boundary_stride]}
    kept |= {names[i] for i in boundaries(pruner.units)[:: args.boundary_stride]}
    spans = [s for s in pruner.candidates() if s.origin in kept and s.destination in kept]
    found = search_cuts(pruner, short, validation, budgets=Budgets(max_latency_ms=0.75 * base_b1),
                        efficiency="latency", tau=args.tau, translator_epochs=args.search_epochs,
                        max_evaluated=args.max_evaluated, latency_repeats=args.repeats, spans=spans,
                        translator_init=args.translator_init)
    evaluated = [r for r in found.rows if r["accuracy"] is not None]
    fast = [r for r in evaluated if r["latency_ms"] <= found.base["latency_ms"] / args.speedup] or evaluated
    mild = [r for r in evaluated if r not in fast] or evaluated
    return _Search("translator", evaluated, fast[0], mild[0], len(found.rows))  # rows are sorted by score


def _depth_then_units(mild_model: torch.nn.Module, mild_cut: str, mild_speedup: float, base: torch.nn.Module,
                      train: Any, test: Any, x: torch.Tensor, teacher: torch.nn.Module, args: argparse.Namespace,
                      finish: Any) -> str | None:
    """The milder cut, then units pruned while it recovers; Torch-Pruning at its latency at batch 1 and 64.

    Returns None, or why the units' target was out of reach (under ``--units-max-ratio``;
    then there are no units rows).
    """
    ft = args.finetune_epochs
    batches = sorted(set(args.units_batch))
    if batches[0] != 1:  # the search timed batch 1 only: time the cut where the units are asked
        timed = compare_latency({"base": base, "cut": mild_model}, x.repeat(batches[0], 1, 1, 1), rounds=args.rounds,
                                repeats=args.repeats, warmup=3)
        mild_speedup = timed.speedup["cut"]
    speedup = max(args.speedup / mild_speedup, 1.05)  # what the cuts left to the units
    phases = recover(mild_model, train, translator_epochs=1, finetune_epochs=0)
    try:
        composite, phase, pruner = fine_tune_pruning_units(mild_model, train, target_speedup=speedup,
                                                           latency_batch_sizes=batches, example_inputs=x, epochs=ft,
                                                           max_unit_ratio=args.units_max_ratio,
                                                           prune_until=args.units_until, teacher=teacher,
                                                           eval_loader=test)
    except ConfigError as exc:
        logging.getLogger("bench").warning("depth + units: %s", exc)
        return str(exc)
    phases.append(phase)
    assert pruner.latency_calibration is not None
    finish("depth + units", composite, phases,
           {"cut": mild_cut, "units_target_speedup": speedup, "units_batch_sizes": batches,
            "units_max_ratio": args.units_max_ratio, "units_until": args.units_until,
            "macs_fraction": pruner.macs_fraction(),
            "latency_calibration": pruner.latency_calibration.to_dict()})
    for batch in (1, 64):
        narrow, ratio, relative = prune_channels_to_latency(base, x.repeat(batch, 1, 1, 1), composite,
                                                            repeats=args.repeats)
        finish(f"torch-pruning (latency of depth + units, batch {batch})", narrow,
               [fine_tune(narrow, train, epochs=ft, teacher=teacher, eval_loader=test)],
               {"channel_ratio": ratio, "speed_vs_reference_when_matched": relative})
    return None


def interleaved_latency(models: dict[str, torch.nn.Module], x: torch.Tensor,
                        args: argparse.Namespace) -> dict[str, dict]:
    """Latency per model and its speed-up over ``base`` at batch 1 and 64 (``compare_latency``)."""
    result: dict[str, dict] = {label: {"latency_threads": args.threads, "latency_rounds": args.rounds}
                               for label in models}
    for batch in (1, 64):
        timed = compare_latency(models, x.repeat(batch, 1, 1, 1), baseline="base", rounds=args.rounds,
                                repeats=args.repeats, threads=args.threads)
        for label in models:
            result[label][f"latency_ms_b{batch}"] = timed.median_ms[label]
            result[label][f"speedup_b{batch}"] = timed.speedup[label]
    return result


def retime(path: Path, args: argparse.Namespace) -> None:
    """Replace the latency columns of a result file by a fresh interleaved timing of its saved variants."""
    from neuroprune.depth import load_graph_model

    results = json.loads(path.read_text())
    work = Path(results["settings"]["work"])
    torch.set_num_threads(args.threads)
    for model in results["models"].values():
        folder = work / f"{model['model']}_{model['width']}" / "variants"
        loaded = {label: load_graph_model(folder, stem=_slug(label))[0].eval() for label in model["variants"]}
        x = torch.zeros(1, *json.loads((folder / "base.json").read_text())["metadata"].get("input_shape", [1, 32, 32]))
        x = torch.randn_like(x)
        for label, timing in interleaved_latency(loaded, x, args).items():
            model["variants"][label].update(timing, latency_protocol="retimed in a fresh process")
    results["settings"]["retimed"] = f"threads={args.threads} rounds={args.rounds} repeats={args.repeats}"
    write(results, path.parent, path.stem)


def match_batch64(path: Path, args: argparse.Namespace) -> None:
    """Add Torch-Pruning matched to the depth (search) variant's batch-64 latency to a result file.

    The base, data and fine-tuning are those the result file records; the new row is timed
    with the base and the depth variant in the same interleaved rounds.
    """
    from neuroprune.depth import load_graph_model
    from neuroprune.runs.train import load_trained, model_options

    results = json.loads(path.read_text())
    settings = results["settings"]
    work = Path(settings["work"])
    limit = {k: None if settings[k] == "None" else int(settings[k]) for k in ("limit_train", "limit_test")}
    for model in results["models"].values():
        name, width = model["model"], model["width"]
        pretrained = width == "pretrained"
        pad_to = None if pretrained else 32
        folder = work / f"{name}_{width}"
        seed = int(settings.get("seed", 0))
        torch.manual_seed(seed)
        base, _ = load_trained(name, folder, model_options(DATASET, 1.0 if pretrained else float(width), pad_to))
        train = create_loader(DATASET, "fit", 128, seed=seed, limit=limit["limit_train"], pad_to=pad_to)
        test = create_loader(DATASET, "test", 1000, limit=limit["limit_test"], pad_to=pad_to)
        x = next(iter(test))[0][:1]
        reference = load_graph_model(folder / "variants", stem=_slug("depth (search)"))[0].eval()
        narrow, ratio, relative = prune_channels_to_latency(base, x.repeat(64, 1, 1, 1), reference,
                                                            repeats=args.repeats)
        teacher = copy.deepcopy(base).eval()
        phase = fine_tune(narrow, train, epochs=int(settings["finetune_epochs"]), teacher=teacher, eval_loader=test)
        label = "torch-pruning (equal latency, batch 64)"
        row = {"accuracy": evaluate(narrow, test)["accuracy"], "params": count_params(narrow),
               "macs": count_macs(narrow, x), "recovery": [phase.to_dict()], "channel_ratio": ratio,
               "speed_vs_depth_cut_when_matched": relative}
        timing = interleaved_latency({"base": base, "depth (search)": reference, label: narrow}, x, args)
        row.update(timing[label], latency_protocol="timed beside base and depth (search) in a later process",
                   depth_cut_speedup_b1_same_timing=timing["depth (search)"]["speedup_b1"],
                   depth_cut_speedup_b64_same_timing=timing["depth (search)"]["speedup_b64"])
        model["variants"][label] = row
        log = logging.getLogger("bench")
        log.info("%s %s: accuracy %.4f, %.2fx / %.2fx", name, label, row["accuracy"], row["speedup_b1"],
                 row["speedup_b64"])
        save_graph_model(narrow, folder / "variants", stem=_slug(label))
    write(results, path.parent, path.stem)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in label).strip("_")


def write(results: dict[str, Any], out: Path, name: str = "depth") -> None:
    write_json(out / f"{name}.json", results)
    lines = ["# Depth pruning on Fashion-MNIST (CIFAR-style nets padded to 32x32; EfficientNet-Lite0 at 28 px, "
             "upsampled to 64 inside)", "",
             f"Settings: {json.dumps(results['settings'])}", ""]
    lines += [f"- {note}" for note in results.get("notes", [])] + ([""] if results.get("notes") else [])
    for run in results.get("runs", []):
        lines.append(f"- {run['file']}: {json.dumps(run['settings'])}")
    for key, model in results["models"].items():
        variants = model["variants"]
        base = variants["base"]
        lines += ["", f"## {key} (wall {model.get('wall_seconds', 0) / 60:.1f} min)", "",
                  "| variant | accuracy | params | MACs | latency b1 (ms) | speedup b1 | latency b64 (ms) "
                  "| speedup b64 | detail |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for label, row in variants.items():
            detail = ", ".join(f"{k}={row[k]:.3g}" if isinstance(row[k], float) else f"{k}={row[k]}"
                               for k in ("cut", "translator", "channel_ratio", "units_target_speedup", "units_until")
                               if k in row)
            lines.append(
                f"| {label} | {100 * row['accuracy']:.2f}% | {row['params']:,} | {row['macs']:,} | "
                f"{row['latency_ms_b1']:.2f} | {_speedup(row, base, 1):.2f}x | "
                f"{row['latency_ms_b64']:.1f} | {_speedup(row, base, 64):.2f}x | {detail} |")
        if model.get("units_out_of_reach"):
            lines += ["", f"depth + units: not run, the units' target was out of reach: {model['units_out_of_reach']}"]
        lines.append("")
    atomic_write_bytes(out / f"{name}.md", ("\n".join(lines) + "\n").encode())


def _speedup(row: dict[str, Any], base: dict[str, Any], batch: int) -> float:
    """Median per-round speed-up when measured that way, else the ratio of the latencies."""
    return row.get(f"speedup_b{batch}", base[f"latency_ms_b{batch}"] / row[f"latency_ms_b{batch}"])


if __name__ == "__main__":
    main()
