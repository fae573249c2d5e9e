"""Pieces every run shares: seeding, optimizers, the run folder, run metadata, history files."""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import logging
import platform
import subprocess
import sys
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import torch
from torch import nn

from .. import distributed as dist_utils
from ..config import to_dict
from ..engine import EpochLRScheduler
from ..errors import ConfigError
from ..folder_lock import LOCK_NAME, FolderLock
from ..storage import atomic_write_bytes, remove_stale_temp_files, write_json

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

# test-set batch of every run: large batches evaluate fastest, and 1000 images fit any model here
EVAL_BATCH = 1000
# a folder holding any of these holds a run: a new run there must be asked for (overwrite)
RUN_FILES = ("result.json", "checkpoint.pt", "dense_checkpoint.pt", "model.safetensors")
# what a run writes; overwriting removes these (and nothing else the folder holds)
OUTPUT_FILES = (*RUN_FILES, "config.json", "model.json", "history.csv", "candidates.json", "candidates.csv")
_HELD: dict[Path, FolderLock] = {}  # folders this process has locked, until its run ends


def seeded_model(factory: Any, seed: int) -> nn.Module:
    """Call ``factory()`` right after seeding torch, so every run starts from the same weights."""
    torch.manual_seed(seed)
    return factory()


def make_optimizer(model: nn.Module, name: str, lr: float, momentum: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    """SGD with momentum or Adam over the model's trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def lr_schedule_callbacks(optimizer: torch.optim.Optimizer, schedule: str, epochs: int) -> list[Any]:
    """Callbacks that apply ``schedule`` ('constant' or 'cosine' decay to 0 over ``epochs``)."""
    if schedule == "constant":
        return []
    return [EpochLRScheduler(torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs))]


def check_global_batch(batch_size: int, world: int) -> None:
    """Every process takes an equal share of each global batch, so it must divide evenly."""
    if batch_size % world:
        raise ConfigError(f"batch_size ({batch_size}, the global batch) must be divisible by the {world} processes")


def start_run_folder(out: Path, config: Any, world: int, *, overwrite: bool = False) -> None:
    """Claim the run folder (see :func:`claim_run_folder`), then on rank 0 create it and save the config."""
    claim_run_folder(out, overwrite=overwrite)
    if dist_utils.is_main_process():
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {"config": to_dict(config), "environment": environment(),
                                         "processes": {"world_size": world}})


def claim_run_folder(out: Path, *, overwrite: bool = False, resume: bool = False, resumable: bool = False) -> None:
    """Make ``out`` ready for a run, before anything is written there; every rank calls it.

    Rank 0 first locks the folder (:class:`~neuroprune.folder_lock.FolderLock`, created if
    needed), so a second run into it is refused while this one lives; the lock is held
    until the run function decorated with :func:`discards_unstarted_folder` returns. A
    folder that already holds a run (one of :data:`RUN_FILES`) is refused unless
    ``overwrite`` (then that run's files go) or ``resume`` (the run goes on in place). On
    rank 0, temporary files that killed writes left behind are removed. Rank 0 decides and
    the other ranks follow, so all of them stop together.

    Raises:
        ConfigError: another run holds the folder, or ``out`` holds an earlier run and
            neither ``overwrite`` nor ``resume`` is set.
        OSError: the folder cannot be created or locked.
    """
    problem: Exception | None = None
    if dist_utils.is_main_process():
        try:
            _lock(out)
        except (ConfigError, OSError) as exc:
            problem = exc
    if problem is None and dist_utils.is_main_process() and not resume and not overwrite:
        earlier = [name for name in RUN_FILES if (out / name).exists()]
        if earlier:
            problem = ConfigError(
                f"{out} already holds a run ({', '.join(earlier)}); pass --overwrite to replace it"
                + (f", or --resume {out} to finish it" if resumable else "") + ", or choose another --out")
    problem = dist_utils.gather_objects(problem)[0]  # rank 0's verdict, on every rank
    if problem is not None:
        raise problem
    if not dist_utils.is_main_process():
        return
    remove_stale_temp_files(out)
    if overwrite and not resume:
        for name in OUTPUT_FILES:
            if (out / name).is_file():
                log.info("removing %s of the earlier run in %s (--overwrite)", name, out)
                (out / name).unlink()


def _lock(out: Path) -> None:
    """Lock ``out`` for this process until :func:`_unlock` (a second call for the same folder is a no-op)."""
    key = out.resolve()
    if key not in _HELD:
        lock = FolderLock(out)
        lock.acquire()
        _HELD[key] = lock


def _unlock(out: Path, *, remove_if_empty: bool) -> None:
    """Release the lock :func:`claim_run_folder` took on ``out``; remove the folder if the run left it empty."""
    lock = _HELD.pop(out.resolve(), None)
    if lock is None:
        return
    lock.release()
    if remove_if_empty:
        with contextlib.suppress(OSError):  # not empty (or gone): it stays as it is
            out.rmdir()


def discards_unstarted_folder(run: Callable[P, R]) -> Callable[P, R]:
    """Decorate ``run(config, out_dir, ...)``: when it fails having written nothing but config.json, undo that.

    A run refused after it saved its config (missing data, a checkpoint that does not fit)
    would otherwise leave a folder that looks like a run and holds none.

    It also ends the run's hold on the folder: the lock :func:`claim_run_folder` took is
    released when ``run`` returns or fails, after its unstarted files are gone.
    """

    @functools.wraps(run)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        out = Path(kwargs["out_dir"] if "out_dir" in kwargs else args[1])  # type: ignore[arg-type]
        existed = out.is_dir()
        try:
            with undo_unstarted_run(out):
                return run(*args, **kwargs)
        finally:
            _unlock(out, remove_if_empty=not existed)

    return wrapper


@contextlib.contextmanager
def undo_unstarted_run(out: Path) -> Iterator[None]:
    """On failure (rank 0): if the run wrote nothing in ``out`` but its config.json, remove that,
    and the folder too if the run created it and it is empty now."""
    existed = out.is_dir()
    before = _names(out)
    config_before = _stamp(out / "config.json")
    try:
        yield
    except BaseException:
        # only the run that holds the folder tidies it: a run refused because another one is
        # writing there must not take that run's config.json (saved since this one looked) for its own
        if dist_utils.is_main_process() and out.resolve() in _HELD:
            _discard_unstarted(out, existed, before, config_before)
        raise


def _names(folder: Path) -> set[str]:
    """The names in ``folder``, without the run's own lock file."""
    try:
        return {entry.name for entry in folder.iterdir()} - {LOCK_NAME}
    except OSError:
        return set()


def _stamp(path: Path) -> tuple[int, int] | None:
    """Identifies one version of a file (each atomic write gives it a new inode)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns


def _discard_unstarted(out: Path, existed: bool, before: set[str], config_before: tuple[int, int] | None) -> None:
    try:
        is_only_config_new = _names(out) - before <= {"config.json"}
        if is_only_config_new and _stamp(out / "config.json") not in (None, config_before):
            (out / "config.json").unlink()
        if not existed and out.is_dir() and not any(out.iterdir()):  # a held lock's file: removed on release
            out.rmdir()
    except OSError as exc:  # tidying up must not hide the error that ended the run
        log.warning("could not remove the unstarted run's files in %s: %s", out, exc)


def environment() -> dict[str, Any]:
    """Versions, platform, thread count and git revision, saved beside every result."""
    versions: dict[str, str | None] = {}
    for package in ("neuroprune", "torch", "numpy", "scikit-learn", "safetensors"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
        "git_revision": _git_revision(),
    }


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def write_history_csv(path: Path, runs: dict[str, list[dict[str, Any]]]) -> None:
    """One row per (run, epoch); columns are the union of the records' keys."""
    columns = ["run"]
    for history in runs.values():
        for record in history:
            columns += [key for key in record if key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for run, history in runs.items():
        for record in history:
            writer.writerow({"run": run, **record})
    atomic_write_bytes(path, buffer.getvalue().encode())
