"""Property tests: data-file readers end in data or a DatasetError, never a crash, hang or huge allocation."""

from __future__ import annotations

import gzip
import pickle
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neuroprune.data import cifar10, mnist
from neuroprune.data._idx import read_idx
from neuroprune.data._safe_pickle import safe_loads
from neuroprune.errors import DatasetError, NeuropruneError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_PEAK_BYTES = 32 << 20  # inputs are a few kB; anything near this trusted a declared size


def _ends_cleanly(read):
    """Run ``read``; it may return or raise DatasetError, and must not allocate much."""
    tracemalloc.start()
    try:
        read()
    except DatasetError as error:
        assert isinstance(error, NeuropruneError) and str(error)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < MAX_PEAK_BYTES, f"peak allocation {peak} bytes"


def _write(data: bytes, name: str) -> tuple[tempfile.TemporaryDirectory, Path]:
    folder = tempfile.TemporaryDirectory()
    path = Path(folder.name) / name
    path.write_bytes(data)
    return folder, path


def _idx(dims: tuple[int, ...], payload: bytes, magic: int | None = None) -> bytes:
    magic = (0x08 << 8) | len(dims) if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{len(dims)}I", *dims) + payload


# ---- IDX ----------------------------------------------------------------------------------


@FAST
@given(st.binary(max_size=600), st.sampled_from([1, 3]), st.booleans())
def test_idx_random_bytes(data, ndim, compress):
    folder, path = _write(gzip.compress(data) if compress else data, "x-idx")
    with folder:
        _ends_cleanly(lambda: read_idx(path, ndim))


@FAST
@given(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
       st.binary(max_size=300), st.booleans())
def test_idx_huge_or_wrong_declared_sizes(dims, payload, compress):
    data = _idx(dims, payload)
    folder, path = _write(gzip.compress(data) if compress else data, "images-idx3-ubyte")
    with folder:
        _ends_cleanly(lambda: read_idx(path, 3))


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(0, 40))
def test_idx_wrong_magic_and_truncation(magic, cut):
    valid = _idx((3, 4, 4), bytes(range(48)))
    folder, path = _write(_idx((3, 4, 4), bytes(range(48)), magic)[: len(valid) - cut], "images-idx3-ubyte")
    with folder:
        _ends_cleanly(lambda: read_idx(path, 3))


# ---- MNIST pickle -------------------------------------------------------------------------


def _mnist_pickle() -> bytes:
    rng = np.random.default_rng(0)

    def part(n):
        return (rng.integers(0, 256, (n, 784)) / 256).astype(np.float32), rng.integers(0, 10, n).astype(np.int64)

    return pickle.dumps((part(4), part(2), part(3)), protocol=2)


VALID_MNIST = _mnist_pickle()


@FAST
@given(st.binary(max_size=600))
def test_mnist_pickle_random_bytes(data):
    folder, path = _write(data, "mnist.pkl")
    with folder:
        _ends_cleanly(lambda: mnist.acquire(path))


@FAST
@given(st.integers(0, len(VALID_MNIST) - 1), st.binary(min_size=1, max_size=4), st.booleans())
def test_mnist_pickle_truncated_or_damaged(position, patch, compress):
    damaged = VALID_MNIST[:position] + patch + VALID_MNIST[position + len(patch):]
    data = damaged if not compress else gzip.compress(VALID_MNIST[:position])
    folder, path = _write(data, "mnist.pkl.gz" if compress else "mnist.pkl")
    with folder:
        _ends_cleanly(lambda: mnist.acquire(path))


@FAST
@given(st.recursive(st.none() | st.integers() | st.text(max_size=5) | st.binary(max_size=5),
                    lambda inner: st.lists(inner, max_size=3).map(tuple) | st.lists(inner, max_size=3), max_leaves=8))
def test_mnist_pickle_of_other_structures(content):
    folder, path = _write(pickle.dumps(content, protocol=2), "mnist.pkl")
    with folder:
        _ends_cleanly(lambda: mnist.acquire(path))


# ---- CIFAR-10 batches ---------------------------------------------------------------------


def _cifar_batch(rows: int = 3) -> bytes:
    data = np.arange(rows * 3072, dtype=np.int64).astype(np.uint8).reshape(rows, 3072)
    return pickle.dumps({b"data": data, b"labels": list(range(rows))}, protocol=2)


VALID_CIFAR = _cifar_batch()


def _cifar_folder(batch: bytes) -> tuple[tempfile.TemporaryDirectory, Path]:
    folder = tempfile.TemporaryDirectory()
    root = Path(folder.name) / cifar10.FOLDER_NAME
    root.mkdir()
    for name in (*cifar10.TRAIN_BATCHES, *cifar10.TEST_BATCHES):
        (root / name).write_bytes(batch)
    return folder, root


@FAST
@given(st.binary(max_size=600))
def test_cifar_random_batch_bytes(data):
    folder, root = _cifar_folder(data)
    with folder:
        _ends_cleanly(lambda: cifar10.acquire(root))


@FAST
@given(st.integers(0, len(VALID_CIFAR) - 1), st.binary(min_size=1, max_size=4))
def test_cifar_truncated_or_damaged_batch(position, patch):
    damaged = VALID_CIFAR[:position]
    if len(patch) > 1:
        damaged += patch + VALID_CIFAR[position + len(patch):]
    folder, root = _cifar_folder(damaged)
    with folder:
        _ends_cleanly(lambda: cifar10.acquire(root))


@FAST
@given(st.binary(max_size=400))
def test_cifar_random_archive(data):
    folder, path = _write(data, cifar10.ARCHIVE_NAME)
    with folder:
        _ends_cleanly(lambda: cifar10.acquire(path))


def test_valid_inputs_still_read():
    folder, path = _write(VALID_MNIST, "mnist.pkl")
    with folder:
        assert len(mnist.acquire(path).y_train) == 6
    folder, root = _cifar_folder(VALID_CIFAR)
    with folder:
        assert cifar10.acquire(root).x_test.shape == (3, 3, 32, 32)
    folder, path = _write(_idx((2, 3, 3), bytes(18)), "x-idx3-ubyte")
    with folder:
        assert read_idx(path, 3).shape == (2, 3, 3)


# ---- what fuzzing found: sizes the unpickler would allocate before reading ------------------


@pytest.mark.parametrize(
    "data",
    [b"B\x00\x00\x00\x02", b"\x8e" + (1 << 40).to_bytes(8, "little"), b"\x96" + (1 << 30).to_bytes(8, "little"),
     b"Nr" + (1 << 26).to_bytes(4, "little") + b".", b"Np67108864\n."],
    ids=["binbytes-32MiB", "binbytes8-1TiB", "bytearray8-1GiB", "long-binput-2^26", "put-2^26"],
)
def test_declared_sizes_beyond_the_data_are_refused_before_allocating(data):
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match="not a readable pickle"):
            safe_loads(data, "tiny.pkl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_memo_numbered_from_one_as_python2_wrote_it_still_loads():
    assert safe_loads(b"\x80\x02]q\x01(K\x01K\x02e.", "py2.pkl") == [1, 2]
