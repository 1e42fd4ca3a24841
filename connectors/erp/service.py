"""The ERP connector: snapshot once, then poll the trigger-fed change log, publish, and only then advance.

Loop: read `change_id > high` (keyset, `erp_batch_max` rows) and the rows of open gaps; keep only ids never sent;
publish them as Debezium Oracle events; wait until Kafka acknowledged all of them; then advance the in-memory
high-water mark and gaps, and store them in HUB_CAPTURE_STATE at most every `erp_state_interval_s`. A crash at any
point restarts from the stored state: changes are sent again (consumers ignore positions they have seen), none are
lost. An ERP that cannot be reached trips the circuit breaker: exponential back-off with jitter, health degraded
with the reason, nothing else waits on it. A Kafka failure restarts the producer the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaError

from connectors.erp.breaker import CircuitBreaker
from connectors.erp.dialects import ErpUnavailable
from connectors.erp.envelope import StockEvents
from connectors.erp.gaps import GapTracker
from connectors.erp.health import ErpHealth, serve_health
from connectors.erp.settings import ErpConnectorSettings
from connectors.erp.source import ChangeRow, ErpSource, SqlErpSource, StoredState
from connectors.postgres.envelope import Record
from connectors.postgres.publisher import KafkaPublisher, Publisher

log = logging.getLogger(__name__)

MAX_STORED_GAPS = 48  # keeps HUB_CAPTURE_STATE.GAPS under its 4,000 characters


class KafkaUnavailable(ConnectionError):
    pass


class ErpCapture:
    """One connector's capture state and its steps; the caller owns the loop, the breaker and the publisher."""

    def __init__(
        self, settings: ErpConnectorSettings, source: ErpSource, publisher: Publisher, health: ErpHealth
    ) -> None:
        self.settings = settings
        self.source = source
        self.publisher = publisher
        self.health = health
        dsn = settings.dsn
        self.events = StockEvents(
            prefix=settings.erp_topic_prefix,
            database=(dsn.database or dsn.dialect).upper(),
            schema=settings.erp_schema,
            table=settings.erp_table,
            key_columns=settings.erp_key_columns,
            schemas_enable=settings.erp_schemas_enable,
        )
        self.tracker: GapTracker | None = None
        self._stored: tuple[int, list[list[float]]] | None = None
        self._stored_at = 0.0
        self._purged_at = time.monotonic()

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(function, *args)

    async def _deliver(self, records: list[Record]) -> None:
        if not records:
            return
        try:
            delivery = await self.publisher.publish(records)
            await asyncio.wait_for(delivery, self.settings.erp_ack_timeout_s)
        except (KafkaError, TimeoutError) as exc:
            raise KafkaUnavailable(f"Kafka did not acknowledge {len(records)} records: {exc!r}") from exc
        self.health.count("records_published", len(records))

    # --- start: stored state, or a snapshot ------------------------------------------------------------

    async def start(self) -> None:
        s = self.settings
        stored = await self._call(self.source.load_state, s.erp_capture_name)
        if stored is not None:
            self.tracker = GapTracker.from_state(stored.high_water, stored.gaps, s.erp_gap_window_s)
            self._stored = self.tracker.to_state()
            log.info("resuming after change %d (%d open gaps)", stored.high_water, len(stored.gaps))
            return
        await self.snapshot()

    async def snapshot(self) -> None:
        """Every stock record as op `r` at position P, then stream from P.

        P is `erp_snapshot_lookback_ids` before the newest change id: a transaction still open while the snapshot
        reads commits with an id above P (within the window), so streaming from P sends it; the changes in between
        that the snapshot already holds are sent again, in order, which changes nothing in the end."""
        s = self.settings
        newest = await self._call(self.source.max_change_id)
        position = max(0, newest - s.erp_snapshot_lookback_ids)
        chunks = self.source.stock_snapshot(s.erp_snapshot_fetch_rows)
        rows = 0
        pending: list[dict[str, Any]] | None = await self._call(next, chunks, None)
        while pending is not None:
            following = await self._call(next, chunks, None)
            last = following is None
            records = [
                self.events.read(row, position, last=last and i == len(pending) - 1) for i, row in enumerate(pending)
            ]
            await self._deliver(records)
            rows += len(pending)
            pending = following
        self.tracker = GapTracker(high=position, window_s=s.erp_gap_window_s)
        await self._store(force=True)
        log.info("snapshot of %d stock records sent at position %d; streaming from there", rows, position)
        self.health.count("snapshot_rows", rows)

    # --- streaming --------------------------------------------------------------------------------------

    async def poll(self) -> int:
        """One poll: read, publish, wait for the acknowledgement, advance. Returns the rows read forward."""
        if self.tracker is None:
            await self.start()
        assert self.tracker is not None  # noqa: S101 - set by start()
        s = self.settings
        now = time.time()
        tracker = self.tracker.copy()
        forward: list[ChangeRow] = await self._call(self.source.changes_after, tracker.high, s.erp_batch_max)
        late: list[ChangeRow] = []
        for gap in tracker.open_gaps(s.erp_gap_queries_max):
            late += await self._call(self.source.changes_between, gap.lo, gap.hi)
        rows = {row.change_id: row for row in [*late, *forward]}
        fresh = tracker.accept(rows, now)
        for gap in tracker.expire(now):
            log.warning("change ids %d..%d not committed within %.0fs: taken as rolled back", gap.lo, gap.hi,
                        s.erp_gap_window_s)  # fmt: skip
        tracker.compact(MAX_STORED_GAPS)
        records: list[Record] = []
        for change_id in fresh:  # in id order: one row's changes keep their commit order
            records += self.events.change(rows[change_id])
        await self._deliver(records)
        self.tracker = tracker  # acknowledged: the high-water mark may advance
        self.health.count("changes_captured", len(fresh))
        self.health.count("late_changes_captured", sum(1 for row in late if row.change_id in set(fresh)))
        self.health.high_water, self.health.open_gaps = tracker.high, len(tracker.gaps)
        self.health.last_poll_at = now
        await self._store()
        await self._purge()
        return len(forward)

    async def _store(self, *, force: bool = False) -> None:
        if self.tracker is None:
            return
        state = self.tracker.to_state()
        due = time.monotonic() - self._stored_at >= self.settings.erp_state_interval_s
        if state == self._stored or not (force or due):
            return
        await self._call(self.source.save_state, self.settings.erp_capture_name, StoredState(*state))
        self._stored, self._stored_at = state, time.monotonic()

    async def _purge(self) -> None:
        s = self.settings
        if s.erp_purge_interval_s <= 0 or self._stored is None:
            return
        if time.monotonic() - self._purged_at < s.erp_purge_interval_s:
            return
        self._purged_at = time.monotonic()
        stored = GapTracker.from_state(*self._stored, s.erp_gap_window_s)
        up_to = stored.settled - s.erp_purge_keep_ids
        if up_to > 0:
            purged = await self._call(self.source.purge, up_to)
            if purged:
                log.info("purged %d captured change-log rows up to change %d", purged, up_to)

    async def flush_state(self) -> None:
        with contextlib.suppress(ErpUnavailable):
            await self._store(force=True)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))


class ErpConnector:
    """The loop around `ErpCapture`: one breaker for the ERP, one for Kafka; failures wait, never spin."""

    def __init__(self, settings: ErpConnectorSettings, source: ErpSource, health: ErpHealth) -> None:
        self.settings = settings
        self.source = source
        self.health = health
        backoff = (settings.erp_backoff_initial_s, settings.erp_backoff_max_s)
        self.erp_breaker = CircuitBreaker(*backoff, settings.erp_breaker_failures)
        self.kafka_breaker = CircuitBreaker(*backoff, 1)
        self.publisher: KafkaPublisher | None = None
        self.capture: ErpCapture | None = None

    async def step(self) -> float:
        """One poll (or one wait); returns how long to wait before the next step."""
        now = time.monotonic()
        wait = max(self.erp_breaker.wait_s(now), self.kafka_breaker.wait_s(now))
        if wait > 0:
            return wait
        try:
            if self.publisher is None:
                self.publisher = await _start_publisher(self.settings, self.settings.require_bootstrap())
                self.capture = None
            if self.capture is None:
                self.capture = ErpCapture(self.settings, self.source, self.publisher, self.health)
                await self.capture.start()
            read = await self.capture.poll()
        except ErpUnavailable as exc:
            return self._failed("erp", self.erp_breaker, exc)
        except (KafkaUnavailable, KafkaError, OSError) as exc:
            await self._drop_publisher()
            return self._failed("kafka", self.kafka_breaker, exc)
        self._succeeded()
        return 0.0 if read >= self.settings.erp_batch_max else self.settings.erp_poll_interval_ms / 1000

    def _failed(self, component: str, breaker: CircuitBreaker, exc: BaseException) -> float:
        now = time.monotonic()
        delay = breaker.failure(now, str(exc))
        state = breaker.state_at(now)
        self.health.degraded(component, str(exc))
        self.health.breaker, self.health.failures = state.value, breaker.failures
        self.health.count(f"{component}_failures")
        # One line per failure, each after a growing delay: a few per minute once the breaker is open.
        log.warning("%s unavailable (%s); breaker %s, next try in %.1fs", component, exc, state.value, delay)
        return delay

    def _succeeded(self) -> None:
        for name, breaker in (("ERP", self.erp_breaker), ("Kafka", self.kafka_breaker)):
            failed_for = time.monotonic() - breaker.since if breaker.since is not None else 0.0
            if breaker.success():
                log.info("%s reachable again after %.1fs; capture resumes", name, failed_for)
        self.health.ok()
        self.health.breaker, self.health.failures = "closed", 0

    async def _drop_publisher(self) -> None:
        if self.publisher is not None:
            with contextlib.suppress(Exception):
                await self.publisher.close()
        self.publisher = None

    async def close(self) -> None:
        if self.capture is not None:
            await self.capture.flush_state()
        await self._drop_publisher()
        self.source.close()


async def run_erp_connector(
    settings: ErpConnectorSettings,
    stop: asyncio.Event,
    *,
    source: ErpSource | None = None,
    health: ErpHealth | None = None,
) -> None:
    """Capture until `stop` is set. Never gives up on the ERP or Kafka: it backs off, reports, and retries."""
    health = health or ErpHealth()
    connector = ErpConnector(settings, source or SqlErpSource(settings.dsn, timeout_s=settings.erp_connect_timeout_s),
                             health)  # fmt: skip
    server = None
    if settings.erp_health_port:
        server = await serve_health(health, settings.erp_health_host, settings.erp_health_port)
    try:
        while not stop.is_set():
            wait = await connector.step()
            if wait > 0:
                await _wait(stop, wait)
    finally:
        await connector.close()
        if server is not None:
            server.close()
            await server.wait_closed()


async def _start_publisher(settings: ErpConnectorSettings, bootstrap: str) -> KafkaPublisher:
    publisher = KafkaPublisher(bootstrap, linger_ms=2)
    try:
        await publisher.start()
        await publisher.ensure_topics([settings.erp_topic], settings.topic_partitions)
    except BaseException:
        with contextlib.suppress(Exception):
            await publisher.close()
        raise
    return publisher
