"""Files that are never half-written, and torch files that never run pickled code.

Everything a run writes goes to a temporary file in the same folder first and is then
renamed over the target, so a crash mid-write never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import ModelError
from .memory import check_fits

log = logging.getLogger(__name__)
# atomic_write_bytes's temporary files: ".neuroprune-partial.NAME." + mkstemp's 8 random characters
# + ".tmp"; the prefix is the project's own, so a user's ".NAME.XXXXXXXX.tmp" is never taken for one
_TEMP_PREFIX, _TEMP_SUFFIX = ".neuroprune-partial.", ".tmp"
_TEMP_NAME = re.compile(r"\.neuroprune-partial\..+\.[a-z0-9_]{8}\.tmp")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{_TEMP_PREFIX}{path.name}.", suffix=_TEMP_SUFFIX)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results should read like any file
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(folder: str | Path) -> list[str]:
    """Delete the temporary files that writes killed mid-way (SIGKILL, power loss) left in ``folder``.

    Only names :func:`atomic_write_bytes` gives its temporary files (they start with the
    project's own ``.neuroprune-partial.``) are touched, and only plain files. Call it when a
    run starts in ``folder``, before anything writes there: a write in progress in another
    process would lose its temporary file.

    Returns:
        The names removed (empty when ``folder`` does not exist).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        if _TEMP_NAME.fullmatch(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry.name)
    if removed:
        log.info("removed %d temporary file(s) that interrupted writes left in %s", len(removed), folder)
    return sorted(removed)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def save_torch(path: str | Path, obj: Any) -> None:
    """Atomically ``torch.save`` plain data (tensors, numbers, strings, lists, dicts)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_torch(path: str | Path) -> Any:
    """Load a file written by :func:`save_torch`, never executing pickled code.

    Raises:
        ModelError: the file is missing, corrupt, or carries anything but plain data.
    """
    try:
        check_fits(Path(path).stat().st_size, str(path), factor=2)  # the file's bytes, then the tensors
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"checkpoint {path} does not exist") from None
    except ModelError:
        raise
    except Exception as exc:  # torch raises UnpicklingError or RuntimeError for both cases
        raise ModelError(
            f"refusing to load {path}: it is corrupt or carries pickled code/objects that are not plain "
            f"tensors and numbers ({_load_failure_reason(exc)})"
        ) from None


def _load_failure_reason(exc: BaseException) -> str:
    """A short, one-line reason from torch's message, without its advice to load the file unsafely.

    torch's refusal explains how to load the file anyway (``weights_only=False``, allow-listing
    the class): the wrong advice for a file we do not trust, so only the cause is kept.
    """
    if isinstance(exc, EOFError):
        return "the file ends early"
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    named = re.search(r"GLOBAL ([\w.]+)", text)
    if named:
        return f"it refers to the Python object {named.group(1)}"
    operand = re.search(r"Unsupported operand (\S+)", text)
    if operand:
        return f"unknown pickle operation {operand.group(1)}"
    advice = ("weights_only", "trusted source", "torch.load", "safe_globals", "file an issue", "internal miniz error")
    sentences = [part.strip() for part in re.split(r"(?<=\.)\s+|\n+", text) if part.strip()]
    kept = [part for part in sentences if not any(word in part for word in advice)]
    reason = " ".join(" ".join(kept[:1]).split()) or type(exc).__name__
    return reason if len(reason) <= 120 else reason[:117] + "..."
