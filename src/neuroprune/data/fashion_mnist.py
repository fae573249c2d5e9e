"""Fashion-MNIST: the standard IDX files, from the Debian package or a folder the user gives.

The Debian/Ubuntu package ``dataset-fashion-mnist`` installs them under
``/usr/share/datasets/fashion-mnist`` as ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import DatasetError
from ._idx import find_idx_files, read_idx_folder
from ._raw import RawSplits

logger = logging.getLogger(__name__)

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
"""Where the ``dataset-fashion-mnist`` Debian package puts the IDX files."""

_HOW_TO_GET = (
    "install it with `sudo apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu) "
    "or pass --source DIR holding the four IDX files"
)


def system_copy_exists() -> bool:
    """Whether the Debian package's files are present."""
    return SYSTEM_DIR.is_dir()


def acquire(source: Path | None) -> RawSplits:
    """Read Fashion-MNIST from ``source``, or from the Debian package's folder when None.

    Args:
        source: a folder holding ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
            ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz`` (gzip or plain).

    Returns:
        Both splits as uint8 images (N, 1, 28, 28) and int64 labels.

    Raises:
        DatasetError: the files are missing (with how to install them) or invalid.
    """
    folder = source if source is not None else SYSTEM_DIR
    if not folder.is_dir():
        where = f"{folder} is not a folder" if source is not None else f"{SYSTEM_DIR} does not exist"
        raise DatasetError(f"Fashion-MNIST not found ({where}): {_HOW_TO_GET}")
    try:
        find_idx_files(folder)
    except DatasetError as exc:  # only raised for missing files
        raise DatasetError(f"Fashion-MNIST not found: {exc}; {_HOW_TO_GET}") from None
    logger.info("reading Fashion-MNIST from %s", folder)
    return read_idx_folder(folder)
