"""The ERP connector against real stand-ins (PostgreSQL, MariaDB; Oracle with ORACLE_DSN) and a real tansu broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from connectors.erp.dialects import Connection, ErpDsn, connect
from connectors.erp.health import ErpHealth
from connectors.erp.service import ErpCapture, ErpConnector, _start_publisher
from connectors.erp.settings import ErpConnectorSettings
from connectors.erp.source import SqlErpSource
from connectors.postgres.publisher import KafkaPublisher
from hub.broker import EmbeddedBroker
from schemas.debezium import parse_change_value, parse_key
from tests.connectors.erp.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(120)

INSERT = (
    "INSERT INTO stock_items (stock_no, vin, yard, location, status, title_status, keys_count, cost) "
    "VALUES (:stock_no, :vin, 'DAL-01 Dallas', 'A-01', :status, 'CLEAN', 2, 15250.00)"
)


def add(conn: Connection, stock_no: str, vin: str, status: str = "IN_STOCK") -> None:
    conn.execute(INSERT, {"stock_no": stock_no, "vin": vin, "status": status})


def settings_for(dsn: ErpDsn, broker: EmbeddedBroker, **overrides: Any) -> ErpConnectorSettings:
    values: dict[str, Any] = {
        "erp_dsn": dsn.url(),
        "kafka_bootstrap_servers": broker.bootstrap_servers,
        "erp_topic_prefix": f"erp{uuid.uuid4().hex[:8]}",
        "erp_health_port": 0,
        "erp_state_interval_s": 0,
        "erp_poll_interval_ms": 10,
        "erp_backoff_initial_s": 0.05,
        "erp_backoff_max_s": 0.2,
        "erp_connect_timeout_s": 2,
        **overrides,
    }
    return ErpConnectorSettings(**values)


class Topic:
    """Reads the ERP change topic from the start: (op, stock_no, scn) per change record, tombstones as None."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.records: list[tuple[bytes | None, bytes | None]] = []

    async def read(self, count: int, timeout: float = 20) -> list[tuple[str, str, int] | None]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.records) < count and asyncio.get_running_loop().time() < deadline:
            batches = await self.consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                self.records += [(m.key, m.value) for m in messages]
        return [self.decode(value) for _, value in self.records]

    @staticmethod
    def decode(value: bytes | None) -> tuple[str, str, int] | None:
        event = parse_change_value(value)
        if event is None:
            return None
        row = event.row or {}
        return event.op.value, str(row["STOCK_NO"]), event.source.position


@pytest.fixture
async def publisher(kafka_broker: EmbeddedBroker) -> AsyncIterator[KafkaPublisher]:
    publisher = KafkaPublisher(kafka_broker.bootstrap_servers)
    await publisher.start()
    yield publisher
    await publisher.close()


async def topic_reader(settings: ErpConnectorSettings) -> Topic:
    consumer = AIOKafkaConsumer(settings.erp_topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    return Topic(consumer)


async def test_snapshot_changes_late_commits_deletes_and_restart(
    erp_dsn: ErpDsn, kafka_broker: EmbeddedBroker, publisher: KafkaPublisher
) -> None:
    settings = settings_for(erp_dsn, kafka_broker)
    writer = connect(erp_dsn)
    add(writer, "S-SNAP", "1HGCM82633A004352")  # exists before the first start: snapshot
    await publisher.ensure_topics([settings.erp_topic], settings.topic_partitions)
    source = SqlErpSource(erp_dsn)
    capture = ErpCapture(settings, source, publisher, ErpHealth())
    await capture.start()

    long_txn = connect(erp_dsn)
    long_txn.set_autocommit(False)
    add(long_txn, "S-LATE", "2T1BURHE0JC014235")  # takes a low change id, commits last
    add(writer, "S-A", "5YJ3E1EA7KF317000")
    add(writer, "S-B", "1FTEW1EP5JFA00001", status="IN_TRANSIT")
    writer.execute("UPDATE stock_items SET status = 'SOLD' WHERE stock_no = 'S-A'")
    await capture.poll()
    assert capture.tracker is not None
    assert len(capture.tracker.gaps) == 1
    long_txn.raw.commit()
    await capture.poll()
    writer.execute("DELETE FROM stock_items WHERE stock_no = 'S-B'")
    await capture.poll()

    topic = await topic_reader(settings)
    try:
        events = await topic.read(8)
        per_stock: dict[str, list[str]] = {}
        for event in events:
            if event is not None:
                per_stock.setdefault(event[1], []).append(event[0])
        # The snapshot, then the changes of the lookback window again (older than the snapshot: harmless).
        assert per_stock["S-SNAP"] == ["r", "c"]
        assert per_stock["S-A"] == ["c", "u"]
        assert per_stock["S-B"] == ["c", "d"]  # the trigger saw the delete
        assert per_stock["S-LATE"] == ["c"]  # committed after later ids were read: captured all the same
        assert events.count(None) == 1  # the delete's tombstone
        scn = {(e[1], e[0]): e[2] for e in events if e}
        assert scn[("S-LATE", "c")] < scn[("S-A", "u")]
        assert scn[("S-SNAP", "r")] < scn[("S-SNAP", "c")] or scn[("S-SNAP", "r")] == 0
        # keyed by VIN, in Debezium's Oracle envelope
        keys = [parse_key(key) for key, _ in topic.records]
        assert {"VIN": "5YJ3E1EA7KF317000"} in keys
        payload = next(orjson.loads(v) for _, v in topic.records if v and b'"S-LATE"' in v)
        assert payload["source"]["connector"] == "oracle"
        assert {"scn", "commit_scn", "txId", "snapshot"} <= set(payload["source"])
        assert payload["source"]["txId"] or erp_dsn.dialect == "mariadb"  # no transaction id in MariaDB triggers

        # A restart resumes from the stored high-water mark: nothing is sent again, new changes follow.
        source.close()
        restarted = ErpCapture(settings, SqlErpSource(erp_dsn), publisher, ErpHealth())
        await restarted.start()
        writer.execute("UPDATE stock_items SET location = 'B-07' WHERE stock_no = 'S-LATE'")
        await restarted.poll()
        events = await topic.read(9)
        assert len(events) == 9
        assert [e[:2] for e in events[8:] if e] == [("u", "S-LATE")]
    finally:
        await topic.consumer.stop()
        for conn in (writer, long_txn):
            conn.close()


async def test_an_erp_outage_degrades_health_backs_off_and_drains_after(
    erp_factory: Any, kafka_broker: EmbeddedBroker
) -> None:
    dsn = erp_factory("postgresql")
    proxy = TcpProxy(dsn.host, dsn.port)
    proxy.restore()
    settings = settings_for(dsn.with_endpoint("127.0.0.1", proxy.port), kafka_broker)
    health = ErpHealth()
    connector = ErpConnector(settings, SqlErpSource(settings.dsn, timeout_s=2), health)
    writer = connect(dsn)  # the ERP itself stays up: only the hub's link to it is cut
    topic = await topic_reader_after_topic(settings)
    try:
        add(writer, "S-1", "1HGCM82633A004352")
        assert await connector.step() >= 0
        assert health.status == "ok"
        proxy.cut()
        for i in range(5):
            add(writer, f"S-OUT-{i}", "1HGCM82633A004352")
        waits = []
        while health.counters.get("erp_failures", 0) < 4:
            waits.append(await connector.step())
            await asyncio.sleep(waits[-1])
        assert health.status == "degraded"
        assert health.component == "erp"
        assert health.reason
        assert health.breaker in {"open", "half_open"}
        assert all(wait > 0 for wait in waits)  # never a busy loop: every failure schedules a wait
        assert len(waits) == 4  # and no try happens before its wait has passed
        proxy.restore()
        for _ in range(50):
            wait = await connector.step()
            if health.status == "ok":
                break
            await asyncio.sleep(wait)
        assert health.status == "ok"
        await connector.step()
        events = await topic.read(7)
        assert sorted(e[1] for e in events if e and e[0] == "c") == ["S-1"] + [f"S-OUT-{i}" for i in range(5)]
    finally:
        await topic.consumer.stop()
        await connector.close()
        writer.close()
        proxy.cut()


async def topic_reader_after_topic(settings: ErpConnectorSettings) -> Topic:
    publisher = await _start_publisher(settings, settings.require_bootstrap())  # creates the topic
    await publisher.close()
    return await topic_reader(settings)
