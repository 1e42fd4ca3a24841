"""A buyer's own notices over SSE: outbid, a seller's counter-offer, the result of an if-bid.

The engine appends notices to `user:{ID}:notices` (bidding.engine.notices_key). One reader task per process reads
the streams of every connected user in one XREAD and fans out to their connections, so a thousand buyers cost one
Redis connection, not a thousand. Event id = the notice's stream id; `Last-Event-ID` replays what came after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from bidding.engine import notices_key
from bidding.feed import (
    ZERO,
    FeedConfig,
    StreamId,
    encode_event,
    format_stream_id,
    live_items,
    parse_stream_id,
    public_event,
)

log = logging.getLogger(__name__)

READ_BLOCK_MS = 250


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Notice:
    stream_id: StreamId
    data: bytes


def notice_of(raw_id: Any, raw_fields: dict[Any, Any]) -> Notice:
    stream_text = _text(raw_id)
    fields = {_text(k): _text(v) for k, v in raw_fields.items()}
    return Notice(
        parse_stream_id(stream_text), encode_event(fields.get("type", "notice"), public_event(fields), stream_text)
    )


@dataclass(eq=False)
class Listener:
    user_id: int
    queue: asyncio.Queue[Notice]
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


class NoticeHub:
    def __init__(self, redis: Redis, queue_size: int = 100) -> None:
        self.redis = redis
        self.queue_size = queue_size
        self.listeners: dict[int, set[Listener]] = defaultdict(set)
        self.positions: dict[int, str] = {}  # user -> last stream id read
        self._task: asyncio.Task[None] | None = None

    async def subscribe(self, user_id: int) -> Listener:
        listener = Listener(user_id, asyncio.Queue(self.queue_size))
        if user_id not in self.positions:
            top = await self.redis.xrevrange(notices_key(user_id), count=1)
            self.positions[user_id] = _text(top[0][0]) if top else "0-0"
        self.listeners[user_id].add(listener)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="notice-reader")
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        group = self.listeners.get(listener.user_id)
        if group is not None:
            group.discard(listener)
            if not group:
                del self.listeners[listener.user_id]
                self.positions.pop(listener.user_id, None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _run(self) -> None:
        while self.listeners:
            streams: dict[Any, Any] = {notices_key(user): self.positions[user] for user in list(self.listeners)}
            try:
                reply: Any = await self.redis.xread(streams, count=100, block=READ_BLOCK_MS)
            except Exception:  # noqa: BLE001 - Redis down: connections keep heartbeating, the reader retries
                log.warning("notice reader: Redis read failed; retrying", exc_info=True)
                await asyncio.sleep(1)
                continue
            for raw_key, entries in reply or []:
                key = _text(raw_key)
                user = int(key.split(":")[1])
                if user not in self.positions:
                    continue
                for raw_id, raw_fields in entries:
                    self.positions[user] = _text(raw_id)
                    notice = notice_of(raw_id, raw_fields)
                    for listener in list(self.listeners.get(user, ())):
                        try:
                            listener.queue.put_nowait(notice)
                        except asyncio.QueueFull:
                            listener.overflowed.set()


async def notice_stream(
    hub: NoticeHub,
    config: FeedConfig,
    user_id: int,
    last_event_id: str | None,
    is_disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """One connection: replay after `Last-Event-ID`, then live notices, heartbeats, a capped life."""
    yield f"retry: {config.retry_ms}\n\n".encode()
    listener = await hub.subscribe(user_id)
    try:
        delivered: StreamId = ZERO
        if last_event_id:
            try:
                after = parse_stream_id(last_event_id)
            except ValueError:
                after = ZERO
            start = f"({format_stream_id(after)}"
            missed: Any = await hub.redis.xrange(notices_key(user_id), min=start, max="+", count=1000)
            for raw_id, raw_fields in missed:
                notice = notice_of(raw_id, raw_fields)
                delivered = notice.stream_id
                yield notice.data
        else:
            yield encode_event("ready", {"userId": user_id})
        async for item in live_items(listener.queue, listener.overflowed, config, is_disconnected):
            if isinstance(item, bytes):
                yield item
            elif item.stream_id > delivered:
                delivered = item.stream_id
                yield item.data
    finally:
        hub.unsubscribe(listener)
