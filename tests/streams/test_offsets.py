"""The commit ledger: commit only over processed records; re-read holes; step over offsets with no record."""

from __future__ import annotations

from streams.offsets import MAX_REREADS, CommitDecision, ProcessedLedger

TP = ("vehicles", 0)


def test_consecutive_processed_offsets_commit() -> None:
    ledger = ProcessedLedger()
    ledger.record(TP, range(0, 5))
    assert ledger.decide(TP, None) == CommitDecision(5)
    ledger.record(TP, [5, 6])
    assert ledger.decide(TP, 5) == CommitDecision(7)
    assert ledger.decide(TP, 7) == CommitDecision(None)


def test_a_skipped_record_is_never_committed_over_and_is_read_again() -> None:
    ledger = ProcessedLedger()
    ledger.record(TP, [*range(0, 294), *range(295, 300)])  # 294 acknowledged by faust, never processed
    assert ledger.decide(TP, None) == CommitDecision(294, reread_from=294)
    assert ledger.decide(TP, 294) == CommitDecision(None, reread_from=294)
    ledger.record(TP, [294, 295])  # the re-read delivers it (and a duplicate)
    assert ledger.decide(TP, 294) == CommitDecision(300)


def test_a_hole_that_every_re_read_skips_holds_no_record() -> None:
    ledger = ProcessedLedger()
    ledger.record(TP, [10, 11, 13, 14])  # 12: a transaction marker, say
    decisions = [ledger.decide(TP, 10)] + [ledger.decide(TP, 12) for _ in range(MAX_REREADS - 1)]
    assert decisions[0] == CommitDecision(12, reread_from=12)
    assert all(decision == CommitDecision(None, reread_from=12) for decision in decisions[1:])
    assert ledger.decide(TP, 12) == CommitDecision(15)


def test_offsets_below_the_committed_one_are_forgotten() -> None:
    ledger = ProcessedLedger()
    ledger.record(TP, [1, 2, 3, 7])
    assert ledger.decide(TP, 7) == CommitDecision(8)
