"""digits: scikit-learn's bundled 1797 8x8 handwritten digits (pixel values 0..16).

Split deterministically and independently of the scikit-learn version: within each class,
in the order ``load_digits()`` returns the images, every fifth image (positions 4, 9, 14, ...)
goes to the test split and the rest to train. That gives 1442 train and 355 test images with
the classes balanced in both, and keeps the original interleaved order inside each split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ._raw import RawSplits

TEST_EVERY = 5


def acquire(source: Path | None) -> RawSplits:
    """Load and split the digits bundled with scikit-learn.

    Args:
        source: must be None; the data ships with scikit-learn.

    Returns:
        Both splits as uint8 images (N, 1, 8, 8) with values 0..16, and int64 labels.

    Raises:
        DatasetError: a source was given.
    """
    if source is not None:
        raise DatasetError("digits ships with scikit-learn and takes no source; drop --source")
    from sklearn.datasets import load_digits  # deferred: scikit-learn is slow to import

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[:, None]  # (1797, 8, 8) float 0..16 -> (1797, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    is_test = _rank_within_class(labels) % TEST_EVERY == TEST_EVERY - 1
    return RawSplits(images[~is_test], labels[~is_test], images[is_test], labels[is_test])


def _rank_within_class(labels: np.ndarray) -> np.ndarray:
    """Position of each sample among the samples of its class: [0, 1, 0, 2, 1] for [a, a, b, a, b]."""
    rank = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank[members] = np.arange(len(members))
    return rank
