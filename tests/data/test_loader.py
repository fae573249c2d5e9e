"""create_loader on the bundled digits: shapes, determinism, limit, padding and validation."""

from __future__ import annotations

import pytest
import torch

from neuroprune.data import DATASETS, create_loader, load_arrays
from neuroprune.errors import DatasetError


def _labels(loader) -> list[list[int]]:
    return [labels.tolist() for _, labels in loader]


def test_batches_have_expected_shapes_and_types() -> None:
    loader = create_loader("digits", "train", batch_size=100)
    batches = list(loader)
    assert len(loader) == len(batches) == 15  # ceil(1442 / 100)
    images, labels = batches[0]
    assert isinstance(batches[0], tuple)
    assert images.shape == (100, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (100,) and labels.dtype == torch.int64
    assert batches[-1][0].shape[0] == 42
    assert sum(len(y) for _, y in batches) == 1442


def test_train_split_is_normalised() -> None:
    images, _ = load_arrays("digits", "train")
    assert abs(images.mean().item()) < 1e-3
    assert abs(images.std().item() - 1) < 1e-3


def test_train_and_test_are_disjoint_and_balanced() -> None:
    train, _ = load_arrays("digits", "train")
    test, test_labels = load_arrays("digits", "test")
    assert (len(train), len(test)) == (1442, 355)
    assert torch.bincount(test_labels, minlength=10).min() >= 34
    rows = {tuple(row.tolist()) for row in train.flatten(1)}
    overlap = sum(tuple(row.tolist()) in rows for row in test.flatten(1))
    assert overlap < 5  # only exact duplicate drawings could coincide


def test_same_seed_same_order_every_epoch() -> None:
    first = create_loader("digits", "train", batch_size=64, seed=3)
    second = create_loader("digits", "train", batch_size=64, seed=3)
    epoch_one = _labels(first)
    assert epoch_one == _labels(second)
    epoch_two = _labels(first)
    assert epoch_two != epoch_one  # reshuffled each epoch ...
    assert epoch_two == _labels(second)  # ... reproducibly


def test_different_seed_different_order() -> None:
    assert _labels(create_loader("digits", "train", 64, seed=0)) != _labels(
        create_loader("digits", "train", 64, seed=1)
    )


def test_loader_leaves_global_rng_alone() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    list(create_loader("digits", "train", batch_size=256))
    torch.testing.assert_close(torch.rand(3), expected)


def test_test_split_is_not_shuffled_by_default() -> None:
    images, labels = load_arrays("digits", "test")
    batches = list(create_loader("digits", "test", batch_size=50))
    torch.testing.assert_close(torch.cat([x for x, _ in batches]), images)
    assert torch.cat([y for _, y in batches]).tolist() == labels.tolist()


def test_shuffle_flag_overrides_default() -> None:
    _, labels = load_arrays("digits", "train")
    unshuffled = torch.cat([y for _, y in create_loader("digits", "train", 500, shuffle=False)])
    assert unshuffled.tolist() == labels.tolist()


def test_limit_takes_first_samples() -> None:
    images, labels = load_arrays("digits", "train")
    loader = create_loader("digits", "train", batch_size=8, limit=20, shuffle=False)
    got = list(loader)
    assert [len(y) for _, y in got] == [8, 8, 4]
    torch.testing.assert_close(torch.cat([x for x, _ in got]), images[:20])
    shuffled = torch.cat([y for _, y in create_loader("digits", "train", 8, limit=20)])
    assert sorted(shuffled.tolist()) == sorted(labels[:20].tolist())


def test_limit_beyond_size_keeps_everything() -> None:
    assert len(create_loader("digits", "test", batch_size=1000, limit=10**6).dataset) == 355


@pytest.mark.parametrize("pad_to, offset", [(12, 2), (11, 1), (8, 0)])
def test_pad_to_centres_images_on_black(pad_to: int, offset: int) -> None:
    images, _ = load_arrays("digits", "test")
    padded, _ = next(iter(create_loader("digits", "test", batch_size=10, pad_to=pad_to)))
    assert padded.shape == (10, 1, pad_to, pad_to)
    torch.testing.assert_close(padded[:, :, offset : offset + 8, offset : offset + 8], images[:10])
    if pad_to > 8:
        black = (0 - 0.3051) / 0.3762  # a zero pixel after normalisation
        assert torch.allclose(padded[:, :, 0, :], torch.tensor(black))
        assert torch.allclose(padded[:, :, -1, :], torch.tensor(black))


def test_drop_last() -> None:
    loader = create_loader("digits", "test", batch_size=100, drop_last=True)
    assert [len(y) for _, y in loader] == [100, 100, 100]
    with pytest.raises(DatasetError, match="leaves no batches"):
        create_loader("digits", "test", batch_size=1000, drop_last=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": True}, "batch_size must be a positive integer"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"batch_size": 8, "limit": 0}, "limit must be a positive integer"),
        ({"batch_size": 8, "pad_to": 6}, "pad_to=6 is smaller than the 8px images"),
        ({"batch_size": 8, "seed": "x"}, "seed must be an integer"),
        ({"batch_size": 8, "split": "val"}, "unknown split 'val'; choose one of: train, test"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    arguments = {"name": "digits", "split": "train", **kwargs}
    with pytest.raises(DatasetError, match=message):
        create_loader(**arguments)


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(DatasetError) as info:
        create_loader("imagenet", "train", batch_size=8)
    message = str(info.value)
    assert "unknown dataset 'imagenet'" in message
    assert all(name in message for name in DATASETS)


def test_fit_and_validation_partition_the_training_set_the_same_way_for_every_seed():
    import torch

    from neuroprune import create_loader

    def indices(split, seed):
        images = torch.cat([x for x, _ in create_loader("digits", split, 500, seed=seed, shuffle=False)])
        return {row.numpy().tobytes() for row in images.flatten(1)}

    train, fit, held = indices("train", 0), indices("fit", 0), indices("validation", 0)
    assert fit | held == train and not fit & held
    assert abs(len(held) - 0.1 * len(train)) <= 2  # digits has a few duplicate images
    assert indices("validation", 7) == held  # the carve does not follow the training seed
    assert sum(len(y) for _, y in create_loader("digits", "validation", 64, validation_fraction=0.25)) > 300
