"""Data-parallel training across processes with ``torch.distributed``: who am I, and talking to the others.

A run started by ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``) joins the process group with :func:`init_from_env`:
NCCL when CUDA is available, Gloo on CPU. Every helper here is a no-op, or answers as a
single process would, when no process group is running, so library code calls them freely.

Example:
    >>> started = init_from_env()      # False outside torchrun
    >>> rank(), world_size(), is_main_process()
    (0, 1, True)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, NoReturn

import torch
import torch.distributed as dist

from .errors import ConfigError, NeuropruneError

log = logging.getLogger(__name__)
# How long a collective waits for the other processes before it fails (``--dist-timeout``).
# Long enough for rank 0's work alone at the end (saving, latency measurement), short
# enough that a process waiting for a crashed or hung peer says so within minutes.
DEFAULT_TIMEOUT_SECONDS = 600.0
# rank, process count and timeout of the group init_from_env started, kept after shutdown: an
# error from a failed collective is described after the group is torn down
_started: tuple[int, int, float] | None = None
_left = False  # shutdown() tore down a running group: the process should end with leave()


class PeerStopped(NeuropruneError):
    """A collective failed because another process stopped answering (crashed, hung or was killed)."""


def is_distributed() -> bool:
    """True when a process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0, the process that writes files and prints."""
    return rank() == 0


def init_from_env(backend: str | None = None, timeout: float | None = None) -> bool:
    """Join the process group that ``torchrun`` describes in the environment.

    Args:
        backend: ``"gloo"`` or ``"nccl"``; default NCCL when CUDA is available, else Gloo.
        timeout: seconds a collective (and joining the group) waits for the other processes
            before it fails with :class:`PeerStopped`; default :data:`DEFAULT_TIMEOUT_SECONDS`.

    Returns:
        True when this call started a process group (close it with :func:`shutdown`);
        False when the environment names no group of more than one process, or one is
        already running.

    Raises:
        ConfigError: the environment is incomplete or the backend cannot be used here.
    """
    if dist.is_available() and dist.is_initialized():
        return False
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return False
    if not dist.is_available():
        raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ConfigError(f"WORLD_SIZE={size} but {', '.join(missing)} is not set; start the run with torchrun")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ConfigError("the nccl backend needs CUDA; use gloo on CPU")
        # one GPU per process, picked by its rank on this node
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    global _started
    seconds = DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout
    if not 0 < seconds < float("inf"):
        raise ConfigError(f"the process-group timeout must be a positive number of seconds, got {seconds!r}")
    dist.init_process_group(backend=backend, timeout=timedelta(seconds=seconds))
    _started = (rank(), world_size(), seconds)
    log.info("joined process group: rank %d of %d (%s, timeout %gs)", rank(), world_size(), backend, seconds)
    return True


def is_peer_failure(exc: BaseException) -> bool:
    """True for the errors torch raises when a collective's peer crashed, hung or went away."""
    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(sign in text for sign in _PEER_FAILURE_SIGNS)


# what Gloo says when the other side timed out or went away (NCCL raises DistBackendError)
_PEER_FAILURE_SIGNS = ("Timed out", "timed out", "Connection closed by peer", "Connection reset by peer",
                       "Broken pipe")


def peer_stopped(what: str, exc: BaseException) -> PeerStopped:
    """The one-line error for a collective ``what`` that failed with torch's ``exc``.

    Rank, process count and timeout are those of the group :func:`init_from_env` started,
    also when the group has been shut down since.
    """
    me, world, seconds = (rank(), world_size(), None) if _started is None else _started
    if "imed out" in str(exc):
        limit = f" after --dist-timeout {seconds:g} s" if seconds is not None else ""
        cause = f"it timed out{limit}"
    else:
        cause = "the connection to another process broke"
    return PeerStopped(
        f"rank {me}: {what} among the {world} processes failed ({cause}): a peer process stopped "
        "answering (it crashed, hangs or was killed); look at its output for the cause"
    )


@contextlib.contextmanager
def _collective(what: str) -> Iterator[None]:
    """Name the collective when it fails because a peer is gone."""
    try:
        yield
    except Exception as exc:
        if is_peer_failure(exc):
            raise peer_stopped(what, exc) from None
        raise


def shutdown(wait: bool = True) -> None:
    """Leave the process group, if one is running (idempotent).

    Args:
        wait: first wait for every rank (after a normal finish); False after an error,
            when other ranks may never arrive.
    """
    global _left
    if dist.is_available() and dist.is_initialized():
        _left = True
        if wait:
            # a process that tears down its connections while a peer is still finishing
            # (rank 0 writes the results after the others are done) can make the peer abort
            with _collective("the final barrier (waiting for rank 0 to write the results)"):
                dist.barrier()
        dist.destroy_process_group()


def left_a_process_group() -> bool:
    """True once :func:`shutdown` has torn down a running process group in this process."""
    return _left


def leave(status: int = 0) -> NoReturn:
    """End a process that ran in a process group, after :func:`shutdown`, with exit ``status``.

    It flushes the logs and standard streams and exits without the interpreter's finalization.
    Why: ``DistributedDataParallel`` keeps the process group referenced past
    ``destroy_process_group()``, so Gloo's worker threads outlive it. A worker still releasing
    the tensors of the last collective needs the GIL for them; while the interpreter finalizes
    it cannot take it, and the process aborts (SIGABRT, "terminate called without an active
    exception") after every result was written, failing the whole torchrun job (about one run
    in thirty on a 2-core machine). Nothing left to do at that point needs finalization: files
    are written atomically and closed before.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken pipe must not change the status
            stream.flush()
    os._exit(status)


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` in place over all processes and return it (unchanged when alone)."""
    if is_distributed():
        with _collective("an all-reduce (sum)"):
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_(tensor: torch.Tensor, source: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` in place with rank ``source``'s copy and return it."""
    if is_distributed():
        with _collective(f"a broadcast from rank {source}"):
            dist.broadcast(tensor, src=source)
    return tensor


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` when alone). A collective: all ranks call it."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    with _collective("an all-gather of objects"):
        dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    """Wait until every process gets here."""
    if is_distributed():
        with _collective("a barrier"):
            dist.barrier()
