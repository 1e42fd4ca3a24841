"""Gap tracking and the circuit breaker: pure rules, no servers."""

from __future__ import annotations

import random

from connectors.erp.breaker import BreakerState, CircuitBreaker
from connectors.erp.gaps import Gap, GapTracker


def test_skipped_ids_stay_open_until_they_commit() -> None:
    tracker = GapTracker(window_s=60)
    assert tracker.accept([1, 2, 5, 6], now=0) == [1, 2, 5, 6]
    assert tracker.gaps == [Gap(3, 4, 0)]
    assert tracker.settled == 2
    assert tracker.accept([4], now=1) == [4]  # committed late, with a lower id
    assert tracker.gaps == [Gap(3, 3, 0)]
    assert tracker.accept([4, 5, 6], now=2) == []  # duplicates and old ids are dropped
    assert tracker.accept([3, 7], now=3) == [3, 7]
    assert tracker.gaps == []
    assert tracker.settled == tracker.high == 7


def test_a_gap_splits_when_its_middle_commits() -> None:
    tracker = GapTracker(high=10)
    tracker.accept([20], now=0)
    tracker.accept([15], now=1)
    assert tracker.gaps == [Gap(11, 14, 0), Gap(16, 19, 0)]


def test_gaps_past_the_window_are_given_up() -> None:
    tracker = GapTracker(window_s=30)
    tracker.accept([1, 3], now=0)
    tracker.accept([6], now=20)
    assert [(g.lo, g.hi) for g in tracker.expire(now=31)] == [(2, 2)]
    assert tracker.gaps == [Gap(4, 5, 20)]
    assert tracker.given_up == 1


def test_compaction_bounds_the_stored_gaps_and_keeps_every_open_id() -> None:
    tracker = GapTracker()
    tracker.accept(range(0, 200, 2), now=0)  # 99 one-id gaps
    open_before = {i for g in tracker.gaps for i in range(g.lo, g.hi + 1)}
    tracker.compact(10)
    assert len(tracker.gaps) == 10
    open_after = {i for g in tracker.gaps for i in range(g.lo, g.hi + 1)}
    assert open_before <= open_after


def test_state_round_trip() -> None:
    tracker = GapTracker(window_s=5)
    tracker.accept([1, 4, 9], now=7.5)
    again = GapTracker.from_state(*tracker.to_state(), window_s=5)
    assert (again.high, again.gaps) == (tracker.high, tracker.gaps)


def test_breaker_opens_after_the_threshold_and_backs_off_with_jitter() -> None:
    breaker = CircuitBreaker(initial_delay_s=0.5, max_delay_s=8, threshold=3, rng=random.Random(1))
    delays = [breaker.failure(now=float(i), reason="refused") for i in range(8)]
    assert breaker.state_at(7.0) is BreakerState.OPEN
    for attempt, delay in enumerate(delays, start=1):
        cap = min(8, 0.5 * 2 ** (attempt - 1))
        assert cap / 2 <= delay <= cap
    assert max(delays) <= 8
    assert not breaker.allows(7.0)
    assert breaker.allows(7.0 + delays[-1])
    assert breaker.state_at(7.0 + delays[-1]) is BreakerState.HALF_OPEN
    assert breaker.success() is True
    assert breaker.state_at(100) is BreakerState.CLOSED
    assert breaker.reason is None


def test_breaker_stays_closed_below_the_threshold() -> None:
    breaker = CircuitBreaker(threshold=3)
    breaker.failure(now=0, reason="timeout")
    assert breaker.state_at(0) is BreakerState.CLOSED
    assert breaker.success() is False
