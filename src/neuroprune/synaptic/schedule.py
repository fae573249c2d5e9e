"""When pruning checks happen. Pure step arithmetic: a schedule never touches tensors."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class CheckSchedule:
    """Checks every ``check_every`` optimizer steps after ``warmup_steps``, up to ``stop_step``.

    Steps count optimizer steps from 1. With warmup 100 and every 50 the checks run
    at steps 150, 200, 250, ... Each check judges the activity gathered since the
    previous one (or since the end of warm-up).

    Example:
        >>> s = CheckSchedule(warmup_steps=100, check_every=50)
        >>> [step for step in range(1, 260) if s.is_check(step)]
        [150, 200, 250]
    """

    check_every: int = 200
    warmup_steps: int = 0
    stop_step: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.check_every, int) or self.check_every < 1:
            raise ConfigError(f"check_every must be an integer >= 1, got {self.check_every!r}")
        if not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be an integer >= 0, got {self.warmup_steps!r}")
        if self.stop_step is not None and (not isinstance(self.stop_step, int) or self.stop_step <= self.warmup_steps):
            raise ConfigError(
                f"stop_step must be an integer greater than warmup_steps ({self.warmup_steps}), got {self.stop_step!r}"
            )

    def is_check(self, step: int) -> bool:
        """True when a check runs at the end of optimizer step ``step``."""
        since = step - self.warmup_steps
        return since > 0 and since % self.check_every == 0 and not self.is_over(step)

    def collects(self, step: int) -> bool:
        """True when activity seen during step ``step`` can still count at some check."""
        return step > self.warmup_steps and not self.is_over(step)

    def is_over(self, step: int) -> bool:
        """True once no check can run at ``step`` or later."""
        return self.stop_step is not None and step > self.stop_step
