"""Writers for small data files in the real on-disk formats, and an isolated cache folder."""

from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

IDX_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
CIFAR_BATCHES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch")


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache, never the user's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NEUROPRUNE_DATA", str(folder))
    return folder


class Formats:
    """Writers for small files in the real formats, used through the ``formats`` fixture."""

    @staticmethod
    def images(count: int, size: int = 28, channels: int = 1, seed: int = 0) -> np.ndarray:
        """Random uint8 images (count, channels, size, size)."""
        return np.random.default_rng(seed).integers(0, 256, size=(count, channels, size, size), dtype=np.uint8)

    @staticmethod
    def labels(count: int, seed: int = 0) -> np.ndarray:
        """Random int64 labels in 0..9."""
        return np.random.default_rng(seed + 1).integers(0, 10, size=count).astype(np.int64)

    @staticmethod
    def idx_bytes(array: np.ndarray, magic: int | None = None, dims: tuple[int, ...] | None = None) -> bytes:
        """IDX encoding of a uint8 array; ``magic`` / ``dims`` override the header to fake damage."""
        array = np.ascontiguousarray(array, dtype=np.uint8)
        magic = (0x08 << 8) | array.ndim if magic is None else magic
        dims = array.shape if dims is None else dims
        return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + array.tobytes()

    @staticmethod
    def write_idx(
        path: Path,
        array: np.ndarray,
        compress: bool = True,
        magic: int | None = None,
        dims: tuple[int, ...] | None = None,
    ) -> Path:
        """Write ``array`` as an IDX file (gzip when ``compress``) and return its path."""
        data = Formats.idx_bytes(array, magic, dims)
        path.write_bytes(gzip.compress(data) if compress else data)
        return path

    @staticmethod
    def idx_folder(folder: Path, n_train: int = 30, n_test: int = 12, compress: bool = True) -> dict[str, np.ndarray]:
        """The four standard IDX files of random 28x28 images; returns the arrays written."""
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {
            "x_train": Formats.images(n_train, seed=1),
            "y_train": Formats.labels(n_train, seed=1),
            "x_test": Formats.images(n_test, seed=2),
            "y_test": Formats.labels(n_test, seed=2),
        }
        suffix = ".gz" if compress else ""
        for (split, kind), name in IDX_NAMES.items():
            # IDX images have no channel axis: (N, 1, 28, 28) -> (N, 28, 28)
            array = arrays[f"x_{split}"][:, 0] if kind == "images" else arrays[f"y_{split}"]
            Formats.write_idx(folder / f"{name}{suffix}", array, compress=compress)
        return arrays

    @staticmethod
    def mnist_tuple(sizes: tuple[int, int, int] = (20, 8, 10)) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
        """The classic mnist.pkl.gz content: (train, valid, test) of (float32 k/256 (N, 784), int64 (N,))."""
        parts = []
        for seed, count in enumerate(sizes):
            pixels = Formats.images(count, seed=10 + seed).reshape(count, 784)
            parts.append(((pixels / 256).astype(np.float32), Formats.labels(count, seed=10 + seed)))
        return tuple(parts)

    @staticmethod
    def mnist_pickle(path: Path, content: object, protocol: int = 2) -> Path:
        """Pickle ``content`` and gzip it, like mnist.pkl.gz."""
        path.write_bytes(gzip.compress(pickle.dumps(content, protocol=protocol)))
        return path

    @staticmethod
    def cifar_batch(rows: int, seed: int) -> dict[bytes, object]:
        """A CIFAR-10 batch dict as the Python 2 pickles hold it (bytes keys)."""
        data = np.random.default_rng(seed).integers(0, 256, size=(rows, 3072), dtype=np.uint8)
        labels = [int(v) for v in np.random.default_rng(seed + 100).integers(0, 10, size=rows)]
        return {
            b"batch_label": f"batch {seed}".encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(rows)],
        }

    @staticmethod
    def cifar_folder(folder: Path, rows: int = 20, replace: dict[str, object] | None = None) -> dict[str, object]:
        """A ``cifar-10-batches-py`` folder; ``replace`` swaps in other content for named batches."""
        folder.mkdir(parents=True, exist_ok=True)
        content: dict[str, object] = {}
        for seed, name in enumerate(CIFAR_BATCHES):
            batch = (replace or {}).get(name, Formats.cifar_batch(rows, seed))
            (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
            content[name] = batch
        (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2))
        return content

    @staticmethod
    def cifar_tar(path: Path, folder: Path) -> Path:
        """``cifar-10-python.tar.gz`` holding ``folder`` as ``cifar-10-batches-py/``."""
        with tarfile.open(path, "w:gz") as archive:
            archive.add(folder, arcname="cifar-10-batches-py")
        return path


@pytest.fixture
def formats() -> type[Formats]:
    """The :class:`Formats` writers."""
    return Formats
