"""The SSE price feed over a real uvicorn server: order, headers, heartbeats, resume without gaps, snapshot, resync."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis as sync_redis
import redis.asyncio as aioredis

from bidding.engine import events_key
from bidding.feed import FeedConfig, FeedHub, event_stream, parse_stream_id
from tests.bidding.live_server import LiveApi, live_api, live_auction
from tests.marketplace.api_client import Member
from tests.marketplace.test_auctions import Market


@pytest.fixture(scope="module")
def api(database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(database_factory, tmp_path_factory.mktemp("bid-feed"), "bidfeed") as live:
        yield live


@pytest.fixture
async def market(api: LiveApi) -> AsyncIterator[Market]:
    async with api.market() as market:
        yield market


@dataclass
class Event:
    id: str | None
    event: str
    data: dict[str, Any]

    @property
    def order(self) -> tuple[int, int, int]:
        assert self.id is not None
        lot, _, stream = self.id.partition(":")
        ms, seq = parse_stream_id(stream)
        return ms, seq, int(lot)


class SseReader:
    """Parses a response in a background task, so a timed-out wait never cancels the read of the body."""

    def __init__(self, response: httpx.Response) -> None:
        self.comments: list[str] = []
        self.retry: int | None = None
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.task = asyncio.create_task(self._read(response))

    async def next(self, timeout: float = 5) -> Event:
        event = await asyncio.wait_for(self.queue.get(), timeout)
        if event is None:
            raise EOFError("the stream ended")
        return event

    async def _read(self, response: httpx.Response) -> None:
        fields: dict[str, str] = {}
        try:
            async for line in response.aiter_lines():
                if line == "":
                    if "event" in fields:
                        data = json.loads(fields.get("data", "{}"))
                        self.queue.put_nowait(Event(fields.get("id"), fields["event"], data))
                    fields = {}
                elif line.startswith(":"):
                    self.comments.append(line)
                else:
                    name, _, value = line.partition(": ")
                    if name == "retry":
                        self.retry = int(value)
                    else:
                        fields[name] = value
        except httpx.HTTPError:
            pass
        finally:
            self.queue.put_nowait(None)

    async def events(self, count: int) -> list[Event]:
        return [await self.next() for _ in range(count)]

    async def nothing_more(self, wait: float = 1.2) -> None:
        try:
            event = await self.next(wait)
        except TimeoutError:
            return
        pytest.fail(f"unexpected event {event}")


async def bid(market: Market, who: Member, lot_id: int, amount: int) -> dict[str, Any]:
    response = await market.client.post(
        f"/api/v1/lots/{lot_id}/bids", json={"amount": amount, "currency": "USD", "kind": "live"}, headers=who.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "ACCEPTED", body
    return body


def truth(api: LiveApi, lots: list[int]) -> list[str]:
    """Every event id in Redis for these lots, in the feed's order."""
    client = sync_redis.Redis.from_url(api.redis.url, decode_responses=True)
    entries: Any = {lot: client.xrange(events_key(lot)) for lot in lots}
    ids = [f"{lot}:{entry_id}" for lot in lots for entry_id, _ in entries[lot]]
    client.close()
    return [event_id for _, event_id in sorted((Event(i, "price", {}).order, i) for i in ids)]


async def test_auction_stream_delivers_price_events_in_order(market: Market, api: LiveApi) -> None:
    auction, _ = await live_auction(market, lots=2)
    lots = [lot["id"] for lot in auction["lots"]]
    buyers = [await market.member() for _ in range(2)]
    async with market.client.stream("GET", f"/api/v1/auctions/{auction['id']}/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        reader = SseReader(response)
        snapshots = await reader.events(2)
        assert [(e.event, e.data["lotId"]) for e in snapshots] == [("snapshot", lots[0]), ("snapshot", lots[1])]
        assert snapshots[0].data["currentPrice"] == 10_000.0
        assert "reservePrice" not in snapshots[0].data
        assert reader.retry == 3000

        replies = []
        for step in range(6):
            replies.append(await bid(market, buyers[step % 2], lots[step % 2], 10_000 + 500 * step))
        events = await reader.events(6)
        assert [e.event for e in events] == ["price"] * 6
        assert [e.data["lotId"] for e in events] == [lots[step % 2] for step in range(6)]
        assert [e.data["currentPrice"] for e in events] == [r["currentPrice"] for r in replies]
        assert [e.data["bidCount"] for e in events] == [1, 1, 2, 2, 3, 3]
        assert [e.id for e in events] == truth(api, lots)
        assert events[0].data["leader"] == 1
        assert isinstance(events[0].data["acceptedAt"], int)
        await reader.nothing_more()
        assert any("heartbeat" in comment for comment in reader.comments)  # every 0.5 s in these tests


async def test_resume_after_a_forced_disconnect_gets_every_event_once_in_order(market: Market, api: LiveApi) -> None:
    auction, _ = await live_auction(market, lots=3)
    lots = [lot["id"] for lot in auction["lots"]]
    buyers = [await market.member() for _ in range(3)]
    amounts = iter(range(10_000, 100_000, 300))
    received: list[Event] = []
    async with market.client.stream("GET", f"/api/v1/auctions/{auction['id']}/stream") as response:
        reader = SseReader(response)
        await reader.events(3)  # snapshots
        for step in range(5):
            await bid(market, buyers[step % 3], lots[step % 3], next(amounts))
        received += await reader.events(3)
    # Forced disconnect with two events in flight; more bids while away.
    for step in range(5, 10):
        await bid(market, buyers[step % 3], lots[step % 3], next(amounts))

    headers = {"Last-Event-ID": str(received[-1].id)}
    async with market.client.stream("GET", f"/api/v1/auctions/{auction['id']}/stream", headers=headers) as response:
        reader = SseReader(response)
        received += await reader.events(7)
        await reader.nothing_more()
        await bid(market, buyers[0], lots[2], next(amounts))  # and live again after the replay
        received += await reader.events(1)
    assert [e.event for e in received] == ["price"] * 11
    assert [e.id for e in received] == truth(api, lots)

    # The watchlist stream resumes the same way, from the query parameter.
    resume_at = received[4].id
    watch = f"/api/v1/stream?lots={lots[0]},{lots[1]},{lots[2]}&lastEventId={resume_at}"
    async with market.client.stream("GET", watch) as response:
        reader = SseReader(response)
        replay = await reader.events(6)
        await reader.nothing_more(0.8)
    assert [e.id for e in replay] == [e.id for e in received[5:]]


async def test_a_gap_older_than_the_stream_keeps_gets_a_snapshot(market: Market, api: LiveApi) -> None:
    auction, _ = await live_auction(market)
    lot = auction["lots"][0]["id"]
    buyer = await market.member()
    async with market.client.stream("GET", f"/api/v1/stream?lots={lot}") as response:
        reader = SseReader(response)
        await reader.next()
        await bid(market, buyer, lot, 10_000)
        last = await reader.next()
    for amount in (11_000, 12_000, 13_000):
        await bid(market, buyer, lot, amount)
    client = aioredis.Redis.from_url(api.redis.url)
    await client.xtrim(
        events_key(lot), maxlen=1, approximate=False
    )  # Redis forgot two of the events this client missed
    await client.aclose()
    async with market.client.stream("GET", f"/api/v1/stream?lots={lot}", headers={"Last-Event-ID": str(last.id)}) as r:
        reader = SseReader(r)
        snapshot = await reader.next()
        assert snapshot.event == "snapshot"
        assert (snapshot.data["bidCount"], snapshot.data["currentPrice"]) == (4, 13_000.0)
        assert snapshot.id == truth(api, [lot])[-1]
        await reader.nothing_more(0.8)


async def test_a_last_event_id_from_the_future_gets_a_snapshot_and_then_live_events(market: Market) -> None:
    auction, _ = await live_auction(market)
    lot = auction["lots"][0]["id"]
    buyer = await market.member()
    future = f"{lot}:{int(time.time() * 1000) + 10**9}-0"
    async with market.client.stream("GET", f"/api/v1/stream?lots={lot}", headers={"Last-Event-ID": future}) as r:
        reader = SseReader(r)
        assert (await reader.next()).event == "snapshot"
        await bid(market, buyer, lot, 10_000)
        price = await reader.next()
        assert (price.event, price.data["currentPrice"]) == ("price", 10_000.0)


async def test_bad_watchlists_are_422(market: Market) -> None:
    for query in ("lots=", "lots=a,b", "lots=0", ",".join(["lots=1"] + [str(i) for i in range(2, 300)])):
        response = await market.client.get(f"/api/v1/stream?{query}")
        assert response.status_code == 422, query
        assert response.json()["error"]["problems"][0]["parameter"] == "lots"
    assert (await market.client.get("/api/v1/auctions/999999/stream")).status_code == 404


async def _never_disconnected() -> bool:
    return False


async def _no_view(_: int) -> dict[str, Any] | None:
    return {"status": "open"}


async def test_slow_client_gets_resync_and_life_is_capped(api: LiveApi) -> None:
    redis = aioredis.Redis.from_url(api.redis.url)
    hub = FeedHub(redis, FeedConfig(heartbeat_s=5, queue_size=2, max_life_s=30, block_ms=200))
    await hub.start()
    lot = 987_654
    try:
        stream = event_stream(hub, frozenset({lot}), None, _no_view, _never_disconnected)
        assert (await anext(stream)).startswith(b"retry: 3000")
        assert b"event: snapshot" in await anext(stream)
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.2)  # the connection is live now, waiting on its queue of 2
        async with redis.pipeline(transaction=True) as burst:  # one batch for the reader
            for price in range(5):
                burst.xadd(events_key(lot), {"type": "price", "lot_id": str(lot), "price": str(price)})
            await burst.execute()
        chunk = await first  # the reader overflows the queue of 2 in one batch of 5
        if b"event: price" in chunk:
            chunk = await anext(stream)
        assert b"event: resync" in chunk
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
        assert hub.connections == 0

        hub.config = FeedConfig(heartbeat_s=0.1, max_life_s=0.35, retry_ms=1234)
        chunks = [chunk async for chunk in event_stream(hub, frozenset({lot}), None, _no_view, _never_disconnected)]
        assert chunks[-1].startswith(b"retry: 1234\n")
        assert b": heartbeat\n\n" in chunks
    finally:
        await hub.stop()
        await redis.aclose()


async def test_entries_of_one_millisecond_go_out_in_the_total_order(api: LiveApi) -> None:
    """A later entry of a lower lot at the same ms still goes first: the reader holds entries until Redis's clock
    has passed their millisecond, so live order equals the order a resume computes."""
    redis = aioredis.Redis.from_url(api.redis.url)
    hub = FeedHub(redis, FeedConfig(heartbeat_s=5, block_ms=200))
    await hub.start()
    low, high = 987_700, 987_701
    try:
        stream = event_stream(hub, frozenset({low, high}), None, _no_view, _never_disconnected)
        await anext(stream)  # retry
        await anext(stream)
        await anext(stream)  # two snapshots
        later = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.1)
        seconds, micros = await redis.time()
        soon = int(seconds) * 1000 + int(micros) // 1000 + 300
        await redis.xadd(events_key(high), {"type": "price", "lot_id": str(high)}, id=f"{soon}-0")
        await asyncio.sleep(0.1)
        await redis.xadd(events_key(low), {"type": "price", "lot_id": str(low)}, id=f"{soon}-0")
        first = await asyncio.wait_for(later, 2)
        second = await asyncio.wait_for(anext(stream), 2)
        assert first.startswith(f"id: {low}:{soon}-0\n".encode())
        assert second.startswith(f"id: {high}:{soon}-0\n".encode())
    finally:
        await hub.stop()
        await redis.aclose()


async def test_a_burst_of_clients_waits_for_redis_connections_instead_of_failing(
    database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """60 streams open at once on an API allowed 4 Redis connections: each gets its snapshot and the next price."""
    directory = tmp_path_factory.mktemp("bid-burst")
    with live_api(database_factory, directory, "bidburst", redis_max_connections=4) as small:
        async with small.market() as market:
            auction, _ = await live_auction(market)
            lot_id = auction["lots"][0]["id"]
            async with httpx.AsyncClient(base_url=small.base_url, timeout=20) as client:

                async def watch() -> list[str]:
                    async with client.stream("GET", f"/api/v1/stream?lots={lot_id}") as response:
                        assert response.status_code == 200
                        reader = SseReader(response)
                        first = await reader.next(15)
                        second = await reader.next(15)
                        return [first.event, second.event]

                watchers = [asyncio.create_task(watch()) for _ in range(60)]
                await asyncio.sleep(1.5)
                await bid(market, await market.member(), lot_id, 10_000)
                assert await asyncio.gather(*watchers) == [["snapshot", "price"]] * 60


async def test_idle_streams_outlast_the_redis_socket_timeout_without_errors(
    database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The reader's XREAD blocks for less than the client's socket timeout: a lot with no bids for longer than that
    is a quiet stream, not a read failure (an ERROR, a dropped connection and a second's back-off before the next
    price, as when the 5 s block met redis-py's 5 s timeout)."""
    directory = tmp_path_factory.mktemp("bid-idle")
    with live_api(database_factory, directory, "bididle", redis_socket_timeout_s=1) as idle:
        async with idle.market() as market:
            auction, _ = await live_auction(market)
            lot_id = auction["lots"][0]["id"]
            async with httpx.AsyncClient(base_url=idle.base_url, timeout=20) as client:
                async with client.stream("GET", f"/api/v1/stream?lots={lot_id}") as response:
                    reader = SseReader(response)
                    assert (await reader.next()).event == "snapshot"
                    caplog.set_level(logging.WARNING)
                    await asyncio.sleep(3.5)  # several socket timeouts with nothing to read
                    started = time.monotonic()
                    await bid(market, await market.member(), lot_id, 10_000)
                    assert (await reader.next()).event == "price"
                    assert time.monotonic() - started < 0.9
    failures = [record.getMessage() for record in caplog.records if record.name.startswith("bidding")]
    assert failures == []
