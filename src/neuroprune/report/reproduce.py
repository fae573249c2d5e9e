"""``reproduce``: run a paper's benchmark suite, then write a page of our numbers beside its claims.

The suites are part of the installed package (:mod:`neuroprune.bench`), so no source checkout
is needed: a suite runs as ``python -m neuroprune.bench SUITE`` in a subprocess (its own
torch threads and memory), which imports the same ``neuroprune`` as the caller.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import site
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import NeuropruneError
from ..json_files import MAX_RUN_FILE_BYTES, read_json
from ._provenance import Provenance
from .depth_page import camacho2022_page
from .html import write_page
from .synaptic_page import zhao2021_page

log = logging.getLogger(__name__)
BENCHMARK_DIR = "benchmark"
BENCH_MODULE = "neuroprune.bench"  # run as ``python -m BENCH_MODULE SUITE ...``


@dataclass(frozen=True)
class Recipe:
    """How to reproduce one paper.

    Attributes:
        paper: the key used on the command line.
        suite: the benchmark suite (:data:`neuroprune.bench.SUITES`).
        results_name: the JSON file the suite writes into its ``--out`` folder.
        quick: arguments of the quick mode (minutes on two CPU cores).
        full: arguments of the full mode.
        out_args: arguments that send the suite's files into the output folder, with
            ``{out}`` standing for that folder.
        needs: modules the suite imports beyond neuroprune's own dependencies, with the
            extra that installs them.
    """

    paper: str
    suite: str
    results_name: str
    quick: tuple[str, ...]
    full: tuple[str, ...]
    out_args: tuple[str, ...] = ("--out", "{out}")
    needs: tuple[tuple[str, str], ...] = ()

    @property
    def command(self) -> str:
        """The command that runs the suite, without its arguments."""
        return f"python -m {BENCH_MODULE} {self.suite}"


RECIPES: dict[str, Recipe] = {
    # Quick: one target and 3 epochs; the automatic check schedule scales with the run's
    # length, so even 3 epochs reach the target. Full: the targets the GMP peer is compared at.
    "zhao2021": Recipe(
        "zhao2021", "synaptic", "synaptic.json",
        quick=("--datasets", "mnist", "--models", "mlp", "--seeds", "0", "--epochs", "3", "--sparsities", "0.9"),
        full=("--datasets", "mnist", "fashion-mnist", "--models", "mlp", "--seeds", "0", "1", "2",
              "--sparsities", "0.9", "0.95", "0.98"),
        out_args=("--out", "{out}", "--name", "synaptic"),
    ),
    # Full: the suite's own defaults (VGG-16 and ResNet-56 at width 0.25 on Fashion-MNIST).
    "camacho2022": Recipe(
        "camacho2022", "depth", "depth.json",
        quick=("--models", "resnet20:0.25", "--limit-train", "2000", "--limit-test", "1000",
               "--limit-validation", "1000", "--search-train", "500",
               "--epochs", "2", "--finetune-epochs", "1", "--max-evaluated", "4", "--repeats", "10"),
        full=(),
        out_args=("--out", "{out}", "--work", "{out}/work"),
        needs=(("torch_pruning", "bench"),),
    ),
}


@dataclass(frozen=True)
class ReproductionFiles:
    """What :func:`reproduce` wrote.

    Attributes:
        html: the page (``index.html``).
        markdown: the same page as Markdown (``report.md``).
        results: the benchmark's JSON the page was built from.
    """

    html: Path
    markdown: Path
    results: Path


def reproduce(
    paper: str,
    out_dir: str | Path,
    *,
    quick: bool = False,
    extra_args: Sequence[str] = (),
    results: str | Path | None = None,
) -> ReproductionFiles:
    """Run ``paper``'s benchmark suite and write its results page into ``out_dir``.

    Args:
        paper: ``zhao2021`` or ``camacho2022`` (see :data:`RECIPES`).
        out_dir: folder for ``index.html``, ``report.md``, ``figures/`` and the
            benchmark's own files (in ``benchmark/``).
        quick: run the quick mode (minutes on two CPU cores) instead of the full one.
        extra_args: more arguments for the benchmark suite; they come last, so they
            override the mode's (e.g. ``["--seeds", "0", "1"]``).
        results: build the page from this existing benchmark JSON instead of running.

    Returns:
        The paths written.

    Raises:
        NeuropruneError: unknown paper, a module the suite needs is not installed, the
            suite failed, or its results file is missing or unreadable.

    Example:
        >>> reproduce("zhao2021", "repro/zhao2021", quick=True)  # doctest: +SKIP
    """
    if paper not in RECIPES:
        raise NeuropruneError(f"unknown paper {paper!r}; choose one of: {', '.join(RECIPES)}")
    recipe = RECIPES[paper]
    out = Path(out_dir)
    command = None
    if results is None:
        args = [*(recipe.quick if quick else recipe.full), *extra_args]
        results, command = run_benchmark(recipe, args, out / BENCHMARK_DIR)
        mode = "quick" if quick else "full"
    else:
        mode = "from an existing results file"
    payload = read_results(results)
    provenance = Provenance(mode, command, Path(results), out)
    page = zhao2021_page(payload, provenance) if paper == "zhao2021" else camacho2022_page(payload, provenance)
    html_path, markdown_path = write_page(page, out)
    return ReproductionFiles(html_path, markdown_path, Path(results))


def check_needs(recipe: Recipe) -> None:
    """Fail before running when a module the suite needs is not installed.

    Raises:
        NeuropruneError: one line naming the extra to install.
    """
    for module, extra in recipe.needs:
        if importlib.util.find_spec(module) is None:
            raise NeuropruneError(f"{recipe.paper} runs the {recipe.suite} suite, which needs {module}: "
                                  f'pip install "neuroprune[{extra}]"')


def run_benchmark(recipe: Recipe, args: Sequence[str], out_dir: Path) -> tuple[Path, str]:
    """Run ``recipe.suite`` with ``args`` in a subprocess, writing into ``out_dir``.

    The suite's output goes straight to this process's stdout and stderr, so long runs
    show their progress.

    Returns:
        The results JSON and the command as run.
    """
    check_needs(recipe)
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    tail = [a.replace("{out}", str(out_dir)) for a in recipe.out_args]
    command = [sys.executable, "-m", BENCH_MODULE, recipe.suite, *args, *tail]
    log.info("running %s", " ".join(command))
    try:
        completed = subprocess.run(command, env=_same_neuroprune_env(), check=False)
    except OSError as exc:
        raise NeuropruneError(f"could not start the {recipe.suite} suite: {exc}") from None
    if completed.returncode != 0:
        raise NeuropruneError(
            f"the {recipe.suite} suite failed with exit status {completed.returncode} (its output is above); "
            f"command: {' '.join(command)}"
        )
    path = out_dir / recipe.results_name
    if not path.is_file():
        raise NeuropruneError(f"the {recipe.suite} suite finished but wrote no {path}")
    return path, " ".join([recipe.command, *args, *tail])


def _same_neuroprune_env() -> dict[str, str]:
    """This process's environment, with PYTHONPATH set so the suite imports this same neuroprune.

    An installed package (in site-packages) is found anyway; a source tree (``src/`` of a
    checkout, or a folder on ``sys.path``) goes first on PYTHONPATH.
    """
    env = dict(os.environ)
    package_parent = Path(__file__).resolve().parents[2]
    site_folders = {Path(p).resolve() for p in [*site.getsitepackages(), site.getusersitepackages()]}
    if package_parent not in site_folders:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(package_parent), env.get("PYTHONPATH", "")) if p)
    return env


def read_results(path: str | Path) -> dict[str, Any]:
    """A benchmark's JSON results file, checked to be a JSON object.

    Raises:
        NeuropruneError: the file is missing, not JSON, or not an object.
    """
    return read_json(path, what="a benchmark results file", max_bytes=MAX_RUN_FILE_BYTES)
