"""A circuit breaker in front of the detectors: after `failures` consecutive failures it opens and every call
fails fast for `cooldown_s`; then one trial call is let through (half-open), whose outcome closes or re-opens it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

State = Literal["closed", "open", "half_open"]


class CircuitOpen(RuntimeError):
    """The breaker is open: the detectors are not called until `retry_at`."""

    def __init__(self, retry_at: float) -> None:
        super().__init__("moderation models unavailable (circuit open)")
        self.retry_at = retry_at


class CircuitBreaker:
    def __init__(self, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() >= self.opened_at + self.cooldown_s else "open"

    def retry_at(self) -> float:
        """When a call may go through (now if closed)."""
        return self.clock() if self.opened_at is None else self.opened_at + self.cooldown_s

    def before_call(self) -> None:
        """Raises `CircuitOpen` while open, and while the half-open trial call is still running."""
        state = self.state
        if state == "open" or (state == "half_open" and self._trial_running):
            raise CircuitOpen(self.retry_at())
        self._trial_running = state == "half_open"

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        self.consecutive_failures += 1
        self._trial_running = False
        if self.opened_at is not None or self.consecutive_failures >= self.threshold:
            self.opened_at = self.clock()
