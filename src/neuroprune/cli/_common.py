"""Helpers shared by the command modules.

- ``console``: rich console on stderr for warnings and error lines.
- ``DATASETS``: the data set names every command accepts (the list of :mod:`neuroprune.data`).
- ``STEPS`` and ``FRACTION_OR_NONE``: option types that also take ``auto`` / ``none``;
  ``NONE`` is the value ``none`` parses to.
- ``show_warning``: library warnings as one plain line.
- ``run_in_process_group``: run a job inside the process group ``torchrun`` describes, with the
  collective timeout of ``--dist-timeout`` (``dist_timeout``).
- ``combine_options`` and ``MODEL_OPTIONS``: the model and data options of ``train``, ``depth``
  and ``depth candidates``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from .. import distributed as dist_utils
from ..data import DATASETS
from ..engine.precision import PRECISIONS, resolve_device
from ..errors import NeuropruneError
from ._user_options import DATA_OPTIONS, MODEL_HELP, PRETRAINED_OPTION, WEIGHTS_OPTION

__all__ = [
    "DATASETS",
    "FRACTION_OR_NONE",
    "MODEL_OPTIONS",
    "NONE",
    "STEPS",
    "TARGET_OPTIONS",
    "FractionOrNone",
    "StepsOrAuto",
    "combine_options",
    "console",
    "dist_timeout",
    "run_in_process_group",
    "show_warning",
]

console = Console(stderr=True)

NONE = "none"  # "--stop-step none": mapped to None after parsing (None means "not given")


class StepsOrAuto(click.ParamType):
    """A step count, ``auto`` (a share of the run's length) or ``none``."""

    name = "N|auto|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or value in ("auto",):
            return value
        if value == "none":
            return NONE
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not a whole number, 'auto' or 'none'", param, ctx)


class FractionOrNone(click.ParamType):
    """A number, or ``none`` to switch off a value the YAML file sets."""

    name = "X|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, float) or value == NONE:
            return value
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number or 'none'", param, ctx)


STEPS = StepsOrAuto()
FRACTION_OR_NONE = FractionOrNone()


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int, file: Any = None,
                 line: str | None = None) -> None:
    """Library warnings as one plain line, without the source location Python adds."""
    console.print(f"warning: {message}", markup=False, highlight=False)


def run_in_process_group(job: Callable[[], Any], device: str = "auto") -> tuple[Any, bool]:
    """Run ``job`` inside the process group torchrun describes (if any); return (its result, is rank 0).

    The backend follows the run's device: NCCL when it computes on GPUs, Gloo on the CPU.
    Collectives wait ``--dist-timeout`` seconds (the main group's option) for the other
    processes; one that fails because a peer stopped answering becomes a one-line
    :class:`~neuroprune.distributed.PeerStopped` error instead of torch's traceback.
    """
    started = dist_utils.init_from_env(backend="nccl" if resolve_device(device).type == "cuda" else "gloo",
                                       timeout=dist_timeout())
    try:
        result, is_main = job(), dist_utils.is_main_process()
    except Exception as exc:
        if started:
            dist_utils.shutdown(wait=False)
        if started and not isinstance(exc, NeuropruneError) and dist_utils.is_peer_failure(exc):
            # collectives outside our helpers: DDP's gradient all-reduce, the pruner's broadcasts
            raise dist_utils.peer_stopped("a collective of the training step", exc) from None
        raise
    except BaseException:
        if started:
            dist_utils.shutdown(wait=False)
        raise
    if started:
        dist_utils.shutdown()
    return result, is_main


def dist_timeout() -> float:
    """Seconds a collective waits for the other processes: ``neuroprune --dist-timeout``, or the default."""
    context = click.get_current_context(silent=True)
    value = context.find_root().params.get("dist_timeout") if context is not None else None
    return float(value) if value is not None else dist_utils.DEFAULT_TIMEOUT_SECONDS


def combine_options(*decorators: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Combine click option decorators into one; the options appear in the order given."""

    def apply(function: Any) -> Any:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


TARGET_OPTIONS = combine_options(
    click.option("--device", type=str, help="auto (CUDA when available), cpu, cuda or cuda:N [default: auto]."),
    click.option("--precision", type=click.Choice(list(PRECISIONS)),
                 help="32, or bf16-mixed / 16-mixed: forward passes under autocast [default: 32]."),
)
"""Where a training command computes: ``--device`` and ``--precision``."""

MODEL_OPTIONS = combine_options(
    click.option("-c", "--config", "config_path", type=click.Path(path_type=Path),
                 help="YAML file with any of the options."),
    click.option("--model", type=str, help=MODEL_HELP),
    click.option("--dataset", type=click.Choice(DATASETS), help="Data set [default: fashion-mnist]."),
    click.option("--width", type=float, help="Channel width multiplier [default: 1]."),
    click.option("--pad-to", type=int, help="Pad images to this size, e.g. 32 for 28-pixel sets."),
    click.option("--seed", type=int, help="Seed [default: 0]."),
    click.option("--data-root", type=str, help="Folder of a data set that is not in the cache."),
    DATA_OPTIONS,
    WEIGHTS_OPTION,
    click.option("--limit-train", type=int, help="Use only the first N training samples."),
    click.option("--limit-test", type=int, help="Use only the first N test samples."),
    click.option("--batch-size", type=int, help="Training batch size [default: 128]."),
    PRETRAINED_OPTION,
)
"""Model and data options of ``train``, ``depth`` and ``depth candidates`` (``--config`` included)."""
