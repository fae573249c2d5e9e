"""Which reader provides each data set, and how its raw pixels are scaled."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import cifar10, digits, fashion_mnist, mnist
from ._raw import RawSplits


@dataclass(frozen=True)
class Source:
    """How to obtain one data set.

    Attributes:
        acquire: reads the set from a user-given path, or from its default place when None.
        pixel_max: the largest raw pixel value; dividing by it scales pixels to [0, 1].
        is_bundled: the set ships with a dependency, so it is read directly, never cached.
    """

    acquire: Callable[[Path | None], RawSplits]
    pixel_max: float
    is_bundled: bool = False


SOURCES: dict[str, Source] = {
    "digits": Source(digits.acquire, pixel_max=16.0, is_bundled=True),
    "mnist": Source(mnist.acquire, pixel_max=255.0),
    "fashion-mnist": Source(fashion_mnist.acquire, pixel_max=255.0),
    "cifar10": Source(cifar10.acquire, pixel_max=255.0),
}
