"""Marketplace rows for lifecycle tests, written with SQL (users, a dealer, cars, an auction of lots)."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from bidding.engine import BidEngine
from bidding.rate_limit import RateLimit
from bidding.service import BiddingService
from marketplace.db import Connection, create_pool
from marketplace.migrate import apply_migrations
from marketplace.vin import make_vin
from schemas.auction_bids import AuctionBidEvent
from tests.bidding.conftest import RedisServer

RNG = random.Random(5)
SERIALS = itertools.count(700_000)
EMAILS = itertools.count()


@dataclass(frozen=True)
class Lot:
    lot_id: int
    auction_id: int
    vehicle_id: int
    seller_id: int  # the dealer's owner (user id)


class Db:
    def __init__(self, url: str) -> None:
        self.url = url

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def user(self, role: str = "buyer") -> int:
        rows = self.sql(
            "INSERT INTO users (email, password_hash, full_name, role) VALUES (%s, 'x', 'Test', %s) RETURNING id",
            (f"lc{next(EMAILS)}@example.com", role),
        )
        return int(rows[0][0])

    def auction(
        self,
        *,
        lots: int = 1,
        starts_in: timedelta = timedelta(minutes=-1),
        ends_in: timedelta = timedelta(hours=1),
        starting: str = "1000.00",
        reserve: str | None = None,
        buy_now: str | None = None,
    ) -> list[Lot]:
        """A verified dealer's auction of `lots` cars (in_auction), increments [[0, 100]], prices in dollars."""
        owner = self.user("dealer")
        dealer = self.sql(
            "INSERT INTO dealers (owner_id, name, city, state, zip, lat, lon, status) "
            "VALUES (%s, 'Lot Co', 'Denver', 'CO', '80202', 39.75, -104.99, 'verified') RETURNING id",
            (owner,),
        )[0][0]
        now = datetime.now(UTC)
        auction = self.sql(
            "INSERT INTO auctions (dealer_id, title, starts_at, ends_at) VALUES (%s, 'Sale', %s, %s) RETURNING id",
            (dealer, now + starts_in, now + ends_in),
        )[0][0]
        made = []
        for number in range(1, lots + 1):
            vehicle = self.sql(
                "INSERT INTO vehicles (dealer_id, vin, make, model, year, mileage, condition_grade, body_type, fuel, "
                "transmission, drivetrain, exterior_color, city, state, zip, lat, lon, asking_price, status) VALUES "
                "(%s, %s, 'Toyota', 'Camry', 2021, 25000, 4.2, 'sedan', 'gasoline', 'automatic', 'fwd', 'Blue', "
                "'Denver', 'CO', '80202', 39.75, -104.99, 23900, 'in_auction') RETURNING id",
                (dealer, make_vin(RNG, "4T1", "BF1FK", 2021, next(SERIALS))),
            )[0][0]
            lot = self.sql(
                "INSERT INTO auction_lots (auction_id, vehicle_id, lot_number, starting_price, reserve_price, "
                "buy_now_price, min_increment, bid_increments) VALUES (%s, %s, %s, %s, %s, %s, 100, '[[0, 100]]') "
                "RETURNING id",
                (auction, vehicle, number, starting, reserve, buy_now),
            )[0][0]
            made.append(Lot(int(lot), int(auction), int(vehicle), owner))
        return made

    def schedule(self, auction_id: int, starts_in: timedelta, ends_in: timedelta) -> None:
        now = datetime.now(UTC)
        self.sql(
            "UPDATE auctions SET starts_at = %s, ends_at = %s WHERE id = %s",
            (now + starts_in, now + ends_in, auction_id),
        )


Bidding = tuple[AsyncConnectionPool[Connection], Redis, BiddingService]


@asynccontextmanager
async def bidding(
    database_url: str, redis_url: str
) -> AsyncIterator[tuple[AsyncConnectionPool[Connection], Redis, BiddingService]]:
    """A pool, a Redis client and the bidding service (rate limit high enough for tests)."""
    pool = create_pool(database_url, max_size=4)
    await pool.open(wait=True)
    redis: Redis = Redis.from_url(redis_url, max_connections=64)
    try:
        yield pool, redis, BiddingService(pool, redis, BidEngine(redis), RateLimit(bids=10_000))
    finally:
        await redis.aclose()
        await pool.close()


# -- fixtures (import them into a test module to use them) ---------------------------------------------------------


@pytest.fixture(scope="module")
def lifecycle_db(database_factory: Callable[[str], str]) -> Db:
    url = database_factory("lifecycle")
    apply_migrations(url)
    return Db(url)


@pytest.fixture(scope="module")
def lifecycle_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("lifecycle-redis")).start()
    yield server
    server.stop()


@pytest.fixture
async def redis_url(lifecycle_redis: RedisServer) -> str:
    """The module's AOF Redis, emptied for each test (lot ids repeat across test databases)."""
    client: Redis = Redis.from_url(lifecycle_redis.url)
    await client.flushall()
    await client.aclose()
    return lifecycle_redis.url


class ListSink:
    """A recording `BidEventSink` (for tests that check PostgreSQL, not Kafka); `fail` makes publish raise."""

    def __init__(self) -> None:
        self.events: list[AuctionBidEvent] = []
        self.fail = False

    async def publish(self, events: Sequence[AuctionBidEvent]) -> None:
        if self.fail:
            raise ConnectionError("the broker is down")
        self.events.extend(events)
