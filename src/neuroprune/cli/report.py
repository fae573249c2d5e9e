"""``neuroprune report RUN_DIR ...``: a page of figures and tables on one or more runs.

Writes a folder holding ``index.html`` (open it in a browser), ``report.md`` and
``figures/``. Each RUN_DIR is an output folder of ``neuroprune synaptic`` or ``neuroprune
depth``. Options can also come from a YAML file (:class:`ReportConfig`, ``--config``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..config import load_config
from ._errors import friendly_errors


@dataclass
class ReportConfig:
    """Options of ``neuroprune report`` (also readable from a YAML file with --config)."""

    out: str = "report"
    title: str | None = None


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
    from ..report import build_report

    config = load_config(ReportConfig, config_path, options)
    files = build_report(list(run_dirs), Path(config.out), title=config.title)
    click.echo(f"report: {files.html} (Markdown: {files.markdown}, {len(files.figures)} figures)")
