"""``neuroprune data``: obtain and inspect the data sets.

``neuroprune data fetch [NAME] [--source PATH]`` puts MNIST, Fashion-MNIST or CIFAR-10 into
neuroprune's cache; ``neuroprune data list`` prints every known data set with its shape,
classes and split sizes.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from ..data import dataset_info, fetch
from ..errors import NeuropruneError
from ._common import DATASETS
from ._errors import friendly_errors


@click.group("data")
def data_group() -> None:
    """Obtain and inspect the data sets."""


@data_group.command("fetch")
@click.argument("name", type=click.Choice(["mnist", "fashion-mnist", "cifar10", "all"]), default="all")
@click.option("--source", type=click.Path(exists=True, path_type=Path), help="Local file or folder to read from.")
@friendly_errors
def data_fetch(name: str, source: Path | None) -> None:
    """Put a real data set into neuroprune's cache (digits need no fetch).

    'all' fetches MNIST and Fashion-MNIST; CIFAR-10 needs --source (a
    cifar-10-batches-py folder or cifar-10-python.tar.gz).
    """
    if name == "all" and source is not None:
        raise NeuropruneError("--source needs a single data set name, not 'all'")
    for each in ("mnist", "fashion-mnist") if name == "all" else (name,):
        folder = fetch(each, source=source)
        click.echo(f"{each}: ready in {folder}")


@data_group.command("list")
@friendly_errors
def data_list() -> None:
    """List the data sets neuroprune knows and their shapes."""
    table = Table("name", "channels", "size", "classes", "train", "test")
    for name in DATASETS:
        info = dataset_info(name)
        table.add_row(name, str(info.in_channels), f"{info.image_size}x{info.image_size}", str(info.num_classes),
                      str(info.train_size), str(info.test_size))
    Console().print(table)
