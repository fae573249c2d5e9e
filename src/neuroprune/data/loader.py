"""Shuffled, deterministic mini-batches over an in-memory split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from ..errors import DatasetError
from ._normalize import background
from ._sampler import EpochBatchSampler
from .arrays import load_arrays
from .info import canonical_name, dataset_info

LOADER_SPLITS = ("train", "test", "fit", "validation")
VALIDATION_FRACTION = 0.1
# fixed, so every run, seed and method chooses on the same held-out images
VALIDATION_SEED = 2021


def create_loader(
    name: str,
    split: str,
    batch_size: int,
    root: str | Path | None = None,
    shuffle: bool | None = None,
    seed: int = 0,
    limit: int | None = None,
    pad_to: int | None = None,
    drop_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
    validation_fraction: float = VALIDATION_FRACTION,
) -> DataLoader[tuple[torch.Tensor, ...]]:
    """Build a DataLoader over a whole split held in memory.

    Each batch is taken from the tensors with one index list, instead of collating samples one
    by one, so batching costs one gather per batch.

    Args:
        name: one of :data:`~neuroprune.data.DATASETS`.
        split: ``"train"`` or ``"test"``; or ``"fit"`` and ``"validation"``, the two disjoint
            parts of the training set: ``validation_fraction`` of it, drawn with a fixed seed
            (the same images whatever ``seed`` is), for choices such as a depth cut, and the
            rest to train on. The test split is then touched only for final numbers.
        batch_size: samples per batch, at least 1; with ``world_size > 1`` the global batch
            that all processes share.
        root: where the data lives; see :func:`~neuroprune.data.load_arrays`.
        shuffle: reshuffle every epoch; defaults to True for train and False for test.
        seed: seeds the shuffling. Epoch ``e``'s order is a pure function of ``(seed, e)``;
            iterating moves on to the next epoch, and ``loader.sampler.set_epoch(e)`` (which
            :func:`~neuroprune.engine.fit` calls) jumps to any epoch, so a resumed run sees
            the same batches as an uninterrupted one.
        limit: keep only the first ``limit`` samples (before shuffling; of the part, for
            ``fit`` and ``validation``), for quick runs.
        pad_to: pad images symmetrically with black (zero-valued) pixels to
            ``pad_to x pad_to``, e.g. 28 -> 32 for networks made for 32-pixel inputs. The
            padding takes the value a zero pixel has after normalisation, so it matches the
            images' black background. Odd margins put the extra pixel at the bottom/right.
        drop_last: drop the last batch if it is smaller than ``batch_size``.
        rank: this process's index among ``world_size`` data-parallel processes.
        world_size: processes sharing every global batch: each yields its own contiguous
            shard of the same batch (every process uses the same ``seed``). For the train
            split, shards are equal, so a last batch that does not divide evenly loses up to
            ``world_size - 1`` samples; the test split is covered exactly once.
        validation_fraction: share of the training set in ``validation`` (default 10%).

    Returns:
        A DataLoader yielding ``(images float32 (B, C, H, W), labels int64 (B,))``.

    Raises:
        DatasetError: an argument is invalid, or the data is missing or corrupt.

    Example:
        >>> loader = create_loader("digits", "train", batch_size=64, pad_to=12)
        >>> images, labels = next(iter(loader))
        >>> images.shape, labels.shape
        (torch.Size([64, 1, 12, 12]), torch.Size([64]))
    """
    name = canonical_name(name)
    if split not in LOADER_SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of: {', '.join(LOADER_SPLITS)}")
    if not 0 < validation_fraction < 1:
        raise DatasetError(f"validation_fraction must be in (0, 1), got {validation_fraction!r}")
    info = dataset_info(name)
    _check_positive("batch_size", batch_size)
    if limit is not None:
        _check_positive("limit", limit)
    if pad_to is not None:
        _check_positive("pad_to", pad_to)
        if pad_to < info.image_size:
            raise DatasetError(
                f"pad_to={pad_to} is smaller than the {info.image_size}px images of {name}; "
                f"pass at least {info.image_size}"
            )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"seed must be an integer, got {seed!r}")
    _check_positive("world_size", world_size)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise DatasetError(f"rank must be an integer in 0..{world_size - 1}, got {rank!r}")
    if batch_size < world_size:
        raise DatasetError(f"batch_size={batch_size} cannot be shared by world_size={world_size} processes")

    images, labels = load_arrays(name, "test" if split == "test" else "train", root)
    if split in ("fit", "validation"):
        images, labels = _part_of_train(images, labels, split, validation_fraction)
    if limit is not None and limit < len(labels):
        # clone() so the full split's storage can be freed
        images, labels = images[:limit].clone(), labels[:limit].clone()
    if pad_to is not None and pad_to != info.image_size:
        images = _pad(images, pad_to, background(name))
    if drop_last and len(labels) < batch_size:
        raise DatasetError(
            f"batch_size={batch_size} with drop_last leaves no batches from {len(labels)} samples; lower batch_size"
        )

    dataset = TensorDataset(images, labels)
    sampler = EpochBatchSampler(
        len(dataset),
        batch_size,
        seed=seed,
        shuffle=split in ("train", "fit") if shuffle is None else shuffle,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
        even_shards=split in ("train", "fit"),
    )
    return DataLoader(
        dataset,
        sampler=sampler,
        batch_size=None,  # the sampler yields index lists; the dataset is indexed with each list
        collate_fn=_keep_batch,
        # DataLoader draws a base seed per epoch; its own generator keeps that off the global RNG.
        generator=torch.Generator().manual_seed(seed),
    )


def _part_of_train(
    images: torch.Tensor, labels: torch.Tensor, part: str, fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``validation`` images (a fixed random ``fraction``) or the ``fit`` rest, each in file order."""
    count = len(labels)
    held = max(1, round(fraction * count))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(VALIDATION_SEED))
    is_held = torch.zeros(count, dtype=torch.bool)
    is_held[order[:held]] = True
    chosen = torch.nonzero(is_held if part == "validation" else ~is_held).flatten()
    return images[chosen], labels[chosen]


def _keep_batch(batch: Any) -> Any:
    return batch  # already (images, labels); the default would turn the tuple into a list


def _check_positive(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DatasetError(f"{what} must be a positive integer, got {value!r}")


def _pad(images: torch.Tensor, size: int, fill: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size), centred, border filled with ``fill`` (C,)."""
    count, channels, height, width = images.shape
    top, left = (size - height) // 2, (size - width) // 2
    padded = fill.view(1, channels, 1, 1).expand(count, channels, size, size).clone()
    padded[:, :, top : top + height, left : left + width] = images
    return padded
