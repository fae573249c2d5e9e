"""Width multipliers: one rule for every factory that scales its channels."""

from __future__ import annotations


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded, at least 1.

    Raises:
        ValueError: ``width`` is not positive.
    """
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    return max(1, round(channels * width))
