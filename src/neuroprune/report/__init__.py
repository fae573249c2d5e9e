"""Reports on finished runs, and reproduction pages that set our numbers beside the papers'.

Example:
    >>> from neuroprune.report import build_report, reproduce
    >>> files = build_report(["runs/mlp_mnist"], "report")  # doctest: +SKIP
    >>> page = reproduce("zhao2021", "repro/zhao2021", quick=True)  # doctest: +SKIP
"""

from .builder import ReportFiles, build_report
from .check import page_problems
from .claims import PAPERS, UNKNOWN, Claim, Paper
from .record import RunRecord, load_run, load_runs
from .reproduce import RECIPES, Recipe, ReproductionFiles, reproduce

__all__ = [
    "PAPERS",
    "RECIPES",
    "UNKNOWN",
    "Claim",
    "Paper",
    "Recipe",
    "ReportFiles",
    "ReproductionFiles",
    "RunRecord",
    "build_report",
    "load_run",
    "load_runs",
    "page_problems",
    "reproduce",
]
