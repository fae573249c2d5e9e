"""One run per folder at a time: an OS lock on a lock file that dies with its process.

Two runs writing into the same folder would interleave their files (one run's config
beside the other's result and checkpoint). A run therefore takes :class:`FolderLock` on
its folder before it writes anything there and holds it to its end; a second run into
that folder is refused at once. The lock is ``fcntl.flock`` on ``.neuroprune.lock``: the
kernel drops it when the process ends, however it ends (SIGKILL included), so a crashed
run never leaves a folder locked. The file is removed on release, while the lock is still
held; a process that opened the removed file sees that its path is gone and tries again.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Self

from .errors import ConfigError

log = logging.getLogger(__name__)
LOCK_NAME = ".neuroprune.lock"
_ATTEMPTS = 20  # tries when another process removes the file between our open and our lock


class FolderLock:
    """An exclusive lock on a run folder, held from :meth:`acquire` to :meth:`release`.

    Args:
        folder: the run folder; created by :meth:`acquire` if it does not exist.

    Example:
        >>> with FolderLock("runs/a"):   # doctest: +SKIP
        ...     write_results("runs/a")
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    @property
    def is_held(self) -> bool:
        """True between a successful :meth:`acquire` and :meth:`release`."""
        return self._fd is not None

    def acquire(self) -> None:
        """Create the folder if needed and lock it, without waiting.

        Raises:
            ConfigError: another process holds the lock (the message names its process id).
            OSError: the folder cannot be created or written.
        """
        if self._fd is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(_ATTEMPTS):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise ConfigError(self._held_elsewhere()) from None
                raise
            if self._is_current(fd):
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self._fd = fd
                return
            os.close(fd)  # the holder removed this file as it released the lock: take the new one
        raise ConfigError(f"could not lock {self.folder}: other processes keep taking it; try again")

    def release(self) -> None:
        """Remove the lock file and unlock (idempotent)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._is_current(fd):
                self.path.unlink(missing_ok=True)
        except OSError as exc:  # a lock file left behind is harmless: the next run locks it
            log.debug("could not remove %s: %s", self.path, exc)
        finally:
            os.close(fd)  # closing the last descriptor drops the lock

    def _is_current(self, fd: int) -> bool:
        """True when ``fd`` is still the file at :attr:`path` (not one removed by its last holder)."""
        try:
            on_disk = self.path.stat()
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)

    def _held_elsewhere(self) -> str:
        try:
            pid = self.path.read_text()[:20].strip()
        except OSError:
            pid = ""
        holder = f" (process {pid})" if pid.isdigit() else ""
        return (f"another neuroprune run{holder} is writing into {self.folder}; wait until it ends or choose "
                "another --out")

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()
