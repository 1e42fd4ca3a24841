"""Exponential back-off with full jitter behind a circuit breaker: how the connector treats an unreachable ERP.

closed  - calls go through; a failure waits a short, growing, jittered delay before the next try.
open    - after `threshold` failures in a row: no call until the delay has passed (the health says why).
half-open - the delay passed: one trial call; success closes the breaker, failure opens it again, longer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    initial_delay_s: float = 0.5
    max_delay_s: float = 30.0
    threshold: int = 3
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0
    reason: str | None = None
    since: float | None = None  # when the current run of failures began
    next_try: float = 0.0
    _opened: bool = False

    def state_at(self, now: float) -> BreakerState:
        if not self._opened:
            return BreakerState.CLOSED
        return BreakerState.OPEN if now < self.next_try else BreakerState.HALF_OPEN

    def delay(self) -> float:
        """Full jitter: uniform in [cap/2, cap], cap doubling per failure up to the maximum."""
        cap = min(self.max_delay_s, self.initial_delay_s * 2 ** max(0, self.failures - 1))
        return self.rng.uniform(cap / 2, cap)

    def allows(self, now: float) -> bool:
        return now >= self.next_try

    def wait_s(self, now: float) -> float:
        return max(0.0, self.next_try - now)

    def failure(self, now: float, reason: str) -> float:
        """Record a failed call; returns how long to wait before the next one."""
        if self.failures == 0:
            self.since = now
        self.failures += 1
        self.reason = reason
        if self.failures >= self.threshold:
            self._opened = True
        wait = self.delay()
        self.next_try = now + wait
        return wait

    def success(self) -> bool:
        """Record a successful call; True when this closed an open breaker (a recovery)."""
        recovered = self._opened
        self.failures = 0
        self.reason = None
        self.since = None
        self.next_try = 0.0
        self._opened = False
        return recovered

    @property
    def is_open(self) -> bool:
        return self._opened
