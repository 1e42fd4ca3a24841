"""The connector's Kafka adapter against tansu: snapshot (bulk) records compressed apart, order kept across both."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from connectors.postgres.envelope import Record
from connectors.postgres.publisher import KafkaPublisher
from hub.broker import EmbeddedBroker


async def test_bulk_records_go_through_their_own_compressed_producer_and_keep_their_order(
    kafka_broker: EmbeddedBroker,
) -> None:
    topic = f"publisher-{uuid.uuid4().hex[:8]}"
    publisher = KafkaPublisher(kafka_broker.bootstrap_servers, compression_type="none", bulk_compression_type="lz4")
    await publisher.start()
    try:
        await publisher.ensure_topics([topic], 1)
        assert publisher._bulk_producer is not None  # noqa: SLF001 - the second producer exists only for bulk
        assert publisher._bulk_producer._compression_type == "lz4"  # noqa: SLF001
        snapshot = [Record(topic, b"k", f"snapshot-{n}".encode() * 50) for n in range(500)]
        await (await publisher.publish(snapshot, bulk=True))  # acknowledged before streaming, as the connector does
        await (await publisher.publish([Record(topic, b"k", b"streamed")]))
    finally:
        await publisher.close()

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_broker.bootstrap_servers, auto_offset_reset="earliest")
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < 501:
            batches = await consumer.getmany(timeout_ms=5000)
            assert batches, f"only {len(values)} of 501 records came back"
            values += [message.value or b"" for messages in batches.values() for message in messages]
    finally:
        await consumer.stop()
    assert values == [record.value for record in snapshot] + [b"streamed"]


async def test_without_a_bulk_compression_one_producer_serves_both(kafka_broker: EmbeddedBroker) -> None:
    publisher = KafkaPublisher(kafka_broker.bootstrap_servers, compression_type="lz4")
    await publisher.start()
    try:
        assert publisher._bulk_producer is None  # noqa: SLF001
    finally:
        await publisher.close()


async def test_a_broker_refusing_idempotence_is_one_warning_not_an_error(
    kafka_broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """tansu refuses InitProducerId: the publisher falls back to plain acks=all, and says so once, as a warning
    (aiokafka's own ERROR for it would alarm an operator reading `make up`'s output for nothing)."""
    caplog.set_level(logging.INFO)
    publisher = KafkaPublisher(kafka_broker.bootstrap_servers)
    await publisher.start()
    try:
        assert not publisher.producer._txn_manager  # noqa: SLF001 - fell back: no idempotence
        topic = f"publisher-{uuid.uuid4().hex[:8]}"
        await publisher.ensure_topics([topic], 1)
        await (await publisher.publish([Record(topic, b"k", b"v")]))
    finally:
        await publisher.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("broker refused an idempotent producer" in message for message in warnings)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert logging.getLogger("aiokafka.producer.sender").filters == []  # the filter lasts only for the attempt
