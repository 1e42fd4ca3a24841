"""The Kafka port of the connector and its aiokafka adapter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, UnsupportedVersionError

from connectors.postgres.envelope import ALL_PARTITIONS, Record
from hub.topics import ensure_topics, partition_for_key

log = logging.getLogger(__name__)

AIOKAFKA_SENDER_LOG = "aiokafka.producer.sender"


class _InitProducerIdRefusal(logging.Filter):
    """Drops aiokafka's ERROR for a refused InitProducerId: the publisher falls back and says so as a warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unexpected error during InitProducerIdRequest")


@contextmanager
def _idempotence_probe_quiet() -> Iterator[None]:
    sender_log = logging.getLogger(AIOKAFKA_SENDER_LOG)
    refusal = _InitProducerIdRefusal()
    sender_log.addFilter(refusal)
    try:
        yield
    finally:
        sender_log.removeFilter(refusal)


class Publisher(Protocol):
    """Where change records go. Records of one key keep their order; delivery is at least once."""

    async def ensure_topics(self, names: Iterable[str], partitions: int) -> None:
        """Create the topics that do not exist yet."""

    async def publish(self, records: Sequence[Record], *, bulk: bool = False) -> asyncio.Future[None]:
        """Queue `records` in order; the returned future completes once every one is acknowledged
        (acks=all), or fails with the delivery error. Awaiting this call itself only applies
        backpressure; it does not wait for delivery. `bulk`: snapshot records, which may be compressed
        otherwise; the caller waits for every bulk record's acknowledgement before it publishes others."""
        ...

    async def close(self) -> None:
        """Deliver what is queued, then release the connection."""


class KafkaPublisher:
    """aiokafka producer, acks=all, idempotent when the broker allows, records batched per partition.

    Partitions are chosen with the Java client's murmur2 of the key bytes, as aiokafka's and Kafka's
    default partitioners do, so other producers of the same keys land in the same partitions.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        linger_ms: int = 5,
        max_batch_bytes: int = 1 << 20,
        compression_type: str = "none",
        bulk_compression_type: str | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._linger_ms = linger_ms
        self._max_batch_bytes = max_batch_bytes
        self._compression_type = _codec(compression_type)
        self._bulk_compression_type = self._compression_type
        if bulk_compression_type is not None:
            self._bulk_compression_type = _codec(bulk_compression_type)
        self._producer: AIOKafkaProducer | None = None
        self._bulk_producer: AIOKafkaProducer | None = None  # only when bulk records compress otherwise
        self._partitions: dict[str, int] = {}

    async def start(self) -> None:
        self._producer = await self._start_either(self._compression_type)
        if self._bulk_compression_type != self._compression_type:
            self._bulk_producer = await self._start_either(self._bulk_compression_type)

    async def _start_either(self, compression_type: str | None) -> AIOKafkaProducer:
        try:
            with _idempotence_probe_quiet():
                return await self._start_producer(compression_type, idempotent=True)
        except (UnsupportedVersionError, KafkaError) as exc:
            log.warning("broker refused an idempotent producer (%s); using acks=all without it", exc)
            return await self._start_producer(compression_type, idempotent=False)

    async def _start_producer(self, compression_type: str | None, *, idempotent: bool) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            acks="all",
            enable_idempotence=idempotent,
            linger_ms=self._linger_ms,
            compression_type=compression_type,
            max_batch_size=self._max_batch_bytes,
            max_request_size=self._max_batch_bytes * 2,
            # A request the broker never answers fails after this long; the connector then restarts from
            # the slot's confirmed position (tansu has been seen to leave a produce request unanswered).
            request_timeout_ms=10_000,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("KafkaPublisher.start() was not called")
        return self._producer

    async def ensure_topics(self, names: Iterable[str], partitions: int) -> None:
        created = await ensure_topics(self._bootstrap, names, partitions)
        if created:
            log.info("created topics: %s", ", ".join(created))

    async def _partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            partitions = await self.producer.partitions_for(topic)
            count = self._partitions[topic] = len(partitions)
        return count

    async def publish(self, records: Sequence[Record], *, bulk: bool = False) -> asyncio.Future[None]:
        producer = self._bulk_producer if bulk and self._bulk_producer is not None else self.producer
        builders: dict[tuple[str, int], Any] = {}
        deliveries: list[asyncio.Future[Any]] = []
        counts = self._partitions
        for record in records:
            topic = record.topic
            count = counts.get(topic) or await self._partition_count(topic)
            if record.partition is None:
                key = record.key
                targets: Iterable[int] = (partition_for_key(key, count),) if key is not None else (0,)
            elif record.partition == ALL_PARTITIONS:
                targets = range(count)
            else:
                targets = (record.partition,)
            headers = record.headers or []
            for partition in targets:
                slot = (topic, partition)
                builder = builders.get(slot)
                if builder is None:
                    builder = builders[slot] = producer.create_batch()
                if builder.append(timestamp=None, key=record.key, value=record.value, headers=headers):
                    continue
                deliveries.append(await producer.send_batch(builder, topic, partition=partition))
                builder = builders[slot] = producer.create_batch()
                if not builder.append(timestamp=None, key=record.key, value=record.value, headers=headers):
                    raise ValueError(f"a record for {topic} is larger than pg_max_batch_bytes")
        for (topic, partition), builder in builders.items():
            deliveries.append(await producer.send_batch(builder, topic, partition=partition))
        return _all_delivered(deliveries)

    async def close(self) -> None:
        producers = [producer for producer in (self._bulk_producer, self._producer) if producer is not None]
        self._bulk_producer = self._producer = None
        try:
            for producer in producers:
                await producer.flush()
        finally:
            for producer in producers:
                await producer.stop()


def _codec(compression_type: str) -> str | None:
    return None if compression_type == "none" else compression_type


def _all_delivered(deliveries: list[asyncio.Future[Any]]) -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if not deliveries:
        done.set_result(None)
        return done
    remaining = len(deliveries)

    def delivered(future: asyncio.Future[Any]) -> None:
        nonlocal remaining
        if done.done():
            return
        if future.cancelled():
            done.set_exception(asyncio.CancelledError("a Kafka delivery was cancelled"))
        elif (error := future.exception()) is not None:
            done.set_exception(error)
        else:
            remaining -= 1
            if remaining == 0:
                done.set_result(None)

    for delivery in deliveries:
        delivery.add_done_callback(delivered)
    return done
