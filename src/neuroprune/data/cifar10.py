"""CIFAR-10: the ``cifar-10-batches-py`` folder or the ``cifar-10-python.tar.gz`` archive.

No package index carries CIFAR-10, so the user downloads it by hand. Each batch file is a
(Python 2) pickle of a dict ``{b"data": uint8 (N, 3072), b"labels": list[int], ...}`` whose
rows hold the red, green and blue 32x32 planes one after another. ``data_batch_1`` to
``data_batch_5`` form the train split, ``test_batch`` the test split. Members are read straight
from the archive; nothing is extracted to disk.
"""

from __future__ import annotations

import logging
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import DatasetError
from ._raw import RawSplits, check_labels
from ._safe_pickle import safe_loads

logger = logging.getLogger(__name__)

FOLDER_NAME = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_BATCHES = ("test_batch",)
_ROW = 3 * 32 * 32
# A real batch pickle is ~31 MB; refuse members that could not be one.
_MAX_BATCH_BYTES = 64 << 20

HOW_TO_GET = (
    f"download {ARCHIVE_NAME} by hand from https://www.cs.toronto.edu/~kriz/cifar.html and pass "
    f"--data-root PATH (the archive or its extracted {FOLDER_NAME} folder), or run "
    "`neuroprune data fetch cifar10 --source PATH` once to copy it into the cache"
)


def acquire(source: Path | None) -> RawSplits:
    """Read CIFAR-10 from a batches folder, a folder containing one, or the tar.gz archive.

    Args:
        source: ``cifar-10-batches-py/``, a folder holding it or ``cifar-10-python.tar.gz``,
            or the archive itself. None raises, since CIFAR-10 cannot be fetched automatically.

    Returns:
        Both splits as uint8 images (N, 3, 32, 32) and int64 labels.

    Raises:
        DatasetError: the data is missing (with where to download it), or a batch is corrupt.
    """
    if source is None:
        raise DatasetError(f"CIFAR-10 is not in the cache: {HOW_TO_GET}")
    batches = _read_members(_locate(source))
    x_train, y_train = _join([batches[name] for name in TRAIN_BATCHES])
    x_test, y_test = _join([batches[name] for name in TEST_BATCHES])
    return RawSplits(x_train, y_train, x_test, y_test)


def _locate(source: Path) -> Path:
    """The batches folder or archive that ``source`` names or contains."""
    if source.is_file():
        return source  # the archive; tarfile reports if it is not one
    for folder in (source, source / FOLDER_NAME):
        if (folder / TEST_BATCHES[0]).is_file():
            return folder
    if (source / ARCHIVE_NAME).is_file():
        return source / ARCHIVE_NAME
    raise DatasetError(f"no CIFAR-10 batches at {source}: {HOW_TO_GET}")


def _read_members(location: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    wanted = set(TRAIN_BATCHES + TEST_BATCHES)
    raw: dict[str, tuple[bytes, str]] = {}
    if location.is_dir():
        for name in sorted(wanted):
            path = location / name
            if path.is_file():
                _check_size(path.stat().st_size, str(path))
                raw[name] = (path.read_bytes(), str(path))
    else:
        try:
            # One pass through the compressed stream, reading only the batch members.
            with tarfile.open(location, "r:*") as archive:
                for member in archive:
                    name = PurePosixPath(member.name).name
                    if member.isfile() and name in wanted and name not in raw:
                        where = f"{location}:{member.name}"
                        _check_size(member.size, where)
                        stream = archive.extractfile(member)
                        if stream is None:
                            raise DatasetError(f"{where} cannot be read from the archive; download it again")
                        raw[name] = (stream.read(), where)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DatasetError(f"{location} is not a readable tar archive ({_archive_problem(exc)}); "
                               "download it again") from None
    missing = sorted(wanted - raw.keys())
    if missing:
        raise DatasetError(f"{location} lacks the CIFAR-10 batch(es) {', '.join(missing)}; {HOW_TO_GET}")
    return {name: _parse_batch(data, where) for name, (data, where) in raw.items()}


def _archive_problem(exc: BaseException) -> str:
    """Why tarfile could not read the archive, on one line.

    Opened with ``r:*``, tarfile lists each compression it tried on a line of its own.
    """
    text = str(exc)
    if "could not be opened successfully" in text:
        return "it is neither a gzip, bzip2 or xz compressed tar file nor a plain one"
    return " ".join(text.split()) or type(exc).__name__


def _check_size(size: int, where: str) -> None:
    if size > _MAX_BATCH_BYTES:
        raise DatasetError(f"{where} is {size} bytes, too large to be a CIFAR-10 batch; the file is corrupt")


def _parse_batch(data: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Batch pickle -> images uint8 (N, 3, 32, 32), labels int64 (N,)."""
    batch = safe_loads(data, where, encoding="bytes")
    if not isinstance(batch, dict):
        raise DatasetError(f"{where} is not a CIFAR-10 batch: expected a dict, got {type(batch).__name__}")
    # Python 2 pickles give bytes keys under encoding="bytes"; batches re-saved by Python 3 may use str.
    fields = {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    images, labels = fields.get("data"), fields.get("labels")
    if not isinstance(images, np.ndarray) or labels is None:
        raise DatasetError(f"{where} is not a CIFAR-10 batch: expected an array under 'data' and a list under 'labels'")
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != _ROW:
        raise DatasetError(
            f"{where}: 'data' must be uint8 rows of {_ROW} values, got {images.dtype} {images.shape}; "
            "the file is corrupt"
        )
    try:
        label_array = np.asarray(labels)
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: 'labels' is not a list of integers; the file is corrupt") from None
    label_array = check_labels(label_array, 10, where)
    if len(label_array) != len(images):
        raise DatasetError(f"{where}: {len(images)} image rows but {len(label_array)} labels; the file is corrupt")
    return images.reshape(-1, 3, 32, 32), label_array  # each row: R plane, G plane, B plane


def _join(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([images for images, _ in parts]), np.concatenate([labels for _, labels in parts])
