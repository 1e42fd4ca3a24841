"""The Faust worker as a real process, fed Debezium records over a real tansu broker, writing tantivy.

Records are produced directly (as real Debezium would write them) so ordering, duplicates, poison
records and crashes can be staged exactly; the connector's own output is covered in tests/test_pipeline_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from connectors.search.factory import create_search_index
from connectors.search.port import SearchIndex
from hub.broker import EmbeddedBroker
from hub.settings import IndexSettings
from schemas.debezium import encode_key
from schemas.vehicle import VehicleDocument
from tests.pipeline import HubProcess, debezium_record, metrics, wait_for_worker_ready, worker_env

pytestmark = pytest.mark.timeout(600)


def vehicle_row(vehicle_id: int, dealer_id: int = 1, **overrides: Any) -> dict[str, Any]:
    row = {
        "id": vehicle_id, "dealer_id": dealer_id, "vin": "1HGCM82633A004352", "make": "Toyota", "model": "Camry",
        "trim": "LE", "year": 2021, "mileage": 30_000, "condition_grade": "4.0", "body_type": "sedan",
        "fuel": "gasoline", "transmission": "automatic", "drivetrain": "fwd", "exterior_color": "White",
        "city": "Dallas", "state": "TX", "zip": "75201", "lat": 32.78, "lon": -96.8, "images": [],
        "description": "One owner", "asking_price": "21500.00", "status": "active", "deleted_at": None,
        "created_at": "2026-11-01T10:00:00Z", "updated_at": "2026-11-01T10:00:00Z",
    }  # fmt: skip
    return {**row, **overrides}


def dealer_row(dealer_id: int, name: str) -> dict[str, Any]:
    return {
        "id": dealer_id, "name": name, "rating": "4.5", "city": "Dallas", "state": "TX", "zip": "75201",
        "lat": 32.78, "lon": -96.8, "phone": None, "owner_id": None,
    }  # fmt: skip


class Feed:
    """Produces records to the worker's change topics and reads the index it writes."""

    def __init__(self, producer: AIOKafkaProducer, prefix: str, index: SearchIndex) -> None:
        self.producer = producer
        self.prefix = prefix
        self.index = index
        self.lsn = 1000

    def next_lsn(self) -> int:
        self.lsn += 10
        return self.lsn

    async def send(self, table: str, key_id: int | None, value: bytes | None) -> None:
        key = encode_key({"id": key_id}) if key_id is not None else None
        await self.producer.send_and_wait(f"{self.prefix}.public.{table}", key=key, value=value)

    async def upsert(self, table: str, row: dict[str, Any], *, lsn: int | None = None, op: str = "c") -> int:
        lsn = lsn or self.next_lsn()
        await self.send(table, row["id"], debezium_record(table, op, lsn=lsn, after=row, prefix=self.prefix))
        return lsn

    async def delete(self, table: str, row_id: int) -> None:
        record = debezium_record(table, "d", lsn=self.next_lsn(), before={"id": row_id}, prefix=self.prefix)
        await self.send(table, row_id, record)
        await self.send(table, row_id, None)  # tombstone

    async def document(self, vehicle_id: int) -> VehicleDocument | None:
        await self.index.refresh_reader()
        return await self.index.get(str(vehicle_id))

    async def wait_for(self, vehicle_id: int, predicate: Any, timeout: float = 30.0) -> VehicleDocument:
        deadline = asyncio.get_running_loop().time() + timeout
        document = None
        while asyncio.get_running_loop().time() < deadline:
            document = await self.document(vehicle_id)
            if document is not None and predicate(document):
                return document
            await asyncio.sleep(0.1)
        raise AssertionError(f"vehicle {vehicle_id} never matched; last document: {document!r}")


@pytest.fixture(scope="module")
def worker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("worker")


@pytest.fixture(scope="module")
def worker(kafka_broker: EmbeddedBroker, worker_dir: Path) -> Iterator[HubProcess]:
    env = worker_env(kafka_broker.bootstrap_servers, worker_dir / "index")
    process = HubProcess(["worker"], env, worker_dir / "worker.log").start()
    try:
        wait_for_worker_ready(process)
        yield process
    finally:
        process.stop()


@pytest.fixture
async def feed(worker: HubProcess, kafka_broker: EmbeddedBroker) -> AsyncIterator[Feed]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers, acks="all")
    await producer.start()
    settings = IndexSettings(index_path=Path(worker.env["AUCTION_HUB_INDEX_PATH"]))
    index = create_search_index(settings, writer=False)
    try:
        yield Feed(producer, worker.env["AUCTION_HUB_TOPIC_PREFIX"], index)
    finally:
        await index.close()
        await producer.stop()


async def test_vehicle_gets_dealer_and_dealer_rename_fans_out(feed: Feed) -> None:
    await feed.upsert("dealers", dealer_row(1, "Lone Star Autos"))
    for vehicle_id in (101, 102, 103):
        await feed.upsert("vehicles", vehicle_row(vehicle_id, dealer_id=1))
    for vehicle_id in (101, 102, 103):
        await feed.wait_for(vehicle_id, lambda d: d.dealer is not None and d.dealer.name == "Lone Star Autos")
    await feed.upsert("dealers", dealer_row(1, "Lone Star Auto Group"), op="u")
    for vehicle_id in (101, 102, 103):
        document = await feed.wait_for(vehicle_id, lambda d: d.dealer.name == "Lone Star Auto Group")
        assert document.make == "Toyota"


async def test_vehicle_before_its_dealer_still_gets_dealer(feed: Feed) -> None:
    await feed.upsert("vehicles", vehicle_row(201, dealer_id=2))
    await feed.wait_for(201, lambda d: d.make == "Toyota")
    await feed.upsert("dealers", dealer_row(2, "Late Dealer LLC"))
    await feed.wait_for(201, lambda d: d.dealer is not None and d.dealer.name == "Late Dealer LLC")


async def test_out_of_order_and_duplicate_events_keep_newest(feed: Feed) -> None:
    newest = feed.next_lsn() + 1000
    await feed.upsert("vehicles", vehicle_row(301, mileage=3), lsn=newest)
    await feed.upsert("vehicles", vehicle_row(301, mileage=2), lsn=newest - 500)  # older, arrives later
    await feed.upsert("vehicles", vehicle_row(301, mileage=3), lsn=newest)  # duplicate
    await feed.upsert("vehicles", vehicle_row(302), lsn=newest + 1)  # a marker after them
    await feed.wait_for(302, lambda d: True)
    document = await feed.document(301)
    assert document is not None
    assert document.mileage == 3
    assert document.version == 1


async def test_delete_removes_from_search_and_late_replay_cannot_revive(feed: Feed) -> None:
    created_at = await feed.upsert("vehicles", vehicle_row(401))
    await feed.wait_for(401, lambda d: not d.deleted)
    await feed.delete("vehicles", 401)
    await feed.wait_for(401, lambda d: d.deleted)
    await feed.upsert("vehicles", vehicle_row(401), lsn=created_at)  # replay of the insert
    await feed.upsert("vehicles", vehicle_row(402))
    await feed.wait_for(402, lambda d: True)
    document = await feed.document(401)
    assert document is not None
    assert document.deleted


async def test_truncate_tombstones_older_documents_only(feed: Feed) -> None:
    await feed.upsert("vehicles", vehicle_row(501))
    await feed.wait_for(501, lambda d: not d.deleted)
    truncate = debezium_record("vehicles", "t", lsn=feed.next_lsn(), prefix=feed.prefix)
    await feed.send("vehicles", None, truncate)
    await feed.upsert("vehicles", vehicle_row(502))
    await feed.wait_for(501, lambda d: d.deleted)
    document = await feed.wait_for(502, lambda d: True)
    assert not document.deleted


async def test_poison_event_goes_to_dead_letter_topic_and_processing_continues(
    feed: Feed, worker: HubProcess, kafka_broker: EmbeddedBroker
) -> None:
    await feed.send("vehicles", 601, b'{"this is": "not an envelope"')
    await feed.upsert("vehicles", vehicle_row(602, year="not a year"))  # breaks the document's rules
    await feed.upsert("vehicles", vehicle_row(603))
    await feed.wait_for(603, lambda d: True)
    dead_letters = await read_all(kafka_broker.bootstrap_servers, worker.env["AUCTION_HUB_DEAD_LETTER_TOPIC"])
    by_key = {record["key"]: record for record in dead_letters}
    assert '{"id":601}' in by_key
    assert '{"id":602}' in by_key
    first = by_key['{"id":601}']
    assert first["topic"] == f"{feed.prefix}.public.vehicles"
    assert first["offset"] >= 0
    assert "not JSON" in first["error"]
    assert metrics(worker.env)["auction_hub_dead_lettered_total"] >= 2
    assert await feed.document(602) is None


async def test_the_metrics_page_reports_how_long_records_waited_to_become_searchable(
    feed: Feed, worker: HubProcess
) -> None:
    before = metrics(worker.env).get("auction_hub_index_lag_seconds_count", 0.0)
    await feed.upsert("vehicles", vehicle_row(701))
    await feed.wait_for(701, lambda d: True)

    page = metrics(worker.env)
    assert page["auction_hub_index_lag_seconds_count"] > before
    assert page['auction_hub_index_lag_seconds_bucket{le="+Inf"}'] == page["auction_hub_index_lag_seconds_count"]
    assert page['auction_hub_batch_taken_lag_seconds_bucket{le="+Inf"}'] >= page["auction_hub_index_lag_seconds_count"]
    assert 0 < page["auction_hub_index_lag_seconds_sum"] < 60 * page["auction_hub_index_lag_seconds_count"]


async def read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - the topic may be new
            partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[dict[str, Any]] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            records += [orjson.loads(message.value) for messages in batch.values() for message in messages]
        return records
    finally:
        await consumer.stop()


async def test_kill_9_mid_stream_converges(feed: Feed, worker: HubProcess) -> None:
    """The worker dies without warning while indexing; after a restart every vehicle is in the index."""
    await feed.upsert("dealers", dealer_row(7, "Crash Test Motors"))
    total = 3000
    for vehicle_id in range(10_000, 10_000 + total):
        await feed.upsert("vehicles", vehicle_row(vehicle_id, dealer_id=7, mileage=vehicle_id))
        if vehicle_id == 10_000 + total // 3:
            worker.kill()
    worker.start()
    wait_for_worker_ready(worker)
    ids = [str(v) for v in range(10_000, 10_000 + total)]
    documents: dict[str, VehicleDocument] = {}
    deadline = asyncio.get_running_loop().time() + 120
    while asyncio.get_running_loop().time() < deadline:
        await feed.index.refresh_reader()
        documents = await feed.index.get_many(ids)
        if len(documents) == total and all(d.dealer is not None for d in documents.values()):
            break
        await asyncio.sleep(0.5)
    assert len(documents) == total, f"missing {sorted(set(ids) - set(documents))[:20]}..."
    assert all(d.mileage == int(d.id) for d in documents.values())
    assert all(d.dealer is not None and d.dealer.name == "Crash Test Motors" for d in documents.values())
