"""Small inputs of one's own, in the real formats: PNG folders, .npz files, a model file and a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_digit_images.py"

MODEL_FILE = '''
from torch import nn


def Net(in_channels=1, num_classes=10, hidden=16):
    """Two convs, a pool, two linear layers: standard layers in order, so a compacted copy can be saved."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(8 * 4 * 4, hidden), nn.ReLU(), nn.Linear(hidden, num_classes),
    )


def broken(**kwargs):
    raise ValueError("no such layer size")


def not_a_model(**kwargs):
    return 42
'''


def _script():
    spec = importlib.util.spec_from_file_location("make_digit_images", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own empty cache, never the user's."""
    monkeypatch.setenv("NEUROPRUNE_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def write_images():
    """``write_images(root, classes=3, per_class=20, size=8, split=False)``: digits as PNG files."""
    return _script().write_digit_images


@pytest.fixture
def images(tmp_path: Path, write_images) -> Path:
    """Three classes of 20 grey 8x8 PNGs, without train/ and test/ folders."""
    return write_images(tmp_path / "images", classes=3, per_class=20)


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    """The cache's format: uint8 (N, 1, 8, 8) pixels, labels 0..2."""
    rng = np.random.default_rng(0)
    path = tmp_path / "arrays.npz"
    np.savez(path, x_train=rng.integers(0, 256, (60, 1, 8, 8), dtype=np.uint8), y_train=np.arange(60) % 3,
             x_test=rng.integers(0, 256, (15, 1, 8, 8), dtype=np.uint8), y_test=np.arange(15) % 3)
    return path


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "models" / "my_net.py"
    path.parent.mkdir()
    path.write_text(MODEL_FILE)
    return path


@pytest.fixture
def model_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A package ``userpkg.nets`` in the working folder, as ``--model userpkg.nets:Net`` finds it."""
    package = tmp_path / "work" / "userpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(MODEL_FILE)
    monkeypatch.chdir(package.parent)
    yield "userpkg.nets"
    for name in [n for n in sys.modules if n == "userpkg" or n.startswith("userpkg.")]:
        del sys.modules[name]
