"""Reading raw data files that may be gzip-compressed, with bounded memory and clear errors."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import BinaryIO, Protocol

from ..errors import DatasetError

GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class Readable(Protocol):
    """Anything with ``read(size)``: files, gzip streams, zip and tar members."""

    def read(self, size: int = -1, /) -> bytes: ...


def is_gzip(path: Path) -> bool:
    """Whether ``path`` starts with the gzip magic bytes (the name's suffix is not trusted)."""
    try:
        with open(path, "rb") as stream:
            return stream.read(2) == GZIP_MAGIC
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None


def open_binary(path: Path) -> BinaryIO:
    """Open ``path`` for reading, transparently decompressing gzip."""
    try:
        return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")  # type: ignore[return-value]
    except OSError as exc:
        raise DatasetError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_upto(stream: Readable, limit: int, path: str | Path) -> bytearray:
    """Read at most ``limit`` bytes in chunks.

    Memory grows with what the file really holds, never with a size a header claims; a
    damaged gzip stream becomes a DatasetError naming ``path``.
    """
    buffer = bytearray()
    try:
        while len(buffer) < limit:
            chunk = stream.read(min(_CHUNK, limit - len(buffer)))
            if not chunk:
                break
            buffer += chunk
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{path}: corrupt gzip data ({exc}); download the file again") from None
    return buffer


def read_file(path: Path, max_bytes: int) -> bytearray:
    """Whole content of ``path`` (gunzipped if compressed); refuses more than ``max_bytes``."""
    with open_binary(path) as stream:
        data = read_upto(stream, max_bytes + 1, path)
    if len(data) > max_bytes:
        raise DatasetError(f"{path} holds more than {max_bytes} bytes, too large for a data file of this kind")
    return data
