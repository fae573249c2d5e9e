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

    def check_steps(self, total_steps: int) -> range:
        """The steps at which checks run in a training run of ``total_steps`` optimizer steps."""
        last = total_steps if self.stop_step is None else min(total_steps, self.stop_step)
        return range(self.warmup_steps + self.check_every, last + 1, self.check_every)


AUTO = "auto"
CHECKS_PER_RUN = 100  # "auto" checks: about this many over a training run, whatever its length


def resolve_schedule(
    check_every: int | str, warmup_steps: int | str, stop_step: int | str | None, total_steps: int | None
) -> CheckSchedule:
    """A :class:`CheckSchedule` with every ``"auto"`` replaced by a share of ``total_steps``.

    ``"auto"`` means: a check every 1% of training, warm-up over the first 5%, and the last
    check at 60% of training, so the network has the rest of training to recover (Zhu &
    Gupta's gradual pruning ends at a similar point). A run of any length therefore gets
    about 55 checks; the same numbers in optimizer steps would give a short run on a small
    data set no check at all. When the run's length is unknown, an ``"auto"`` warm-up is
    0 and an ``"auto"`` stop is None (checks until training ends).

    Raises:
        ConfigError: ``check_every="auto"`` without ``total_steps``, or a value that is
            neither ``"auto"`` nor a valid step count.
    """
    for name, value in (("check_every", check_every), ("warmup_steps", warmup_steps), ("stop_step", stop_step)):
        if isinstance(value, str) and value != AUTO:
            raise ConfigError(f"{name} must be an integer or 'auto', got {value!r}")
    if not total_steps:
        if check_every == AUTO:
            raise ConfigError(
                "check_every='auto' needs the length of training: pass total_steps= to the pruner, or train with "
                "neuroprune.fit, which tells it; or give check_every as a number of optimizer steps"
            )
        return CheckSchedule(check_every, 0 if warmup_steps == AUTO else warmup_steps,  # type: ignore[arg-type]
                             None if stop_step == AUTO else stop_step)  # type: ignore[arg-type]
    check_every = max(1, total_steps // CHECKS_PER_RUN) if check_every == AUTO else check_every
    warmup_steps = total_steps // 20 if warmup_steps == AUTO else warmup_steps
    if stop_step == AUTO:
        assert isinstance(warmup_steps, int)  # no "auto" is left
        stop_step = max((3 * total_steps) // 5, warmup_steps + 1)  # a very short run keeps a valid schedule
    return CheckSchedule(check_every, warmup_steps, stop_step)  # type: ignore[arg-type]
