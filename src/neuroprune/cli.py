"""The ``neuroprune`` command line: ``data``, ``models``, ``synaptic``.

Library errors (bad input, missing data) are printed as one line and exit with status 2.
Training commands run data-parallel when started by ``torchrun``, e.g.
``torchrun --nproc-per-node 2 -m neuroprune synaptic -c configs/synaptic_mlp_mnist.yaml --out runs/a``;
then only rank 0 prints and writes files.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from . import distributed as dist_utils
from .config import SynapticConfig, load_config, load_run_config
from ._cli_errors import friendly_errors
from .errors import ConfigError, NeuropruneError
from .synaptic.pruner import GRANULARITIES
from .synaptic.tracker import CRITERIA

console = Console(stderr=True)
DATASET_NAMES = ("digits", "mnist", "fashion-mnist", "cifar10")


class _StepsOrAuto(click.ParamType):
    """A step count, ``auto`` (a share of the run's length) or ``none``."""

    name = "N|auto|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or value in ("auto",):
            return value
        if value == "none":
            return _NONE
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not a whole number, 'auto' or 'none'", param, ctx)


class _FractionOrNone(click.ParamType):
    """A number, or ``none`` to switch off a value the YAML file sets."""

    name = "X|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float) or value == _NONE:
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number or 'none'", param, ctx)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                  line: str | None = None) -> None:
    """Library warnings as one plain line, without the source location Python adds."""
    console.print(f"warning: {message}", markup=False, highlight=False)


_NONE = "none"  # "--stop-step none": mapped to None after parsing (None means "not given")
STEPS = _StepsOrAuto()
FRACTION_OR_NONE = _FractionOrNone()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch (small models often run fastest on 1).")
@click.version_option(package_name="neuroprune")
def main(verbose: bool, threads: int | None) -> None:
    """Brain-inspired pruning for PyTorch networks."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    warnings.showwarning = _show_warning
    is_main = os.environ.get("RANK", "0") == "0"  # torchrun's other processes log warnings only
    logging.basicConfig(
        level=logging.INFO if verbose and is_main else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


def _run_in_process_group(job: Callable[[], Any]) -> tuple[Any, bool]:
    """Run ``job`` inside the process group torchrun describes (if any); return (its result, is rank 0)."""
    started = dist_utils.init_from_env()
    try:
        result, is_main = job(), dist_utils.is_main_process()
    except BaseException:
        if started:
            dist_utils.shutdown(wait=False)
        raise
    if started:
        dist_utils.shutdown()
    return result, is_main


# ---- data ---------------------------------------------------------------------------------


@main.group()
def data() -> None:
    """Obtain and inspect the data sets."""


@data.command("fetch")
@click.argument("name", type=click.Choice(["mnist", "fashion-mnist", "cifar10", "all"]), default="all")
@click.option("--source", type=click.Path(exists=True, path_type=Path), help="Local file or folder to read from.")
@friendly_errors
def data_fetch(name: str, source: Path | None) -> None:
    """Put a real data set into neuroprune's cache (digits need no fetch).

    'all' fetches MNIST and Fashion-MNIST; CIFAR-10 needs --source (a
    cifar-10-batches-py folder or cifar-10-python.tar.gz).
    """
    from .data import fetch

    if name == "all" and source is not None:
        raise NeuropruneError("--source needs a single data set name, not 'all'")
    for each in ("mnist", "fashion-mnist") if name == "all" else (name,):
        folder = fetch(each, source=source)
        click.echo(f"{each}: ready in {folder}")


@data.command("list")
@friendly_errors
def data_list() -> None:
    """List the data sets neuroprune knows and their shapes."""
    from .data import dataset_info

    table = Table("name", "channels", "size", "classes", "train", "test")
    for name in DATASET_NAMES:
        info = dataset_info(name)
        table.add_row(name, str(info.in_channels), f"{info.image_size}x{info.image_size}", str(info.num_classes),
                      str(info.train_size), str(info.test_size))
    Console().print(table)


# ---- models -------------------------------------------------------------------------------


@main.command("models")
def models_command() -> None:
    """List the registered models."""
    from .models import describe_model, list_models

    for name in list_models():
        click.echo(f"{name:12s} {describe_model(name)}")


# ---- synaptic -----------------------------------------------------------------------------


def _model_names() -> list[str]:
    from .models import list_models

    return list_models()


@main.command("synaptic")
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path), help="YAML file with any of the options below.")
@click.option("--dataset", type=click.Choice(DATASET_NAMES), help="Data set [default: mnist].")
@click.option("--model", type=click.Choice(_model_names()), help="Registered model [default: mlp].")
@click.option("--epochs", type=int, help="Training epochs [default: 10].")
@click.option("--batch-size", type=int, help="Training batch size [default: 64].")
@click.option("--lr", type=float, help="Learning rate [default: 0.05].")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), help="Optimizer [default: sgd, momentum 0.9].")
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), help="Learning-rate schedule [default: constant].")
@click.option("--momentum", type=float, help="SGD momentum [default: 0.9].")
@click.option("--weight-decay", type=float, help="Weight decay [default: 0].")
@click.option("--seed", type=int, help="Seed for weights and batch order [default: 0].")
@click.option("--criterion", type=click.Choice(list(CRITERIA)),
              help="Activity measure [default: deviation].")
@click.option("--alpha", type=float, help="Weak = activity below alpha x the layer's mean [default: 0.5].")
@click.option("--patience", type=int, help="Consecutive weak checks before pruning [default: 3].")
@click.option("--check-every", type=STEPS, help="Optimizer steps between checks, or auto: 1% of training [default: auto].")
@click.option("--warmup-steps", type=STEPS, help="Steps before activity counts, or auto: 5% of training [default: auto].")
@click.option("--stop-step", type=STEPS,
              help="No checks after this step; auto: 60% of training; none: until the end [default: auto].")
@click.option("--min-fan-in", type=int, help="Live inputs every unit keeps [default: 1].")
@click.option("--max-fraction-per-check", type=float,
              help="Most of a layer pruned at one check, without --target-sparsity [default: 0.1].")
@click.option("--target-sparsity", type=FRACTION_OR_NONE,
              help="Share of connections pruned at --stop-step, reached on a cubic schedule; none: the rule alone "
                   "decides [default: none].")
@click.option("--granularity", type=click.Choice(list(GRANULARITIES)),
              help="Prune connections, whole units (neurons/channels), or both [default: connection].")
@click.option("--fold-bias/--no-fold-bias", default=None,
              help="Fold a pruned connection's mean input into the bias [default: on with criterion deviation].")
@click.option("--sample-every", type=int, help="Gather activity on every n-th step only [default: 1].")
@click.option("--compare-dense/--no-compare-dense", default=None, help="Also train the same network without pruning.")
@click.option("--data-root", type=str, help="Folder of a data set that is not in the cache (e.g. CIFAR-10).")
@click.option("--limit-train", type=int, help="Use only the first N training samples.")
@click.option("--limit-test", type=int, help="Use only the first N test samples.")
@click.option("--measure-latency/--no-measure-latency", default=None, help="Time dense vs compact inference [default: on].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder for the results.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Continue the interrupted run in this folder, as configured in its config.json.")
@friendly_errors
def synaptic_command(config_path: Path | None, out: Path | None, resume_dir: Path | None, **options: Any) -> None:
    """Train with activity-dependent synaptic pruning, compact the result, write OUT/result.json.

    Options come from the defaults, then the YAML file of --config, then the flags given.
    A run writes a checkpoint every epoch; after a crash, `--resume OUT` finishes it with
    the same result as an uninterrupted run. Under `torchrun --nproc-per-node N -m neuroprune`
    the N processes share every batch of --batch-size (the global batch).
    """
    from .runs.synaptic import run_synaptic

    if resume_dir is not None:
        given = [f"--{name.replace('_', '-')}" for name, value in options.items() if value is not None]
        given += ["--config"] * (config_path is not None) + ["--out"] * (out is not None and out != resume_dir)
        if given:
            raise ConfigError(
                f"--resume continues the run exactly as {resume_dir}/config.json describes; drop {', '.join(given)}"
            )
        config, out = load_run_config(SynapticConfig, resume_dir), resume_dir
    elif out is None:
        raise ConfigError("--out is required: the folder for the results (or --resume FOLDER to continue a run)")
    else:
        if options.get("check_every") == _NONE or options.get("warmup_steps") == _NONE:
            raise ConfigError("--check-every and --warmup-steps take a whole number or 'auto', not 'none'")
        # "none" switches off what the YAML file sets; None itself means "flag not given"
        cleared = tuple(name for name in ("stop_step", "target_sparsity") if options.get(name) == _NONE)
        config = load_config(SynapticConfig, config_path, {**options, **{name: None for name in cleared}}, cleared)
    folder = out
    result, is_main = _run_in_process_group(
        lambda: run_synaptic(config, folder, show_progress=sys.stderr.isatty(), resume=resume_dir is not None)
    )
    if is_main:
        _print_synaptic_summary(result, folder)


def _print_synaptic_summary(result: dict[str, Any], out: Path) -> None:
    table = Table(title=f"synaptic pruning: {result['model']} on {result['dataset']}")
    table.add_column("")
    table.add_column("pruned", justify="right")
    if "dense" in result:
        table.add_column("dense", justify="right")
    dense = result.get("dense")

    def row(label: str, value: str, dense_value: str = "") -> None:
        table.add_row(label, value, *([dense_value] if dense else []))

    row("test accuracy", f"{100 * result['test_accuracy']:.2f}%", f"{100 * dense['test_accuracy']:.2f}%" if dense else "")
    row("connections pruned", f"{100 * result['pruned_fraction']:.1f}%", "0%")
    row("parameters", f"{result['params_compact']:,}", f"{result['params_dense']:,}")
    row("MACs per sample", f"{result['macs_compact']:,}", f"{result['macs_dense']:,}")
    row("train seconds", f"{result['train_seconds']:.1f}", f"{dense['train_seconds']:.1f}" if dense else "")
    if result["latency_ms"] is not None:
        for label, latency in result["latency_ms"].items():
            if label.startswith("batch_"):
                size = label.removeprefix("batch_")
                row(f"latency batch {size} (ms)", f"{latency['compact']:.3f} ({latency['speedup']:.2f}x)",
                    f"{latency['dense']:.3f}")
    Console().print(table)
    click.echo(f"results in {out}/result.json")


def _register_commands() -> None:
    """Commands defined in their own modules (one concept each)."""
    from .cli_depth import depth_group, train_command
    from .cli_export import export_command
    from .cli_report import report_command, reproduce_command

    main.add_command(train_command)
    main.add_command(depth_group)
    main.add_command(export_command)
    main.add_command(report_command)
    main.add_command(reproduce_command)


_register_commands()

if __name__ == "__main__":
    main()
