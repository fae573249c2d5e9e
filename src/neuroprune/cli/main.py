"""The top-level ``neuroprune`` group: global options, and every command registered on it.

``-v/--verbose`` logs progress details, ``--threads`` sets torch's CPU threads,
``--dist-timeout`` how long processes under torchrun wait for each other (read by the training
commands through the click context), and library warnings print as one plain line. The
commands are defined in their own modules; this module only imports them and adds them to
the group (they never import this module).
"""

from __future__ import annotations

import logging
import os
import warnings

import click

from ..distributed import DEFAULT_TIMEOUT_SECONDS
from ._common import show_warning
from ._errors import OneLineErrorsGroup
from .data import data_group
from .depth import depth_group
from .export import export_command
from .models import models_command
from .report import report_command
from .reproduce import reproduce_command
from .synaptic import synaptic_command
from .train import train_command


@click.group(cls=OneLineErrorsGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for torch (small models often run fastest on 1).")
@click.option("--dist-timeout", type=click.FloatRange(min=0, min_open=True, max=86400 * 7), metavar="SECONDS",
              help="Under torchrun: how long a process waits for the others at a collective before it stops with "
                   f"an error naming it [default: {DEFAULT_TIMEOUT_SECONDS:g}].")
@click.version_option(package_name="neuroprune")
def main(verbose: bool, threads: int | None, dist_timeout: float | None) -> None:
    """Brain-inspired pruning for PyTorch networks."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    warnings.showwarning = show_warning
    is_main = os.environ.get("RANK", "0") == "0"  # torchrun's other processes log warnings only
    logging.basicConfig(
        level=logging.INFO if verbose and is_main else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


for _command in (
    data_group,
    models_command,
    synaptic_command,
    train_command,
    depth_group,
    export_command,
    report_command,
    reproduce_command,
):
    main.add_command(_command)

if __name__ == "__main__":
    main()
