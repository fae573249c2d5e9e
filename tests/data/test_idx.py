"""The IDX reader: round trips, and every kind of damage reported without large allocations."""

from __future__ import annotations

import gzip
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from neuroprune.data._idx import find_idx_files, read_idx, read_idx_folder, read_idx_pair
from neuroprune.errors import DatasetError


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "plain"])
def test_round_trip(tmp_path: Path, formats, compress: bool) -> None:
    images = formats.images(7)[:, 0]
    labels = formats.labels(7).astype(np.uint8)
    image_path = formats.write_idx(tmp_path / "images", images, compress=compress)
    label_path = formats.write_idx(tmp_path / "labels", labels, compress=compress)

    np.testing.assert_array_equal(read_idx(image_path, 3), images)
    np.testing.assert_array_equal(read_idx(label_path, 1), labels)
    x, y = read_idx_pair(image_path, label_path)
    assert x.shape == (7, 1, 28, 28) and x.dtype == np.uint8
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, labels)


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "plain"])
def test_folder_round_trip(tmp_path: Path, formats, compress: bool) -> None:
    written = formats.idx_folder(tmp_path, n_train=9, n_test=4, compress=compress)
    raw = read_idx_folder(tmp_path)
    for key, array in written.items():
        np.testing.assert_array_equal(getattr(raw, key), array)


def test_bad_magic(tmp_path: Path, formats) -> None:
    path = formats.write_idx(tmp_path / "images.gz", formats.images(2)[:, 0], magic=0x00000801)
    with pytest.raises(DatasetError, match=r"bad magic number 0x00000801; expected 0x00000803") as info:
        read_idx(path, 3)
    assert str(path) in str(info.value)


def test_non_ubyte_type_is_bad_magic(tmp_path: Path, formats) -> None:
    path = formats.write_idx(tmp_path / "images", formats.images(2)[:, 0], compress=False, magic=0x00000D03)
    with pytest.raises(DatasetError, match=r"bad magic number 0x00000D03; expected 0x00000803"):
        read_idx(path, 3)


def test_labels_file_given_as_images(tmp_path: Path, formats) -> None:
    path = formats.write_idx(tmp_path / "labels", formats.labels(5).astype(np.uint8))
    with pytest.raises(DatasetError, match="expected 0x00000803"):
        read_idx(path, 3)


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "plain"])
def test_truncated_data(tmp_path: Path, formats, compress: bool) -> None:
    data = formats.idx_bytes(formats.images(3)[:, 0])[:-100]
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(
        DatasetError, match=rf"truncated: header declares {3 * 784} bytes of data, file has {3 * 784 - 100}"
    ):
        read_idx(path, 3)


def test_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "images"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(path, 3)


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "plain"])
def test_trailing_data(tmp_path: Path, formats, compress: bool) -> None:
    data = formats.idx_bytes(formats.images(2)[:, 0]) + b"extra"
    path = tmp_path / "images"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(DatasetError, match=f"header declares {2 * 784} bytes of data, file has"):
        read_idx(path, 3)


@pytest.mark.parametrize("compress", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("count", [1_000_000, 4_000_000_000], ids=["under-limit", "over-limit"])
def test_huge_declared_size_fails_fast_without_allocating(tmp_path: Path, formats, compress: bool, count: int) -> None:
    # A 10-image file whose header claims `count` images (784 MB, or far beyond the limit).
    path = formats.write_idx(tmp_path / "images", formats.images(10)[:, 0], compress=compress, dims=(count, 28, 28))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DatasetError, match="header declares"):
            read_idx(path, 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2.0
    assert peak < 4 << 20, f"peak allocation {peak} bytes"


def test_corrupt_gzip(tmp_path: Path, formats) -> None:
    compressed = gzip.compress(formats.idx_bytes(formats.images(20)[:, 0]))
    path = tmp_path / "images.gz"
    path.write_bytes(compressed[: len(compressed) // 2])  # cut mid-stream
    with pytest.raises(DatasetError, match="corrupt gzip") as info:
        read_idx(path, 3)
    assert str(path) in str(info.value)


def test_garbage_after_gzip_header(tmp_path: Path) -> None:
    path = tmp_path / "images.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    with pytest.raises(DatasetError, match="corrupt gzip"):
        read_idx(path, 3)


def test_label_count_must_match_images(tmp_path: Path, formats) -> None:
    images = formats.write_idx(tmp_path / "images", formats.images(5)[:, 0])
    labels = formats.write_idx(tmp_path / "labels", formats.labels(4).astype(np.uint8))
    with pytest.raises(DatasetError, match=r"5 images but .* 4 labels"):
        read_idx_pair(images, labels)


def test_labels_must_be_digits(tmp_path: Path, formats) -> None:
    images = formats.write_idx(tmp_path / "images", formats.images(3)[:, 0])
    labels = formats.write_idx(tmp_path / "labels", np.array([1, 2, 12], dtype=np.uint8))
    with pytest.raises(DatasetError, match=r"labels must lie in 0..9, found 1..12"):
        read_idx_pair(images, labels)


def test_missing_file_is_named(tmp_path: Path, formats) -> None:
    formats.idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match=r"lacks the IDX file.*t10k-labels-idx1-ubyte\.gz"):
        find_idx_files(tmp_path)


def test_dotted_mirror_names_are_found(tmp_path: Path, formats) -> None:
    formats.idx_folder(tmp_path, compress=False)
    for path in tmp_path.iterdir():
        path.rename(path.with_name(path.name.replace("-idx", ".idx")))
    assert len(find_idx_files(tmp_path)) == 4
