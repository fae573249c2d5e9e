"""CPU inference speed of pruned models: dense vs compacted vs sparse (CSR) execution.

Synaptic models (``mlp`` = LeNet-300-100 and ``lenet5``, MNIST-sized 1x28x28 input):
each model is pruned by magnitude masks (``neuroprune.magnitude_masks``, the same share of
every Linear and Conv2d layer; the zeros are written into the weights) at several
sparsities, from freshly initialised weights (latency does not depend on the values).
A real pruned run folder (``--run``, e.g. an MLP trained on MNIST with synaptic pruning)
is added when given. For each, in one process, these variants are timed:

* ``dense``      the unpruned architecture, plain ``nn.Sequential`` (the baseline);
* ``compact``    ``compact_sequential`` of the masked model (dead units removed), plain Sequential;
* ``lean``       the compacted model in an ``InferenceChain`` with dense kernels only
                 (separates the dispatch savings from the sparse kernels);
* ``sparse``     ``neuroprune.export.sparsify``: per layer the faster of dense and CSR, measured
                 at batch 1 and the large batch (what ``neuroprune export`` writes);
* ``all_csr``    every Linear layer CSR (shows where the sparse kernel loses).

Depth-pruned CNNs (if ``neuroprune.depth`` is importable): the base architecture vs a
depth cut of it (``DepthPruner`` candidates, untrained weights), plus ``--depth-run``
folders when given.

Timing: ``neuroprune.metrics.measure_latency`` (median of ``--repeats`` calls after
warm-up); the variants of one configuration are interleaved over ``--rounds`` rounds and
each speed-up is the median over rounds of dense_ms / variant_ms measured in the same
round (slow configurations get fewer calls per round, at least 5). The FLOP ratio is
``count_macs(dense) / count_sparse_macs(masked)``.

Usage (or, in a checkout, ``python benchmarks/speed.py``):
    python -m neuroprune.bench speed --run /tmp/run_mnist1 --depth-run /tmp/depth_run1 --out DIR
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import neuroprune as npr
from neuroprune.export import InferenceChain, load_run_model, sparsify
from neuroprune.metrics import count_macs, count_sparse_macs, measure_latency
from neuroprune.runs._common import environment
from neuroprune.storage import atomic_write_bytes, load_torch, write_json

from ._common import DEFAULT_OUT, command

log = logging.getLogger("speed")
INPUT_SHAPE = (1, 28, 28)
_BUDGET_S = 0.25  # seconds of timed calls per variant and round


def main(argv: Sequence[str] | None = None, *, prog: str | None = None, out: Path | None = None) -> None:
    """Run the suite with the command-line arguments ``argv`` (default: this process's).

    ``prog`` names the command in the help (default ``python -m neuroprune.bench speed``);
    ``out`` is the default of ``--out`` (default ``benchmarks/results``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=prog or command("speed"), description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,lenet5")
    parser.add_argument("--sparsities", default="0.5,0.8,0.9,0.95,0.98")
    parser.add_argument("--batch-sizes", default="1,256")
    parser.add_argument("--run", type=Path, action="append", default=[], help="synaptic run folder(s) to add")
    parser.add_argument("--depth-run", type=Path, action="append", default=[], help="depth run folder(s) to add")
    parser.add_argument("--depth-models", default="resnet20,vgg11", help="architectures for the depth section")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", default="1", help="torch thread counts, comma separated, each a full pass")
    parser.add_argument("--out", type=Path, default=out or DEFAULT_OUT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    batches = [int(b) for b in args.batch_sizes.split(",")]
    started = time.time()
    rows: list[dict[str, Any]] = []
    depth_rows: list[dict[str, Any]] = []
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        args.thread_count = threads
        for name in args.models.split(","):
            for sparsity in (float(s) for s in args.sparsities.split(",")):
                dense, masked = _magnitude_pruned(name, sparsity)
                rows += _synaptic_rows(name, f"magnitude {sparsity:.0%}", dense, masked, batches, args)
        for run in args.run:
            dense, masked, compact = _from_run(run)
            rows += _synaptic_rows(_run_model_name(run), f"run {run.name}", dense, masked, batches, args,
                                   compact=compact)
        depth_rows += _depth_rows(args, batches)
    results = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "environment": environment(),
        "seconds": time.time() - started,
        "synaptic": rows,
        "depth": depth_rows,
    }
    write_json(args.out / "speed.json", results)
    atomic_write_bytes(args.out / "speed.md", _markdown(results).encode())
    log.info("wrote %s and %s", args.out / "speed.json", args.out / "speed.md")


# ---- synaptic models ------------------------------------------------------------------------


def _magnitude_pruned(name: str, sparsity: float) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    dense = npr.create_model(name, in_channels=INPUT_SHAPE[0], image_size=INPUT_SHAPE[1], num_classes=10).eval()
    masked = npr.create_model(name, in_channels=INPUT_SHAPE[0], image_size=INPUT_SHAPE[1], num_classes=10).eval()
    masked.load_state_dict(dense.state_dict())
    layers = {n: sparsity for n, m in masked.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}
    with torch.no_grad():
        for layer, mask in npr.magnitude_masks(masked, layers).items():
            masked.get_submodule(layer).weight.mul_(mask)
    return dense, masked


def _run_model_name(run: Path) -> str:
    return json.loads((run / "result.json").read_text()).get("model", "mlp")


def _from_run(run: Path) -> tuple[nn.Module, nn.Module, nn.Module]:
    """(dense architecture, masked model from checkpoint.pt, compacted model) of a synaptic run."""
    compact, metadata, _ = load_run_model(run)
    name = _run_model_name(run)
    shape = metadata["input_shape"]
    with torch.inference_mode():
        classes = int(compact(torch.zeros(1, *shape)).shape[-1])
    torch.manual_seed(0)
    dense = npr.create_model(name, in_channels=shape[0], image_size=shape[-1], num_classes=classes).eval()
    masked = npr.create_model(name, in_channels=shape[0], image_size=shape[-1], num_classes=classes).eval()
    masked.load_state_dict(load_torch(run / "checkpoint.pt")["model"])
    return dense, masked, compact


def _synaptic_rows(model: str, pruning: str, dense: nn.Module, masked: nn.Module, batches: list[int],
                   args: argparse.Namespace, compact: nn.Module | None = None) -> list[dict[str, Any]]:
    compact = (compact if compact is not None else npr.compact_sequential(masked)).eval()
    inputs = {b: torch.randn(b, *INPUT_SHAPE, generator=torch.Generator().manual_seed(b)) for b in batches}
    sparse, choices = sparsify(compact, list(inputs.values()), rounds=3, repeats=args.repeats)
    all_csr, _ = sparsify(compact, inputs[batches[0]], candidates=("csr",), rounds=1, repeats=1)
    variants: dict[str, nn.Module] = {
        "dense": dense,
        "compact": compact,
        "lean": InferenceChain.from_sequential(compact),
        "sparse": sparse,
        "all_csr": all_csr,
    }
    x1 = inputs[batches[0]]
    with torch.inference_mode():
        reference = masked(x1)
        errors = {k: float((v(x1) - reference).abs().max()) for k, v in variants.items() if k != "dense"}
    flop_ratio = count_macs(dense, x1[:1]) / max(1, count_sparse_macs(masked, x1[:1]))
    rows = []
    for batch, x in inputs.items():
        timing = _interleaved(variants, x, args.rounds, args.repeats)
        rows.append({
            "threads": args.thread_count,
            "model": model,
            "pruning": pruning,
            "sparsity": 1 - count_sparse_macs(masked, x1[:1]) / count_macs(masked, x1[:1]),
            "batch": batch,
            "flop_ratio": flop_ratio,
            "kernels": {name: c.kind + (f"<{c.dense_below}:dense" if c.dense_below else "")
                        for name, c in choices.items()},
            "max_abs_diff_vs_masked": errors,
            **timing,
        })
        log.info("%d thread(s) %s %s batch %d: %s", args.thread_count, model, pruning, batch,
                 {k: round(v, 2) for k, v in timing["speedup"].items()})
    return rows


def _interleaved(variants: dict[str, nn.Module], x: torch.Tensor, rounds: int, repeats: int) -> dict[str, Any]:
    """Median ms per variant and median per-round speed-up over the first variant.

    Slow configurations (CNNs at a large batch) get fewer timed calls per round, at least
    5, so that one configuration takes about ``_BUDGET_S`` seconds per variant and round.
    """
    base = next(iter(variants))
    one_call = measure_latency(variants[base], x, warmup=1, repeats=1).median_ms / 1000
    repeats = max(5, min(repeats, int(_BUDGET_S / max(one_call, 1e-6))))
    per_round: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, model in variants.items():
            per_round[name].append(measure_latency(model, x, warmup=2, repeats=repeats, max_seconds=5.0).median_ms)
    return {
        "repeats": repeats,
        "ms": {k: statistics.median(v) for k, v in per_round.items()},
        "speedup": {
            k: statistics.median(b / m for b, m in zip(per_round[base], v, strict=True)) for k, v in per_round.items()
        },
    }


# ---- depth-pruned CNNs ----------------------------------------------------------------------


def _depth_rows(args: argparse.Namespace, batches: list[int]) -> list[dict[str, Any]]:
    try:
        from neuroprune import depth
    except ImportError as exc:
        log.info("depth section skipped: %s", exc)
        return []
    rows = []
    for name in args.depth_models.split(","):
        shape = (3, 32, 32)
        torch.manual_seed(0)
        try:
            base = npr.create_model(name, in_channels=shape[0], image_size=shape[1], num_classes=10, width=0.5).eval()
        except npr.ModelError as exc:
            log.info("depth model %s skipped: %s", name, exc)
            continue
        pruner = depth.DepthPruner(base, example_inputs=torch.randn(2, *shape))
        total = count_macs(base, torch.randn(1, *shape))
        # the cut removing the most MACs while keeping at least half of them (a moderate cut)
        span = max((s for s in pruner.candidates() if s.macs_removed <= total / 2), key=lambda s: s.macs_removed)
        small = pruner.plan(cut=span.cut).apply().eval()
        rows += _depth_rows_for(f"{name} (width 0.5, untrained)", f"cut {span.cut}", base, small, shape, batches, args)
    for run in args.depth_run:
        small, metadata, _ = load_run_model(run)
        result = json.loads((run / "result.json").read_text())
        shape = tuple(metadata["input_shape"])
        torch.manual_seed(0)
        classes = int(small(torch.zeros(1, *shape)).shape[-1])
        options = {"in_channels": shape[0], "image_size": shape[-1], "num_classes": classes}
        width = json.loads((run / "config.json").read_text()).get("config", {}).get("width")
        if width is not None:
            options["width"] = width
        try:
            base = npr.create_model(result["model"], **options).eval()
        except npr.ModelError as exc:
            log.info("depth run %s skipped: %s", run, exc)
            continue
        cut = result.get("cut")
        label = (cut.get("cut") or f"{cut['origin']}:{cut['destination']}") if isinstance(cut, dict) else str(cut)
        rows += _depth_rows_for(f"{result['model']} (run {run.name}, width {width})", f"cut {label}", base, small,
                                shape, batches, args)
    return rows


def _depth_rows_for(model: str, pruning: str, base: nn.Module, small: nn.Module, shape: tuple[int, ...],
                    batches: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    x1 = torch.randn(1, *shape)
    macs = count_macs(base, x1) / count_macs(small, x1)
    for batch in batches:
        batch = min(batch, 64)  # CNNs at batch 256 take seconds per call on 2 cores
        x = torch.randn(batch, *shape)
        timing = _interleaved({"base": base, "depth": small}, x, args.rounds, args.repeats)
        rows.append({"threads": args.thread_count, "model": model, "pruning": pruning, "batch": batch,
                     "flop_ratio": macs, **timing})
        log.info("%s %s batch %d: %s", model, pruning, batch, timing["speedup"])
    return rows


# ---- report ---------------------------------------------------------------------------------


def _markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [
        "# Inference speed: dense vs compacted vs sparse (CSR) execution",
        "",
        (f"CPU: {env['processor']}, torch {env['versions']['torch']}, "
        f"torch threads {results['settings']['threads']}; {results['settings']['rounds']} interleaved rounds of "
        f"{results['settings']['repeats']} timed calls; speed-up = median over rounds of dense ms / variant ms "
        "(same process, same round). Generated by `benchmarks/speed.py`."),
        "",
        "## Synaptic models",
        "",
        ("Variants: **compact** = dead units removed (plain Sequential); **lean** = compact in an InferenceChain, "
        "dense kernels; **sparse** = per-layer measured choice of dense/CSR (what `neuroprune export` writes); "
        "**all_csr** = every Linear in CSR. Cells: median ms (speed-up over dense)."),
        "",
        ("| threads | model | pruning | pruned MACs | batch | FLOP ratio | dense ms | compact | lean | sparse | "
        "all_csr | kernels (sparse) |"),
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in results["synaptic"]:
        ms, sp = row["ms"], row["speedup"]
        cells = [f"{ms[k]:.4f} ({sp[k]:.2f}x)" for k in ("compact", "lean", "sparse", "all_csr")]
        kernels = ", ".join(f"{k}:{v}" for k, v in row["kernels"].items())
        lines.append(f"| {row['threads']} | {row['model']} | {row['pruning']} | {row['sparsity']:.1%} | "
                     f"{row['batch']} | {row['flop_ratio']:.1f}x | {ms['dense']:.4f} | " + " | ".join(cells)
                     + f" | {kernels} |")
    lines += ["", "## Targets (MLP at >= 90% pruned, variant `sparse` vs `dense`)", ""]
    for row in results["synaptic"]:
        if row["model"] == "mlp" and row["sparsity"] >= 0.9 - 1e-9:
            target = 3.0 if row["batch"] == 1 else 2.0
            speedup = row["speedup"]["sparse"]
            verdict = "met" if speedup >= target else "missed"
            lines.append(f"- {row['pruning']}, batch {row['batch']}, {row['threads']} thread(s): {speedup:.2f}x "
                         f"(target {target:.0f}x: {verdict}; FLOP ratio {row['flop_ratio']:.1f}x)")
    if results["depth"]:
        lines += ["", "## Depth-pruned CNNs", "",
                  "| threads | model | pruning | batch | MAC ratio | base ms | depth ms | speed-up |",
                  "|---:|---|---|---:|---:|---:|---:|---:|"]
        for row in results["depth"]:
            lines.append(f"| {row['threads']} | {row['model']} | {row['pruning']} | {row['batch']} | "
                         f"{row['flop_ratio']:.1f}x | {row['ms']['base']:.3f} | {row['ms']['depth']:.3f} | "
                         f"{row['speedup']['depth']:.2f}x |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
