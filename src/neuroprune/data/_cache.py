"""The cache folder: one ``NAME/NAME.npz`` per data set, written atomically, read without pickle."""

from __future__ import annotations

import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ._raw import RawSplits

logger = logging.getLogger(__name__)

ENV_VAR = "NEUROPRUNE_DATA"
_KEYS = ("x_train", "y_train", "x_test", "y_test")


def cache_dir() -> Path:
    """The folder where fetched data sets are kept.

    Returns:
        ``$NEUROPRUNE_DATA`` if that environment variable is set, else
        ``~/.cache/neuroprune/data``. The folder may not exist yet.

    Example:
        >>> folder = cache_dir()  # e.g. ~/.cache/neuroprune/data
    """
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "neuroprune" / "data"


def dataset_folder(name: str, root: str | Path | None = None) -> Path:
    """``ROOT/NAME``, where ROOT defaults to :func:`cache_dir`."""
    return (Path(root).expanduser() if root is not None else cache_dir()) / name


def cached_file(name: str, root: str | Path | None = None) -> Path:
    """Path of the cached arrays of ``name`` under ``root`` (the cache by default)."""
    return dataset_folder(name, root) / f"{name}.npz"


def find_cached(name: str, folder: Path) -> Path | None:
    """The cached ``.npz`` if ``folder`` is a cache root or a data set folder in one, else None."""
    for candidate in (folder / name / f"{name}.npz", folder / f"{name}.npz"):
        if candidate.is_file():
            return candidate
    return None


def save_splits(raw: RawSplits, path: Path) -> None:
    """Write ``raw`` to ``path`` as a compressed ``.npz``.

    The file is written next to its destination and then renamed, so a crash or a
    concurrent reader never sees half a file. A cache that cannot be written raises
    DatasetError.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    except OSError as exc:
        raise DatasetError(
            f"cannot write to the cache {path.parent} ({exc.strerror or exc}); set {ENV_VAR} to a writable folder"
        ) from None
    try:
        # A file object, not a name: np.savez would append ".npz" to the temporary name.
        with os.fdopen(handle, "wb") as stream:
            np.savez_compressed(stream, **{key: getattr(raw, key) for key in _KEYS})
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; the cache is ordinary readable data
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    logger.info("saved %s (%.1f MB)", path, path.stat().st_size / 1e6)


def load_split(name: str, path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split's images and labels from a cached ``.npz`` (no pickled objects allowed)."""
    hint = f"delete it and run `neuroprune data fetch {name}` again"
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in (f"x_{split}", f"y_{split}") if key not in archive.files]
            if missing:
                raise DatasetError(f"cached file {path} lacks {', '.join(missing)}; {hint}")
            return archive[f"x_{split}"], archive[f"y_{split}"]
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"cached file {path} is unreadable ({exc}); {hint}") from None
