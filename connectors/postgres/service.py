"""The connector: snapshot, then stream; publish to Kafka; confirm the slot only after Kafka acknowledged.

Acknowledgement bookkeeping: records are published in chunks, in WAL order. Each chunk remembers the end
LSN of the last transaction that was complete when the chunk was cut; when chunks are acknowledged in
order, that LSN is confirmed to the slot. A crash at any point therefore replays from a transaction
boundary whose records all reached Kafka: duplicates are possible, loss is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import Any

import psycopg
import psycopg2
from aiokafka.errors import KafkaError

from connectors.postgres.envelope import Column, Position, Record, TableEvents, heartbeat
from connectors.postgres.pgoutput import (
    Begin,
    Commit,
    Delete,
    Insert,
    Relation,
    Truncate,
    Update,
    decode_message,
    format_lsn,
)
from connectors.postgres.publisher import KafkaPublisher, Publisher
from connectors.postgres.replication import ReplicationStream, SourceCatalog, SourceError
from connectors.postgres.settings import PostgresConnectorSettings
from connectors.postgres.snapshot import SnapshotReader, snapshot_tables
from connectors.postgres.values import Converter

log = logging.getLogger(__name__)

_IDLE_WAIT_S = 0.2
_FEEDBACK_INTERVAL_S = 0.2


class _Acks:
    """Published chunks in order, each with the LSN that becomes safe to confirm once it is delivered."""

    def __init__(self, max_inflight: int) -> None:
        self._inflight: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._max_inflight = max_inflight
        self.confirmed = 0

    def __len__(self) -> int:
        return len(self._inflight)

    def add(self, lsn: int, delivery: asyncio.Future[None]) -> None:
        self._inflight.append((lsn, delivery))

    def collect(self) -> int:
        """Pop delivered chunks; raise the first delivery error. Returns the LSN safe to confirm."""
        inflight = self._inflight
        while inflight and inflight[0][1].done():
            lsn, delivery = inflight.popleft()
            delivery.result()
            if lsn > self.confirmed:
                self.confirmed = lsn
        return self.confirmed

    async def throttle(self) -> None:
        while len(self._inflight) > self._max_inflight:
            await asyncio.wait([self._inflight[0][1]])
            self.collect()

    async def drain(self) -> int:
        while self._inflight:
            await asyncio.wait([self._inflight[0][1]])
            self.collect()
        return self.confirmed


class ChangeCapture:
    """Turns the pgoutput stream of one slot into Debezium records and keeps the slot's position honest."""

    def __init__(
        self,
        settings: PostgresConnectorSettings,
        catalog: SourceCatalog,
        publisher: Publisher,
        database: str,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self._publisher = publisher
        self._database = database
        self._relations: dict[int, TableEvents] = {}
        self._converters: dict[int, tuple[Converter, ...]] = {}
        self._topics: set[str] = set()
        self._acks = _Acks(settings.pg_max_inflight_batches)
        self._pending: list[Record] = []
        self._in_txn = False
        self._xid = 0
        self._commit_ts_us = 0
        self._last_commit_lsn: int | None = None
        self._completed_lsn = 0
        self._queued_lsn = 0
        self._sent_lsn = 0
        self._sent_at = 0.0
        self.changes = 0

    def table_events(self, schema: str, table: str, columns: list[Column]) -> TableEvents:
        return TableEvents(
            prefix=self._settings.topic_prefix,
            database=self._database,
            schema=schema,
            table=table,
            columns=columns,
            schemas_enable=self._settings.pg_schemas_enable,
            decimal_mode=self._settings.pg_decimal_handling_mode,
        )

    async def ensure_topics(self, tables: list[TableEvents]) -> None:
        s = self._settings
        await self._publisher.ensure_topics([t.topic for t in tables], s.topic_partitions)
        await self._publisher.ensure_topics([s.heartbeat_topic], 1)
        self._topics.update(t.topic for t in tables)

    # --- snapshot -------------------------------------------------------------------------------------

    async def snapshot(self, reader: SnapshotReader, tables: list[TableEvents], lsn: int, stop: asyncio.Event) -> bool:
        """Publish every row as op `r`; True once all are acknowledged, False if stopped first."""
        at = Position(lsn, None, time.time_ns() // 1000, await reader.xmin(), "true")
        last = Position(at.lsn, None, at.commit_ts_us, at.tx_id, "last")
        batch_max = self._settings.pg_batch_max
        rows = 0
        async for table, raw, is_last in snapshot_tables(reader, tables):
            self._pending.append(table.read(table.convert(raw), last if is_last else at))
            rows += 1
            if len(self._pending) >= batch_max:
                await self._publish_pending(0, bulk=True)
                if stop.is_set():
                    return False
        await self._publish_pending(0, bulk=True)
        await self._acks.drain()  # every bulk record acknowledged before streaming publishes through the other producer
        log.info("snapshot complete: %d rows from %d tables", rows, len(tables))
        return True

    # --- streaming ------------------------------------------------------------------------------------

    async def _publish_pending(self, lsn: int, *, bulk: bool = False) -> None:
        if self._pending:
            records, self._pending = self._pending, []
            self._acks.add(lsn, await self._publisher.publish(records, bulk=bulk))
            self.changes += len(records)
        elif lsn > self._queued_lsn:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            self._acks.add(lsn, done)
        self._queued_lsn = max(self._queued_lsn, lsn)
        await self._acks.throttle()

    async def _on_relation(self, relation: Relation) -> None:
        known = {c.name: c for c in await self._catalog.relation_columns(relation.relation_id)}
        columns = [
            Column(
                c.name,
                c.type_oid,
                c.type_modifier,
                known[c.name].is_key if c.name in known else c.is_key,
                known[c.name].optional if c.name in known else True,
            )
            for c in relation.columns
        ]
        table = self.table_events(relation.namespace, relation.name, columns)
        if table.topic not in self._topics:
            await self.ensure_topics([table])
        self._relations[relation.relation_id] = table
        self._converters[relation.relation_id] = table.converters

    async def apply(self, messages: list[Any]) -> None:
        """Decode a run of replication messages into pending records."""
        pending = self._pending
        relations = self._relations
        converters = self._converters
        for message in messages:
            decoded = decode_message(message.payload, converters)
            if isinstance(decoded, Insert):
                at = Position(message.data_start, self._last_commit_lsn, self._commit_ts_us, self._xid)
                pending.append(relations[decoded.relation_id].insert(decoded.new, at))
            elif isinstance(decoded, Update):
                at = Position(message.data_start, self._last_commit_lsn, self._commit_ts_us, self._xid)
                table = relations[decoded.relation_id]
                pending.extend(table.update(decoded.new, decoded.old, decoded.old_is_key, at))
            elif isinstance(decoded, Delete):
                at = Position(message.data_start, self._last_commit_lsn, self._commit_ts_us, self._xid)
                pending.extend(relations[decoded.relation_id].delete(decoded.old, decoded.old_is_key, at))
            elif isinstance(decoded, Begin):
                self._in_txn = True
                self._xid = decoded.xid
                self._commit_ts_us = decoded.commit_ts_us
            elif isinstance(decoded, Commit):
                self._in_txn = False
                self._last_commit_lsn = self._completed_lsn = decoded.end_lsn
            elif isinstance(decoded, Relation):
                await self._on_relation(decoded)
            elif isinstance(decoded, Truncate):
                at = Position(message.data_start, self._last_commit_lsn, self._commit_ts_us, self._xid)
                pending.extend(relations[rid].truncate(at) for rid in decoded.relation_ids)

    async def stream(self, stream: ReplicationStream, stop: asyncio.Event) -> None:
        """Capture until `stop` is set; on return everything published is acknowledged and confirmed."""
        s = self._settings
        start_lsn = await self._catalog.confirmed_flush_lsn(s.pg_slot_name)
        if start_lsn is not None:
            self._last_commit_lsn = self._completed_lsn = self._queued_lsn = self._acks.confirmed = start_lsn
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        fd = stream.fileno()
        loop.add_reader(fd, readable.set)
        next_heartbeat = time.monotonic() + s.pg_heartbeat_interval_s
        next_wal_check = time.monotonic()
        try:
            while not stop.is_set():
                readable.clear()
                messages = stream.read(s.pg_batch_max)
                if messages:
                    await self.apply(messages)
                    await self._publish_pending(self._completed_lsn)
                self._confirm(stream)
                now = time.monotonic()
                if now >= next_heartbeat:
                    next_heartbeat = now + s.pg_heartbeat_interval_s
                    await self._heartbeat()
                if now >= next_wal_check:
                    next_wal_check = now + s.pg_wal_check_interval_s
                    await self.check_wal()
                if messages:
                    await asyncio.sleep(0)  # let the producer's sender run between chunks
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(readable.wait(), _IDLE_WAIT_S)
        finally:
            loop.remove_reader(fd)
        await self._publish_pending(self._completed_lsn)
        await self._acks.drain()
        self._confirm(stream, force=True)

    def _confirm(self, stream: ReplicationStream, *, force: bool = False) -> None:
        confirmed = self._acks.collect()
        if not self._in_txn and not self._pending and not len(self._acks):
            # Nothing in flight: the keepalive's WAL end (past unpublished WAL) is safe to confirm.
            confirmed = max(confirmed, stream.wal_end)
        if confirmed <= self._sent_lsn and not force:
            return
        self._acks.confirmed = max(self._acks.confirmed, confirmed)
        now = time.monotonic()
        # psycopg2 sends the stored position at its status interval; sooner keeps the slot's
        # confirmed_flush_lsn (what monitoring and `pg_replication_slots` show) close behind.
        send_now = force or now - self._sent_at >= _FEEDBACK_INTERVAL_S
        stream.confirm(self._acks.confirmed, force=send_now)
        if send_now:
            self._sent_at = now
            self._sent_lsn = self._acks.confirmed
            log.debug("confirmed %s", format_lsn(self._acks.confirmed))

    async def _heartbeat(self) -> None:
        s = self._settings
        self._acks.add(
            0, await self._publisher.publish([heartbeat(s.topic_prefix, s.heartbeat_topic, s.pg_schemas_enable)])
        )
        if s.pg_heartbeat_action_query:
            try:
                await self._catalog.execute(s.pg_heartbeat_action_query)
            except Exception:
                log.exception("heartbeat action query failed: %s", s.pg_heartbeat_action_query)

    async def check_wal(self) -> None:
        s = self._settings
        health = await self._catalog.slot_health(s.pg_slot_name)
        if health is not None and health.retained_bytes > s.pg_wal_warn_bytes:
            log.warning(
                "replication slot %s retains %d bytes of WAL (warn above %d): wal_status=%s safe_wal_size=%s; "
                "the connector is behind or stopped, and the server keeps WAL until it catches up",
                s.pg_slot_name,
                health.retained_bytes,
                s.pg_wal_warn_bytes,
                health.wal_status,
                health.safe_wal_size,
            )


async def _snapshot_if_needed(
    settings: PostgresConnectorSettings,
    catalog: SourceCatalog,
    capture: ChangeCapture,
    stream: ReplicationStream,
    stop: asyncio.Event,
    *,
    force: bool,
) -> bool:
    """Take the initial snapshot when forced, when there is no slot, or when the last one did not finish.

    Returns False when stopped before the snapshot completed."""
    slot = settings.pg_slot_name
    tables = [
        capture.table_events(settings.pg_schema, name, await catalog.table_columns(settings.pg_schema, name))
        for name in settings.pg_tables
    ]
    await capture.ensure_topics(tables)
    has_slot = await catalog.slot_exists(slot)
    completed = await catalog.snapshot_completed_at(slot)
    if has_slot and completed is not None and not force:
        log.info("resuming slot %s (snapshot completed at %s)", slot, completed)
        return True
    reason = "forced" if force else ("no slot yet" if not has_slot else "the previous snapshot did not finish")
    log.info("taking a snapshot of %s (%s)", ", ".join(settings.pg_tables), reason)
    await catalog.drop_slot(slot)
    await catalog.mark_snapshot_started(slot, settings.pg_publication_name)
    lsn, snapshot_name = stream.create_slot_with_snapshot(slot)
    reader = await SnapshotReader.open(settings.database_url, snapshot_name)
    try:
        if not await capture.snapshot(reader, tables, lsn, stop):
            log.warning("stopped during the snapshot; the next start takes it again")
            return False
    finally:
        await reader.close()
    await catalog.mark_snapshot_completed(slot, format_lsn(lsn))
    return True


async def run_connector(
    settings: PostgresConnectorSettings, stop: asyncio.Event, *, force_snapshot: bool = False
) -> None:
    """Run the PostgreSQL source until `stop` is set: snapshot if needed, then stream changes to Kafka."""
    publisher = KafkaPublisher(
        settings.require_bootstrap(),
        linger_ms=settings.pg_linger_ms,
        max_batch_bytes=settings.pg_max_batch_bytes,
        compression_type=settings.pg_compression_type,
        bulk_compression_type=settings.pg_snapshot_compression_type,
    )
    catalog = await SourceCatalog.connect(settings.database_url)
    stream: ReplicationStream | None = None
    try:
        await publisher.start()
        await catalog.ensure_state_table()
        await catalog.ensure_publication(settings.pg_publication_name, settings.pg_schema, settings.pg_tables)
        capture = ChangeCapture(settings, catalog, publisher, await catalog.database_name())
        stream = ReplicationStream(settings.database_url)
        if not await _snapshot_if_needed(settings, catalog, capture, stream, stop, force=force_snapshot):
            return
        if stop.is_set():
            return
        stream.start(settings.pg_slot_name, settings.pg_publication_name, settings.pg_status_interval_s)
        log.info("streaming from slot %s", settings.pg_slot_name)
        await capture.stream(stream, stop)
        log.info("stopped after %d changes", capture.changes)
    except SourceError as exc:
        log.error("%s", exc)
        raise
    finally:
        try:
            await publisher.close()
        finally:
            if stream is not None:
                stream.close()
            await catalog.close()


async def run_connector_resilient(
    settings: PostgresConnectorSettings,
    stop: asyncio.Event,
    *,
    force_snapshot: bool = False,
    max_delay_s: float = 30.0,
) -> None:
    """`run_connector`, restarted after Kafka or PostgreSQL failures with exponential back-off.

    A restart resumes from the slot's confirmed position, which only ever covers records Kafka
    acknowledged, so a failed delivery is replayed, never lost.
    """
    delay = 1.0
    while not stop.is_set():
        try:
            await run_connector(settings, stop, force_snapshot=force_snapshot)
            return
        except (KafkaError, psycopg.OperationalError, psycopg2.OperationalError) as exc:
            log.warning(
                "capture failed (%s: %s); restarting from the last confirmed position in %.0fs",
                type(exc).__name__,
                exc,
                delay,
            )
        force_snapshot = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, max_delay_s)
