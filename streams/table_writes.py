"""Many writes to a Faust table at once: the store is updated and the changelog records produced in bulk.

`table[key] = value` sends each changelog record through Faust's producer buffer, which the conductor drains
100 records at a time, waiting on an event per record; a catch-up writing thousands of keys per batch spent more
time there (and in one small produce request per record) than in everything else it did. Here the records go
straight to the producer, so they share produce requests, and the caller awaits their acknowledgement once per
batch, before the batch's input is acknowledged: a crash can replay the batch but never lose a stored write.

Faust's own path is also no barrier: `producer.flush()` returns after 0.1 s without a message sent, or while the
buffer's last message is still being handed to the producer, so a batch acknowledged after it could lose its last
writes in a crash. The ERP agent (stock) and the dealer agent (profiles) both write this way: each batch's writes
are held in `BatchWrites` with their event, then written once per key.

The records are exactly what Faust would send (the table's changelog topic, its key and value serializers, the
partition chosen by the caller, a null value for a delete), so table recovery reads them as its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from faust import Table
from faust.types import TP, EventT
from faust.types.tuples import RecordMetadata

T = TypeVar("T")
_DELETED = object()


class BatchWrites(MutableMapping[str, Any], Generic[T]):
    """A table seen through one batch: reads see the batch's own writes, and each key is written to the table
    once, at the end, under the tag (the Faust event) of its last write. A backlog of many changes per VIN costs
    one changelog record per VIN and batch instead of one per change."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table
        self.tag: T | None = None
        self._pending: dict[str, tuple[Any, T | None]] = {}

    def __getitem__(self, key: str) -> Any:
        if key in self._pending:
            value = self._pending[key][0]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.table[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._pending[key] = (value, self.tag)

    def __delitem__(self, key: str) -> None:
        self[key]  # KeyError if absent, as a mapping would
        self._pending[key] = (_DELETED, self.tag)

    def __iter__(self) -> Iterator[str]:
        keys = dict.fromkeys(key for key in self.table if key not in self._pending)
        keys.update(dict.fromkeys(key for key, (value, _) in self._pending.items() if value is not _DELETED))
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def writes_by_tag(self) -> list[tuple[T | None, list[tuple[str, Any]]]]:
        """The held writes grouped by tag, in the order of each tag's first write; `None` value: delete."""
        groups: dict[int, tuple[T | None, list[tuple[str, Any]]]] = {}
        for key, (value, tag) in self._pending.items():
            groups.setdefault(id(tag), (tag, []))[1].append((key, None if value is _DELETED else value))
        return list(groups.values())


def held_writes(held: BatchWrites[EventT]) -> list[tuple[int, str, Any]]:
    """One write per key, in the partition of its last event (where Faust would have put it)."""
    writes = []
    for event, group in held.writes_by_tag():
        if event is None:
            raise RuntimeError("a table write was held without its event")
        writes += [(event.message.partition, key, value) for key, value in group]
    return writes


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
