"""The Faust app: topics, tables and the two agents of the vehicle indexer.

    <prefix>.public.vehicles  ─┐
    auction-hub.vehicle-refresh┴─► index_vehicles ─► search index
                                        │ dealer links
    <prefix>.public.dealers   ─┐        ▼
    auction-hub.dealer-links  ─┴─► track_dealers (table: dealer-profiles; a dealer's vehicles: the index)
                                        │ dealer refreshes for every listed vehicle
                                        └──────────► auction-hub.vehicle-refresh

Each agent reads two topics partitioned alike (by vehicle, by dealer), so Faust assigns the same partition
numbers of both to one worker and every document or dealer is changed by one consumer at a time. Links
and refreshes travel grouped, one record per partition and batch, each in the partition of its keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import faust
from faust.types import EventT, StreamT

from connectors.search.port import SearchIndex
from hub.settings import load_settings
from hub.topics import partition_for_key
from schemas.debezium import InvalidChangeEvent, encode_key, key_schema
from streams.auction_bids import decode_auction_bid
from streams.batching import acknowledge_batch, take_event_batches
from streams.changes import (
    DealerChange,
    DealerLink,
    DealerOp,
    DealerRefresh,
    DealersTruncated,
    VehicleOp,
    decode_dealer_change,
    decode_dealer_links,
    decode_dealer_refreshes,
    decode_vehicle_change,
    encode_dealer_links,
    encode_dealer_refreshes,
)
from streams.dead_letter import dead_letter_record
from streams.dealers import DealerDirectory
from streams.erp_agent import ErpStreamSettings, ErpWiring
from streams.flow_control import ReplayingApp
from streams.indexer import BatchResult, VehicleIndexer
from streams.kafka_transport import broker_url
from streams.metrics import WorkerMetrics
from streams.questions import QnaWiring
from streams.reindex import CHECK_INTERVAL_S, ReindexCoordinator
from streams.settings import WorkerSettings
from streams.table_writes import BatchWrites, held_writes, write_through

log = logging.getLogger(__name__)

OpT = TypeVar("OpT")

RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


class _IndexOwningApp(ReplayingApp):
    """Starts the search index before the agents run and closes it, on the same loop, after they stopped."""

    search_index: SearchIndex

    async def on_start(self) -> None:
        await super().on_start()
        await self.search_index.start()

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        await self.search_index.close()


class IndexerApp:
    """Builds the Faust app for given settings and search index (nothing connects until it runs)."""

    def __init__(self, settings: WorkerSettings, index: SearchIndex, metrics: WorkerMetrics | None = None) -> None:
        self.settings = settings
        self.index = index
        self.metrics = metrics or WorkerMetrics()
        self.indexer = VehicleIndexer(index)
        # Online reindex (tantivy): steps run between batches, never during one.
        self.reindex = ReindexCoordinator.for_index(index, self.indexer)
        self._batch_lock = asyncio.Lock()
        self._committing: asyncio.Future[None] | None = None  # the last vehicle batch's commit and follow-ups
        erp_settings = load_settings(ErpStreamSettings)
        self.app = _IndexOwningApp(
            settings.app_id,
            broker=broker_url(settings.require_bootstrap(), settings.fetch_max_wait_ms),
            store="memory://",
            topic_partitions=settings.topic_partitions,
            web_enabled=settings.metrics_port > 0,
            web_bind=settings.metrics_host,
            web_port=settings.metrics_port or 6066,
            web_in_thread=False,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
            producer_acks=-1,
            producer_compression_type=settings.compression_type,
            producer_linger=settings.producer_linger_ms / 1000,
            producer_max_batch_size=settings.producer_max_batch_bytes,
            producer_max_request_size=settings.producer_max_batch_bytes * 2,
            # Bounds what the consumer prefetches per partition (compressed batches decode to several times it).
            consumer_max_fetch_size=settings.max_fetch_bytes,
            stream_buffer_maxsize=max(4096, settings.batch_max * 2, erp_settings.erp_batch_max * 2),
        )
        self.app.search_index = index
        self.erp = ErpWiring(self, RAW, erp_settings)  # ERP inventory: its own agent, refreshes into index_vehicles
        self.qna = QnaWiring(self, RAW)  # moderated Q&A: its own agent, updates into index_vehicles
        self.vehicle_topics = self.app.topic(
            settings.change_topic("vehicles"),
            settings.vehicle_refresh_topic,
            *self.erp.vehicle_topics,
            *self.qna.vehicle_topics,
            settings.auction_bids_topic,
            **RAW,
        )
        self.dealer_topics = self.app.topic(settings.change_topic("dealers"), settings.dealer_links_topic, **RAW)
        self.refresh_topic = self.app.topic(settings.vehicle_refresh_topic, **RAW)
        self.links_topic = self.app.topic(settings.dealer_links_topic, **RAW)
        self.dead_letter_topic = self.app.topic(settings.dead_letter_topic, **RAW)
        # A Table, not just a TableT: profile writes go through `write_through`, which uses its serializers.
        profiles = self.app.Table("dealer-profiles", default=None, partitions=settings.topic_partitions)
        self.dealer_profiles = cast("faust.Table[str, Any]", profiles)
        self.app.agent(self.vehicle_topics, name="index_vehicles")(self.index_vehicles)
        self.app.agent(self.dealer_topics, name="track_dealers")(self.track_dealers)
        if self.reindex is not None:
            self.app.timer(interval=CHECK_INTERVAL_S, name="reindex_check")(self._reindex_step)
        metrics_text = self.metrics.render

        # Faust turns a page function into a view method, so it must be a plain function, not a bound one.
        async def metrics_page(view: Any, request: Any) -> Any:
            return view.text(metrics_text(), content_type="text/plain; version=0.0.4")

        self.app.page("/metrics")(metrics_page)
        # mode types signal receivers with a keyword-only `signal`; the bound method accepts it.
        self.app.on_rebalance_complete.connect(self._on_rebalance_complete)  # type: ignore[arg-type]

    # -- agents -------------------------------------------------------------------------------------

    async def index_vehicles(self, stream: StreamT[bytes]) -> None:
        """Batches of vehicle changes and dealer refreshes -> one index write + commit per batch.

        A batch's commit runs in a thread (tantivy releases the GIL) while the next batch fills and is decoded;
        its follow-ups (dealer and VIN links) and its acknowledgement come after the commit, and the next batch
        is applied only after all of that."""
        try:
            async for events in take_event_batches(stream, self.settings.batch_limits(), acknowledge=False):
                self._observe_lag("batch_taken_lag", events)
                decoded: list[tuple[EventT, VehicleOp]] = []
                for event in events:
                    try:
                        decoded += [(event, op) for op in self._decode_vehicle_event(event)]
                    except InvalidChangeEvent as exc:
                        await self._dead_letter(event, exc)
                async with self._batch_lock:
                    await self._previous_batch_done()
                    if self.reindex is not None:
                        await self.reindex.step()
                    result = await self._index(decoded)
                    self._committing = asyncio.ensure_future(self._commit_batch(stream, events, result))
                self.metrics.count("events_consumed", len(events))
                self.metrics.count("vehicle_batches")
        finally:
            await self._previous_batch_done()

    async def _previous_batch_done(self) -> None:
        committing, self._committing = self._committing, None
        if committing is not None:
            await committing

    async def _commit_batch(self, stream: StreamT[bytes], events: list[EventT], result: BatchResult | None) -> None:
        """Commit what a batch wrote, then send its follow-ups and acknowledge it."""
        if result is not None:
            await self.indexer.flush()
            self._observe_lag("index_lag", events)
            await self._send_follow_ups(result)
        await acknowledge_batch(stream, events)

    def _observe_lag(self, name: str, events: Sequence[EventT]) -> None:
        """Seconds since each record's Kafka timestamp (when the connector produced it): `batch_taken_lag` when its
        batch left the stream, `index_lag` when the commit made it searchable (the worker's share of freshness)."""
        now = time.time()
        self.metrics.observe(name, [now - event.message.timestamp for event in events])

    async def track_dealers(self, stream: StreamT[bytes]) -> None:
        """Dealer changes and vehicle links in batches; a batch's profile writes are held with their record,
        whose partition is their changelog's, and stored before the batch is acknowledged."""
        async for events in take_event_batches(stream, self.settings.batch_limits()):
            decoded: list[tuple[EventT, list[DealerOp]]] = []
            for event in events:
                try:
                    decoded.append((event, self._decode_dealer_event(event)))
                except InvalidChangeEvent as exc:
                    await self._dead_letter(event, exc)
            changed = {op.dealer_id for _, ops in decoded for op in ops if isinstance(op, DealerChange)}
            # Looked up after the batch was taken: see streams/dealers.py for why no vehicle is missed.
            listed = await self.indexer.live_ids_by("dealer_id", [str(dealer_id) for dealer_id in changed])
            refreshes: list[DealerRefresh] = []
            profiles: BatchWrites[EventT] = BatchWrites(self.dealer_profiles)
            directory = DealerDirectory(profiles)
            for event, ops in decoded:
                profiles.tag = event
                for op in ops:
                    refreshes += self._apply_dealer_op(directory, op, listed)
            changelog = await write_through(self.dealer_profiles, held_writes(profiles))
            await self._send_grouped(
                self.refresh_topic, refreshes, lambda r: self._vehicle_key(r.vehicle_id), encode_dealer_refreshes
            )
            await changelog.stored()
            self.metrics.count("dealer_refreshes_sent", len(refreshes))

    async def _reindex_step(self) -> None:
        """Timer: lets a reindex progress while no batch arrives."""
        if self.reindex is not None:
            async with self._batch_lock:
                await self._previous_batch_done()
                await self.reindex.step()

    # -- steps --------------------------------------------------------------------------------------

    def _decode_vehicle_event(self, event: EventT) -> list[VehicleOp]:
        if self.erp.owns(event.message.topic):
            return list(self.erp.decode_vehicle_event(event))
        if self.qna.owns(event.message.topic):
            return list(self.qna.decode_vehicle_event(event))
        if event.message.topic == self.settings.vehicle_refresh_topic:
            return list(decode_dealer_refreshes(event.value)) if event.value else []
        if event.message.topic == self.settings.auction_bids_topic:
            return [decode_auction_bid(event.value)]
        op = decode_vehicle_change(event.key, event.value)
        return [] if op is None else [op]

    def _decode_dealer_event(self, event: EventT) -> list[DealerOp]:
        if event.message.topic == self.settings.dealer_links_topic:
            return list(decode_dealer_links(event.value)) if event.value else []
        op = decode_dealer_change(event.key, event.value)
        return [] if op is None else [op]

    @staticmethod
    def _apply_dealer_op(
        directory: DealerDirectory, op: DealerOp, listed: Mapping[str, Sequence[str]]
    ) -> list[DealerRefresh]:
        if isinstance(op, DealerChange):
            return directory.apply_change(op, listed.get(str(op.dealer_id), ()))
        if isinstance(op, DealerLink):
            return directory.apply_link(op)
        if isinstance(op, DealersTruncated):
            directory.apply_truncate(op)
        return []

    async def _index(self, decoded: Sequence[tuple[EventT, VehicleOp]]) -> BatchResult | None:
        """Write a batch, to be committed by the caller (`_commit_batch`); if a record in it breaks a rule, apply
        one by one (each committed, its follow-ups sent) and dead-letter the culprit, and return None."""
        try:
            return await self.indexer.apply([op for _, op in decoded], flush=False)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("batch of %d failed (%s); applying records one at a time", len(decoded), exc)
            for event, op in decoded:
                try:
                    single = await self.indexer.apply([op])
                except (ValueError, TypeError, KeyError) as single_exc:
                    await self._dead_letter(event, single_exc)
                    continue
                await self._send_follow_ups(single)
            return None

    async def _send_follow_ups(self, result: BatchResult) -> None:
        await self._send_links(result.links)
        await self.erp.send_vin_links(result.vin_links)
        self.metrics.count("documents_written", result.written)
        self.metrics.count("stale_events_skipped", result.skipped)
        self.metrics.count("documents_truncated", result.truncated)

    async def _send_links(self, links: Sequence[DealerLink]) -> None:
        # Only new members need an answer (the profile); a vehicle that left a dealer is simply no longer found.
        joined = [link for link in links if link.linked]
        await self._send_grouped(
            self.links_topic, joined, lambda link: self._dealer_key(link.dealer_id), encode_dealer_links
        )

    async def _send_grouped(
        self,
        topic: faust.TopicT,
        operations: Sequence[OpT],
        key_of: Callable[[OpT], bytes],
        encode: Callable[[list[OpT]], bytes],
    ) -> None:
        """One record per partition holding every operation whose key Kafka would put in that partition.

        The consumer sees each operation in the partition of its own key (co-partitioning holds), at the
        cost of one Faust event per partition and batch instead of one per operation.
        """
        groups: dict[int, list[OpT]] = defaultdict(list)
        for operation in operations:
            groups[partition_for_key(key_of(operation), self.settings.topic_partitions)].append(operation)
        for partition, group in groups.items():
            await topic.send(value=encode(group), partition=partition)

    async def _send_all(self, topic: faust.TopicT, records: Sequence[tuple[bytes, bytes]]) -> None:
        """Queue records on Faust's producer without waiting for each delivery.

        Faust flushes its producer (every record acknowledged by the broker) before it commits input
        offsets, so the input that caused these records is never marked consumed before they are stored.
        """
        for key, value in records:
            await topic.send(key=key, value=value)

    async def _dead_letter(self, event: EventT, error: BaseException) -> None:
        message = event.message
        log.error(
            "dead-lettering %s[%d]@%d key=%r: %s",
            message.topic,
            message.partition,
            message.offset,
            event.key,
            error,
        )
        record = dead_letter_record(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=event.key,
            value=event.value,
            error=error,
        )
        await self._send_all(self.dead_letter_topic, [(event.key or b"", record)])
        self.metrics.count("dead_lettered")

    def _key(self, table: str, row_id: Any) -> bytes:
        schema = None
        if self.settings.key_schemas_enable:
            id_field = {"type": "int64", "optional": False, "field": "id"}
            schema = key_schema(self.settings.change_topic(table), [id_field])
        return encode_key({"id": row_id}, schema)

    def _vehicle_key(self, vehicle_id: str) -> bytes:
        return self._key("vehicles", int(vehicle_id) if vehicle_id.isdigit() else vehicle_id)

    def _dealer_key(self, dealer_id: int) -> bytes:
        return self._key("dealers", dealer_id)

    # -- web & signals ------------------------------------------------------------------------------

    async def _on_rebalance_complete(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        self.metrics.ready = True
        log.info("worker ready: partitions assigned")
