"""Data sets for experiments: digits, MNIST, Fashion-MNIST and CIFAR-10 as in-memory tensors.

Example:
    >>> from neuroprune.data import create_loader
    >>> loader = create_loader("digits", "train", batch_size=64)
"""

from ._cache import cache_dir
from .arrays import load_arrays
from .fetch import fetch
from .info import DATASETS, DatasetInfo, dataset_info
from .loader import create_loader
from .user_data import open_user_data

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "cache_dir",
    "create_loader",
    "dataset_info",
    "fetch",
    "load_arrays",
    "open_user_data",
]
