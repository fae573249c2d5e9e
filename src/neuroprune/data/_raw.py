"""Raw pixels of a data set's two splits, as every reader returns them, and their checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import DatasetError
from .info import dataset_info

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawSplits:
    """Both splits of one data set: images uint8 (N, C, H, W), labels int64 (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of ``"train"`` or ``"test"``."""
        return (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)


def check_labels(labels: np.ndarray, num_classes: int, where: str) -> np.ndarray:
    """Return ``labels`` as int64 after checking they are a 1-D array of ints in range."""
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DatasetError(f"{where}: labels must be a 1-D integer array, got {labels.dtype} of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(
            f"{where}: labels must lie in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}; "
            "the file is corrupt or belongs to another data set"
        )
    return labels.astype(np.int64, copy=False)


def check_split_arrays(
    name: str, split: str, images: np.ndarray, labels: np.ndarray, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """Check one split's shapes, dtypes and label range against the data set's :class:`DatasetInfo`.

    Returns:
        The images unchanged and the labels as int64.
    """
    info = dataset_info(name)
    expected = (info.in_channels, info.image_size, info.image_size)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected:
        raise DatasetError(
            f"{where}: {split} images must be uint8 of shape (N, {', '.join(map(str, expected))}), "
            f"got {images.dtype} {images.shape}; the file does not hold {name}"
        )
    labels = check_labels(labels, info.num_classes, f"{where} ({split})")
    if len(labels) != len(images):
        raise DatasetError(f"{where}: {split} has {len(images)} images but {len(labels)} labels; the file is corrupt")
    return images, labels


def check_splits(name: str, raw: RawSplits, where: str) -> RawSplits:
    """:func:`check_split_arrays` on both splits of ``raw``.

    Sizes may differ from the standard ones (a partial or sample set still loads), which is
    logged as a warning.
    """
    x_train, y_train = check_split_arrays(name, "train", raw.x_train, raw.y_train, where)
    x_test, y_test = check_split_arrays(name, "test", raw.x_test, raw.y_test, where)
    info = dataset_info(name)
    for split, count, standard in (("train", len(y_train), info.train_size), ("test", len(y_test), info.test_size)):
        if count != standard:
            logger.warning("%s %s has %d images; the standard set has %d", name, split, count, standard)
    return RawSplits(x_train, y_train, x_test, y_test)
