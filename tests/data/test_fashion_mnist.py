"""Fashion-MNIST from the Debian package's folder or a user folder of IDX files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from neuroprune.data import fashion_mnist as fashion_module
from neuroprune.data import fetch, load_arrays
from neuroprune.errors import DatasetError

APT_HINT = "sudo apt-get install -y dataset-fashion-mnist"


def test_missing_system_copy_gives_apt_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fashion_module, "SYSTEM_DIR", tmp_path / "not-installed")
    for call in (lambda: fetch("fashion-mnist"), lambda: load_arrays("fashion-mnist", "train")):
        with pytest.raises(DatasetError, match="Fashion-MNIST not found") as info:
            call()
        assert APT_HINT in str(info.value)
        assert "--source DIR" in str(info.value)


def test_source_folder_without_files_gives_apt_hint(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="lacks the IDX file") as info:
        fetch("fashion_mnist", source=tmp_path / "empty")
    assert APT_HINT in str(info.value)


def test_fetch_from_source_folder(tmp_path: Path, cache: Path, formats) -> None:
    written = formats.idx_folder(tmp_path / "fashion")
    folder = fetch("fashion-mnist", source=tmp_path / "fashion")
    assert folder == cache / "fashion-mnist"
    with np.load(folder / "fashion-mnist.npz", allow_pickle=False) as archive:
        for key, array in written.items():
            np.testing.assert_array_equal(archive[key], array)


def test_load_arrays_copies_from_system_folder(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, formats
) -> None:
    written = formats.idx_folder(tmp_path / "usr-share", n_train=16, n_test=6)
    monkeypatch.setattr(fashion_module, "SYSTEM_DIR", tmp_path / "usr-share")

    images, labels = load_arrays("fashion-mnist", "test")

    assert (cache / "fashion-mnist" / "fashion-mnist.npz").is_file()
    expected = (torch.from_numpy(written["x_test"]).float() / 255 - 0.2860) / 0.3530
    torch.testing.assert_close(images, expected)
    assert labels.tolist() == written["y_test"].tolist()


def test_corrupt_file_is_named(tmp_path: Path, formats) -> None:
    formats.idx_folder(tmp_path / "fashion")
    bad = tmp_path / "fashion" / "train-images-idx3-ubyte.gz"
    formats.write_idx(bad, formats.images(3)[:, 0], magic=0x00000802)
    with pytest.raises(DatasetError, match=rf"{bad}: bad magic number 0x00000802; expected 0x00000803"):
        fetch("fashion-mnist", source=tmp_path / "fashion")
