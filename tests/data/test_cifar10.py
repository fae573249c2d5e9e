"""CIFAR-10 from the batches folder or the tar.gz archive, in the real pickle format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from neuroprune.data import fetch, load_arrays
from neuroprune.errors import DatasetError

MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def _expected(content: dict, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    images = np.concatenate([content[name][b"data"] for name in names]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([content[name][b"labels"] for name in names])
    return images, labels


TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


@pytest.mark.parametrize("layout", ["batches-folder", "parent-folder", "archive", "folder-with-archive"])
def test_reads_every_layout(tmp_path: Path, formats, layout: str) -> None:
    batches = tmp_path / "cifar-10-batches-py"
    content = formats.cifar_folder(batches, rows=20)
    if layout in ("archive", "folder-with-archive"):
        (tmp_path / "dl").mkdir()
        formats.cifar_tar(tmp_path / "dl" / "cifar-10-python.tar.gz", batches)
    root = {
        "batches-folder": batches,
        "parent-folder": tmp_path,
        "archive": tmp_path / "dl" / "cifar-10-python.tar.gz",
        "folder-with-archive": tmp_path / "dl",
    }[layout]

    train_images, train_labels = load_arrays("cifar10", "train", root=root)
    test_images, test_labels = load_arrays("cifar10", "test", root=root)

    assert train_images.shape == (100, 3, 32, 32) and train_labels.shape == (100,)
    assert test_images.shape == (20, 3, 32, 32) and test_labels.dtype == torch.int64
    pixels, labels = _expected(content, TRAIN)
    torch.testing.assert_close(train_images, (torch.from_numpy(pixels).float() / 255 - MEAN) / STD)
    assert train_labels.tolist() == labels.tolist()
    pixels, labels = _expected(content, ["test_batch"])
    torch.testing.assert_close(test_images, (torch.from_numpy(pixels).float() / 255 - MEAN) / STD)


def test_rows_are_channel_planes(tmp_path: Path, formats) -> None:
    batch = formats.cifar_batch(20, seed=0)
    row = np.zeros(3072, np.uint8)
    row[:1024], row[1024:2048], row[2048:] = 10, 20, 30  # red, green, blue planes
    batch[b"data"][0] = row
    formats.cifar_folder(tmp_path / "cifar-10-batches-py", replace={"data_batch_1": batch})
    folder = fetch("cifar10", source=tmp_path / "cifar-10-batches-py")
    with np.load(folder / "cifar10.npz", allow_pickle=False) as archive:
        first = archive["x_train"][0]
    assert [int(first[c].min()) for c in range(3)] == [10, 20, 30]
    assert [int(first[c].max()) for c in range(3)] == [10, 20, 30]


def test_fetch_from_archive_then_load_from_cache(tmp_path: Path, cache: Path, formats) -> None:
    content = formats.cifar_folder(tmp_path / "cifar-10-batches-py", rows=20)
    archive = formats.cifar_tar(tmp_path / "cifar-10-python.tar.gz", tmp_path / "cifar-10-batches-py")
    assert fetch("cifar10", source=archive) == cache / "cifar10"
    _, labels = load_arrays("cifar10", "test")
    assert labels.tolist() == list(content["test_batch"][b"labels"])


def test_python3_batches_with_str_keys(tmp_path: Path, formats) -> None:
    batches = {
        name: {key.decode(): value for key, value in formats.cifar_batch(20, seed).items()}
        for seed, name in enumerate([*TRAIN, "test_batch"])
    }
    formats.cifar_folder(tmp_path / "b", replace=batches)
    images, _ = load_arrays("cifar10", "test", root=tmp_path / "b")
    assert images.shape == (20, 3, 32, 32)


def test_missing_cifar_says_where_to_download() -> None:
    with pytest.raises(DatasetError, match=r"https://www\.cs\.toronto\.edu/~kriz/cifar\.html") as info:
        load_arrays("cifar10", "train")
    assert "--data-root PATH" in str(info.value)


def _corrupt(formats, tmp_path: Path, batch: object) -> Path:
    formats.cifar_folder(tmp_path / "cifar", replace={"data_batch_3": batch})
    return tmp_path / "cifar" / "data_batch_3"


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b.update({b"data": b[b"data"][:, :3000]}), r"'data' must be uint8 rows of 3072 values"),
        (lambda b: b.update({b"labels": b[b"labels"][:-1]}), r"20 image rows but 19 labels"),
        (lambda b: b.update({b"labels": [11] * 20}), r"labels must lie in 0..9"),
        (lambda b: b.pop(b"data"), r"is not a CIFAR-10 batch"),
    ],
    ids=["short-rows", "label-count", "label-range", "no-data"],
)
def test_corrupt_batch_is_named(tmp_path: Path, formats, damage, message: str) -> None:
    batch = formats.cifar_batch(20, seed=3)
    damage(batch)
    path = _corrupt(formats, tmp_path, batch)
    with pytest.raises(DatasetError, match=message) as info:
        load_arrays("cifar10", "train", root=tmp_path / "cifar")
    assert str(path) in str(info.value)


def test_truncated_batch_file(tmp_path: Path, formats) -> None:
    folder = tmp_path / "cifar"
    formats.cifar_folder(folder)
    data = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=rf"{folder / 'test_batch'} is not a readable pickle"):
        fetch("cifar10", source=folder)


def test_truncated_archive(tmp_path: Path, formats) -> None:
    formats.cifar_folder(tmp_path / "cifar-10-batches-py")
    archive = formats.cifar_tar(tmp_path / "cifar-10-python.tar.gz", tmp_path / "cifar-10-batches-py")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=r"cifar-10-python\.tar\.gz"):
        fetch("cifar10", source=archive)


def test_missing_batch_is_named(tmp_path: Path, formats) -> None:
    formats.cifar_folder(tmp_path / "cifar")
    (tmp_path / "cifar" / "data_batch_4").unlink()
    with pytest.raises(DatasetError, match="lacks the CIFAR-10 batch\\(es\\) data_batch_4"):
        fetch("cifar10", source=tmp_path / "cifar")


def test_malicious_batch_is_refused(tmp_path: Path, formats) -> None:
    marker = tmp_path / "pwned"

    class RunsShell:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            import os

            return (os.system, (f"touch {marker}",))

    batch = formats.cifar_batch(20, seed=1)
    batch[b"labels"] = RunsShell()
    folder = tmp_path / "cifar"
    formats.cifar_folder(folder)
    (folder / "data_batch_2").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DatasetError, match=r"refusing to unpickle \w+\.system from .*data_batch_2"):
        fetch("cifar10", source=folder)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"not an archive at all" * 20, b"\x1f\x8b\x08\x00" + b"\x00" * 40],
                         ids=["garbage", "broken-gzip"])
def test_an_unreadable_archive_is_one_line(tmp_path: Path, content: bytes) -> None:
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(content)
    with pytest.raises(DatasetError, match=r"is not a readable tar archive") as caught:
        fetch("cifar10", source=archive)
    assert "\n" not in str(caught.value) and "download it again" in str(caught.value)
