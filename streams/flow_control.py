"""Records faust drops from its stream buffers are read again.

faust empties every stream buffer whenever it clears or resumes its flow control: when a rebalance starts and,
after a restart, when table recovery hands the partitions to the streams. By then the consumer's read offsets
are past the buffered records, so nothing fetches them again; faust counts on its seek to the committed offsets
coming first, but the fetcher keeps delivering while that seek waits on the broker. Measured: after a kill -9,
every record fetched in those ~150 ms and not yet taken by an agent was dropped; when they were a partition's
last records (a snapshot read to its end), no later record showed the hole and they stayed unindexed.

So the apps' flow control notes the first buffered offset of each partition before it empties the buffers, and
the consumer (`streams.kafka_transport`) reads those partitions again from there. Duplicates are harmless:
documents carry positions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent

DroppedRecords = dict[Any, int]  # partition -> first offset dropped


def first_buffered_offsets(queues: Iterable[Any]) -> DroppedRecords:
    """The lowest offset per partition among the events in these stream buffers."""
    first: DroppedRecords = {}
    for queue in queues:
        for item in list(queue._queue):  # noqa: SLF001 - the buffer about to be emptied
            message = getattr(item, "message", None)
            if message is None:
                continue
            known = first.get(message.tp)
            if known is None or message.offset < known:
                first[message.tp] = message.offset
    return first


class ReplayingFlowControl(FlowControlEvent):
    """faust's flow control, telling `on_dropped` which records emptying the buffers threw away."""

    def __init__(self, *, on_dropped: Callable[[DroppedRecords], None], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_dropped = on_dropped

    def clear(self) -> None:  # also what resume() calls
        dropped = first_buffered_offsets(self._queues)
        super().clear()
        if dropped:
            self.on_dropped(dropped)


class ReplayingApp(faust.App):
    """A faust app whose consumer reads again what its flow control dropped from the stream buffers."""

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return ReplayingFlowControl(loop=self.loop, on_dropped=self._read_dropped_again)

    def _read_dropped_again(self, dropped: DroppedRecords) -> None:
        read_again = getattr(self.consumer, "read_again", None)
        if read_again is None:  # not the hub's transport
            return
        for tp, offset in dropped.items():
            read_again(tp, offset, "faust emptied its stream buffers")
