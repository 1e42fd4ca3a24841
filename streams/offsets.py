"""Which offset the worker may commit: only past records its agents really processed.

faust commits what its streams acknowledged, and its streams also acknowledge records they *skip*: during
table recovery after a restart it resumes fetching, then seeks the stream partitions to their committed
offsets, and records delivered in between are dropped as "stale generation" yet acknowledged; the refetch
after the seek starts past them and faust records the hole as a gap it may commit over. Measured: the
kill -9 test lost one to seventy records in one run out of ten to twenty.

So the worker keeps its own ledger. Agents report each record once its batch is written to the index; the
commit advances over consecutive processed offsets only. A hole below processed records means a record was
skipped: the partition is re-read from the hole once (duplicates are harmless, documents carry positions),
and a hole that is still there after that re-read holds no record (a transaction marker, a compacted
record) and is stepped over.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field


@dataclass
class CommitDecision:
    """`offset`: commit it (None: nothing new); `reread_from`: seek there to fetch skipped records again."""

    offset: int | None
    reread_from: int | None = None


# Commit cycles a hole must survive, re-read each time, before it counts as holding no record (faust commits
# every few seconds: about half a minute; a skipped record comes back within a fetch).
MAX_REREADS = 10


@dataclass
class ProcessedLedger:
    """Processed offsets per partition, above the committed one."""

    processed: defaultdict[Hashable, set[int]] = field(default_factory=lambda: defaultdict(set))
    # partition -> (hole offset, re-reads so far)
    rereads: dict[Hashable, tuple[int, int]] = field(default_factory=dict)

    def record(self, partition: Hashable, offsets: Iterable[int]) -> None:
        self.processed[partition].update(offsets)

    def tracks(self, partition: Hashable) -> bool:
        return partition in self.processed

    def decide(self, partition: Hashable, committed: int | None) -> CommitDecision:
        """The offset to commit for `partition` (Kafka's meaning: the next one to read)."""
        done = self.processed[partition]
        if committed is not None:
            done.difference_update([offset for offset in done if offset < committed])
        if not done:
            return CommitDecision(None)
        next_offset = committed if committed is not None else min(done)
        while True:
            while next_offset in done:
                done.discard(next_offset)
                next_offset += 1
            if not done:
                self.rereads.pop(partition, None)
                return CommitDecision(None if next_offset == committed else next_offset)
            hole, attempts = self.rereads.get(partition, (next_offset, 0))
            if hole != next_offset:
                attempts = 0
            if attempts >= MAX_REREADS:
                next_offset += 1  # re-read again and again, never delivered: no record there
                continue
            self.rereads[partition] = (next_offset, attempts + 1)
            return CommitDecision(None if next_offset == committed else next_offset, reread_from=next_offset)
