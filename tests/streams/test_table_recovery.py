"""Faust tables against a real broker: what a worker wrote is what the next worker recovers.

tansu answers ListOffsets(latest) with the base offset of a partition's last record batch plus one, so a table
recovered up to that end missed all but the first record of a multi-record changelog batch; the worker's
transport asks a fetch for the end instead (`streams.kafka_transport.true_end_offsets`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from faust.types import TP

from hub.broker import EmbeddedBroker
from hub.topics import ensure_topics
from streams.kafka_transport import true_end_offsets

ROOT = Path(__file__).resolve().parents[2]


async def produce(bootstrap: str, topic: str, records: list[tuple[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, key=key.encode(), value=json.dumps({"key": key, "value": value}).encode())
        await producer.flush()
    finally:
        await producer.stop()


def run_probe(broker: EmbeddedBroker, app_id: str, topic: str, mode: str, expected: int) -> str:
    args = [broker.bootstrap_servers, app_id, topic, mode, str(expected)]
    result = subprocess.run(
        [sys.executable, "-m", "tests.streams.table_probe", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("mode", ["bulk", "faust"])
def test_a_restarted_worker_recovers_every_table_write(kafka_broker: EmbeddedBroker, mode: str) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic, app_id = f"table-in-{uuid.uuid4().hex[:8]}", f"table-probe-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(bootstrap, [topic], 2))
    records: list[tuple[str, Any]] = [(f"VIN{n}", {"n": n}) for n in range(60)]
    records += [("VIN3", None), ("VIN4", {"n": 44}), ("VIN59", None)]  # a delete, an overwrite, a last delete
    asyncio.run(produce(bootstrap, topic, records))

    assert "stored" in run_probe(kafka_broker, app_id, topic, mode, len(records))

    asyncio.run(produce(bootstrap, topic, [("VIN0", {"marker": True})]))
    out = run_probe(kafka_broker, app_id, topic, "read", 1)
    recovered = json.loads(out.split("table ", 1)[1])
    expected: dict[str, Any] = {}
    for key, value in records:
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    assert recovered == expected


def test_end_offsets_come_from_a_fetch_of_the_last_batch(kafka_broker: EmbeddedBroker) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic = f"ends-{uuid.uuid4().hex[:8]}"

    async def scenario() -> dict[Any, int]:
        await ensure_topics(bootstrap, [topic], 2)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
        await producer.start()
        try:
            sent = [await producer.send(topic, b"x", partition=0) for _ in range(5)]  # one batch of 5
            await asyncio.gather(*sent)
        finally:
            await producer.stop()
        reported = {TP(topic, 0): 1, TP(topic, 1): 0}  # what tansu's ListOffsets answers for these partitions
        return await true_end_offsets({"bootstrap_servers": bootstrap}, reported)

    assert asyncio.run(scenario()) == {TP(topic, 0): 5, TP(topic, 1): 0}
