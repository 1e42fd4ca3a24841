"""The moderation service: an item waiting in PostgreSQL -> detectors -> verdict, or the failure path.

Failure path (seed 000): a detector error or timeout leaves the item `pending_review`, and a retry request with
the attempt count and error goes to the dead-letter topic; the retry agent re-submits it after a back-off that
doubles per attempt; after `max_attempts` failures the item is flagged for a human. The database row is written
first and every write is conditional on the attempt count it saw, so a replayed change event or a duplicate
dead letter is harmless, and a moderator's decision in between always wins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import orjson
import psycopg
from psycopg_pool import AsyncConnectionPool

from marketplace.db import Connection
from moderation import store
from moderation.detectors import DetectionFailed, GuardedDetector
from moderation.model import KINDS, Kind
from moderation.settings import ModerationSettings
from moderation.verdict import REASONS, decide

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetryRequest:
    """A dead letter of the moderation agent: which item, how many attempts failed, why, and when to retry."""

    kind: Kind
    item_id: int
    attempts: int
    error: str
    not_before: float  # epoch seconds
    failed_at: float

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, value: bytes) -> RetryRequest:
        try:
            body = orjson.loads(value)
            kind = body["kind"]
            if kind not in KINDS:
                raise ValueError(f"unknown kind {kind!r}")
            return cls(
                kind, int(body["item_id"]), int(body["attempts"]), str(body["error"]),
                float(body["not_before"]), float(body["failed_at"]),
            )  # fmt: skip
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed retry request: {exc}") from exc


class RetryQueue(Protocol):
    """Where retry requests go (the dead-letter topic)."""

    async def put(self, request: RetryRequest) -> None: ...


class ModerationService:
    def __init__(
        self,
        pool: AsyncConnectionPool[Connection],
        detector: GuardedDetector,
        settings: ModerationSettings,
        retry_queue: RetryQueue,
        *,
        counters: Counter[str] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.pool = pool
        self.detector = detector
        self.settings = settings
        self.retry_queue = retry_queue
        self.counters = counters if counters is not None else detector.counters
        self.clock = clock
        self.sleep = sleep

    async def on_submitted(self, kind: Kind, item_id: int) -> str:
        """A change event showed the item `pending`: moderate it (or re-send its retry after a crash)."""
        row = await self._row(kind, item_id)
        if row is None or row["moderated_by"] is not None:
            return "skipped"
        if row["status"] == "pending":
            self.counters["moderation_submitted"] += 1
            return await self._moderate(row)
        if row["status"] == "pending_review" and row["review_reason"] == "retrying":
            # A replay after a crash between the row update and the dead letter: send it (again; duplicates
            # are harmless, the retry is conditional on the attempt count).
            await self._queue_retry(kind, item_id, int(row["attempts"]), row["last_error"] or "unknown")
            return "requeued"
        return "skipped"

    async def on_retry(self, request: RetryRequest) -> str:
        """A dead letter: wait for its back-off (and a closed breaker), then moderate again if still due."""
        delay = request.not_before - self.clock()
        if delay > 0:
            await self.sleep(delay)
        if not await self._still_due(request):
            self.counters["moderation_retries_stale"] += 1
            return "stale"
        while self.detector.breaker.state == "open":
            await self.sleep(min(1.0, max(0.05, self.detector.breaker.retry_at() - time.monotonic())))
        row = await self._row(request.kind, request.item_id)
        if row is None or not self._due(row, request):
            self.counters["moderation_retries_stale"] += 1
            return "stale"
        self.counters["moderation_retries"] += 1
        outcome = await self._moderate(row)
        if outcome in ("approved", "rejected", "pending_review"):
            self.counters["moderation_retries_recovered"] += 1
        return outcome

    async def _still_due(self, request: RetryRequest) -> bool:
        row = await self._row(request.kind, request.item_id)
        return row is not None and self._due(row, request)

    @staticmethod
    def _due(row: dict[str, Any], request: RetryRequest) -> bool:
        return (
            row["status"] == "pending_review"
            and row["review_reason"] == "retrying"
            and row["moderated_by"] is None
            and int(row["attempts"]) == request.attempts
        )

    async def _moderate(self, row: dict[str, Any]) -> str:
        kind: Kind = row["kind"]
        item_id, attempts = int(row["id"]), int(row["attempts"])
        try:
            detection = await self.detector.detect(row["body"])
        except DetectionFailed as exc:
            return await self._failed(kind, item_id, attempts + 1, str(exc))
        verdict = decide(row["body"], detection, self.settings, tuple(row["redactions"] or ()))
        async with self.pool.connection() as conn:
            applied = await store.apply_verdict(conn, kind, item_id, verdict, attempts=attempts)
        if applied is None:
            self.counters["moderation_verdicts_superseded"] += 1
            return "superseded"
        self.counters[f"moderation_{verdict.status}"] += 1
        if verdict.review_reason:
            self.counters[f"moderation_reason_{verdict.review_reason}"] += 1
        return verdict.status

    async def _failed(self, kind: Kind, item_id: int, attempts: int, error: str) -> str:
        final = attempts >= self.settings.max_attempts
        log.warning("moderation of %s %d failed (attempt %d, final=%s): %s", kind, item_id, attempts, final, error)
        self.counters["moderation_failed_attempts"] += 1
        async with self.pool.connection() as conn:
            updated = await store.record_failure(
                conn, kind, item_id, attempts=attempts, error=error, final=final, reason=REASONS["moderation_delayed"]
            )
        if updated is None:
            return "superseded"
        if final:
            self.counters["moderation_flagged_after_failures"] += 1
            return "flagged"
        await self._queue_retry(kind, item_id, attempts, error)
        return "retrying"

    async def _queue_retry(self, kind: Kind, item_id: int, attempts: int, error: str) -> None:
        now = self.clock()
        backoff = self.settings.retry_backoff_s * 2 ** (attempts - 1)
        await self.retry_queue.put(RetryRequest(kind, item_id, attempts, error, now + backoff, now))
        self.counters["moderation_dead_lettered"] += 1

    async def _row(self, kind: Kind, item_id: int) -> dict[str, Any] | None:
        async with self.pool.connection() as conn:
            return await store.get_item(conn, kind, item_id)


DATABASE_ERRORS = (psycopg.OperationalError, psycopg.errors.AdminShutdown)
