"""A Faust app whose one agent reads a topic through `take_event_batches` and prints each batch's size.

    python -m tests.streams.batch_probe BOOTSTRAP TOPIC MAX_EVENTS WINDOW_S BACKLOG_WINDOW_S EXPECTED

Prints `batch <size> <unix time>` per batch, flushed, and exits once EXPECTED records were batched.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

from faust.types import StreamT

from streams.batching import BatchLimits, take_event_batches
from tests.streams.probe_apps import probe_app, run_worker, say


def main(bootstrap: str, topic_name: str, max_events: int, window_s: float, backlog_s: float, expected: int) -> None:
    app = probe_app(f"batch-probe-{uuid.uuid4().hex[:8]}", bootstrap, stream_buffer_maxsize=max(4096, max_events * 2))
    topic = app.topic(topic_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    seen = 0

    async def batches(stream: StreamT[bytes]) -> None:
        nonlocal seen
        async for events in take_event_batches(stream, BatchLimits(max_events, window_s, backlog_s)):
            seen += len(events)
            say(f"batch {len(events)} {time.time():.3f}")
            if seen >= expected:
                os._exit(0)

    app.agent(topic, name="batches")(batches)
    run_worker(app)


if __name__ == "__main__":
    bootstrap, topic_name, max_events, window_s, backlog_s, expected = sys.argv[1:7]
    main(bootstrap, topic_name, int(max_events), float(window_s), float(backlog_s), int(expected))
