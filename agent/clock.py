"""The wall-clock side of a time budget: seconds per trained step as measured on this run, and
whether planned work still fits.

The step plan (budget.py) converts the budget with a step time measured once, at the start; on a
loaded machine steps get slower later. So before each piece of work the run estimates its time as

    estimate = steps x seconds_per_step,   seconds_per_step = (wall s of the trials so far) / (their steps)

(validation and bookkeeping included, since they are inside the trials' wall time) and asks whether
it fits in what is left of the budget after the work that must still follow it (the confirm runs,
the report). What does not fit is skipped or shortened, and the response's notes say so.

Examples:
    >>> clock = WallClock(budget_s=10.0, started=0.0, now=lambda: 4.0)
    >>> clock.observe(steps=100, seconds=1.0)
    >>> clock.left(), clock.estimate(200), clock.fits(200, reserve_s=5.0)
    (6.0, 2.0, False)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

REPORT_SHARE, REPORT_MIN_S = 0.08, 6.0  # kept back for explain, report.html and result.json (5 plots: 3-12 s measured)


@dataclass
class WallClock:
    """Time left in a budget (None: no wall-clock limit) and the measured cost of a training step."""

    budget_s: float | None
    started: float = field(default_factory=time.monotonic)
    now: Callable[[], float] = time.monotonic
    trained_steps: int = 0
    trained_s: float = 0.0
    fallback_seconds_per_step: float = 0.0

    def __post_init__(self) -> None:
        if self.budget_s is not None and self.budget_s <= 0:
            raise ValueError(f"budget_s must be > 0 or None but got {self.budget_s=}")

    def spent(self) -> float:
        return self.now() - self.started

    def left(self) -> float:
        return math.inf if self.budget_s is None else self.budget_s - self.spent()

    def report_reserve(self) -> float:
        """Seconds kept back for the work after the last trial."""
        return 0.0 if self.budget_s is None else max(REPORT_MIN_S, REPORT_SHARE * self.budget_s)

    def observe(self, steps: int, seconds: float) -> None:
        """Count a measured trial (not one read back from the store)."""
        if steps > 0 and seconds > 0:
            self.trained_steps += steps
            self.trained_s += seconds

    def seconds_per_step(self) -> float:
        if self.trained_steps:
            return self.trained_s / self.trained_steps
        return self.fallback_seconds_per_step

    def estimate(self, steps: float) -> float:
        return steps * self.seconds_per_step()

    def fits(self, steps: float, reserve_s: float = 0.0) -> bool:
        """Whether ``steps`` more training steps end before the budget, leaving ``reserve_s`` seconds."""
        return self.estimate(steps) + reserve_s <= self.left()

    def steps_that_fit(self, reserve_s: float = 0.0) -> int:
        """Training steps that fit in the time left after ``reserve_s`` (a large number without a budget)."""
        seconds = self.seconds_per_step()
        room = self.left() - reserve_s
        if not math.isfinite(room) or seconds <= 0:
            return 10**9
        return max(0, int(room / seconds))
