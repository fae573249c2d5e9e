"""A restricted unpickler for data files: numpy arrays, numbers, strings, lists and dicts only.

Plain ``pickle.load`` runs whatever callable a file names, so a tampered data file could run
code. Data-set pickles (the MNIST tuple, CIFAR-10 batches) only need numpy to rebuild arrays;
everything else is built from pickle opcodes that call nothing.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import DatasetError

try:  # numpy >= 2 keeps these in numpy._core; pickles may name either location
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(text, "latin1");
    # only that exact use is accepted, so no other codec can be reached through it.
    if not isinstance(text, str) or encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) is not allowed")
    return text.encode("latin1")


_NUMPY_GLOBALS: dict[str, Callable[..., Any] | type] = {
    "_reconstruct": _multiarray._reconstruct,  # ndarray.__reduce__ (protocols 0-4)
    "scalar": _multiarray.scalar,  # numpy scalars such as np.int64(3)
    "_frombuffer": _numeric._frombuffer,  # type: ignore[attr-defined]  # ndarray.__reduce_ex__, protocol 5
}

# Pickles name numpy.core (numpy 1.x) or numpy._core (numpy 2); both map to the same objects.
_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    **{
        (f"numpy.{core}.{module}", name): _NUMPY_GLOBALS[name]
        for core in ("core", "_core")
        for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))
    },
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only numpy's array, dtype and scalar reconstructors."""

    def __init__(self, data: bytes | bytearray, source: str, encoding: str) -> None:
        super().__init__(io.BytesIO(data), encoding=encoding)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        """Return an allowed reconstructor; raise DatasetError for any other global."""
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DatasetError(
                f"refusing to unpickle {module}.{name} from {self._source}: only numpy arrays are allowed"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: data files never need them."""
        raise DatasetError(f"refusing to unpickle a persistent id from {self._source}: only numpy arrays are allowed")


def safe_loads(data: bytes | bytearray, source: str, encoding: str = "bytes") -> Any:
    """Unpickle ``data`` allowing only numpy arrays and plain containers.

    Args:
        data: the pickle's bytes.
        source: where the bytes came from, named in error messages.
        encoding: how Python 2 ``str`` objects are decoded; ``"bytes"`` keeps them as bytes,
            which numpy accepts when rebuilding arrays and dtypes.

    Returns:
        The unpickled object.

    Raises:
        DatasetError: the pickle names a disallowed global or is not a valid pickle.
    """
    try:
        _check_declared_sizes(data, source)
        return RestrictedUnpickler(data, source, encoding).load()
    except DatasetError:
        raise
    except Exception as exc:  # pickle raises many types for corrupt input
        raise DatasetError(
            f"{source} is not a readable pickle ({type(exc).__name__}: {exc}); the file is corrupt, get it again"
        ) from None


_OPCODES = {op.code.encode("latin1"): op for op in pickletools.opcodes}
# opcode argument kind -> (bytes of the length prefix, signed)
_COUNTED = {
    pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
    pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
    pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
    pickletools.TAKEN_FROM_ARGUMENT8U: (8, False),
}
_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")


def _check_declared_sizes(data: bytes | bytearray, source: str) -> None:
    """Walk the opcodes and refuse sizes the data cannot back, before the unpickler allocates.

    CPython's unpickler allocates a BINBYTES8/BYTEARRAY8 buffer of the declared length
    before reading, and grows its memo to twice a PUT index: a few bytes could claim
    gigabytes. Real pickles number memo entries one after another (from 0, or from 1 as
    Python 2's cPickle did) and hold the bytes they declare.
    """
    pos, end, memo_size = 0, len(data), 0
    while pos < end:
        op = _OPCODES.get(bytes(data[pos : pos + 1]))
        if op is None:
            raise _corrupt(source, f"unknown opcode at byte {pos}")
        pos += 1
        kind, arg_name = (op.arg.n, op.arg.name) if op.arg is not None else (0, "")
        value = None
        if kind > 0:
            value, pos = bytes(data[pos : pos + kind]), pos + kind
        elif kind == pickletools.UP_TO_NEWLINE:
            for _ in range(2 if arg_name == "stringnl_noescape_pair" else 1):
                newline = data.find(b"\n", pos)
                if newline < 0:
                    pos = end + 1  # reported as truncated below
                    break
                value, pos = bytes(data[pos:newline]), newline + 1
        elif kind in _COUNTED:
            size, is_signed = _COUNTED[kind]
            length = int.from_bytes(data[pos : pos + size], "little", signed=is_signed)
            pos += size
            if length < 0 or pos + length > end:
                raise _corrupt(source, f"a {op.name} declares {length} bytes, more than the file holds")
            pos += length
        if pos > end:
            raise _corrupt(source, f"truncated {op.name}")
        if op.name == "FRAME" and value is not None and pos + int.from_bytes(value, "little") > end:
            raise _corrupt(source, "a frame declares more bytes than the file holds")
        if op.name in _PUTS and value is not None:
            index = int(value) if op.name == "PUT" else int.from_bytes(value, "little")
            if index > memo_size + 1:
                raise _corrupt(source, f"memo index {index} skips ahead of {memo_size} entries")
            memo_size = max(memo_size, index + 1)
        elif op.name == "MEMOIZE":
            memo_size += 1
        elif op.name == "STOP":
            return


def _corrupt(source: str, detail: str) -> DatasetError:
    return DatasetError(f"{source} is not a readable pickle ({detail}); the file is corrupt, get it again")
