"""``neuroprune reproduce PAPER``: run a paper's benchmark suite and compare with its claims.

``zhao2021`` runs the ``synaptic`` suite and ``camacho2022`` the ``depth`` suite of
:mod:`neuroprune.bench`, from the installed package (``--quick`` for small settings; arguments
after ``--`` go to the suite), or ``--results``
builds the page from an existing benchmark JSON. Writes a folder holding ``index.html``,
``report.md`` and ``figures/`` beside the benchmark's files. Options can also come from a
YAML file (:class:`ReproduceConfig`, ``--config``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..config import load_config
from ..errors import NeuropruneError
from ._errors import friendly_errors


@dataclass
class ReproduceConfig:
    """Options of ``neuroprune reproduce`` (also readable from a YAML file with --config)."""

    quick: bool = False
    out: str | None = None
    results: str | None = None


@click.command("reproduce", context_settings={"ignore_unknown_options": True})
@click.argument("paper", type=click.Choice(["zhao2021", "camacho2022"]))
@click.argument("benchmark_args", nargs=-1, type=click.UNPROCESSED)
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
              help="YAML file with any of the options below (flags override it).")
@click.option("--quick/--full", default=None, help="Small settings that finish in minutes on two CPU cores "
                                                   "[default: --full].")
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder for the page and the benchmark's files [default: reproduce/PAPER].")
@click.option("--results", type=click.Path(dir_okay=False),
              help="Build the page from this benchmark JSON instead of running the benchmark.")
@friendly_errors
def reproduce_command(paper: str, benchmark_args: tuple[str, ...], config_path: Path | None, **options: Any) -> None:
    """Run PAPER's benchmark suite and write a page of our numbers beside the paper's claims.

    zhao2021 runs the synaptic suite (synaptic vs dense and gradual magnitude pruning);
    camacho2022 runs the depth suite (depth pruning vs identity replacement and
    Torch-Pruning; needs `pip install "neuroprune[bench]"`). The suites ship with the
    package (`python -m neuroprune.bench`): no source checkout is needed. Arguments after
    `--` go to the suite and override the mode's, e.g.
    `neuroprune reproduce zhao2021 --quick -- --seeds 0 1`.
    """
    from ..report.reproduce import RECIPES, reproduce

    config = load_config(ReproduceConfig, config_path, options)
    quick = config.quick
    out = Path(config.out) if config.out else Path("reproduce") / paper
    results = Path(config.results) if config.results else None
    if results is None:
        recipe = RECIPES[paper]
        mode = recipe.quick if quick else recipe.full
        click.echo(f"running {recipe.command} {' '.join([*mode, *benchmark_args])}", err=True)
    elif benchmark_args or quick:
        raise NeuropruneError("--results builds the page from an existing file: it takes no --quick or benchmark "
                              "arguments")
    files = reproduce(paper, out, quick=quick, extra_args=benchmark_args, results=results)
    click.echo(f"reproduction page: {files.html} (Markdown: {files.markdown}; results: {files.results})")
