"""The SSE price feed: one Redis reader per process fanning each lot event out to every watching connection.

Event ids are `lotId:streamId` (`12:1732480000000-0`): the lot and its Redis stream id. A connection watching several
lots sees their events in one total order, (stream ms, stream seq, lot id), so a single `Last-Event-ID` names a position
in every lot's stream: lot L resumes after `T-s` when L <= the named lot, from `T-s` inclusive when L is greater.
The live order matches that: the reader reads Redis's clock before each XREAD and holds back entries of the current
millisecond for one round (a lower lot may still add one), and a replay stops at the clock it read, leaving later
entries to the live queue. A client that tracks lots itself may send `lastEventId=1:T-s,2:T-s` (per-lot positions).
A position older than what the stream still keeps (trimmed or deleted past it) gets a `snapshot` event with the
lot's state instead of a replay; a fresh connection starts with a `snapshot` per lot."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from redis.asyncio import Redis

from bidding.engine import events_key

log = logging.getLogger(__name__)

StreamId = tuple[int, int]  # (ms, seq)
ZERO: StreamId = (0, 0)
ViewFn = Callable[[int], Awaitable[dict[str, Any] | None]]


def parse_stream_id(text: str) -> StreamId:
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_stream_id(stream_id: StreamId) -> str:
    return f"{stream_id[0]}-{stream_id[1]}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _cents(value: str) -> float:
    return int(value) / 100


_FIELDS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "lot_id": ("lotId", int),
    "price": ("currentPrice", _cents),
    "bid_count": ("bidCount", int),
    "leader": ("leader", lambda v: int(v) if v.lstrip("-").isdigit() else (v or None)),
    "reserve_met": ("reserveMet", lambda v: v in ("1", "true", "True")),
    "ends_at_ms": ("endsAt", int),
    "accepted_at_ms": ("acceptedAt", int),
    "at_ms": ("at", int),
}


def public_event(fields: dict[str, str]) -> dict[str, Any]:
    """A stream entry as buyers see it: camelCase, dollars, times in Unix ms."""
    body: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "type":
            body["type"] = value
            continue
        key, convert = _FIELDS.get(name, (name, str))
        try:
            body[key] = convert(value)
        except ValueError:
            body[key] = value
    return body


def encode_event(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass(frozen=True)
class Frame:
    lot_id: int
    stream_id: StreamId
    data: bytes  # encoded once, shared by every connection

    @property
    def order(self) -> tuple[int, int, int]:
        return self.stream_id[0], self.stream_id[1], self.lot_id


def frame_of(lot_id: int, raw_id: Any, raw_fields: dict[Any, Any]) -> Frame:
    stream_text = _text(raw_id)
    fields = {_text(k): _text(v) for k, v in raw_fields.items()}
    event_type = fields.get("type", "price")
    data = encode_event(event_type, public_event(fields), f"{lot_id}:{stream_text}")
    return Frame(lot_id, parse_stream_id(stream_text), data)


T = TypeVar("T")
Control = bytes  # lines the connection sends as they are (heartbeats, retry hints, resync)
RESYNC = encode_event("resync", {"reason": "slow consumer: reconnect with Last-Event-ID"})


async def live_items(
    queue: asyncio.Queue[T],
    overflowed: asyncio.Event,
    config: FeedConfig,
    is_disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[T | Control]:
    """What a subscriber's queue delivers, between heartbeat comments, until the capped life ends (with a `retry:`
    hint), the client left, or the subscriber overflowed (a `resync` event: the client resumes by its last id)."""
    deadline = time.monotonic() + config.max_life_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            yield f"retry: {config.retry_ms}\n: connection life reached; reconnect\n\n".encode()
            return
        if overflowed.is_set():
            yield RESYNC
            return
        try:
            item = await asyncio.wait_for(queue.get(), min(config.heartbeat_s, remaining))
        except TimeoutError:
            if await is_disconnected():
                return
            yield b": heartbeat\n\n"
            continue
        if overflowed.is_set():  # items after an overflow may have gaps: the client resumes instead
            yield RESYNC
            return
        yield item


@dataclass(eq=False)
class Subscriber:
    lots: frozenset[int]
    queue: asyncio.Queue[Frame]
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class FeedConfig:
    heartbeat_s: float = 15.0
    queue_size: int = 1000
    max_life_s: float = 600.0
    retry_ms: int = 3000
    block_ms: int = 5000


class FeedHub:
    """One XREAD loop per process over every watched lot's stream; connections subscribe to sets of lots."""

    def __init__(self, redis: Redis, config: FeedConfig) -> None:
        self.redis = redis
        self.config = config
        self._subscribers: dict[int, set[Subscriber]] = {}
        self._cursors: dict[int, StreamId] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._held: list[Frame] = []  # read, but a same-millisecond entry of another lot could still sort before

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bidding-feed-reader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def connections(self) -> int:
        return len({sub for subs in self._subscribers.values() for sub in subs})

    def subscribe(self, lots: frozenset[int], heads: dict[int, StreamId]) -> Subscriber:
        """Live events after `heads` (each lot's newest id when the caller looked) reach the subscriber's queue."""
        subscriber = Subscriber(lots, asyncio.Queue(self.config.queue_size))
        for lot_id in lots:
            if lot_id not in self._subscribers:
                self._subscribers[lot_id] = set()
                self._cursors[lot_id] = heads.get(lot_id, ZERO)
                self._changed.set()
            self._subscribers[lot_id].add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        for lot_id in subscriber.lots:
            watchers = self._subscribers.get(lot_id)
            if watchers is None:
                continue
            watchers.discard(subscriber)
            if not watchers:
                del self._subscribers[lot_id]
                self._cursors.pop(lot_id, None)

    def dispatch(self, frame: Frame) -> None:
        for subscriber in self._subscribers.get(frame.lot_id, ()):
            if subscriber.overflowed.is_set():
                continue
            try:
                subscriber.queue.put_nowait(frame)
            except asyncio.QueueFull:
                subscriber.overflowed.set()  # the connection sends `resync` and ends; the client resumes by id

    async def _read_once(self) -> tuple[int, list[Frame]]:
        """(Redis clock in ms taken just before the XREAD, the entries it returned)."""
        if not self._cursors:
            await self._changed.wait()
            return 0, []
        streams = {events_key(lot): format_stream_id(cursor) for lot, cursor in self._cursors.items()}
        lot_of = {key: lot for lot, key in ((lot, events_key(lot)) for lot in self._cursors)}
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        # With events held back, poll (no BLOCK) so they go out as soon as the Redis clock has moved past them.
        pipe.xread(streams, block=None if self._held else self.config.block_ms)  # type: ignore[arg-type]
        read = asyncio.ensure_future(pipe.execute())
        changed = asyncio.ensure_future(self._changed.wait())
        try:
            done, _ = await asyncio.wait({read, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # A lot joined (or we are stopping): drop this XREAD; cursors only move after a read returned, so a new
            # XREAD with the joined lot skips nothing. Cancelling makes redis-py discard the connection.
            for pending in (read, changed):
                if not pending.done():
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await pending
        if read not in done:
            return 0, []
        clock, result = read.result()
        frames: list[Frame] = []
        for key, entries in result or []:
            lot_id = lot_of.get(_text(key))
            if lot_id is None:
                continue
            frames.extend(frame_of(lot_id, raw_id, raw_fields) for raw_id, raw_fields in entries)
        return int(clock[0]) * 1000 + int(clock[1]) // 1000, frames

    async def _run(self) -> None:
        while True:
            self._changed.clear()
            if self._held:
                await asyncio.sleep(0.001)
            try:
                clock_ms, frames = await self._read_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("feed reader: XREAD over %d lot streams failed; retrying in 1 s", len(self._cursors))
                await asyncio.sleep(1)
                continue
            for frame in frames:
                if frame.lot_id in self._cursors:
                    self._cursors[frame.lot_id] = max(self._cursors[frame.lot_id], frame.stream_id)
            # Every entry with an id below the clock read before this XREAD is in hand (XADD never goes below the
            # clock), so those go out in the total order; the rest wait a round, then no stream can add one before.
            pending = self._held + frames
            ready = sorted((frame for frame in pending if frame.stream_id[0] < clock_ms), key=lambda f: f.order)
            self._held = [frame for frame in pending if frame.stream_id[0] >= clock_ms]
            for frame in ready:
                self.dispatch(frame)


# -- resume positions ---------------------------------------------------------------------------------------------


def parse_last_event_id(text: str | None, lots: frozenset[int]) -> dict[int, tuple[StreamId, bool]] | None:
    """lot -> (position, inclusive) from `lotId:streamId` or `lot:id,lot:id`; None when absent or unparseable."""
    if not text:
        return None
    try:
        parts = [part.split(":", 1) for part in text.split(",") if part.strip()]
        named = [(int(lot), parse_stream_id(stream.strip())) for lot, stream in parts]
    except ValueError:
        return None
    if len(named) != 1:
        return {lot: (position, False) for lot, position in named if lot in lots}
    anchor_lot, anchor = named[0]
    # Total order (ms, seq, lot): a greater lot id at the anchor's own id comes after the anchor.
    return {lot: (anchor, lot > anchor_lot) for lot in lots}


@dataclass(frozen=True)
class StreamState:
    head: StreamId = ZERO  # the newest id ever added
    first: StreamId | None = None  # the oldest id still kept
    forgotten: int = 0  # entries trimmed or deleted so far
    max_deleted: StreamId = ZERO  # the newest id removed by XDEL

    def lost_after(self, position: StreamId) -> bool:
        """Whether Redis may have dropped an event after `position` (trimming drops the oldest first)."""
        if self.max_deleted > position:
            return True
        if self.forgotten == 0:
            return False
        return self.head > position if self.first is None else self.first > position


async def _stream_state(redis: Redis, lot_id: int) -> StreamState:
    try:
        info: Any = await redis.xinfo_stream(events_key(lot_id))
    except Exception:  # noqa: BLE001 - no such key: nothing was ever published
        return StreamState()
    first_entry = info.get("first-entry")
    return StreamState(
        head=parse_stream_id(_text(info.get("last-generated-id", "0-0"))),
        first=parse_stream_id(_text(first_entry[0])) if first_entry else None,
        forgotten=int(info.get("entries-added", 0)) - int(info.get("length", 0)),
        max_deleted=parse_stream_id(_text(info.get("max-deleted-entry-id", "0-0"))),
    )


async def redis_clock_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def _backfill(redis: Redis, lot_id: int, position: StreamId, inclusive: bool, before_ms: int) -> list[Frame]:
    start = format_stream_id(position) if inclusive else "(" + format_stream_id(position)
    entries: Any = await redis.xrange(events_key(lot_id), min=start, max=str(before_ms - 1))
    return [frame_of(lot_id, raw_id, raw_fields) for raw_id, raw_fields in entries]


async def event_stream(
    hub: FeedHub,
    lots: frozenset[int],
    last_event_id: str | None,
    view: ViewFn,
    is_disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """One SSE connection: replay or snapshot, then live events, heartbeats, and a capped life."""
    config = hub.config
    redis = hub.redis
    yield f"retry: {config.retry_ms}\n\n".encode()
    resume = parse_last_event_id(last_event_id, lots) or {}
    states = {lot: await _stream_state(redis, lot) for lot in lots}
    subscriber = hub.subscribe(lots, {lot: state.head for lot, state in states.items()})
    try:
        # The replay stops before this clock: every entry below it exists now, and later ones arrive through the
        # queue in the hub's order, so replay and live together keep the total order across lots.
        replay_before = await redis_clock_ms(redis)
        delivered: dict[int, StreamId] = {}
        backlog: list[Frame] = []
        for lot in sorted(lots):
            head = states[lot].head
            position = resume.get(lot)
            # An id from after Redis's clock was never sent (a made-up or another server's Last-Event-ID): resuming
            # from it would hold back every event before it, so the client gets the state instead.
            if position is None or position[0][0] > replay_before or states[lot].lost_after(position[0]):
                state = await view(lot)
                snapshot_id = f"{lot}:{format_stream_id(head)}"
                yield encode_event("snapshot", {"lotId": lot, **(state or {"status": "unknown"})}, snapshot_id)
                delivered[lot] = head
                backlog.extend(await _backfill(redis, lot, head, False, replay_before))
            else:
                delivered[lot] = position[0] if not position[1] else (position[0][0], position[0][1] - 1)
                backlog.extend(await _backfill(redis, lot, *position, replay_before))
        for frame in sorted(backlog, key=lambda f: f.order):
            if frame.stream_id > delivered[frame.lot_id]:
                delivered[frame.lot_id] = frame.stream_id
                yield frame.data
        async for item in live_items(subscriber.queue, subscriber.overflowed, config, is_disconnected):
            if isinstance(item, bytes):
                yield item
            elif item.stream_id > delivered.get(item.lot_id, ZERO):
                delivered[item.lot_id] = item.stream_id
                yield item.data
    finally:
        hub.unsubscribe(subscriber)
