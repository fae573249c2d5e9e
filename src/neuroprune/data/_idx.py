"""Reader for the IDX format of MNIST-style data sets (plain or gzip-compressed).

An IDX file is a 4-byte big-endian magic number ``0x0000TTNN`` (TT the element type, 0x08
for unsigned bytes; NN the number of dimensions), NN big-endian uint32 sizes, then the data.
The header is checked against the real data length before anything large is allocated.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ._files import is_gzip, open_binary, read_upto
from ._raw import RawSplits, check_labels

_UBYTE = 0x08  # so images are 0x00000803 (N, rows, cols) and labels 0x00000801 (N,)
# MNIST-style sets hold ~50 MB per file; anything claiming over 1 GiB is not one of them.
MAX_DATA_BYTES = 1 << 30

# Standard names ("train-images-idx3-ubyte.gz"), and the dotted variant some mirrors use.
_SPLIT_PREFIXES = {"train": "train", "test": "t10k"}
_NAME_PATTERNS = ("{prefix}-{kind}-idx{ndim}-ubyte", "{prefix}-{kind}.idx{ndim}-ubyte")


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file with ``ndim`` dimensions.

    Args:
        path: the file, gzip-compressed or plain (detected from its content).
        ndim: expected number of dimensions: 3 for images, 1 for labels.

    Returns:
        A uint8 array of the shape the header declares.

    Raises:
        DatasetError: bad magic number, truncated or oversized data, or corrupt gzip.
    """
    path = Path(path)
    compressed = is_gzip(path)
    header_size = 4 + 4 * ndim
    with open_binary(path) as stream:
        header = read_upto(stream, header_size, path)
        if len(header) >= 4:
            magic = int.from_bytes(header[:4], "big")
            if magic != (_UBYTE << 8) | ndim:
                raise DatasetError(
                    f"{path}: bad magic number 0x{magic:08X}; expected 0x{(_UBYTE << 8) | ndim:08X}"
                    " (not an IDX file of this kind)"
                )
        if len(header) < header_size:
            raise DatasetError(f"{path}: truncated: {len(header)} bytes, shorter than the {header_size}-byte header")
        dims = struct.unpack(f">{ndim}I", header[4:])
        declared = math.prod(dims)
        if declared > MAX_DATA_BYTES:
            raise DatasetError(
                f"{path}: header declares {declared} bytes of data (dims {dims}), over the "
                f"{MAX_DATA_BYTES} limit; the file is corrupt"
            )
        if not compressed:
            # Plain files: compare against the file size before reading anything.
            available = path.stat().st_size - header_size
            if available != declared:
                raise DatasetError(_size_message(path, declared, str(available), available < declared))
        data = read_upto(stream, declared + 1, path)  # one extra byte reveals trailing data
    if len(data) != declared:
        shown = str(len(data)) if len(data) < declared else "more"
        raise DatasetError(_size_message(path, declared, shown, len(data) < declared))
    return np.frombuffer(data, dtype=np.uint8, count=declared).reshape(dims)


def _size_message(path: Path, declared: int, actual: str, is_truncated: bool) -> str:
    if is_truncated:
        return f"{path}: truncated: header declares {declared} bytes of data, file has {actual}; download it again"
    return f"{path}: header declares {declared} bytes of data, file has {actual}; the file is corrupt"


def read_idx_pair(images_path: Path, labels_path: Path, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Read matching image and label files.

    Returns:
        Images uint8 (N, 1, rows, cols) and labels int64 (N,).

    Raises:
        DatasetError: either file is invalid, the counts differ, or a label is out of range.
    """
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DatasetError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
            "the files do not belong together"
        )
    labels = check_labels(labels, num_classes, str(labels_path))
    return images[:, None], labels  # add the channel axis: (N, rows, cols) -> (N, 1, rows, cols)


def find_idx_files(folder: Path) -> dict[tuple[str, str], Path]:
    """Locate the four standard IDX files in ``folder``, keyed by (split, "images"|"labels").

    Raises:
        DatasetError: some of the four files are missing.
    """
    found: dict[tuple[str, str], Path] = {}
    missing: list[str] = []
    for split, prefix in _SPLIT_PREFIXES.items():
        for kind, ndim in (("images", 3), ("labels", 1)):
            names = [pattern.format(prefix=prefix, kind=kind, ndim=ndim) for pattern in _NAME_PATTERNS]
            candidates = [folder / f"{name}{suffix}" for name in names for suffix in (".gz", "")]
            match = next((path for path in candidates if path.is_file()), None)
            if match is None:
                missing.append(f"{names[0]}.gz")
            else:
                found[(split, kind)] = match
    if missing:
        raise DatasetError(f"{folder} lacks the IDX file(s) {', '.join(missing)}")
    return found


def has_idx_files(folder: Path) -> bool:
    """Whether ``folder`` holds the four standard IDX files."""
    try:
        find_idx_files(folder)
    except DatasetError:
        return False
    return True


def read_idx_folder(folder: Path, num_classes: int = 10) -> RawSplits:
    """Read the train (``train-*``) and test (``t10k-*``) IDX files from ``folder``."""
    files = find_idx_files(folder)
    x_train, y_train = read_idx_pair(files[("train", "images")], files[("train", "labels")], num_classes)
    x_test, y_test = read_idx_pair(files[("test", "images")], files[("test", "labels")], num_classes)
    return RawSplits(x_train, y_train, x_test, y_test)
