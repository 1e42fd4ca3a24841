"""Faust tables against a real broker: what a worker wrote is what the next worker recovers.

tansu answers ListOffsets(latest) with the base offset of a partition's last record batch plus one, so a table
recovered up to that end missed all but the first record of a multi-record changelog batch; the worker's
transport asks a fetch for the end instead (`streams.kafka_transport.true_end_offsets`).
"""

from __future__ import annotations

import asyncio
import json
import os
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


def run_probe(broker: EmbeddedBroker, log_dir: Path, app_id: str, topic: str, mode: str, expected: int) -> str:
    """Run the probe; its log (at INFO) is kept in a file, so a probe that hangs still tells where."""
    args = [broker.bootstrap_servers, app_id, topic, mode, str(expected)]
    log_path = log_dir / f"probe-{mode}.log"
    with log_path.open("w") as log:
        probe = subprocess.Popen(
            [sys.executable, "-m", "tests.streams.table_probe", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PROBE_LOGLEVEL": os.environ.get("PROBE_LOGLEVEL", "info")},
        )
        try:
            stdout, _ = probe.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            probe.kill()
            probe.communicate()
            pytest.fail(f"the {mode} probe did not finish in 120 s; its log ends:\n{log_path.read_text()[-6000:]}")
    assert probe.returncode == 0, log_path.read_text()[-6000:]
    return stdout


@pytest.mark.parametrize("mode", ["bulk", "faust"])
def test_a_restarted_worker_recovers_every_table_write(kafka_broker: EmbeddedBroker, tmp_path: Path, mode: str) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    topic, app_id = f"table-in-{uuid.uuid4().hex[:8]}", f"table-probe-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(bootstrap, [topic], 2))
    records: list[tuple[str, Any]] = [(f"VIN{n}", {"n": n}) for n in range(60)]
    records += [("VIN3", None), ("VIN4", {"n": 44}), ("VIN59", None)]  # a delete, an overwrite, a last delete
    asyncio.run(produce(bootstrap, topic, records))

    assert "stored" in run_probe(kafka_broker, tmp_path, app_id, topic, mode, len(records))

    asyncio.run(produce(bootstrap, topic, [("VIN0", {"marker": True})]))
    out = run_probe(kafka_broker, tmp_path, app_id, topic, "read", 1)
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
