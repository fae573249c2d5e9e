"""``neuroprune synaptic``: train with activity-dependent synaptic pruning and compact the result.

Options come from the defaults, then a YAML file (``--config``), then the flags given;
``--resume OUT`` finishes an interrupted run from its checkpoint. The run writes
``OUT/result.json`` and a summary table (pruned vs dense) is printed. Under ``torchrun`` the
processes share every batch and only rank 0 prints and writes files.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..config import SynapticConfig, load_config, load_run_config
from ..errors import ConfigError
from ..synaptic.options import GRANULARITIES
from ..synaptic.tracker import CRITERIA
from ._common import (
    DATASETS,
    FRACTION_OR_NONE,
    NONE,
    STEPS,
    TARGET_OPTIONS,
    run_in_process_group,
)
from ._errors import friendly_errors
from ._user_options import DATA_OPTIONS, MODEL_HELP, PRETRAINED_OPTION, WEIGHTS_OPTION


@click.command("synaptic")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
              help="YAML file with any of the options below.")
@click.option("--dataset", type=click.Choice(DATASETS), help="Data set [default: mnist].")
@click.option("--model", type=str, help=MODEL_HELP + " [default: mlp]")
@click.option("--epochs", type=int, help="Training epochs [default: 10].")
@click.option("--batch-size", type=int, help="Training batch size [default: 64].")
@click.option("--lr", type=float, help="Learning rate [default: 0.05].")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), help="Optimizer [default: sgd, momentum 0.9].")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]),
              help="Learning-rate schedule [default: constant].")
@click.option("--momentum", type=float, help="SGD momentum [default: 0.9].")
@click.option("--weight-decay", type=float, help="Weight decay [default: 0].")
@click.option("--seed", type=int, help="Seed for weights and batch order [default: 0].")
@click.option("--criterion", type=click.Choice(list(CRITERIA)),
              help="Activity measure [default: deviation].")
@click.option("--alpha", type=float, help="Weak = activity below alpha x the layer's mean [default: 0.5].")
@click.option("--patience", type=int, help="Consecutive weak checks before pruning [default: 3].")
@click.option("--check-every", type=STEPS,
              help="Optimizer steps between checks, or auto: 1% of training [default: auto].")
@click.option("--warmup-steps", type=STEPS,
              help="Steps before activity counts, or auto: 5% of training [default: auto].")
@click.option("--stop-step", type=STEPS,
              help="No checks after this step; auto: 60% of training; none: until the end [default: auto].")
@click.option("--min-fan-in", type=int, help="Live inputs every unit keeps [default: 1].")
@click.option("--max-fraction-per-check", type=float,
              help="Most of a layer pruned at one check, without --target-sparsity [default: 0.1].")
@click.option("--max-unit-ratio", type=float,
              help="Most of any channel space's units removed, in (0, 1] (unit and both granularities) "
                   "[default: 1: a space may shrink to one unit].")
@click.option("--target-sparsity", type=FRACTION_OR_NONE,
              help="Share of connections pruned at --stop-step, reached on a cubic schedule; none: the rule alone "
                   "decides [default: none].")
@click.option("--target-macs", type=FRACTION_OR_NONE,
              help="Share of the dense MACs left at --stop-step, reached on the cubic schedule by removing the units "
                   "whose activity per MAC saved is lowest; none: no compute target [default: none].")
@click.option("--target-speedup", type=FRACTION_OR_NONE,
              help="Wanted speed-up N of the compacted network at batch 1 and 64 (or --speedup-batch): counted in a "
                   "latency model timed per layer, calibrated on thinned copies of the whole network before "
                   "training and on the pruned network during pruning; checked by this run's interleaved timing "
                   "(result.json speedup_target). Refused before training when out of reach [default: none].")
@click.option("--speedup-batch", type=int,
              help="The one batch size --target-speedup must hold at [default: batch 1 and 64].")
@click.option("--granularity", type=click.Choice(list(GRANULARITIES)),
              help="Prune connections, whole units (neurons/channels), both, or auto: unit for networks with "
                   "convolutions or a compute target (without a target, half the dense layers' time is kept), "
                   "both for Linear-only networks [default: auto].")
@click.option("--fold-bias/--no-fold-bias", default=None,
              help="Fold a pruned connection's mean input into the bias [default: on with criterion deviation].")
@click.option("--sample-every", type=int, help="Gather activity on every n-th step only [default: 1].")
@click.option("--compare-dense/--no-compare-dense", default=None, help="Also train the same network without pruning.")
@click.option("--compare-gmp/--no-compare-gmp", default=None,
              help="Also train the same network with gradual magnitude pruning (Zhu & Gupta; global |w|) on this "
                   "run's schedule, to the share of connections this run ends with.")
@click.option("--data-root", type=str, help="Folder of a data set that is not in the cache (e.g. CIFAR-10).")
@DATA_OPTIONS
@WEIGHTS_OPTION
@PRETRAINED_OPTION
@click.option("--limit-train", type=int, help="Use only the first N training samples.")
@click.option("--limit-test", type=int, help="Use only the first N test samples.")
@click.option("--measure-latency/--no-measure-latency", default=None,
              help="Time dense vs compact inference [default: on].")
@TARGET_OPTIONS
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder for the results.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Continue the interrupted run in this folder, as configured in its config.json.")
@click.option("--overwrite", is_flag=True,
              help="Replace the earlier run in --out (without it such a folder is refused).")
@friendly_errors
def synaptic_command(
    config_path: Path | None, out: Path | None, resume_dir: Path | None, overwrite: bool, **options: Any
) -> None:
    """Train with activity-dependent synaptic pruning, compact the result, write OUT/result.json.

    Options come from the defaults, then the YAML file of --config, then the flags given.
    A run writes a checkpoint every epoch; after a crash, `--resume OUT` finishes it with
    the same result as an uninterrupted run. An OUT that holds an earlier run is refused
    unless --overwrite is given. Under `torchrun --nproc-per-node N -m neuroprune`
    the N processes share every batch of --batch-size (the global batch).
    """
    from ..runs.synaptic import run_synaptic

    if resume_dir is not None:
        given = [f"--{name.replace('_', '-')}" for name, value in options.items() if value is not None]
        given += ["--config"] * (config_path is not None) + ["--out"] * (out is not None and out != resume_dir)
        given += ["--overwrite"] * overwrite  # resuming keeps the run it continues
        if given:
            raise ConfigError(
                f"--resume continues the run exactly as {resume_dir}/config.json describes; drop {', '.join(given)}"
            )
        config, out = load_run_config(SynapticConfig, resume_dir), resume_dir
    elif out is None:
        raise ConfigError("--out is required: the folder for the results (or --resume FOLDER to continue a run)")
    else:
        if options.get("check_every") == NONE or options.get("warmup_steps") == NONE:
            raise ConfigError("--check-every and --warmup-steps take a whole number or 'auto', not 'none'")
        # "none" switches off what the YAML file sets; None itself means "flag not given"
        cleared = tuple(name for name in ("stop_step", "target_sparsity", "target_macs", "target_speedup")
                        if options.get(name) == NONE)
        config = load_config(SynapticConfig, config_path, {**options, **{name: None for name in cleared}}, cleared)
    folder = out
    result, is_main = run_in_process_group(
        lambda: run_synaptic(config, folder, show_progress=sys.stderr.isatty(), resume=resume_dir is not None,
                             overwrite=overwrite),
        config.device,
    )
    if is_main:
        _print_synaptic_summary(result, folder)


NOT_FASTER = 1.05  # a speed-up below this is within the timing noise of a shared machine


def _note_batches_not_faster(result: dict[str, Any]) -> None:
    """Say where units were removed and the compacted model is still not measurably faster than dense."""
    latency = result.get("latency_ms")
    if latency is None or result["pruner"]["granularity"] == "connection":
        return
    slow = {label.removeprefix("batch_"): entry["speedup"] for label, entry in latency.items()
            if label.startswith("batch_") and entry["speedup"] < NOT_FASTER}
    if slow:
        said = ", ".join(f"batch {size} ({speedup:.2f}x)" for size, speedup in slow.items())
        click.echo(f"note: the compacted model is not measurably faster than dense at {said}: there the time goes "
                   "to each module's call (batch norm, activations, small inputs), not to the weights pruning "
                   "removed; --target-speedup sets a measured goal at batch 1 and 64 (and says if it is out of reach)")


def _print_synaptic_summary(result: dict[str, Any], out: Path) -> None:
    table = Table(title=f"synaptic pruning: {result['model']} on {result['dataset']}")
    table.add_column("")
    table.add_column("synaptic" if "gmp" in result else "pruned", justify="right")
    dense, gmp = result.get("dense"), result.get("gmp")
    if gmp:
        table.add_column("GMP", justify="right")
    if dense:
        table.add_column("dense", justify="right")

    def row(label: str, value: str, dense_value: str = "", gmp_value: str = "") -> None:
        table.add_row(label, value, *([gmp_value] if gmp else []), *([dense_value] if dense else []))

    row("test accuracy", f"{100 * result['test_accuracy']:.2f}%",
        f"{100 * dense['test_accuracy']:.2f}%" if dense else "", f"{100 * gmp['test_accuracy']:.2f}%" if gmp else "")
    row("connections pruned", f"{100 * result['pruned_fraction']:.1f}%", "0%",
        f"{100 * gmp['pruned_fraction']:.1f}%" if gmp else "")
    row("parameters", f"{result['params_compact']:,}", f"{result['params_dense']:,}",
        f"{gmp['params_compact']:,}" if gmp else "")
    row("MACs per sample", f"{result['macs_compact']:,} ({result['macs_ratio']:.2f}x dense)",
        f"{result['macs_dense']:,}", f"{gmp['macs_compact']:,}" if gmp else "")
    row("train seconds", f"{result['train_seconds']:.1f}", f"{dense['train_seconds']:.1f}" if dense else "",
        f"{gmp['train_seconds']:.1f}" if gmp else "")
    if result["latency_ms"] is not None:
        for label, latency in result["latency_ms"].items():
            if label.startswith("batch_"):
                size = label.removeprefix("batch_")
                row(f"latency batch {size} (ms)", f"{latency['compact']:.3f} ({latency['speedup']:.2f}x)",
                    f"{latency['dense']:.3f}",
                    f"{latency['gmp']:.3f} ({latency['gmp_speedup']:.2f}x)" if "gmp" in latency else "")
    Console().print(table)
    pruner = result["pruner"]
    if pruner.get("requested_granularity") == "auto":
        click.echo(f"granularity: {pruner['granularity']} ({pruner['granularity_reason']})")
    check = result.get("speedup_target")
    if check is not None:
        missed = [label for label, ok in check["reached"].items() if not ok]
        click.echo(f"target speed-up {check['target']:g}x: " + ("reached" if not missed else
                   f"not reached at {', '.join(missed)} (MACs {result['macs_ratio']:.2f}x dense)"))
    _note_batches_not_faster(result)
    if result["pruner"]["granularity"] == "connection" and result["params_compact"] == result["params_dense"]:
        # sparse weights alone make no dense layer faster: say how to get speed
        click.echo("note: no neuron or channel lost all its connections, so the compacted model is as large as "
                   "the dense one; --granularity unit or both removes whole neurons and channels")
    click.echo(f"results in {out}/result.json")
