"""Data of one's own: a folder of class sub-folders of images, or a ``.npz`` of arrays.

:func:`open_user_data` reads the data once per process, registers it under its absolute
path, and returns that path as the data set's name; every function of :mod:`neuroprune.data`
(``create_loader``, ``dataset_info``, ``load_arrays``) then takes it like a built-in name,
so the ``fit`` / ``validation`` split is carved exactly as for the built-in sets.

Two forms:

- a folder ``ROOT/CLASS/*.png|*.jpg|*.jpeg``, one sub-folder per class (labels in sorted
  order of the folder names). With ``ROOT/train/CLASS`` and ``ROOT/test/CLASS`` those are
  the splits; otherwise :data:`TEST_FRACTION` of the images, drawn with a fixed seed,
  is the test split (and a warning says so). Images are read with Pillow, converted to grey
  or RGB, and resized to ``image_size`` when given (else they must all share one square size).
- a ``.npz`` with ``x_train, y_train, x_test, y_test``: the cache's own format, images
  uint8 ``(N, C, H, W)`` (or ``(N, H, W)`` for grey) and integer labels ``0 .. K-1``.
  Read without pickle.

Pixels are scaled by 1/255 and normalised per channel with the mean and standard deviation
of the ``fit`` part of the training split (the images training sees). Anything wrong (an
unreadable image, an empty class, mixed sizes, labels out of range) is refused with one
line that names the file.

Example:
    >>> name = open_user_data("my_images", image_size=16)  # doctest: +SKIP
    >>> loader = create_loader(name, "fit", batch_size=32)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DatasetError
from .info import DatasetInfo, register_dataset

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TEST_FRACTION = 0.2
# fixed, so the carved test split is the same images in every run
TEST_SEED = 1234
_KEYS = ("x_train", "y_train", "x_test", "y_test")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


@dataclass(frozen=True)
class _Loaded:
    """One registered data set: normalised splits, and the class names (folder form)."""

    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    classes: tuple[str, ...]


_OPENED: dict[str, _Loaded] = {}


def open_user_data(path: str | Path, image_size: int | None = None, channels: int | None = None) -> str:
    """Read a folder of images or a ``.npz`` and register it; returns its name for :mod:`neuroprune.data`.

    Args:
        path: a folder of class sub-folders (optionally under ``train/`` and ``test/``), or
            a ``.npz`` file with ``x_train, y_train, x_test, y_test``.
        image_size: resize every image to ``image_size x image_size``; None keeps the size
            the images share (they must then all be square and of one size).
        channels: 1 (grey) or 3 (RGB); None chooses 1 when every image is grey, else 3.

    Returns:
        The data set's name (the absolute path; with a non-default size or channel count,
        those are appended after ``#``), accepted by ``create_loader`` and ``dataset_info``.

    Raises:
        DatasetError: the path is missing or its contents are refused (the file is named).
    """
    source = Path(path).expanduser().resolve()
    name = str(source) + (f"#{image_size}px" if image_size else "") + (f"#{channels}ch" if channels else "")
    if name in _OPENED:
        return name
    if source.is_dir():
        x_train, y_train, x_test, y_test, classes = _read_folder(source, image_size, channels)
    elif source.is_file() and source.suffix == ".npz":
        x_train, y_train, x_test, y_test = _read_npz(source, image_size, channels)
        classes = tuple(str(k) for k in range(int(y_train.max()) + 1))
    elif source.exists():
        raise DatasetError(f"--data {path} is neither a folder of class sub-folders nor a .npz file")
    else:
        raise DatasetError(f"--data {path} does not exist; pass a folder of class sub-folders of images or a .npz")
    _check_labels(y_train, y_test, len(classes), source)
    mean, std = _fit_statistics(x_train)
    train = (_normalize(x_train, mean, std), torch.from_numpy(y_train.astype(np.int64)))
    test = (_normalize(x_test, mean, std), torch.from_numpy(y_test.astype(np.int64)))
    register_dataset(DatasetInfo(name, x_train.shape[1], x_train.shape[2], len(classes), len(y_train), len(y_test),
                                 tuple(mean.tolist()), tuple(std.tolist())))
    _OPENED[name] = _Loaded(train, test, classes)
    return name


def user_split(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The normalised ``train`` or ``test`` split of an opened data set; None for any other name."""
    loaded = _OPENED.get(name)
    if loaded is None:
        return None
    return loaded.train if split == "train" else loaded.test


def class_names(name: str) -> tuple[str, ...]:
    """The class names of an opened data set, in label order (folder names, or ``0 .. K-1`` for a .npz)."""
    return _OPENED[name].classes


def _read_folder(
    root: Path, size: int | None, channels: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Images and labels of both splits, and the class names, of a folder of class sub-folders."""
    splits = [root / "train", root / "test"]
    if all(folder.is_dir() for folder in splits):
        classes = _class_folders(splits[0])
        test_classes = _class_folders(splits[1], required=False)
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise DatasetError(f"{splits[1] / unknown[0]} is a class that {splits[0]} lacks; the two folders must hold "
                               "the same class sub-folders")
        train_files = _files_by_class(splits[0], classes)
        test_files = _files_by_class(splits[1], classes, allow_empty=True)
    else:
        classes = _class_folders(root)
        files = _files_by_class(root, classes)
        train_files, test_files = _carve_test(files)
        log.warning("%s has no train/ and test/ folders: %d of its %d images (%.0f%%, drawn with a fixed seed) are "
                    "the test split", root, len(test_files), len(files), 100 * TEST_FRACTION)
    images = _read_images([path for path, _ in train_files + test_files], size, channels)
    labels = np.array([label for _, label in train_files + test_files], dtype=np.int64)
    count = len(train_files)
    return images[:count], labels[:count], images[count:], labels[count:], tuple(classes)


def _class_folders(root: Path, required: bool = True) -> list[str]:
    entries = [entry for entry in sorted(root.iterdir()) if not entry.name.startswith(".")]
    stray = [entry for entry in entries if not entry.is_dir()]
    if stray:
        raise DatasetError(f"{stray[0]} is a file; {root} must hold one sub-folder of images per class")
    if required and len(entries) < 2:
        raise DatasetError(f"{root} holds {len(entries)} class sub-folder(s); classifying needs at least 2")
    return [entry.name for entry in entries]


def _files_by_class(root: Path, classes: list[str], allow_empty: bool = False) -> list[tuple[Path, int]]:
    files = []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue  # a test folder may lack a class
        found = [entry for entry in sorted(folder.iterdir()) if not entry.name.startswith(".")]
        for entry in found:
            if not entry.is_file() or entry.suffix.lower() not in IMAGE_SUFFIXES:
                raise DatasetError(f"{entry} is not a PNG or JPEG image; a class folder may hold only images")
        if not found and not allow_empty:
            raise DatasetError(f"class folder {folder} holds no images; add some or remove the folder")
        files += [(entry, label) for entry in found]
    return files


def _carve_test(files: list[tuple[Path, int]]) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
    """Hold out TEST_FRACTION of the images (at least one), by a fixed seed; both parts keep file order."""
    count = len(files)
    held = max(1, round(TEST_FRACTION * count))
    if count - held < 2:
        raise DatasetError(f"{count} images are too few to split into train and test; add images or give train/ "
                           "and test/ folders")
    chosen = set(np.random.default_rng(TEST_SEED).permutation(count)[:held].tolist())
    return ([f for i, f in enumerate(files) if i not in chosen], [f for i, f in enumerate(files) if i in chosen])


def _read_images(paths: list[Path], size: int | None, channels: int | None) -> np.ndarray:
    """Decode every image: uint8 (N, C, H, W); one line naming the first file that is refused."""
    from PIL import Image, UnidentifiedImageError

    decoded = []
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load()
                decoded.append(image.copy())
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
            raise DatasetError(f"{path} is not a readable image ({' '.join(str(exc).split())[:200]}); "
                               "fix or remove it") from None
    if channels is None:
        channels = 1 if all(image.mode in _GREY_MODES for image in decoded) else 3
    first = decoded[0].size
    if size is None and first[0] != first[1]:
        raise DatasetError(f"{paths[0]} is {first[0]}x{first[1]} pixels, not square; pass --image-size N to resize "
                           "every image to N x N")
    out = np.empty((len(decoded), channels, size or first[0], size or first[0]), dtype=np.uint8)
    for index, (path, image) in enumerate(zip(paths, decoded, strict=True)):
        if size is None and image.size != first:
            raise DatasetError(f"{path} is {image.size[0]}x{image.size[1]} pixels but {paths[0]} is "
                               f"{first[0]}x{first[1]}; pass --image-size N to resize every image to N x N")
        image = _convert(image, channels)
        if size is not None and image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        pixels = np.asarray(image, dtype=np.uint8)  # (H, W) or (H, W, 3)
        out[index] = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
    return out


def _convert(image: object, channels: int) -> object:
    """Grey ("L") or RGB; transparency is dropped, and 16-bit grey is scaled to 8 bits."""
    from PIL import Image

    assert isinstance(image, Image.Image)
    if image.mode in ("I", "I;16", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if pixels.max() > 255 else 255.0
        image = Image.fromarray(np.clip(pixels * 255.0 / top, 0, 255).astype(np.uint8))
    return image.convert("L" if channels == 1 else "RGB")


def _read_npz(path: Path, size: int | None, channels: int | None) -> tuple[np.ndarray, ...]:
    """``x_train, y_train, x_test, y_test`` of a ``.npz``, images brought to one shape."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in _KEYS if key not in archive.files]
            if missing:
                raise DatasetError(f"{path} lacks {', '.join(missing)}; a .npz for --data holds x_train, y_train, "
                                   "x_test and y_test")
            arrays = {key: archive[key] for key in _KEYS}
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path} is not a readable .npz ({' '.join(str(exc).split())[:200]}); object arrays "
                           "are refused, save plain arrays with numpy.savez") from None
    images = []
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 3:
            x = x[:, None]  # (N, H, W) grey
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
            raise DatasetError(f"{path}: x_{split} must be uint8 pixels of shape (N, C, H, W) with C 1 or 3, "
                               f"got {arrays[f'x_{split}'].dtype} {arrays[f'x_{split}'].shape}")
        if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x):
            raise DatasetError(f"{path}: y_{split} must be {len(x)} integer labels (one per image of x_{split}), "
                               f"got {y.dtype} {y.shape}")
        if len(x) == 0:
            raise DatasetError(f"{path}: x_{split} holds no images")
        images.append(_reshape(x, size, channels, f"{path}: x_{split}"))
    if images[0].shape[1:] != images[1].shape[1:]:
        raise DatasetError(f"{path}: x_train images are {images[0].shape[1:]} but x_test images {images[1].shape[1:]}; "
                           "pass --image-size N (and --channels) to bring both to one shape")
    return images[0], arrays["y_train"], images[1], arrays["y_test"]


def _reshape(x: np.ndarray, size: int | None, channels: int | None, where: str) -> np.ndarray:
    """Convert channels (grey <-> RGB) and resize (bilinear) as asked; square images otherwise."""
    if channels is not None and channels != x.shape[1]:
        if channels == 3:
            x = np.repeat(x, 3, axis=1)
        else:  # ITU-R 601-2 luma, as Pillow's "L" conversion
            x = np.rint(np.tensordot(np.array([0.299, 0.587, 0.114]), x.astype(np.float64), axes=([0], [1])))[:, None]
            x = x.astype(np.uint8)
    if size is None:
        if x.shape[2] != x.shape[3]:
            raise DatasetError(f"{where} images are {x.shape[2]}x{x.shape[3]}, not square; pass --image-size N")
        return x
    if x.shape[2:] == (size, size):
        return x
    resized = torch.nn.functional.interpolate(torch.from_numpy(x).float(), size=(size, size), mode="bilinear",
                                              antialias=True, align_corners=False)
    return resized.round().clamp(0, 255).to(torch.uint8).numpy()


def _check_labels(y_train: np.ndarray, y_test: np.ndarray, num_classes: int, source: Path) -> None:
    for split, labels in (("train", y_train), ("test", y_test)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise DatasetError(f"{source}: y_{split} holds labels {labels.min()}..{labels.max()}, outside the "
                               f"{num_classes} classes 0..{num_classes - 1} that y_train has")
    if num_classes < 2:
        raise DatasetError(f"{source}: y_train holds {num_classes} class; classifying needs at least 2")
    empty = sorted(set(range(num_classes)) - set(np.unique(y_train).tolist()))
    if empty:
        raise DatasetError(f"{source}: class {empty[0]} has no training images (labels must be 0..K-1 with every "
                           "class present in y_train)")


def _fit_statistics(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of pixels / 255 over the ``fit`` part (the validation part left out)."""
    from .loader import (  # deferred: the loader imports this module's users
        VALIDATION_FRACTION,
        _part_of_train,
    )

    labels = torch.zeros(len(images), dtype=torch.int64)
    fit, _ = _part_of_train(torch.from_numpy(images), labels, "fit", VALIDATION_FRACTION)
    pixels = fit.to(torch.float64).div_(255.0).transpose(0, 1).reshape(images.shape[1], -1)
    mean, std = pixels.mean(dim=1).numpy(), pixels.std(dim=1).numpy()
    return mean, np.where(std > 1e-6, std, 1.0)  # a constant channel is only shifted


def _normalize(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(images).to(torch.float32).div_(255.0)
    shape = (1, -1, 1, 1)
    return tensor.sub_(torch.tensor(mean, dtype=torch.float32).view(shape)).div_(
        torch.tensor(std, dtype=torch.float32).view(shape))


def resolve_dataset(dataset: str, data: str | Path | None, image_size: int | None = None,
                    channels: int | None = None) -> str:
    """The data set a run uses: ``data`` opened with :func:`open_user_data` when given, else ``dataset``."""
    return dataset if data is None else open_user_data(data, image_size, channels)
