"""How every command reports bad input: one line on stderr and exit status 2, no traceback."""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable
from typing import Any

from rich.text import Text

from ..errors import NeuropruneError
from ._common import console


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command: NeuropruneError -> one-line message, exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except NeuropruneError as exc:
            _fail(str(exc))
        except OSError as exc:  # the output folder: read-only, under a file, disk full, ...
            _fail(describe_os_error(exc))
        except KeyboardInterrupt:
            console.print("interrupted; files written so far are complete (each is written atomically)")
            sys.exit(130)

    return wrapper


def describe_os_error(exc: OSError) -> str:
    """What went wrong with a file or folder, and what to do, in one line."""
    where = f" {exc.filename}" if exc.filename else ""
    advice = _ADVICE.get(exc.errno or 0, "check the path and try again")
    reason = exc.strerror or type(exc).__name__
    return f"cannot use{where}: {reason}; {advice} (files written before this are complete)"


_ADVICE = {
    errno.ENOSPC: "free some disk space or choose another --out folder",
    errno.EDQUOT: "free some of your disk quota or choose another --out folder",
    errno.EROFS: "that file system is read-only: choose another --out folder",
    errno.EACCES: "you may not write there: choose another --out folder",
    errno.EPERM: "you may not write there: choose another --out folder",
    errno.ENOTDIR: "part of that path is a file, not a folder: choose another --out folder",
    errno.EISDIR: "that is a folder, not a file",
    errno.ENOENT: "it does not exist",
    errno.ENAMETOOLONG: "use a shorter path",
}


def _fail(message: str) -> None:
    # Text, not markup: messages list names in [brackets] that rich would eat as tags
    line = " ".join(message.split())  # one line, whatever the message held
    console.print(Text.assemble(("error: ", "bold red"), line), highlight=False, soft_wrap=True)
    sys.exit(2)
