"""The ``neuroprune report`` and ``neuroprune reproduce`` commands.

Both write a folder holding ``index.html`` (open it in a browser), ``report.md`` and
``figures/``. Library errors are printed as one line and exit with status 2, as in
every other command.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ._cli_errors import friendly_errors
from .config import load_config
from .errors import NeuropruneError


@dataclass
class ReportConfig:
    """Options of ``neuroprune report`` (also readable from a YAML file with --config)."""

    out: str = "report"
    title: str | None = None


@dataclass
class ReproduceConfig:
    """Options of ``neuroprune reproduce`` (also readable from a YAML file with --config)."""

    quick: bool = False
    out: str | None = None
    results: str | None = None
    repo: str | None = None


@click.command("report")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
              help="YAML file with any of the options below (flags override it).")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for index.html, report.md and figures/ "
                                                               "[default: report].")
@click.option("--title", help="Page title [default: names the number of runs].")
@friendly_errors
def report_command(run_dirs: tuple[Path, ...], config_path: Path | None, **options: Any) -> None:
    """Write an HTML page and Markdown with figures and tables on one or more RUN_DIRS.

    Each RUN_DIR is a folder written by `neuroprune synaptic` or `neuroprune depth`
    (it holds result.json).
    """
    from .report import build_report

    config = load_config(ReportConfig, config_path, options)
    files = build_report(list(run_dirs), Path(config.out), title=config.title)
    click.echo(f"report: {files.html} (Markdown: {files.markdown}, {len(files.figures)} figures)")


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
@click.option("--repo", type=click.Path(file_okay=False),
              help="Source checkout holding benchmarks/ [default: found from the package or the current folder].")
@friendly_errors
def reproduce_command(paper: str, benchmark_args: tuple[str, ...], config_path: Path | None, **options: Any) -> None:
    """Run PAPER's benchmark suite and write a page of our numbers beside the paper's claims.

    zhao2021 runs benchmarks/synaptic.py (synaptic vs dense and gradual magnitude pruning);
    camacho2022 runs benchmarks/depth.py (depth pruning vs identity replacement and
    Torch-Pruning). Arguments after `--` go to the benchmark script and override the
    mode's, e.g. `neuroprune reproduce zhao2021 --quick -- --seeds 0 1`.
    """
    from .report.reproduce import RECIPES, reproduce

    config = load_config(ReproduceConfig, config_path, options)
    quick = config.quick
    out = Path(config.out) if config.out else Path("reproduce") / paper
    results = Path(config.results) if config.results else None
    repo = Path(config.repo) if config.repo else None
    if results is None:
        recipe = RECIPES[paper]
        mode = recipe.quick if quick else recipe.full
        click.echo(f"running {recipe.script} {' '.join([*mode, *benchmark_args])}", err=True)
    elif benchmark_args or quick:
        raise NeuropruneError("--results builds the page from an existing file: it takes no --quick or benchmark "
                              "arguments")
    files = reproduce(paper, out, quick=quick, extra_args=benchmark_args, results=results, repo=repo)
    click.echo(f"reproduction page: {files.html} (Markdown: {files.markdown}; results: {files.results})")
