"""The nchan fan-out tier end to end: nginx with the repo's config (own prefix, free loopback ports, no root needed),
the hub's publisher, bids over HTTP through nginx, EventSource subscribers on nchan, resume by Last-Event-ID."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis
import redis.asyncio as aioredis

from bidding.engine import events_key, lot_key
from bidding.nchan import (
    SUBSCRIBER_PATH,
    Message,
    NchanHttp,
    NchanPublisher,
    NginxProcess,
    message_of,
    published_key,
    render_config,
)
from bidding.redis_mux import RedisMux
from bidding.settings import NchanSettings
from hub.broker import free_port
from tests.bidding.conftest import RedisServer
from tests.bidding.live_server import LiveApi, live_api, live_auction
from tests.bidding.test_feed import Event, SseReader, bid
from tests.marketplace.test_auctions import Market

pytestmark = pytest.mark.skipif(
    shutil.which("nginx", path="/usr/sbin:/usr/bin:/usr/local/sbin") is None
    or not Path("/usr/lib/nginx/modules/ngx_nchan_module.so").exists(),
    reason="needs nginx and libnginx-mod-nchan (apt-get install -y nginx libnginx-mod-nchan; .ci/run does)",
)

SSE = {"Accept": "text/event-stream"}


@pytest.fixture(scope="module")
def api(database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(database_factory, tmp_path_factory.mktemp("bid-nchan"), "bidnchan") as live:
        yield live


def nchan_settings(api_url: str, **overrides: Any) -> NchanSettings:
    values: dict[str, Any] = {
        "nchan_listen": f"127.0.0.1:{free_port()}",
        "nchan_publish_port": free_port(),
        "nchan_api_upstream": api_url.removeprefix("http://"),
        "nchan_buffer_length": 50,
        "nchan_worker_connections": 1024,
        "nchan_shared_memory_mb": 16,
        "nchan_ping_s": 1,
        **overrides,
    }
    return NchanSettings(**values)


@pytest.fixture(scope="module")
def nginx(api: LiveApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxProcess]:
    prefix = tmp_path_factory.mktemp("nchan")
    server = NginxProcess(nchan_settings(api.base_url), prefix).start()
    yield server
    server.stop()
    log = (prefix / "error.log").read_text()
    assert "exited on signal" not in log, log[-3000:]  # a worker crash drops subscribers silently


@pytest.fixture
async def market(api: LiveApi, nginx: NginxProcess) -> AsyncIterator[Market]:
    """Bids and pages go through nginx, which proxies the API."""
    async with httpx.AsyncClient(base_url=nginx.public_url, timeout=10) as client:
        market = Market(client, api.database_url)
        market.emails = api.emails
        yield market


class Publishers:
    def __init__(self, api: LiveApi, nginx: NginxProcess) -> None:
        self.api = api
        self.nginx = nginx
        self.running: list[tuple[asyncio.Task[None], asyncio.Event, aioredis.Redis, RedisMux, NchanHttp]] = []

    def start(self) -> NchanPublisher:
        """As `auction-hub nchan publish` runs it: its XREAD on a RedisMux, the rest on redis-py."""
        redis: aioredis.Redis = aioredis.Redis.from_url(self.api.redis.url)
        reader = RedisMux(self.api.redis.url)
        port = NchanHttp(self.nginx.publisher_url)
        publisher = NchanPublisher(redis, port, reader, buffer_length=50, discover_s=0.1)
        stop = asyncio.Event()
        self.running.append((asyncio.create_task(publisher.run(stop)), stop, redis, reader, port))
        return publisher

    async def stop_all(self) -> None:
        while self.running:
            task, stop, redis, reader, port = self.running.pop()
            stop.set()
            await asyncio.wait_for(task, 10)
            await port.aclose()
            await reader.aclose()
            await redis.aclose()


@pytest.fixture
async def publishers(api: LiveApi, nginx: NginxProcess) -> AsyncIterator[Publishers]:
    running = Publishers(api, nginx)
    yield running
    await running.stop_all()


@contextlib.asynccontextmanager
async def subscribe(nginx: NginxProcess, lots: list[int], last_event_id: str | None = None) -> AsyncIterator[SseReader]:
    headers = {**SSE, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    url = f"{nginx.public_url}{SUBSCRIBER_PATH}?lots={','.join(map(str, lots))}"
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as client:
        async with client.stream("GET", url, headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            yield SseReader(response)


def stream_ids(api: LiveApi, lot: int) -> list[str]:
    client = sync_redis.Redis.from_url(api.redis.url, decode_responses=True)
    try:
        entries: Any = client.xrange(events_key(lot))
        return [f"{lot}:{entry_id}" for entry_id, _ in entries]
    finally:
        client.close()


# -- the configuration --------------------------------------------------------------------------------------------


def test_rendered_config_keeps_the_publisher_on_loopback(tmp_path: Path) -> None:
    settings = nchan_settings("http://127.0.0.1:8000", nchan_listen="0.0.0.0:8080")  # noqa: S104 - public side
    text = render_config(settings, tmp_path)
    assert "${" not in text
    servers = re.split(r"\n    server \{", text)[1:]
    publisher = next(block for block in servers if "nchan_publisher" in block)
    public = next(block for block in servers if "nchan_subscriber" in block)
    assert re.findall(r"listen ([^;]+);", publisher) == [f"127.0.0.1:{settings.nchan_publish_port}"]
    assert "allow 127.0.0.1;" in publisher
    assert "deny all;" in publisher
    assert "nchan_publisher" not in public
    assert "nchan_message_buffer_length 50;" in publisher
    assert f"pid {tmp_path.resolve()}/nginx.pid;" in text
    NginxProcess(settings, tmp_path).check()  # nginx -t accepts it


async def test_public_side_refuses_publishing_and_bad_watchlists(nginx: NginxProcess) -> None:
    async with httpx.AsyncClient(base_url=nginx.public_url, timeout=5) as client:
        assert (await client.post("/pub/lot/1", content=b"{}")).status_code == 404
        for lots in ("", "abc", "1,,2", ",".join(["1"] * 201)):
            response = await client.get(SUBSCRIBER_PATH, params={"lots": lots}, headers=SSE)
            assert response.status_code == 400, lots


# -- end to end ---------------------------------------------------------------------------------------------------


async def test_a_bid_reaches_nchan_subscribers(
    market: Market, api: LiveApi, nginx: NginxProcess, publishers: Publishers
) -> None:
    publishers.start()
    auction, _ = await live_auction(market, lots=2)
    lots = [lot["id"] for lot in auction["lots"]]
    buyer = await market.member()
    async with subscribe(nginx, lots) as everything, subscribe(nginx, [lots[1]]) as second_only:
        reply = await bid(market, buyer, lots[0], 12_000)
        event = await everything.next()
        assert event.event == "price"
        assert event.data["eventId"] == stream_ids(api, lots[0])[-1]
        assert event.data["lotId"] == lots[0]
        assert event.data["currentPrice"] == reply["currentPrice"]
        assert event.data["bidCount"] == 1
        assert isinstance(event.data["acceptedAt"], int)
        assert "reservePrice" not in event.data
        assert event.id is not None
        assert re.fullmatch(r"\d+:.+", event.id)  # nchan's own message id

        await bid(market, buyer, lots[1], 13_000)
        assert (await everything.next()).data["eventId"] == stream_ids(api, lots[1])[-1]
        only = await second_only.next()
        assert only.data["lotId"] == lots[1]
        await everything.nothing_more(0.5)

    # A new subscriber without Last-Event-ID gets what is published after it connected, not the history.
    async with subscribe(nginx, [lots[0]]) as late:
        await late.nothing_more(0.3)
        await bid(market, buyer, lots[0], 14_000)
        assert (await late.next()).data["eventId"] == stream_ids(api, lots[0])[-1]
        await late.nothing_more(0.3)

    # The live page is served through the same nginx (proxied to the API).
    page = await market.client.get(f"/live/auctions/{auction['id']}")
    assert page.status_code == 200
    assert f'data-lot="{lots[1]}"' in page.text


async def test_resume_with_last_event_id_through_nchan_gets_every_missed_event_once(
    market: Market, api: LiveApi, nginx: NginxProcess, publishers: Publishers
) -> None:
    publishers.start()
    auction, _ = await live_auction(market, lots=2)
    lots = [lot["id"] for lot in auction["lots"]]
    buyers = [await market.member() for _ in range(2)]
    amounts = iter(range(10_000, 100_000, 300))
    received: list[Event] = []
    async with subscribe(nginx, lots) as reader:
        for step in range(3):
            await bid(market, buyers[step % 2], lots[step % 2], next(amounts))
        received += await reader.events(3)
    for step in range(3, 8):  # while disconnected
        await bid(market, buyers[step % 2], lots[step % 2], next(amounts))
    await asyncio.sleep(0.3)  # let the publisher post them

    async with subscribe(nginx, lots, last_event_id=received[-1].id) as reader:
        received += await reader.events(5)
        await reader.nothing_more(0.8)
        await bid(market, buyers[0], lots[1], next(amounts))  # and live again after the replay
        received += await reader.events(1)

    got = [event.data["eventId"] for event in received]
    assert len(got) == len(set(got)) == 9
    for lot in lots:
        assert [event_id for event_id in got if event_id.startswith(f"{lot}:")] == stream_ids(api, lot)


async def test_a_restarted_publisher_continues_where_it_stopped(
    market: Market, api: LiveApi, nginx: NginxProcess, publishers: Publishers
) -> None:
    publishers.start()
    auction, _ = await live_auction(market)
    lot = auction["lots"][0]["id"]
    buyer = await market.member()
    async with subscribe(nginx, [lot]) as reader:
        await bid(market, buyer, lot, 10_000)
        await reader.next()
        await publishers.stop_all()
        await bid(market, buyer, lot, 11_000)
        await bid(market, buyer, lot, 12_000)
        await reader.nothing_more(0.5)  # nobody publishes
        second = publishers.start()
        events = await reader.events(2)
        await reader.nothing_more(0.5)
    assert [event.data["eventId"] for event in events] == stream_ids(api, lot)[1:]
    redis: aioredis.Redis = aioredis.Redis.from_url(api.redis.url, decode_responses=True)
    assert await redis.get(published_key(lot)) == stream_ids(api, lot)[-1].split(":")[1]
    await redis.aclose()
    assert second.stats.published >= 2


async def test_one_publisher_at_a_time(api: LiveApi, nginx: NginxProcess) -> None:
    redis: aioredis.Redis = aioredis.Redis.from_url(api.redis.url)
    port = NchanHttp(nginx.publisher_url)
    first, second = NchanPublisher(redis, port, lease_ms=2000), NchanPublisher(redis, port, lease_ms=2000)
    try:
        assert await first.hold_lease()
        assert not await second.hold_lease()
        await first.release_lease()
        assert await second.hold_lease()
        await second.release_lease()
    finally:
        await port.aclose()
        await redis.aclose()


def test_a_message_is_the_native_event_plus_its_stream_position() -> None:
    fields = {b"type": b"price", b"lot_id": b"7", b"price": b"1250050", b"bid_count": b"3", b"leader": b"2"}
    event, body = message_of(7, b"1732480000000-1", fields)
    assert event == "price"
    data = json.loads(body)
    assert data == {
        "type": "price",
        "lotId": 7,
        "currentPrice": 12500.5,
        "bidCount": 3,
        "leader": 2,
        "eventId": "7:1732480000000-1",
    }


class RecordingPort:
    """nchan's publisher location, recorded (the publisher's logic against real Redis, without nginx)."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, str, dict[str, Any]]] = []

    async def publish(self, messages: Sequence[Message]) -> int:
        self.messages += [(message.lot_id, message.event, json.loads(message.body)) for message in messages]
        return len(messages)


@pytest.mark.parametrize("reader", ["redis_py", "redis_mux"])
async def test_armed_lots_are_watched_before_their_first_event_and_closed_ones_dropped(
    redis_server_factory: Callable[[], RedisServer], reader: str
) -> None:
    # Its own server: the publisher watches every armed lot, and other tests arm lots on the shared one.
    server = redis_server_factory()
    redis_client = aioredis.Redis.from_url(server.url)
    mux = RedisMux(server.url) if reader == "redis_mux" else None
    lot = 987_001
    await redis_client.delete(events_key(lot), published_key(lot), lot_key(lot, "state"))
    await redis_client.hset(lot_key(lot, "state"), mapping={"status": "open", "lot_id": str(lot)})
    port = RecordingPort()
    publisher = NchanPublisher(redis_client, port, mux)
    assert lot in await publisher.discover()  # armed, no event stream yet
    reading = asyncio.create_task(publisher.publish_once(block_ms=5000))
    await asyncio.sleep(0.1)
    added = await redis_client.xadd(events_key(lot), {"type": "price", "lot_id": str(lot), "price": "100"})
    first = added.decode() if isinstance(added, bytes) else added
    assert await asyncio.wait_for(reading, 5) == 1  # the blocked XREAD woke on the new stream
    body = {"type": "price", "lotId": lot, "currentPrice": 1.0, "eventId": f"{lot}:{first}"}
    assert port.messages == [(lot, "price", body)]

    await redis_client.xadd(events_key(lot), {"type": "closed", "lot_id": str(lot), "outcome": "sold"})
    await redis_client.hset(lot_key(lot, "state"), "status", "closed")
    assert await publisher.publish_once(block_ms=100) == 1
    assert lot not in publisher.cursors
    assert lot in publisher.finished
    # A new publisher (a restart) does not watch the closed lot again: nchan has all of it.
    again = NchanPublisher(redis_client, RecordingPort())
    assert lot in await again.discover()
    assert lot in again.finished
    assert lot not in again.cursors
    await redis_client.aclose()
    if mux is not None:
        await mux.aclose()
