"""Files that are never half-written, and torch files that never run pickled code.

Everything a run writes goes to a temporary file in the same folder first and is then
renamed over the target, so a crash mid-write never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import ModelError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"checkpoint {path} does not exist") from None
    except Exception as exc:  # torch raises UnpicklingError or RuntimeError for both cases
        raise ModelError(
            f"refusing to load {path}: it is corrupt or carries pickled code/objects that are not plain "
            f"tensors and numbers ({(str(exc).splitlines() or [type(exc).__name__])[0]})"
        ) from None
