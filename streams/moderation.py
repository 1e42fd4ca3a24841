"""The moderation worker (`auction-hub moderation`): two Faust agents over one set of detectors, loaded once.

    <prefix>.public.questions ─┐
    <prefix>.public.answers   ─┴─► moderate_qna ─► verdict in PostgreSQL (the change flows on to the indexer)
                                        │ detector error / timeout / open circuit: pending review + dead letter
                                        ▼
    auction-hub.moderation-dead-letter ─► retry_moderation (back-off, then again; flagged after 3 failures)

Both agents only decode records and call `ModerationService`; the service writes PostgreSQL first and is
conditional on what it read, so an event replayed after a crash (offsets are committed after processing) or a
duplicate dead letter changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import faust
import psycopg
from faust.types import StreamT

from hub.topics import ensure_topics
from moderation.breaker import CircuitBreaker
from moderation.detectors import GuardedDetector, load_detector
from moderation.model import Kind
from moderation.service import ModerationService, RetryRequest
from moderation.settings import ModerationSettings
from schemas.debezium import InvalidChangeEvent, Op, parse_change_value
from streams.flow_control import ReplayingApp
from streams.kafka_transport import broker_url
from streams.metrics import WorkerMetrics

log = logging.getLogger(__name__)

RAW: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}


def pending_item(value: bytes | None) -> int | None:
    """The id of the item a change record shows waiting for moderation (inserted / read as `pending`)."""
    event = parse_change_value(value)
    if event is None or event.op not in (Op.CREATE, Op.READ, Op.UPDATE) or event.after is None:
        return None
    if event.after.get("status") != "pending" or event.after.get("id") is None:
        return None
    return int(event.after["id"])


class _PoolOwningApp(ReplayingApp):
    """Opens the database pool before the agents run and closes it after they stopped, on the worker's loop."""

    database_url: str
    pool: Any = None

    async def on_start(self) -> None:
        from marketplace.db import create_pool

        await super().on_start()
        self.pool = create_pool(self.database_url, max_size=4)
        await self.pool.open(wait=True, timeout=30)

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        if self.pool is not None:
            await self.pool.close()


class FaustRetryQueue:
    """The dead-letter topic as the service's retry queue."""

    def __init__(self, topic: faust.TopicT) -> None:
        self.topic = topic

    async def put(self, request: RetryRequest) -> None:
        await self.topic.send(key=f"{request.kind}:{request.item_id}".encode(), value=request.encode())


class ModerationApp:
    def __init__(self, settings: ModerationSettings, detector: GuardedDetector, metrics: WorkerMetrics) -> None:
        self.settings = settings
        self.detector = detector
        self.metrics = metrics
        self.app = _PoolOwningApp(
            settings.moderation_app_id,
            broker=broker_url(settings.require_bootstrap(), 50),
            store="memory://",
            topic_partitions=settings.topic_partitions,
            web_enabled=settings.moderation_metrics_port > 0,
            web_bind=settings.moderation_metrics_host,
            web_port=settings.moderation_metrics_port or 6067,
            web_in_thread=False,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
            producer_acks=-1,
        )
        self.app.database_url = settings.database_url
        self.kinds: dict[str, Kind] = {settings.change_topic("questions"): "question",
                                       settings.change_topic("answers"): "answer"}  # fmt: skip
        self.dead_letter_topic = self.app.topic(settings.moderation_dead_letter_topic, **RAW)
        self._service: ModerationService | None = None
        self.app.agent(self.app.topic(*self.kinds, **RAW), name="moderate_qna")(self.moderate_qna)
        self.app.agent(self.dead_letter_topic, name="retry_moderation")(self.retry_moderation)
        metrics_text = metrics.render

        async def metrics_page(view: Any, request: Any) -> Any:
            return view.text(metrics_text(), content_type="text/plain; version=0.0.4")

        self.app.page("/metrics")(metrics_page)
        self.app.on_rebalance_complete.connect(self._on_rebalance_complete)  # type: ignore[arg-type]

    def topics(self) -> list[str]:
        return [*self.kinds, self.settings.moderation_dead_letter_topic]

    @property
    def service(self) -> ModerationService:
        if self._service is None:
            self._service = ModerationService(
                self.app.pool, self.detector, self.settings, FaustRetryQueue(self.dead_letter_topic),
                counters=self.metrics.counters,
            )  # fmt: skip
        return self._service

    async def moderate_qna(self, stream: StreamT[bytes]) -> None:
        """Question and answer changes: each one inserted as `pending` gets a verdict or takes the failure path."""
        async for event in stream.events():
            kind = self.kinds[event.message.topic]
            try:
                item_id = pending_item(event.value)
            except InvalidChangeEvent as exc:
                log.error("skipping %s[%d]@%d: %s", event.message.topic, event.message.partition,
                          event.message.offset, exc)  # fmt: skip
                self.metrics.count("moderation_invalid_records")
                continue
            if item_id is not None:
                outcome = await self._with_database(partial(self.service.on_submitted, kind, item_id))
                log.info("%s %d: %s", kind, item_id, outcome)

    async def retry_moderation(self, stream: StreamT[bytes]) -> None:
        """Dead letters of `moderate_qna`, in order: wait out each back-off, then moderate again if still due."""
        async for event in stream.events():
            try:
                request = RetryRequest.decode(event.value or b"")
            except ValueError as exc:
                log.error("skipping dead letter @%d: %s", event.message.offset, exc)
                self.metrics.count("moderation_invalid_records")
                continue
            outcome = await self._with_database(partial(self.service.on_retry, request))
            log.info("retry of %s %d (attempt %d): %s", request.kind, request.item_id, request.attempts, outcome)

    async def _with_database(self, call: Callable[[], Awaitable[str]]) -> str:
        """While PostgreSQL is unreachable, retry: the record stays unacknowledged until it is handled."""
        delay = 0.5
        while True:
            try:
                return await call()
            except (psycopg.OperationalError, TimeoutError) as exc:
                self.metrics.count("moderation_database_errors")
                log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _on_rebalance_complete(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        self.metrics.ready = True


def build_moderation_app(settings: ModerationSettings) -> ModerationApp:
    """Loads the detectors (once), then builds the app; nothing connects until it runs."""
    metrics = WorkerMetrics()
    guarded = GuardedDetector(
        load_detector(settings),
        timeout_s=settings.detector_timeout_s,
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s),
        counters=metrics.counters,
    )
    return ModerationApp(settings, guarded, metrics)


def run_moderation_worker(settings: ModerationSettings) -> None:
    """Blocks until SIGINT/SIGTERM."""
    moderation = build_moderation_app(settings)
    asyncio.run(ensure_topics(settings.require_bootstrap(), moderation.topics(), settings.topic_partitions))
    worker = faust.Worker(moderation.app, loglevel=settings.log_level.lower(), redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()
