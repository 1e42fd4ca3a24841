"""Which change-log rows are captured, and which may still commit late: the polling source's bookkeeping.

A change id comes from a sequence when the trigger fires, but transactions commit in their own order: a long
transaction holding id 10 may commit after ids 11..500 were read. A plain `change_id > high_water` poll would skip
it for ever (the JDBC source connector's known loss). Here every id that was skipped over is kept as an open gap
and asked for again at each poll until its row appears or the safety window passes (a rolled-back transaction,
or a sequence cache lost at an instance restart, never fills its ids). No clock of the database is needed.

State = `high` (every id <= high was either captured or is in `gaps`) + `gaps` ([lo, hi, first_seen] ranges).
It is persisted only after Kafka acknowledged every record up to it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Gap:
    lo: int
    hi: int
    since: float  # when it was first seen (connector clock, seconds)

    def __contains__(self, change_id: int) -> bool:
        return self.lo <= change_id <= self.hi


@dataclass
class GapTracker:
    """Pure bookkeeping over change ids; the caller reads rows and hands their ids in, in any order."""

    high: int = 0
    gaps: list[Gap] = field(default_factory=list)
    window_s: float = 60.0
    given_up: int = 0  # ids abandoned after the window (counted for metrics)

    def copy(self) -> GapTracker:
        return GapTracker(self.high, [Gap(g.lo, g.hi, g.since) for g in self.gaps], self.window_s, self.given_up)

    def accept(self, change_ids: Iterable[int], now: float) -> list[int]:
        """Record ids just read; returns those not captured before (duplicates and old ids are dropped)."""
        fresh: list[int] = []
        for change_id in sorted(set(change_ids)):
            if change_id > self.high:
                if change_id > self.high + 1:
                    self.gaps.append(Gap(self.high + 1, change_id - 1, now))
                self.high = change_id
                fresh.append(change_id)
            elif self._fill(change_id):
                fresh.append(change_id)
        return fresh

    def _fill(self, change_id: int) -> bool:
        for index, gap in enumerate(self.gaps):
            if change_id in gap:
                pieces = [Gap(lo, hi, gap.since) for lo, hi in ((gap.lo, change_id - 1), (change_id + 1, gap.hi))]
                self.gaps[index : index + 1] = [piece for piece in pieces if piece.lo <= piece.hi]
                return True
        return False

    def expire(self, now: float) -> list[Gap]:
        """Give up gaps older than the safety window: their transactions rolled back (or ids were never used)."""
        expired = [gap for gap in self.gaps if now - gap.since > self.window_s]
        if expired:
            self.gaps = [gap for gap in self.gaps if now - gap.since <= self.window_s]
            self.given_up += sum(gap.hi - gap.lo + 1 for gap in expired)
        return expired

    def open_gaps(self, limit: int) -> list[Gap]:
        """The oldest `limit` open gaps (each is one keyset query)."""
        return self.gaps[:limit]

    def compact(self, max_gaps: int) -> None:
        """Merge the closest neighbouring gaps until at most `max_gaps` remain (the stored state stays small).

        A merged gap also covers ids already captured between its parts; they are read and sent again if they
        are asked for, which consumers ignore (their positions are not newer). Nothing is lost."""
        while len(self.gaps) > max_gaps:
            index = min(range(len(self.gaps) - 1), key=lambda i: self.gaps[i + 1].lo - self.gaps[i].hi)
            first, second = self.gaps[index], self.gaps[index + 1]
            self.gaps[index : index + 2] = [Gap(first.lo, second.hi, min(first.since, second.since))]

    @property
    def settled(self) -> int:
        """Every id up to this is captured or given up: the change log may be purged up to it."""
        return min([gap.lo - 1 for gap in self.gaps] + [self.high])

    def to_state(self) -> tuple[int, list[list[float]]]:
        return self.high, [[gap.lo, gap.hi, gap.since] for gap in self.gaps]

    @classmethod
    def from_state(cls, high: int, gaps: list[list[float]], window_s: float) -> GapTracker:
        return cls(high, [Gap(int(lo), int(hi), float(since)) for lo, hi, since in gaps], window_s)
