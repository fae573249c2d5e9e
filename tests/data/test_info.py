"""Data set facts, name handling and the cache folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neuroprune.data import DATASETS, DatasetInfo, cache_dir, dataset_info, fetch, load_arrays
from neuroprune.errors import DatasetError, NeuropruneError


@pytest.mark.parametrize(
    "name, shape",
    [
        ("digits", (1, 8, 1442, 355)),
        ("mnist", (1, 28, 60000, 10000)),
        ("fashion-mnist", (1, 28, 60000, 10000)),
        ("cifar10", (3, 32, 50000, 10000)),
    ],
)
def test_dataset_info(name: str, shape: tuple[int, int, int, int]) -> None:
    info = dataset_info(name)
    assert isinstance(info, DatasetInfo)
    assert (info.in_channels, info.image_size, info.train_size, info.test_size) == shape
    assert info.num_classes == 10
    assert len(info.mean) == len(info.std) == info.in_channels


def test_names_are_forgiving_about_case_and_underscores() -> None:
    assert dataset_info("Fashion_MNIST").name == "fashion-mnist"
    assert DATASETS == ("digits", "mnist", "fashion-mnist", "cifar10")


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(
        DatasetError, match="unknown dataset 'svhn'; choose one of: digits, mnist, fashion-mnist, cifar10"
    ):
        dataset_info("svhn")
    assert issubclass(DatasetError, NeuropruneError)


def test_cache_dir_follows_environment(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cache_dir() == cache
    monkeypatch.delenv("NEUROPRUNE_DATA")
    assert cache_dir() == Path.home() / ".cache" / "neuroprune" / "data"


def test_fetch_digits_and_cache_dir_argument(tmp_path: Path) -> None:
    folder = fetch("digits", cache_dir=tmp_path / "elsewhere")
    assert folder == tmp_path / "elsewhere" / "digits"
    with np.load(folder / "digits.npz", allow_pickle=False) as archive:
        assert archive["x_train"].shape == (1442, 1, 8, 8) and archive["x_train"].max() == 16


def test_digits_takes_no_source(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="takes no source"):
        fetch("digits", source=tmp_path)


def test_cached_set_is_not_fetched_again(tmp_path: Path, cache: Path, formats) -> None:
    formats.idx_folder(tmp_path / "idx")
    fetch("mnist", source=tmp_path / "idx")
    stamp = (cache / "mnist" / "mnist.npz").stat().st_mtime_ns
    assert fetch("mnist") == cache / "mnist"  # no download attempted: it is cached
    assert (cache / "mnist" / "mnist.npz").stat().st_mtime_ns == stamp


def test_corrupt_cache_file_says_what_to_do(cache: Path) -> None:
    (cache / "mnist").mkdir(parents=True)
    (cache / "mnist" / "mnist.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match=r"unreadable.*delete it and run `neuroprune data fetch mnist`"):
        load_arrays("mnist", "train")


def test_cache_file_with_wrong_shapes(cache: Path) -> None:
    (cache / "mnist").mkdir(parents=True)
    arrays = {
        key: np.zeros((2, 1, 8, 8), np.uint8) if key[0] == "x" else np.zeros(2, np.int64)
        for key in ("x_train", "y_train", "x_test", "y_test")
    }
    np.savez(cache / "mnist" / "mnist.npz", **arrays)
    with pytest.raises(DatasetError, match=r"images must be uint8 of shape \(N, 1, 28, 28\)"):
        load_arrays("mnist", "test")


def test_root_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_arrays("cifar10", "train", root=tmp_path / "missing")


def test_root_as_cache_folder(tmp_path: Path, formats) -> None:
    formats.idx_folder(tmp_path / "idx", n_train=5, n_test=3)
    fetch("mnist", source=tmp_path / "idx", cache_dir=tmp_path / "shared")
    images, _ = load_arrays("mnist", "test", root=tmp_path / "shared")
    assert images.shape == (3, 1, 28, 28)


def test_unwritable_cache_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("")
    monkeypatch.setenv("NEUROPRUNE_DATA", str(blocker))
    with pytest.raises(DatasetError, match=r"cannot write to the cache .*set NEUROPRUNE_DATA to a writable folder"):
        fetch("digits")
