"""The moderation service on real PostgreSQL with the real detectors: verdicts, and each failure path by
injected detector faults (fail once, fail three times, hang past the timeout, open circuit)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from marketplace.db import create_pool
from moderation import store
from moderation.breaker import CircuitBreaker
from moderation.detectors import Detector, FaultyDetector, GuardedDetector
from moderation.model import Detection
from moderation.service import ModerationService, RetryRequest
from moderation.settings import ModerationSettings
from tests.moderation.conftest import Listing


class Queue:
    def __init__(self) -> None:
        self.requests: list[RetryRequest] = []

    async def put(self, request: RetryRequest) -> None:
        self.requests.append(request)


class Harness:
    def __init__(self, listing: Listing, service: ModerationService, queue: Queue, sleeps: list[float]) -> None:
        self.listing, self.service, self.queue, self.sleeps = listing, service, queue, sleeps

    @property
    def counters(self) -> Any:
        return self.service.counters


@pytest.fixture
async def harness_factory(
    listing_factory: Callable[[], Listing], model_detector: Detector
) -> AsyncIterator[Callable[..., Harness]]:
    listing = listing_factory()
    pool = create_pool(listing.database_url, max_size=2)
    await pool.open()

    def build(
        fault: str | None = None, *, timeout_s: float = 2.0, breaker_failures: int = 5, hang_s: float = 1.0
    ) -> Harness:
        settings = ModerationSettings(
            database_url=listing.database_url, retry_backoff_s=4, max_attempts=3, detector_timeout_s=timeout_s,
        )  # fmt: skip
        detector: Detector = model_detector
        if fault:
            mode, _, count = fault.partition(":")
            detector = FaultyDetector(model_detector, mode, int(count), hang_s=hang_s)
        guarded = GuardedDetector(detector, timeout_s=timeout_s, breaker=CircuitBreaker(breaker_failures, 60))
        queue, sleeps = Queue(), []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        service = ModerationService(pool, guarded, settings, queue, clock=lambda: 1000.0, sleep=sleep)
        return Harness(listing, service, queue, sleeps)

    yield build
    await pool.close()


async def test_verdicts_are_written_with_reason_redaction_and_audit(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory()
    clean = h.listing.question("Does it have a clean title?")
    phone = h.listing.question("Call me at 415-867-5309 about it")
    rude = h.listing.question("f u c k this overpriced junk")
    assert await h.service.on_submitted("question", clean) == "approved"
    assert await h.service.on_submitted("question", phone) == "approved"
    assert await h.service.on_submitted("question", rude) == "rejected"
    row = h.listing.item("question", phone)
    assert (row["body"], row["flagged"], row["review_reason"]) == ("Call me at [phone removed] about it", True,
                                                                   "contact_details")  # fmt: skip
    assert h.listing.item("question", rude)["reason"].startswith("Rejected: it contains offensive language")
    assert h.listing.item("question", clean)["status"] == "approved"
    # Replays change nothing: the item no longer waits for the models.
    assert await h.service.on_submitted("question", rude) == "skipped"
    audit = h.listing.sql("SELECT action, actor_id, before->>'status', after->>'status' FROM moderation_audit "
                          "WHERE item_id = %s", (phone,))  # fmt: skip
    assert audit == [("verdict", None, "pending", "approved")]


async def test_fail_once_goes_to_pending_review_and_the_retry_publishes(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory("error:1")
    item = h.listing.question("Is the spare tire included?")
    assert await h.service.on_submitted("question", item) == "retrying"
    row = h.listing.item("question", item)
    assert (row["status"], row["attempts"], row["review_reason"], row["flagged"]) == ("pending_review", 1,
                                                                                      "retrying", False)  # fmt: skip
    assert "injected detector fault" in row["last_error"]
    [request] = h.queue.requests
    assert (request.kind, request.item_id, request.attempts, request.not_before) == ("question", item, 1, 1004.0)
    assert "injected" in request.error
    assert await h.service.on_retry(RetryRequest.decode(request.encode())) == "approved"
    assert h.sleeps == [4.0]  # waited for the back-off
    assert h.listing.item("question", item)["status"] == "approved"
    assert await h.service.on_retry(request) == "stale"  # a duplicate dead letter does nothing
    c = h.counters
    assert (c["moderation_detector_errors"], c["moderation_dead_lettered"], c["moderation_retries_recovered"]) == (
        1,
        1,
        1,
    )


async def test_three_failures_flag_the_item_for_a_human(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory("error:3")
    item = h.listing.question("Any rust underneath?")
    assert await h.service.on_submitted("question", item) == "retrying"
    assert await h.service.on_retry(h.queue.requests[-1]) == "retrying"
    assert await h.service.on_retry(h.queue.requests[-1]) == "flagged"
    assert [r.attempts for r in h.queue.requests] == [1, 2]
    assert h.sleeps == [4.0, 8.0]  # back-off doubles
    row = h.listing.item("question", item)
    assert (row["status"], row["attempts"], row["flagged"], row["review_reason"]) == ("pending_review", 3, True,
                                                                                      "moderation_failed")  # fmt: skip
    assert row["reason"] == "Awaiting review: automatic moderation is delayed."
    assert h.counters["moderation_flagged_after_failures"] == 1


async def test_a_hung_detector_times_out_into_the_failure_path(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory("hang:1", timeout_s=0.2, hang_s=1.0)
    item = h.listing.question("Where was it serviced?")
    assert await h.service.on_submitted("question", item) == "retrying"
    assert "timed out after 0.2s" in h.listing.item("question", item)["last_error"]
    assert h.counters["moderation_detector_timeouts"] == 1
    assert await h.service.on_retry(h.queue.requests[-1]) == "approved"


async def test_an_open_circuit_fails_fast_without_calling_the_models(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory("error:5", breaker_failures=2)
    items = [h.listing.question(f"Question {n}?") for n in range(3)]
    for item in items:
        assert await h.service.on_submitted("question", item) == "retrying"
    assert h.counters["moderation_detector_errors"] == 2
    assert h.counters["moderation_circuit_rejected"] == 1
    assert h.counters["moderation_circuit_opened"] == 1
    assert "circuit open" in h.listing.item("question", items[2])["last_error"]


async def test_a_moderator_decision_wins_over_a_pending_retry(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory("error:1")
    item = h.listing.question("Clean carfax?")
    await h.service.on_submitted("question", item)
    async with h.service.pool.connection() as conn:
        before = await store.get_item(conn, "question", item, lock=True)
        assert before is not None
        await store.decide(conn, "question", before, {"status": "rejected", "reason": "off topic"},
                           h.listing.moderator_id, "reject", "off topic")  # fmt: skip
    assert await h.service.on_retry(h.queue.requests[-1]) == "stale"
    assert h.listing.item("question", item)["status"] == "rejected"


async def test_financial_data_found_at_submission_rejects(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory()
    item = h.listing.question("pay with [card number removed]")
    h.listing.sql("UPDATE questions SET redactions = '{CREDIT_CARD}' WHERE id = %s", (item,))
    assert await h.service.on_submitted("question", item) == "rejected"
    assert h.listing.item("question", item)["review_reason"] == "financial_data"


def test_detection_scores_are_json_ready() -> None:
    assert Detection(profanity=0.5, toxicity=0.25).scores() == {"profanity": 0.5, "pii": [], "toxicity": 0.25}
