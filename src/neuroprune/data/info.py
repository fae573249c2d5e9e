"""What each supported data set is: names, shapes, sizes and normalisation constants."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import DatasetError

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar10")
"""Names accepted by every function in :mod:`neuroprune.data`."""

SPLITS: tuple[str, ...] = ("train", "test")


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a data set.

    Attributes:
        name: canonical name, one of :data:`DATASETS`.
        in_channels: image channels (1 for grey, 3 for RGB).
        image_size: height and width in pixels (all sets are square).
        num_classes: number of labels; labels are ``0 .. num_classes - 1``.
        train_size: images in the standard train split.
        test_size: images in the standard test split.
        mean: per-channel mean of the pixels scaled to ``[0, 1]``, used to normalise.
        std: per-channel standard deviation matching ``mean``.
    """

    name: str
    in_channels: int
    image_size: int
    num_classes: int
    train_size: int
    test_size: int
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)


# The MNIST, Fashion-MNIST and CIFAR-10 constants are the customary ones, measured on each
# train split with pixels scaled by 1/255. The digits constants were measured once on this
# package's digits train split (pixels scaled by 1/16): mean 0.30514, std 0.37616.
_INFOS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo("digits", 1, 8, 10, 1442, 355, (0.3051,), (0.3762,)),
    "mnist": DatasetInfo("mnist", 1, 28, 10, 60000, 10000, (0.1307,), (0.3081,)),
    "fashion-mnist": DatasetInfo("fashion-mnist", 1, 28, 10, 60000, 10000, (0.2860,), (0.3530,)),
    "cifar10": DatasetInfo("cifar10", 3, 32, 10, 50000, 10000, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


def canonical_name(name: str) -> str:
    """Map a user-typed data set name to its canonical form.

    Case and ``_`` versus ``-`` are ignored, so ``"Fashion_MNIST"`` means ``"fashion-mnist"``.

    Args:
        name: a data set name.

    Returns:
        One of :data:`DATASETS`.

    Raises:
        DatasetError: the name is not a supported data set.
    """
    if name in _INFOS:  # a built-in name, or one that register_dataset added (a path: kept as it is)
        return name
    key = str(name).strip().lower().replace("_", "-")
    if key not in _INFOS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return key


def register_dataset(info: DatasetInfo) -> None:
    """Make a data set of one's own known by ``info.name`` (see :func:`~neuroprune.data.user_data.open_user_data`)."""
    _INFOS[info.name] = info


def check_split(split: str) -> str:
    """Return ``split`` if it is ``"train"`` or ``"test"``; raise DatasetError otherwise."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return split


def dataset_info(name: str) -> DatasetInfo:
    """Look up the static facts about a data set.

    Args:
        name: one of :data:`DATASETS` (case and ``_``/``-`` are ignored).

    Returns:
        The data set's :class:`DatasetInfo`.

    Raises:
        DatasetError: the name is not a supported data set.

    Example:
        >>> info = dataset_info("mnist")
        >>> (info.in_channels, info.image_size, info.num_classes)
        (1, 28, 10)
    """
    return _INFOS[canonical_name(name)]
