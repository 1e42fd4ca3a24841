"""Records faust drops from its stream buffers are fetched again (`streams.flow_control`, `BoundedWaitConsumer`).

The apps are real faust apps on the hub's transport; nothing connects, since only what happens between the
flow control, the buffers and the consumer's fetch loop is under test. The kill -9 test in test_worker_e2e.py
runs the whole path against a broker.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP
from mode.utils.queues import ThrowableQueue

from streams.flow_control import ReplayingApp, ReplayingFlowControl, first_buffered_offsets
from streams.kafka_transport import BoundedWaitConsumer, broker_url

VEHICLES_0 = TP("vehicles", 0)
VEHICLES_1 = TP("vehicles", 1)


def event(tp: TP, offset: int) -> Any:
    return SimpleNamespace(message=SimpleNamespace(tp=tp, topic=tp.topic, offset=offset))


@pytest.fixture
def app() -> ReplayingApp:
    return ReplayingApp("flow-replay-test", broker=broker_url("127.0.0.1:9", 20), store="memory://")


def consumer_of(app: ReplayingApp) -> BoundedWaitConsumer:
    consumer = app.consumer
    assert isinstance(consumer, BoundedWaitConsumer)
    return consumer


def test_the_first_buffered_offset_of_each_partition_is_found_across_buffers() -> None:
    first = [event(VEHICLES_0, 12), event(VEHICLES_1, 40), event(VEHICLES_0, 10)]
    second = [event(VEHICLES_0, 11), "a value that is no event"]
    queues = [SimpleNamespace(_queue=list(items)) for items in (first, second)]
    assert first_buffered_offsets(queues) == {VEHICLES_0: 10, VEHICLES_1: 40}


async def test_emptying_the_buffers_reports_what_they_held_then_empties_them() -> None:
    reported: list[dict[Any, int]] = []
    flow = ReplayingFlowControl(on_dropped=reported.append)
    queue: ThrowableQueue = ThrowableQueue(maxsize=10, flow_control=flow, clear_on_resume=True)
    for offset in (5, 6, 7):
        queue.put_nowait(event(VEHICLES_0, offset))
    flow.resume()
    assert reported == [{VEHICLES_0: 5}]
    assert queue.empty()
    flow.clear()
    assert reported == [{VEHICLES_0: 5}], "empty buffers drop nothing"


async def test_the_apps_consumer_reads_dropped_records_again(app: ReplayingApp) -> None:
    buffer = app.FlowControlQueue(maxsize=10, clear_on_resume=True)
    buffer.put_nowait(event(VEHICLES_0, 300))
    buffer.put_nowait(event(VEHICLES_1, 290))
    buffer.put_nowait(event(VEHICLES_0, 301))
    app.flow_control.resume()  # what table recovery does once it hands the partitions to the streams
    assert consumer_of(app).pending_rereads == {VEHICLES_0: 300, VEHICLES_1: 290}


async def test_a_reread_keeps_the_lowest_offset_asked(app: ReplayingApp) -> None:
    consumer = consumer_of(app)
    consumer.read_again(VEHICLES_0, 50, "test")
    consumer.read_again(VEHICLES_0, 70, "test")
    consumer.read_again(VEHICLES_0, 40, "test")
    assert consumer.pending_rereads == {VEHICLES_0: 40}


async def test_records_of_a_partition_to_read_again_are_left_out_until_then(app: ReplayingApp) -> None:
    consumer = consumer_of(app)
    delivered: list[tuple[TP, int]] = []

    async def callback(message: Any) -> None:
        delivered.append((message.tp, message.offset))

    consumer.read_again(VEHICLES_0, 300, "test")
    for tp, offset in ((VEHICLES_0, 320), (VEHICLES_1, 7), (VEHICLES_0, 321)):
        await consumer._take(tp, event(tp, offset).message, callback)
    assert delivered == [(VEHICLES_1, 7)]
    assert consumer._read_offset[VEHICLES_0] is None, "the read offset stays where the re-read will start"


async def test_an_abandoned_delivery_is_read_again(app: ReplayingApp) -> None:
    consumer = consumer_of(app)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def callback(message: Any) -> None:
        await never  # a full stream buffer

    asyncio.get_running_loop().call_later(0.01, consumer.suspend_flow.set)  # a rebalance starts
    await asyncio.wait_for(consumer._take(VEHICLES_0, event(VEHICLES_0, 500).message, callback), timeout=5)
    assert consumer.pending_rereads == {VEHICLES_0: 500}
    assert consumer._read_offset[VEHICLES_0] is None


def fetched(*records: tuple[TP, int]) -> dict[TP, list[Any]]:
    batches: dict[TP, list[Any]] = {}
    for tp, offset in records:
        batches.setdefault(tp, []).append(SimpleNamespace(offset=offset))
    return batches


def handing_out(consumer: BoundedWaitConsumer, records: dict[TP, list[Any]], active: set[TP] | None) -> Any:
    """Make the consumer's next fetch return `records` with `active` as the active partitions it asked for."""

    async def wait_next_records(timeout: float) -> tuple[dict[TP, list[Any]], set[TP] | None]:
        return records, active

    consumer._wait_next_records = wait_next_records  # type: ignore[method-assign]
    setattr(consumer, "_to_message", lambda tp, record: (tp, record.offset))  # noqa: B010 - typed as a message
    return consumer.getmany(timeout=0.1)


async def test_records_of_a_paused_partition_are_read_again_not_dropped(app: ReplayingApp) -> None:
    consumer = consumer_of(app)
    consumer.resume_flow()
    records = fetched((VEHICLES_0, 10), (VEHICLES_1, 60), (VEHICLES_0, 11), (VEHICLES_1, 61))
    handed = [message async for _, message in handing_out(consumer, records, {VEHICLES_0})]
    assert handed == [(VEHICLES_0, 10), (VEHICLES_0, 11)]
    assert consumer.pending_rereads == {VEHICLES_1: 60}  # faust skipped these: lost without a committed offset


async def test_what_a_stopped_flow_leaves_of_a_batch_is_read_again(app: ReplayingApp) -> None:
    consumer = consumer_of(app)
    consumer.resume_flow()
    records = fetched((VEHICLES_0, 10), (VEHICLES_1, 60), (VEHICLES_0, 11), (VEHICLES_1, 61))
    handed = []
    async for _, message in handing_out(consumer, records, {VEHICLES_0, VEHICLES_1}):
        handed.append(message)
        consumer.stop_flow()  # a rebalance starts after the first record
    assert handed == [(VEHICLES_0, 10)]
    assert consumer.pending_rereads == {VEHICLES_1: 60, VEHICLES_0: 11}


async def test_a_batch_fetched_while_the_flow_is_stopped_is_read_again(app: ReplayingApp) -> None:
    consumer = consumer_of(app)
    consumer.stop_flow()
    seeks: list[str] = []

    async def perform_seek() -> None:
        seeks.append("committed")

    consumer.perform_seek = perform_seek  # type: ignore[method-assign]
    records = fetched((VEHICLES_0, 10), (VEHICLES_1, 60))
    assert [message async for _, message in handing_out(consumer, records, {VEHICLES_0, VEHICLES_1})] == []
    assert seeks == ["committed"]
    assert consumer.pending_rereads == {VEHICLES_0: 10, VEHICLES_1: 60}
