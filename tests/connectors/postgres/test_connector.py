"""The connector against a real PostgreSQL and a real tansu broker."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import signal
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from connectors.postgres.settings import PostgresConnectorSettings
from hub.broker import EmbeddedBroker
from schemas.debezium import NEW_KEY_HEADER, OLD_KEY_HEADER, UNAVAILABLE_VALUE, parse_change_value, parse_key
from tests.connectors.postgres.conftest import (
    VEHICLE_INSERT,
    Change,
    count_at_least,
    make_vin,
    read_topic,
    running,
    seed,
    wait_for_slot,
)

MakeSettings = Callable[..., PostgresConnectorSettings]
REPO = Path(__file__).resolve().parents[3]


def vehicles_topic(settings: PostgresConnectorSettings) -> str:
    return f"{settings.topic_prefix}.public.vehicles"


def sql(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def ops(changes: list[Change]) -> list[str | None]:
    return [c.value["op"] if c.value else None for c in changes]


async def test_snapshot_then_streaming(
    make_settings: MakeSettings, source_db: str, kafka_broker: EmbeddedBroker
) -> None:
    seed(source_db, vehicles=5)
    settings = make_settings()
    async with running(settings):
        await wait_for_slot(source_db, settings.pg_slot_name)
        sql(source_db, "UPDATE vehicles SET mileage = 7 WHERE id = 5")
        changes = await read_topic(kafka_broker.bootstrap_servers, vehicles_topic(settings), until=count_at_least(6))
    snapshot = [c for c in changes if c.value and c.value["op"] == "r"]
    assert sorted(c.key["id"] for c in snapshot if c.key) == [1, 2, 3, 4, 5]
    flags = [c.value["source"]["snapshot"] for c in snapshot if c.value]
    assert flags.count("last") == 1
    assert flags.count("true") == 4
    lsns = {c.value["source"]["lsn"] for c in snapshot if c.value}
    assert len(lsns) == 1
    update = next(c for c in changes if c.value and c.value["op"] == "u")
    assert update.value is not None
    assert update.value["source"]["snapshot"] == "false"
    assert update.value["after"]["mileage"] == 7
    assert update.value["source"]["lsn"] > lsns.pop()
    assert update.value["source"]["sequence"].startswith('["')
    row = snapshot[0].value["after"] if snapshot[0].value else {}
    assert row["images"] == ["https://img/1.jpg", 'a "quoted", one']
    assert row["created_at"].endswith("Z")
    assert "T" in row["created_at"]
    assert isinstance(row["lat"], float)
    assert isinstance(row["asking_price"], str)
    dealers = await read_topic(
        kafka_broker.bootstrap_servers, f"{settings.topic_prefix}.public.dealers", until=count_at_least(1)
    )
    assert dealers[0].value
    assert dealers[0].value["after"]["rating"] == "4.5"


async def test_snapshot_is_consistent_with_concurrent_writes(
    make_settings: MakeSettings, source_db: str, kafka_broker: EmbeddedBroker
) -> None:
    seed(source_db, vehicles=200)
    settings = make_settings(pg_batch_max=50)
    final: dict[int, int] = {i: 1000 * i for i in range(1, 201)}

    async def write() -> None:
        async with await psycopg.AsyncConnection.connect(source_db, autocommit=True) as conn:
            for n in range(300):
                vehicle = random.randint(1, 200)
                await conn.execute("UPDATE vehicles SET mileage = %s WHERE id = %s", (n, vehicle))
                final[vehicle] = n
                await asyncio.sleep(0.002)

    async with running(settings):
        await write()
        expected = final.copy()

        def converged(changes: list[Change]) -> bool:
            latest = {c.key["id"]: c.value["after"]["mileage"] for c in changes if c.key and c.value}
            return latest == expected

        await read_topic(kafka_broker.bootstrap_servers, vehicles_topic(settings), until=converged)


async def test_insert_update_delete_key_change_truncate(
    make_settings: MakeSettings, source_db: str, kafka_broker: EmbeddedBroker
) -> None:
    seed(source_db)
    settings = make_settings(topic_partitions=3)
    async with running(settings):
        await wait_for_slot(source_db, settings.pg_slot_name)
        with psycopg.connect(source_db, autocommit=True) as conn:
            conn.execute(VEHICLE_INSERT, (1, make_vin(1), 10, "100.00"))
            conn.execute("UPDATE vehicles SET mileage = 11 WHERE id = 1")
            conn.execute("UPDATE vehicles SET id = 2 WHERE id = 1")
            conn.execute("DELETE FROM vehicles WHERE id = 2")
            conn.execute("TRUNCATE vehicles CASCADE")
        changes = await read_topic(
            kafka_broker.bootstrap_servers,
            vehicles_topic(settings),
            until=lambda cs: sum(1 for c in cs if c.value and c.value["op"] == "t") == 3,
        )
    first = [c for c in changes if c.key == {"id": 1}]
    second = [c for c in changes if c.key == {"id": 2}]
    assert ops(first) == ["c", "u", "d", None]
    assert ops(second) == ["c", "d", None]
    created, updated, key_delete, key_tombstone = first
    key_create, deleted, tombstone = second
    assert created.value
    assert created.value["before"] is None
    assert created.value["after"]["mileage"] == 10
    assert updated.value
    assert updated.value["before"] is None
    assert updated.value["after"]["mileage"] == 11
    assert key_delete.headers[NEW_KEY_HEADER] == b'{"id":2}'
    assert key_tombstone.value is None
    assert key_create.headers[OLD_KEY_HEADER] == b'{"id":1}'
    assert key_create.value
    assert key_create.value["after"]["id"] == 2
    assert deleted.value
    assert deleted.value["before"] == {"id": 2}
    assert deleted.value["after"] is None
    assert tombstone.value is None
    truncates = [c for c in changes if c.value and c.value["op"] == "t"]
    assert len(truncates) == 3  # one per partition
    assert all(c.key is None and c.value and c.value["after"] is None for c in truncates)
    for change in changes:
        if change.raw_value:
            event = parse_change_value(change.raw_value)
            assert event is not None
            assert event.source.connector == "postgresql"
            assert set(change.value or {}) == {
                "before", "after", "source", "op", "ts_ms", "ts_us", "ts_ns", "transaction"
            }  # fmt: skip


async def test_unchanged_toast_value_is_the_placeholder(
    make_settings: MakeSettings, source_db: str, kafka_broker: EmbeddedBroker
) -> None:
    seed(source_db, vehicles=1)
    # Random text does not compress, so PostgreSQL moves it out of line (TOAST).
    large = "".join(random.choices(string.ascii_letters + string.digits, k=20_000))
    sql(source_db, f"UPDATE vehicles SET description = '{large}' WHERE id = 1")
    settings = make_settings()
    async with running(settings):
        await wait_for_slot(source_db, settings.pg_slot_name)
        sql(source_db, "UPDATE vehicles SET mileage = 3 WHERE id = 1")
        changes = await read_topic(
            kafka_broker.bootstrap_servers, vehicles_topic(settings), until=lambda cs: "u" in ops(cs)
        )
    snapshot = next(c for c in changes if c.value and c.value["op"] == "r")
    assert snapshot.value
    assert snapshot.value["after"]["description"] == large
    update = next(c for c in changes if c.value and c.value["op"] == "u")
    assert update.value
    assert update.value["after"]["description"] == UNAVAILABLE_VALUE
    assert update.value["after"]["mileage"] == 3


async def test_schemas_enabled_with_precise_decimals(
    make_settings: MakeSettings, source_db: str, kafka_broker: EmbeddedBroker
) -> None:
    seed(source_db, vehicles=1)
    settings = make_settings(pg_schemas_enable=True, pg_decimal_handling_mode="precise")
    async with running(settings):
        await wait_for_slot(source_db, settings.pg_slot_name)
        sql(source_db, "DELETE FROM vehicles WHERE id = 1")
        changes = await read_topic(kafka_broker.bootstrap_servers, vehicles_topic(settings), until=count_at_least(3))
    first = changes[0]
    assert first.raw_value is not None
    assert first.value is not None
    event = parse_change_value(first.raw_value)
    assert event is not None
    assert event.op == "r"
    assert event.after is not None
    assert base64.b64decode(event.after["asking_price"]) == (125).to_bytes(1, "big")  # 1.25 at scale 2
    schema = first.value["schema"]
    assert schema["name"] == f"{vehicles_topic(settings)}.Envelope"
    fields = {f["field"]: f for f in schema["fields"]}
    assert list(fields)[:3] == ["before", "after", "source"]
    assert fields["source"]["name"] == "io.debezium.connector.postgresql.Source"
    after = {f["field"]: f for f in fields["after"]["fields"]}
    assert after["id"] == {"type": "int64", "optional": False, "field": "id"}
    assert after["trim"]["optional"] is True
    assert after["asking_price"]["name"] == "org.apache.kafka.connect.data.Decimal"
    assert after["asking_price"]["parameters"] == {"scale": "2", "connect.decimal.precision": "12"}
    assert after["created_at"]["name"] == "io.debezium.time.ZonedTimestamp"
    assert after["images"]["type"] == "array"
    assert first.key is not None
    assert first.key["schema"]["name"] == f"{vehicles_topic(settings)}.Key"
    assert parse_key(b'{"schema":' + b"{}" + b',"payload":{"id":1}}') == {"id": 1}
    assert first.key["payload"] == {"id": 1}
    deleted = parse_change_value(changes[1].raw_value)
    assert deleted is not None
    assert deleted.op == "d"
    assert deleted.before == {"id": 1}
    assert changes[2].value is None


async def test_double_decimals(make_settings: MakeSettings, source_db: str, kafka_broker: EmbeddedBroker) -> None:
    seed(source_db, vehicles=1)
    settings = make_settings(pg_decimal_handling_mode="double")
    async with running(settings):
        changes = await read_topic(kafka_broker.bootstrap_servers, vehicles_topic(settings), until=count_at_least(1))
    assert changes[0].value
    assert changes[0].value["after"]["asking_price"] == 1.25


async def test_unfinished_snapshot_and_forced_snapshot_are_taken_again(
    make_settings: MakeSettings, source_db: str, kafka_broker: EmbeddedBroker
) -> None:
    seed(source_db, vehicles=2)
    settings = make_settings()
    topic = vehicles_topic(settings)

    def reads(n: int) -> Callable[[list[Change]], bool]:
        return lambda cs: ops(cs).count("r") >= n

    async with running(settings):
        await read_topic(kafka_broker.bootstrap_servers, topic, until=reads(2))
    # As if the process died mid-snapshot: the state row says it never completed.
    sql(source_db, "UPDATE auction_hub_connector_state SET snapshot_completed_at = NULL")
    async with running(settings):
        await read_topic(kafka_broker.bootstrap_servers, topic, until=reads(4))
    async with running(settings):
        await wait_for_slot(source_db, settings.pg_slot_name)
    async with running(settings, force_snapshot=True):
        changes = await read_topic(kafka_broker.bootstrap_servers, topic, until=reads(6))
    assert ops(changes).count("r") == 6


async def test_idle_slot_advances_with_heartbeats(
    make_settings: MakeSettings, source_db: str, kafka_broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    seed(source_db)
    sql(source_db, "CREATE TABLE heartbeat (id int PRIMARY KEY, at timestamptz)")
    settings = make_settings(
        pg_heartbeat_action_query="INSERT INTO heartbeat VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now()",
        pg_wal_warn_bytes=0,
        pg_wal_check_interval_s=0.5,
    )
    caplog.set_level(logging.WARNING, logger="connectors.postgres")

    async def confirmed() -> int:
        async with await psycopg.AsyncConnection.connect(source_db, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT confirmed_flush_lsn - '0/0'::pg_lsn FROM pg_replication_slots WHERE slot_name = %s",
                (settings.pg_slot_name,),
            )
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async with running(settings):
        await wait_for_slot(source_db, settings.pg_slot_name)
        start = await confirmed()
        # WAL the slot never decodes into a change: another database's writes and an unpublished table.
        sql(source_db, "CREATE TABLE unpublished (x int)", "INSERT INTO unpublished SELECT generate_series(1, 1000)")
        for _ in range(100):
            if await confirmed() > start:
                break
            await asyncio.sleep(0.1)
        assert await confirmed() > start
        beats = await read_topic(kafka_broker.bootstrap_servers, settings.heartbeat_topic, until=count_at_least(2))
    assert beats[0].key == {"serverName": settings.topic_prefix}
    assert beats[0].value
    assert isinstance(beats[0].value["ts_ms"], int)
    with psycopg.connect(source_db) as conn:
        assert conn.execute("SELECT count(*) FROM heartbeat").fetchone() == (1,)
    warnings = [r.getMessage() for r in caplog.records if "retains" in r.getMessage()]
    assert warnings
    assert "wal_status=" in warnings[0]
    assert "safe_wal_size=" in warnings[0]


def _connector_process(settings: PostgresConnectorSettings, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AUCTION_HUB_DATABASE_URL": settings.database_url,
        "AUCTION_HUB_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "AUCTION_HUB_TOPIC_PREFIX": settings.topic_prefix,
        "AUCTION_HUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "AUCTION_HUB_PG_SLOT_NAME": settings.pg_slot_name,
        "AUCTION_HUB_PG_TABLES": "vehicles,dealers",
        "AUCTION_HUB_PG_BATCH_MAX": "200",
    }
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "connectors.postgres"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )


async def test_kill_9_loses_nothing(
    make_settings: MakeSettings, source_db: str, kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    seed(source_db, vehicles=50)
    settings = make_settings()
    log_path = tmp_path / "connector.log"
    final: dict[int, int | None] = {i: 1000 * i for i in range(1, 51)}
    next_id = 51

    async def write(seconds: float) -> None:
        nonlocal next_id
        deadline = asyncio.get_running_loop().time() + seconds
        async with await psycopg.AsyncConnection.connect(source_db, autocommit=True) as conn:
            while asyncio.get_running_loop().time() < deadline:
                async with conn.transaction():
                    for _ in range(5):
                        choice = random.random()
                        alive = [k for k, v in final.items() if v is not None]
                        if choice < 0.4 or not alive:
                            await conn.execute(VEHICLE_INSERT, (next_id, make_vin(next_id), 1, "9.99"))
                            final[next_id] = 1
                            next_id += 1
                        elif choice < 0.9:
                            vehicle = random.choice(alive)
                            mileage = random.randint(1, 1_000_000)
                            await conn.execute("UPDATE vehicles SET mileage = %s WHERE id = %s", (mileage, vehicle))
                            final[vehicle] = mileage
                        else:
                            vehicle = random.choice(alive)
                            await conn.execute("DELETE FROM vehicles WHERE id = %s", (vehicle,))
                            final[vehicle] = None
                await asyncio.sleep(0.005)

    process = _connector_process(settings, log_path)
    try:
        await write(2.0)
        process.send_signal(signal.SIGKILL)
        process.wait()
        await write(1.0)  # while it is down
        process = _connector_process(settings, log_path)
        await write(1.5)
        process.send_signal(signal.SIGKILL)
        process.wait()
        process = _connector_process(settings, log_path)
        await write(0.5)
        expected = dict(final)
        mismatch: dict[int, Any] = {}

        def converged(changes: list[Change]) -> bool:
            latest: dict[int, int | None] = {}
            for change in changes:
                if change.key is None:
                    continue
                vehicle = change.key["id"]
                if change.value is None or change.value["op"] == "d":
                    latest[vehicle] = None
                else:
                    latest[vehicle] = change.value["after"]["mileage"]
            # A row deleted before the first start's slot existed has no record at all: also "gone".
            mismatch.clear()
            mismatch.update({k: (v, latest.get(k)) for k, v in expected.items() if latest.get(k) != v})
            return not mismatch

        try:
            await read_topic(kafka_broker.bootstrap_servers, vehicles_topic(settings), until=converged, timeout=30)
        except AssertionError as exc:
            raise AssertionError(f"final states differ (expected, seen): {mismatch}") from exc
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        print(log_path.read_text()[-3000:])  # noqa: T201 - shown by pytest only when the test fails
