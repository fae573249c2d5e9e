"""``neuroprune train``: train a base model to prune later (e.g. with ``neuroprune depth``).

Writes ``OUT/model.safetensors``, ``OUT/model.json`` and ``OUT/result.json``. Takes the model
and data options shared with ``depth`` plus the optimizer's; ``--config FILE.yaml`` supplies
any of them and flags override the file. Runs data-parallel under ``torchrun`` (only rank 0
prints and writes files).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..config import load_config
from ..depth.config import TrainConfig
from ._common import MODEL_OPTIONS, TARGET_OPTIONS, run_in_process_group
from ._errors import friendly_errors


@click.command("train")
@MODEL_OPTIONS
@click.option("--epochs", type=int, help="Epochs [default: 10].")
@click.option("--lr", type=float, help="Peak learning rate, cosine decay [default: 0.05].")
@click.option("--optimizer", type=click.Choice(["sgd", "adam"]), help="Optimizer [default: sgd].")
@click.option("--momentum", type=float, help="SGD momentum [default: 0.9].")
@click.option("--weight-decay", type=float, help="Weight decay [default: 5e-4].")
@TARGET_OPTIONS
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Folder for the model.")
@click.option("--overwrite", is_flag=True,
              help="Replace the earlier run in --out (without it such a folder is refused).")
@friendly_errors
def train_command(config_path: Path | None, out: Path, overwrite: bool, **options: Any) -> None:
    """Train a base model; writes OUT/model.safetensors, OUT/model.json and OUT/result.json."""
    from ..runs.train import run_train

    config = load_config(TrainConfig, config_path, options)
    result, is_main = run_in_process_group(
        lambda: run_train(config, out, show_progress=sys.stderr.isatty(), overwrite=overwrite), config.device
    )
    if not is_main:
        return
    click.echo(f"{result['model']} on {result['dataset']}: test accuracy {100 * result['test_accuracy']:.2f}% "
               f"after {result['epochs']} epochs; weights in {out}/model.safetensors")
