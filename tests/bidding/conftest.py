"""A real redis-server per test session with AOF fsync on every write, on a free port in a temp directory."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from bidding.engine import BidEngine
from bidding.lots import BidReply, LotResult, LotRules, LotView
from bidding.model import BidModel
from bidding.redis_mux import RedisMux
from hub.embedded_redis import EmbeddedRedis

RedisServer = EmbeddedRedis  # kill() is kill -9; start() again reopens the same AOF


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], RedisServer]]:
    """Private servers for tests that kill them."""
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(tmp_path_factory.mktemp("redis-own")).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_server.url, max_connections=256)
    yield client
    await client.aclose()


_lot_ids = itertools.count(1000)
T0 = 1_800_000_000_000  # a fixed Unix ms clock: lots start at T0 and end an hour later


@pytest.fixture
def rules_factory() -> Callable[..., LotRules]:
    """Fresh lots (a new id each call) with small, readable defaults; override any field."""

    def make(**overrides: object) -> LotRules:
        values: dict[str, object] = {
            "lot_id": next(_lot_ids),
            "auction_id": 1,
            "seller_user_id": 99,
            "currency": "USD",
            "starting_price": 1000,
            "increments": ((0, 100), (5000, 250)),
            "starts_at_ms": T0,
            "ends_at_ms": T0 + 3_600_000,
        }
        values.update(overrides)
        return LotRules(**values)  # type: ignore[arg-type]

    return make


class AsyncModel:
    """The pure-Python model behind the engine's async API, so one rule test checks both."""

    def __init__(self) -> None:
        self.model = BidModel()

    async def arm(self, rules: LotRules) -> None:
        self.model.arm(rules)

    async def place_bid(self, lot_id: int, user_id: int, amount: int, **kwargs: Any) -> BidReply:
        return self.model.place_bid(lot_id, user_id, amount, **kwargs)

    async def retract(self, lot_id: int, user_id: int, *, now_ms: int) -> BidReply:
        return self.model.retract(lot_id, user_id, now_ms=now_ms)

    async def open_due(self, lot_id: int, now_ms: int) -> bool:
        return self.model.open_due(lot_id, now_ms)

    async def close_if_due(self, lot_id: int, now_ms: int) -> LotResult | None:
        return self.model.close_if_due(lot_id, now_ms)

    async def view(self, lot_id: int) -> LotView | None:
        return self.model.view(lot_id)


@pytest.fixture(params=["redis", "redis_mux", "model"])
async def engine(
    request: pytest.FixtureRequest, redis_client: aioredis.Redis, redis_server: RedisServer
) -> AsyncIterator[BidEngine | AsyncModel]:
    """Both implementations of the rules: the Lua engine on real Redis (bids through redis-py, and through the
    API's multiplexed connection), and the pure-Python model."""
    if request.param == "model":
        yield AsyncModel()
        return
    mux = RedisMux(redis_server.url) if request.param == "redis_mux" else None
    yield BidEngine(redis_client, mux)
    if mux is not None:
        await mux.aclose()
