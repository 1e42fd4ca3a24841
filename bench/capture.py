"""Capture rate of the PostgreSQL connector (changes/s into Kafka, acknowledged) beside the raw decode rate.

Each run writes N changes (half inserts, half updates of `vehicles`) while the connector is stopped, then
times (a) psycopg2 streaming + the pgoutput decoder over that WAL (no Kafka) and (b) the connector from
its slot becoming active until the slot's confirmed position passes the last commit (every record
acknowledged by Kafka). A fresh database and an embedded tansu broker are created and removed.

    .venv/bin/python bench/capture.py --rows 200000 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import os
import select
import statistics
import time
import uuid
from pathlib import Path

import psycopg
import psycopg2
from psycopg2.extras import LogicalReplicationConnection

from connectors.postgres.pgoutput import Commit, decode_message, parse_lsn
from connectors.postgres.service import run_connector
from connectors.postgres.settings import PostgresConnectorSettings
from hub.broker import EmbeddedBroker
from marketplace.migrate import drop_database
from marketplace.vin import with_check_digit

SCHEMA_SQL = Path(__file__).resolve().parents[1] / "marketplace" / "migrations" / "001_initial.sql"
ADMIN_URL = os.environ.get("AUCTION_HUB_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def make_vin(number: int) -> str:
    return with_check_digit(f"1HGCM8{number:011d}")


def create_database() -> str:
    name = f"ah_bench_capture_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rpartition("/")[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL.read_text())
        conn.execute("INSERT INTO users (id, email, password_hash, full_name) VALUES (1, 'a@b.co', 'x', 'A')")
        conn.execute(
            "INSERT INTO dealers (id, owner_id, name, rating, city, state, zip, lat, lon) "
            "VALUES (1, 1, 'Lone Star Motors', 4.5, 'Austin', 'TX', '78701', 30.27, -97.74)"
        )
    return url


def write_changes(url: str, rows: int, txn_rows: int = 1000) -> None:
    """`rows // 2` inserts (COPY, `txn_rows` per transaction) then as many single-column updates."""
    inserts = rows // 2
    with psycopg.connect(url) as conn:
        for start in range(1, inserts + 1, txn_rows):
            buffer = io.StringIO()
            for i in range(start, min(start + txn_rows, inserts + 1)):
                buffer.write(
                    f"{i}\t1\t{make_vin(i)}\tHonda\tAccord\t2019\t{i}\t4.5\tsedan\tgasoline\tautomatic\tfwd\t"
                    f"blue\tAustin\tTX\t78701\t30.27\t-97.74\t{{https://img.example/{i}.jpg}}\t{i}.99\n"
                )
            with conn.cursor().copy(
                "COPY vehicles (id, dealer_id, vin, make, model, year, mileage, condition_grade, body_type, "
                "fuel, transmission, drivetrain, exterior_color, city, state, zip, lat, lon, images, "
                "asking_price) FROM STDIN"
            ) as copy:
                copy.write(buffer.getvalue())
            conn.commit()
        for start in range(1, rows - inserts + 1, txn_rows):
            conn.execute(
                "UPDATE vehicles SET mileage = mileage + 1 WHERE id >= %s AND id < %s",
                (start, start + txn_rows),
            )
            conn.commit()


def raw_decode(url: str, slot: str) -> tuple[int, float, int]:
    """psycopg2 stream + pgoutput decode of everything in `slot`: (changes, seconds, last commit end)."""
    conn = psycopg2.connect(url, connection_factory=LogicalReplicationConnection)
    cursor = conn.cursor()
    with psycopg.connect(url) as check:
        row = check.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        target = parse_lsn(row[0]) if row else 0
    started = time.perf_counter()
    cursor.start_replication(
        slot_name=slot, decode=False, options={"proto_version": "1", "publication_names": "auction_hub"}
    )
    changes = 0
    last_end = 0
    idle_since = time.perf_counter()
    while True:
        message = cursor.read_message()
        if message is None:
            if last_end and time.perf_counter() - idle_since > 1.0 and cursor.wal_end >= target:
                break
            select.select([cursor], [], [], 0.2)
            continue
        idle_since = time.perf_counter()
        decoded = decode_message(message.payload)
        if isinstance(decoded, Commit):
            last_end = decoded.end_lsn
        elif decoded is not None and decoded.__class__.__name__ in ("Insert", "Update", "Delete"):
            changes += 1
    elapsed = time.perf_counter() - started - 1.0  # the idle second that proved the stream was drained
    conn.close()
    return changes, elapsed, last_end


async def confirmed_lsn(url: str, slot: str) -> tuple[int, bool]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT confirmed_flush_lsn::text, active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        )
        row = await cur.fetchone()
    return (parse_lsn(row[0]), bool(row[1])) if row and row[0] else (0, False)


async def one_run(url: str, broker: EmbeddedBroker, rows: int, run: int) -> tuple[float, float]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE vehicles CASCADE")
    tag = uuid.uuid4().hex[:6]
    settings = PostgresConnectorSettings(
        database_url=url,
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        topic_prefix=f"bench{tag}",
        pg_slot_name=f"bench_{tag}",
        pg_status_interval_s=1.0,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(run_connector(settings, stop))
    while not (await confirmed_lsn(url, settings.pg_slot_name))[1]:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    stop.set()
    await task
    raw_slot = f"bench_raw_{tag}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (raw_slot,))
    write_changes(url, rows)

    changes, raw_seconds, last_end = await asyncio.to_thread(raw_decode, url, raw_slot)
    raw_rate = changes / raw_seconds

    stop = asyncio.Event()
    task = asyncio.create_task(run_connector(settings, stop))
    while True:
        lsn, active = await confirmed_lsn(url, settings.pg_slot_name)
        if active:
            break
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    while (await confirmed_lsn(url, settings.pg_slot_name))[0] < last_end:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    capture_seconds = time.perf_counter() - started
    stop.set()
    await task
    capture_rate = changes / capture_seconds
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_drop_replication_slot(%s)", (raw_slot,))
        conn.execute("SELECT pg_drop_replication_slot(%s)", (settings.pg_slot_name,))
    print(
        f"run {run}: {changes} changes  capture {capture_rate:>9,.0f}/s ({capture_seconds:.2f}s)  "
        f"raw decode {raw_rate:>9,.0f}/s ({raw_seconds:.2f}s)  ratio {capture_rate / raw_rate:.2f}"
    )
    return capture_rate, raw_rate


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="changes per run (half inserts, half updates)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=os.environ.get("BENCH_LOG", "WARNING"))
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    broker = EmbeddedBroker().start()
    url = create_database()
    try:
        results = [await one_run(url, broker, args.rows, run + 1) for run in range(args.runs)]
    finally:
        drop_database(url)
        broker.stop()
    capture = [c for c, _ in results]
    raw = [r for _, r in results]
    print(
        f"capture: median {statistics.median(capture):,.0f}/s  p95 {p95(capture):,.0f}/s | "
        f"raw decode: median {statistics.median(raw):,.0f}/s  p95 {p95(raw):,.0f}/s | "
        f"ratio (medians) {statistics.median(capture) / statistics.median(raw):.2f}  goal >= 30,000/s"
    )


if __name__ == "__main__":
    asyncio.run(main())
