"""How much to prune by when: Zhu & Gupta's polynomial sparsity ramp. Pure step arithmetic."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class PolynomialSparsity:
    """Target share of pruned weights, rising from ``initial_sparsity`` to ``final_sparsity``.

    Zhu & Gupta (2017, "To prune, or not to prune") prune fast while the network is
    redundant and slowly as it approaches the final sparsity::

        s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0)) ** exponent   for t0 <= t <= t1

    Before ``begin_step`` nothing is pruned (0.0); after ``end_step`` the target stays at
    ``final_sparsity``. Steps count optimizer steps; the schedule never reads tensors.

    Args:
        final_sparsity: share pruned at and after ``end_step``, in (0, 1).
        begin_step: first step of the ramp (t0), >= 0.
        end_step: last step of the ramp (t1), > ``begin_step``.
        initial_sparsity: share pruned at ``begin_step``, in [0, ``final_sparsity``).
        exponent: the ramp's power; 3 (cubic) as in the paper, 1 is linear.

    Example:
        >>> s = PolynomialSparsity(final_sparsity=0.5, begin_step=10, end_step=110)
        >>> s.at(5), s.at(10), s.at(60), s.at(200)
        (0.0, 0.0, 0.4375, 0.5)
    """

    final_sparsity: float
    begin_step: int
    end_step: int
    initial_sparsity: float = 0.0
    exponent: float = 3.0

    def __post_init__(self) -> None:
        if not _is_number(self.final_sparsity) or not 0 < self.final_sparsity < 1:
            raise ConfigError(f"final_sparsity must be in (0, 1), got {self.final_sparsity!r}")
        if not _is_number(self.initial_sparsity) or not 0 <= self.initial_sparsity < self.final_sparsity:
            raise ConfigError(
                f"initial_sparsity must be in [0, final_sparsity={self.final_sparsity}), got {self.initial_sparsity!r}"
            )
        if not _is_int(self.begin_step) or self.begin_step < 0:
            raise ConfigError(f"begin_step must be an integer >= 0, got {self.begin_step!r}")
        if not _is_int(self.end_step) or self.end_step <= self.begin_step:
            raise ConfigError(
                f"end_step must be an integer greater than begin_step ({self.begin_step}), got {self.end_step!r}"
            )
        if not _is_number(self.exponent) or self.exponent <= 0:
            raise ConfigError(f"exponent must be > 0, got {self.exponent!r}")

    def at(self, step: int) -> float:
        """The share of weights that should be pruned after optimizer step ``step``."""
        if step < self.begin_step:
            return 0.0
        if step >= self.end_step:
            return float(self.final_sparsity)
        remaining = 1 - (step - self.begin_step) / (self.end_step - self.begin_step)
        return self.final_sparsity + (self.initial_sparsity - self.final_sparsity) * remaining**self.exponent


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
