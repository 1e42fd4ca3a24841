"""A Faust app with one table, written in batches and read back by the same app id after a restart.

    python -m tests.streams.table_probe BOOTSTRAP APP_ID TOPIC MODE EXPECTED

MODE `bulk` writes each batch through `streams.table_writes.write_through`, `faust` through the table's own
`table[key] = value` (under each record as Faust's current event); each input record is `{"key": ..., "value": ...}`
(value null: delete). Once EXPECTED records were applied and their changelog stored, the probe prints `stored` and
exits. MODE `read` (the same app id started again, so its table is recovered from the changelog) prints the table
as JSON, `table {...}`, when the next input record arrives: Faust streams records only after recovery.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event
from faust.types import EventT, StreamT

from streams.batching import BatchLimits, take_event_batches
from streams.table_writes import write_through
from tests.streams.probe_apps import probe_app, run_worker, say


@contextmanager
def as_current_event(event: EventT) -> Iterator[None]:
    """Make `event` Faust's current event: the table sends a write's changelog record to its partition."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


class FaustWrites:
    """Writes through the table's own `table[key] = value`, and waits until Kafka acknowledged their changelog.

    Faust's producer.flush() is no barrier: its buffer's flush returns after 0.1 s without a message sent, and as
    soon as the buffer is empty while its last message is still being handed to the producer. So the records Kafka
    acknowledged are counted (the table's send callback).
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.sent = self.acked = 0
        self.all_acked = asyncio.Event()
        self._on_sent = table._on_changelog_sent  # noqa: SLF001
        table._on_changelog_sent = self._count_acked  # noqa: SLF001

    def _count_acked(self, future: Any) -> None:
        self._on_sent(future)
        self.acked += 1
        if self.acked >= self.sent:
            self.all_acked.set()

    async def write(self, events: list[EventT], writes: list[tuple[int, str, Any]]) -> None:
        self.all_acked.clear()
        for event, (_, key, value) in zip(events, writes, strict=True):
            if value is None and key not in self.table:
                continue  # nothing to delete: no changelog record
            self.sent += 1
            with as_current_event(event):
                if value is None:
                    del self.table[key]
                else:
                    self.table[key] = value
        if self.acked < self.sent:
            await asyncio.wait_for(self.all_acked.wait(), timeout=60)


def main(bootstrap: str, app_id: str, topic_name: str, mode: str, expected: int) -> None:
    app = probe_app(app_id, bootstrap, topic_partitions=2, producer_acks=-1)
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    table = app.Table("probe-stock", default=None, partitions=2)
    faust_writes = FaustWrites(table)
    seen = 0

    async def apply(stream: StreamT[bytes]) -> None:
        nonlocal seen
        async for events in take_event_batches(stream, BatchLimits(1000, 0.05, 1.0)):
            if mode == "read":
                say(f"table {json.dumps(dict(table.items()), sort_keys=True)}")
                os._exit(0)
            writes = []
            for event in events:
                record = json.loads(event.value)
                writes.append((event.message.partition, record["key"], record["value"]))
            if mode == "faust":
                await faust_writes.write(events, writes)
            else:
                await (await write_through(table, writes)).stored()  # type: ignore[arg-type]
            seen += len(events)
            if seen >= expected:
                say("stored")
                os._exit(0)

    app.agent(topic, name="apply")(apply)
    if mode == "read":
        app.timer(5.0)(lambda: report_consumer_state(app))
    run_worker(app)


async def report_consumer_state(app: Any) -> None:
    """Where a read probe waiting for its record stands: what Faust fetches, and each partition's positions."""
    consumer = app.consumer
    thread = consumer._thread  # noqa: SLF001
    kafka = thread._consumer  # noqa: SLF001
    lines = [
        f"flow_active={consumer.flow_active} rebalancing={app.rebalancing} "
        f"active={sorted(map(str, consumer._active_partitions or ()))} "  # noqa: SLF001
        f"paused={sorted(map(str, consumer._paused_partitions))} "  # noqa: SLF001
        f"committed={ {str(tp): o for tp, o in consumer._committed_offset.items()} } "  # noqa: SLF001
        f"rereads={getattr(consumer, 'pending_rereads', None)}"
    ]
    if kafka is not None:
        assignment = kafka._subscription.subscription and kafka._subscription.subscription.assignment  # noqa: SLF001
        if assignment is not None:
            for tp in sorted(assignment.tps):
                state = assignment.state_value(tp)
                lines.append(
                    f"  {tp.topic}[{tp.partition}] position={state._position} highwater={state.highwater} "  # noqa: SLF001
                    f"paused={state.paused} has_valid_position={state.has_valid_position}"
                )
        fetcher = kafka._fetcher  # noqa: SLF001
        lines.append(f"  fetcher records={list(fetcher._records)} fetch_task_done={fetcher._fetch_task.done()}")  # noqa: SLF001
    logging.getLogger("table_probe").warning("consumer state:\n%s", "\n".join(lines))


if __name__ == "__main__":
    bootstrap, app_id, topic_name, mode, expected = sys.argv[1:6]
    main(bootstrap, app_id, topic_name, mode, int(expected))
