"""``neuroprune models``: list the registered models, one line each with a short description."""

from __future__ import annotations

import click

from ..models import describe_model, list_models


@click.command("models")
def models_command() -> None:
    """List the registered models."""
    for name in list_models():
        click.echo(f"{name:12s} {describe_model(name)}")
