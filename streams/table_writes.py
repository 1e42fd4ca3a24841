"""Many writes to a Faust table at once: the store is updated and the changelog records produced in bulk.

`table[key] = value` sends each changelog record through Faust's producer buffer, which the conductor drains
100 records at a time, waiting on an event per record; a catch-up writing thousands of keys per batch spent more
time there (and in one small produce request per record) than in everything else it did. Here the records go
straight to the producer, so they share produce requests, and the caller awaits their acknowledgement once per
batch, before the batch's input is acknowledged: a crash can replay the batch but never lose a stored write.

The records are exactly what Faust would send (the table's changelog topic, its key and value serializers, the
partition chosen by the caller, a null value for a delete), so table recovery reads them as its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any

from faust import Table
from faust.types import TP
from faust.types.tuples import RecordMetadata


@dataclass
class ChangelogWrites:
    """Changelog records produced for a batch of table writes; `stored()` waits until the broker has them all."""

    table: Table[Any, Any]
    pending: list[Awaitable[RecordMetadata]] = field(default_factory=list)

    async def stored(self) -> None:
        if not self.pending:
            return
        results = await asyncio.gather(*self.pending)
        self.pending.clear()
        newest: dict[TP, int] = {}
        for metadata in results:
            tp = metadata.topic_partition
            newest[tp] = max(metadata.offset, newest.get(tp, -1))
        for tp, offset in newest.items():
            self.table.data.set_persisted_offset(tp, offset)  # what Faust's own send callback records


async def write_through(table: Table[Any, Any], writes: Iterable[tuple[int, Any, Any]]) -> ChangelogWrites:
    """Apply `(partition, key, value)` writes (value None: delete) to the table's store and produce their changelog
    records; the caller must `await (...).stored()` before acknowledging the input that caused them."""
    topic = table.changelog_topic
    topic_name = topic.get_topic_name()
    producer = table.app.producer
    store = table.data
    sent = ChangelogWrites(table)
    for partition, key, value in writes:
        key_bytes, _ = topic.prepare_key(key, table.key_serializer)
        if value is None:
            store.pop(key, None)
            value_bytes = None
        else:
            store[key] = value
            value_bytes, _ = topic.prepare_value(value, table.value_serializer)
        sent.pending.append(
            await producer.send(topic_name, key_bytes, value_bytes, partition=partition, timestamp=None, headers=None)
        )
    return sent
