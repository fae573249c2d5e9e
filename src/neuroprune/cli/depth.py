"""``neuroprune depth``: neuroplasticity-based depth pruning, and its subcommands.

``neuroprune depth --cut A:B ...`` / ``--search`` runs depth pruning: cut a span of layers,
bridge it with a translator, recover, and write ``OUT/result.json`` and the pruned model.
``neuroprune depth candidates`` lists the valid cuts and ``neuroprune depth search`` is the
same run as ``--search``. Every command accepts ``--config FILE.yaml``; flags override the file.

``depth --cut`` runs data-parallel under ``torchrun`` (only rank 0 prints and writes files);
the search runs in one process.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .._user_options import dataset_of
from ..config import load_config
from ..depth.config import DepthConfig
from ..errors import NeuropruneError
from ._common import MODEL_OPTIONS, TARGET_OPTIONS, combine_options, run_in_process_group
from ._errors import friendly_errors

_DEPTH_OPTIONS = combine_options(
    MODEL_OPTIONS,
    TARGET_OPTIONS,
    click.option("--checkpoint", type=str,
                 help="Trained weights: model.safetensors or the folder of `neuroprune train`."),
    click.option("--cut", type=str,
                 help="ORIGIN:DESTINATION, e.g. features.13:features.34; several cuts joined by commas."),
    click.option("--bridge", type=click.Choice(["translator", "identity", "auto"]),
                 help="What replaces each span; auto: identity where shapes match [translator; greedy search: auto]."),
    click.option("--kernel-size", type=click.Choice(["1", "3"]), help="Translator conv kernel [1]."),
    click.option("--translator-init", type=click.Choice(["lstsq", "random"]),
                 help="Translator start: least-squares fit to the intact model [lstsq], or random (authors)."),
    click.option("--batchnorm/--no-batchnorm", "use_batchnorm", default=None,
                 help="Batch norm in the translator [no]."),
    click.option("--search-strategy", type=click.Choice(["single", "greedy"]),
                 help="Search: score single cuts after a short recovery each [single], or remove one segment at a "
                      "time, least harmful first, until the budgets are met (greedy, several cuts)."),
    click.option("--tau", type=float, help="Search: weight of accuracy in the score [0.8]."),
    click.option("--efficiency", type=click.Choice(["params", "macs", "latency"]),
                 help="Search: cost in the score [params]."),
    click.option("--max-params", type=int, help="Search budget: parameters."),
    click.option("--max-macs", type=int, help="Search budget: MACs per sample."),
    click.option("--max-latency-ms", type=float, help="Search budget: median CPU latency (ms)."),
    click.option("--min-speedup", type=float,
                 help="Search budget: at least this many times faster than the intact model, timed beside it."),
    click.option("--latency-batch", type=int, help="Batch size of the latency budget [1]."),
    click.option("--max-evaluated", type=int, help="Search: recover at most N candidates, spread over cost [all]."),
    click.option("--search-epochs", type=int, help="Search: translator epochs per candidate [1]."),
    click.option("--search-limit-train", type=int, help="Search: training samples per candidate [5000]."),
    click.option("--translator-epochs", type=int, help="Recovery: translator-only epochs [5]."),
    click.option("--translator-lr", type=float, help="Recovery: translator learning rate [1e-3]."),
    click.option("--finetune-epochs", type=int, help="Recovery: full fine-tuning epochs [0]."),
    click.option("--finetune-lr", type=float, help="Recovery: fine-tuning learning rate [0.01]."),
    click.option("--distill/--no-distill", default=None, help="Fine-tune with distillation from the intact model."),
    click.option("--distill-weight", type=float, help="Share of the distillation term [0.5]."),
    click.option("--temperature", type=float, help="Distillation temperature [4]."),
    click.option("--then-channels", type=float,
                 help="Then prune this share of every removable channel space (L2 magnitude), and compact."),
    click.option("--channels-epochs", type=int, help="Fine-tuning epochs after channel pruning [0]."),
    click.option("--then-units-speedup", type=float,
                 help="While the cut network is fine-tuned, prune its units (activity per saved time) until it "
                      "runs this many times faster again, timed at batch 1 and 64 (or --then-units-batch); "
                      "then compact. Needs --finetune-epochs."),
    click.option("--then-units-batch", type=int, help="The one batch size --then-units-speedup is met at."),
    click.option("--then-units-max-ratio", type=float,
                 help="At most this share of any channel space's units goes [1.0]; below 1, a speed-up that only "
                      "emptying spaces buys is refused instead of taken."),
    click.option("--then-units-until", type=float,
                 help="The last units go at this share of the fine-tuning steps; the rest recovers [0.6]."),
    click.option("--latency-repeats", type=int, help="Timed runs per latency measurement [30]."),
)
"""Options of a depth-pruning run (``depth`` and ``depth search``): the model options plus cut, recovery
and search settings."""
_OVERWRITE_HELP = "Replace the earlier run in --out (without it such a folder is refused)."


@click.group("depth", invoke_without_command=True)
@_DEPTH_OPTIONS
@click.option("--search/--no-search", "search", default=None, help="Choose the cut by search instead of --cut.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Folder for the results.")
@click.option("--overwrite", is_flag=True, help=_OVERWRITE_HELP)
@click.pass_context
@friendly_errors
def depth_group(ctx: click.Context, config_path: Path | None, out: Path | None, overwrite: bool,
                **options: Any) -> None:
    """Neuroplasticity-based depth pruning: cut spans of layers, bridge each with a translator, recover.

    \b
    neuroprune depth --model vgg16 --checkpoint base/ --dataset fashion-mnist --pad-to 32 \\
        --cut features.13:features.34 --out run/
    neuroprune depth candidates --model vgg16 --checkpoint base/
    neuroprune depth search --model vgg16 --checkpoint base/ --max-latency-ms 5 --out run/
    neuroprune depth search --model resnet56 --checkpoint base/ --search-strategy greedy \\
        --min-speedup 2 --finetune-epochs 3 --out run/
    """
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise NeuropruneError("--out is required: the folder for result.json and the pruned model")
    _run(config_path, out, options, overwrite)


@depth_group.command("search")
@_DEPTH_OPTIONS
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for the results.")
@click.option("--overwrite", is_flag=True, help=_OVERWRITE_HELP)
@friendly_errors
def search_command(config_path: Path | None, out: Path, overwrite: bool, **options: Any) -> None:
    """Score candidate cuts (short recovery each), recover the winner, save the candidate table."""
    _run(config_path, out, {**options, "search": True, "cut": None}, overwrite)


@depth_group.command("candidates")
@MODEL_OPTIONS
@click.option("--checkpoint", type=str, help="Trained weights (only their model options matter here).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@friendly_errors
def candidates_command(config_path: Path | None, as_json: bool, **options: Any) -> None:
    """List every valid cut with shapes, removed parameters and MACs, and the translator it needs."""
    import torch

    from ..depth.pruner import DepthPruner
    from ..runs._checks import check_runs_on
    from ..runs.train import load_trained, model_options

    config = _saved_weights_as_checkpoint(load_config(DepthConfig, config_path, {**options, "search": True}))
    model_opts = model_options(dataset_of(config), config.width, config.pad_to, config.weights,
                               pretrained=config.pretrained and config.checkpoint is None, model_args=config.model_args)
    model, used = load_trained(config.model, config.checkpoint, model_opts)
    example = torch.zeros(1, used["in_channels"], used["image_size"], used["image_size"])
    check_runs_on(model, example, config.model)
    spans = DepthPruner(model, example_inputs=example).candidates()
    if as_json:
        click.echo(json.dumps([s.to_dict() for s in spans], indent=2))
        return
    table = Table(title=f"{len(spans)} cuts of {config.model}")
    for column in ("cut", "removed", "origin out", "destination in", "params removed", "MACs removed", "translator"):
        table.add_column(column, justify="right" if "removed" in column and column != "removed" else "left")
    for span in spans:
        table.add_row(span.cut, str(len(span.removed)), "x".join(map(str, span.in_shape)),
                      "x".join(map(str, span.out_shape)), f"{span.params_removed:,}", f"{span.macs_removed:,}",
                      span.translator)
    Console(width=200).print(table)


def _run(config_path: Path | None, out: Path, options: dict[str, Any], overwrite: bool) -> None:
    """Run depth pruning (a given cut or a search) and print the one-line summary."""
    from ..runs.depth import run_depth

    if options.get("kernel_size") is not None:
        options["kernel_size"] = int(options["kernel_size"])
    config = _saved_weights_as_checkpoint(load_config(DepthConfig, config_path, options))

    def job() -> dict[str, Any]:
        return run_depth(config, out, overwrite=overwrite)  # a run that fails before it writes results leaves no folder

    result, is_main = run_in_process_group(job, config.device)
    if not is_main:
        return
    b1_base, b1 = result["latency_ms_base"]["batch_1"], result["latency_ms_pruned"]["batch_1"]
    click.echo(
        f"cut {result['cut']['cut']} ({len(result['cut']['removed'])} units): "
        f"accuracy {100 * result['accuracy_base']:.2f}% -> {100 * result['accuracy_pruned']:.2f}%, "
        f"params {result['params_base']:,} -> {result['params_pruned']:,}, "
        f"MACs {result['macs_base']:,} -> {result['macs_pruned']:,}, "
        f"latency b1 {b1_base:.2f} -> {b1:.2f} ms; results in {out}/result.json"
    )


def _saved_weights_as_checkpoint(config: DepthConfig) -> DepthConfig:
    """``--weights run/model.safetensors`` of a model neuroprune saved: its architecture is the run's, not --model's.

    A compacted or cut model is narrower or shorter than ``--model`` builds, so its weights
    cannot fit the factory; ``model.json`` beside them describes the model they belong to,
    which is what ``--checkpoint`` reads. The switch is said in one line.
    """
    if config.weights is None or getattr(config, "checkpoint", None) is not None:
        return config
    from ..models.weights_file import saved_description

    weights = Path(config.weights)
    described = saved_description(weights)
    if described is None:
        return config
    click.echo(f"note: {weights} belongs to the model described in {described}; "
               f"built from that description, as --checkpoint {weights} would", err=True)
    return dataclasses.replace(config, checkpoint=str(weights), weights=None)
