"""Fixtures of the PostgreSQL connector tests: a migrated source database, settings, a topic reader."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from connectors.postgres.service import run_connector
from connectors.postgres.settings import PostgresConnectorSettings
from hub.broker import EmbeddedBroker

SCHEMA_SQL = Path(__file__).resolve().parents[3] / "marketplace" / "migrations" / "001_initial.sql"

_VIN_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
_VIN_VALUES = [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9, 2, 3, 4, 5, 6, 7, 8, 9]
_VIN_WEIGHTS = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2]


def make_vin(number: int) -> str:
    """A VIN that passes `vin_is_valid` (ISO 3779 check digit), unique per number."""
    body = f"1HGCM8{number:011d}"
    chars = list(body)
    total = sum(
        (int(ch) if ch.isdigit() else _VIN_VALUES[_VIN_LETTERS.index(ch)]) * weight
        for ch, weight in zip(chars, _VIN_WEIGHTS, strict=True)
    )
    chars[8] = "X" if total % 11 == 10 else str(total % 11)
    return "".join(chars)


VEHICLE_INSERT = """
INSERT INTO vehicles (id, dealer_id, vin, make, model, year, mileage, condition_grade, body_type, fuel,
    transmission, drivetrain, exterior_color, city, state, zip, lat, lon, images, asking_price)
VALUES (%s, 1, %s, 'Honda', 'Accord', 2019, %s, 4.5, 'sedan', 'gasoline', 'automatic', 'fwd', 'blue',
    'Austin', 'TX', '78701', 30.27, -97.74, ARRAY['https://img/1.jpg', 'a "quoted", one'], %s)
"""


def seed(url: str, vehicles: int = 0) -> None:
    """A user, a dealer and `vehicles` vehicles (ids 1..n)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (id, email, password_hash, full_name) VALUES (1, 'a@b.co', 'x', 'Ann')")
        conn.execute(
            "INSERT INTO dealers (id, owner_id, name, rating, city, state, zip, lat, lon) "
            "VALUES (1, 1, 'Lone Star Motors', 4.5, 'Austin', 'TX', '78701', 30.27, -97.74)"
        )
        with conn.cursor() as cur:
            cur.executemany(VEHICLE_INSERT, [(i, make_vin(i), 1000 * i, f"{i}.25") for i in range(1, vehicles + 1)])


@pytest.fixture
def source_db(database_factory: Callable[[str], str]) -> str:
    url = database_factory("pgsrc")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL.read_text())
    return url


@pytest.fixture
def make_settings(source_db: str, kafka_broker: EmbeddedBroker) -> Iterator[Callable[..., PostgresConnectorSettings]]:
    """Settings for this test's database, with a unique slot and topic prefix; drops the slots after."""
    slots: list[str] = []

    def make(**overrides: Any) -> PostgresConnectorSettings:
        tag = uuid.uuid4().hex[:8]
        values: dict[str, Any] = {
            "database_url": source_db,
            "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
            "topic_prefix": f"t{tag}",
            "topic_partitions": 2,
            "pg_slot_name": f"ah_test_{tag}",
            "pg_heartbeat_interval_s": 1.0,
            "pg_status_interval_s": 1.0,
        }
        values.update(overrides)
        settings = PostgresConnectorSettings(**values)
        slots.append(settings.pg_slot_name)
        return settings

    yield make
    with psycopg.connect(source_db, autocommit=True) as conn:
        for slot in slots:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (slot,),
            )


@dataclass
class Change:
    key: dict[str, Any] | None
    value: dict[str, Any] | None
    headers: dict[str, bytes]
    raw_value: bytes | None


async def read_topic(
    bootstrap: str, topic: str, *, until: Callable[[list[Change]], bool], timeout: float = 20.0
) -> list[Change]:
    """Every record of `topic` (all partitions, from the beginning) once `until(records)` holds."""
    # No group: every partition is assigned at once, without the broker's ~5 s group join.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        metadata_max_age_ms=500,
    )
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        changes: list[Change] = []
        while True:
            batches = await consumer.getmany(timeout_ms=300)
            for records in batches.values():
                for record in records:
                    changes.append(
                        Change(
                            orjson.loads(record.key) if record.key else None,
                            orjson.loads(record.value) if record.value else None,
                            dict(record.headers or []),
                            record.value,
                        )
                    )
            if until(changes):
                return changes
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"gave up on {topic} with {len(changes)} records")
    finally:
        # aiokafka's group-less coordinator can surface the cancellation of its own routine here.
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


def count_at_least(n: int) -> Callable[[list[Change]], bool]:
    return lambda changes: len(changes) >= n


@asynccontextmanager
async def running(settings: PostgresConnectorSettings, *, force_snapshot: bool = False) -> AsyncIterator[None]:
    """The connector in this event loop for the duration of the block, then stopped cleanly."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_connector(settings, stop, force_snapshot=force_snapshot))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def wait_for_slot(url: str, slot: str, timeout: float = 20.0) -> None:
    """Until the slot is streaming (active), so changes after this are not in the snapshot."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while asyncio.get_running_loop().time() < deadline:
            cur = await conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
            row = await cur.fetchone()
            if row and row[0]:
                return
            await asyncio.sleep(0.1)
    raise AssertionError(f"slot {slot} never became active")
