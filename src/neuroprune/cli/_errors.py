"""How every command reports bad input: one line on stderr and exit status 2, no traceback."""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.text import Text

from .. import distributed as dist_utils
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


class OneLineErrorsGroup(click.Group):
    """A click group whose option-parser errors print like every other error: one line, exit status 2.

    Click's own form is three lines (usage, a hint, the error); here the error comes first
    and the hint follows on the same line.
    """

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            self._main_and_exit(args, prog_name, complete_var, **extra)
        except SystemExit as exit_:
            if dist_utils.left_a_process_group():  # a torchrun process: end without finalization (see leave)
                dist_utils.leave(_exit_status(exit_.code))
            raise

    def _main_and_exit(self, args: Any, prog_name: str | None, complete_var: str | None, **extra: Any) -> None:
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            context = getattr(exc, "ctx", None)
            hint = f" (see `{context.command_path} --help`)" if context is not None else ""
            _fail(f"{exc.format_message()}{hint}")
        except click.Abort:
            console.print("aborted", highlight=False)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)  # --help and --version exit through click with 0


def _exit_status(code: object) -> int:
    """The process exit status ``sys.exit(code)`` gives (a message is printed and means 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def shorten(message: str, word_limit: int = 200, line_limit: int = 3000) -> str:
    """``message`` on one line, with every overlong word (a pasted path, a 100,000-character name) cut
    in its middle, and the whole line cut at ``line_limit`` characters."""
    words = []
    for word in message.split():
        if len(word) > word_limit:
            word = f"{word[:80]}...({len(word):,} characters)...{word[-40:]}"
        words.append(word)
    line = " ".join(words)
    return line if len(line) <= line_limit else line[:line_limit - 20] + " ...(message cut)"


def _fail(message: str) -> None:
    # Text, not markup: messages list names in [brackets] that rich would eat as tags
    line = shorten(message)  # one line, whatever the message held, and of a readable length
    console.print(Text.assemble(("error: ", "bold red"), line), highlight=False, soft_wrap=True)
    sys.exit(2)
