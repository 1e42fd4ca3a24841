"""Batches against a real broker: a backlog is read in full batches, live records still leave within the window."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from hub.broker import EmbeddedBroker
from hub.topics import ensure_topics
from streams.batching import keeps_filling

ROOT = Path(__file__).resolve().parents[2]


async def produce(bootstrap: str, topic: str, count: int, spacing_s: float = 0.0) -> list[float]:
    """Sends `count` records; returns when each was acknowledged (unix time)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    sent = []
    try:
        for n in range(count):
            future = await producer.send(topic, key=str(n).encode(), value=b"x" * 200)
            if spacing_s:
                await future
                sent.append(time.time())
                await asyncio.sleep(spacing_s)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


@pytest.fixture
def topic(kafka_broker: EmbeddedBroker) -> str:
    name = f"batching-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(kafka_broker.bootstrap_servers, [name], 1))
    return name


def probe(broker: EmbeddedBroker, topic: str, limits: tuple[int, float, float], expected: int) -> subprocess.Popen[str]:
    args = [broker.bootstrap_servers, topic, *(str(limit) for limit in limits), str(expected)]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.streams.batch_probe", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def batches_of(process: subprocess.Popen[str], timeout: float = 120) -> Iterator[tuple[int, float]]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        if line.startswith("batch "):
            _, size, at = line.split()
            yield int(size), float(at)
        assert time.monotonic() < deadline, "the probe took too long"


def test_a_backlog_is_read_in_full_batches(kafka_broker: EmbeddedBroker, topic: str) -> None:
    asyncio.run(produce(kafka_broker.bootstrap_servers, topic, 3000))

    with_backlog = probe(kafka_broker, topic, (1000, 0.01, 30.0), 3000)
    assert [size for size, _ in batches_of(with_backlog)] == [1000, 1000, 1000]
    assert with_backlog.wait(timeout=30) == 0

    window_only = probe(kafka_broker, topic, (1000, 0.01, 0.0), 3000)
    sizes = [size for size, _ in batches_of(window_only)]
    assert window_only.wait(timeout=30) == 0
    assert sum(sizes) == 3000
    assert len(sizes) > 3  # a 10 ms window alone closes batches before they are full


def test_a_backlog_smaller_than_a_batch_is_read_in_one_batch_not_in_windows(
    kafka_broker: EmbeddedBroker, topic: str
) -> None:
    # A 1 ms window takes a few records of the backlog; the rest is behind, so the batch keeps filling even though
    # the backlog cannot fill it (the ERP after an outage: its connector is still producing what it missed).
    asyncio.run(produce(kafka_broker.bootstrap_servers, topic, 3000))

    with_backlog = probe(kafka_broker, topic, (10_000, 0.001, 30.0), 3000)
    sizes = [size for size, _ in batches_of(with_backlog)]
    assert with_backlog.wait(timeout=30) == 0
    assert sum(sizes) == 3000
    assert sizes[0] >= 2500, sizes
    assert len(sizes) <= 3, sizes


def test_live_records_leave_within_the_window_despite_a_long_backlog_window(
    kafka_broker: EmbeddedBroker, topic: str
) -> None:
    process = probe(kafka_broker, topic, (1000, 0.05, 30.0), 6)
    try:
        asyncio.run(produce(kafka_broker.bootstrap_servers, topic, 1))
        batches = batches_of(process)
        assert next(batches)[0] == 1  # the probe is consuming
        sent = asyncio.run(produce(kafka_broker.bootstrap_servers, topic, 5, spacing_s=0.5))
        seen = list(batches)
    finally:
        process.kill()
    assert sum(size for size, _ in seen) == 5
    # Nothing waits for the 30 s backlog window: each record leaves within a second of being acknowledged.
    assert seen[-1][1] - sent[-1] < 1.0, (seen, sent)


@pytest.mark.parametrize(
    ("behind", "taken", "first_window", "max_events", "fills"),
    [
        (4000, 1000, 1000, 5000, True),  # the records behind fill the batch
        (600, 4500, 100, 5000, True),  # ... even a few, when the batch is nearly full
        (1500, 300, 300, 5000, True),  # a backlog: more than the first window took, a fifth of a batch with it
        (957, 2043, 300, 10_000, True),  # the tail of a backlog the batch already holds most of
        (2990, 10, 10, 10_000, True),  # an ERP backlog after an outage, still being produced
        (250, 200, 200, 5000, False),  # live records queued behind a busy agent: the batch leaves at its window
        (799, 200, 100, 5000, False),  # under a fifth of a batch with them
        (150, 200, 200, 5000, False),  # fewer than the first window took: the stream keeps up
    ],
)
def test_a_batch_keeps_filling_only_for_a_backlog(
    behind: int, taken: int, first_window: int, max_events: int, fills: bool
) -> None:
    assert keeps_filling(behind, taken, first_window, max_events) is fills
