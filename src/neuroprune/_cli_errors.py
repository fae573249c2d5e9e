"""How every command reports bad input: one line on stderr and exit status 2, no traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.text import Text

from .errors import NeuropruneError

_console = Console(stderr=True)


def friendly_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a click command: NeuropruneError -> one-line message, exit status 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except NeuropruneError as exc:
            # Text, not markup: messages list names in [brackets] that rich would eat as tags
            _console.print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False, soft_wrap=True)
            sys.exit(2)
        except KeyboardInterrupt:
            _console.print("interrupted; files written so far are complete (each is written atomically)")
            sys.exit(130)

    return wrapper
