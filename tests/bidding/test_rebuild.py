"""Redis lost entirely: every lot comes back from PostgreSQL exactly as it was (price, leader, maximums and their
arrival order, bidder numbers, soft-close end, closed lots closed) before bidding reopens; Redis restarted: the
persister carries on and nothing accepted is missing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from bidding.engine import BidEngine, lot_key
from bidding.lots import BidKind
from bidding.persistence import BidPersister
from hub.errors import Conflict, ServiceUnavailable
from marketplace.accounts import CurrentUser
from marketplace.demo_data import load_demo_data
from marketplace.migrate import apply_migrations
from tests.bidding import pg_lots
from tests.bidding.conftest import RedisServer
from tests.bidding.pg_lots import Db, ListSink, bidding

lifecycle_db, lifecycle_redis, redis_url = pg_lots.lifecycle_db, pg_lots.lifecycle_redis, pg_lots.redis_url


async def drain(persister: BidPersister) -> None:
    while await persister.step():
        pass


async def lot_state(redis: Redis, lot_id: int) -> dict[str, Any]:
    return {part: await redis.hgetall(lot_key(lot_id, part)) for part in ("state", "maxes", "bidders")}


def ms(moment: Any) -> int:
    return int(moment.timestamp() * 1000)


async def test_a_flushed_redis_is_rebuilt_from_postgres_and_bidding_continues(lifecycle_db: Db, redis_url: str) -> None:
    db = lifecycle_db
    [scheduled] = db.auction(starts_in=timedelta(hours=1), ends_in=timedelta(hours=2))
    [ending] = db.auction(ends_in=timedelta(minutes=30))
    [closed] = db.auction(reserve="5000.00")
    alice, bob, carol, dave = (db.user() for _ in range(4))
    now = int(time.time() * 1000)
    async with bidding(db.url, redis_url) as (pool, redis, service):
        engine: BidEngine = service.engine
        for lot in (scheduled, ending, closed):
            await service.view(lot.lot_id)  # armed from PostgreSQL

        async def bid(lot_id: int, user: int, dollars: int, kind: BidKind = "max", at: int | None = None) -> None:
            reply = await engine.place_bid(
                lot_id,
                user,
                dollars * 100,
                kind=kind,
                now_ms=at or now,
                currency="USD",
            )
            assert reply.status == "ACCEPTED", reply

        # pre-bidding: maximums placed, lowered, retracted
        await bid(scheduled.lot_id, alice, 3000)
        await bid(scheduled.lot_id, carol, 2000)
        await bid(scheduled.lot_id, bob, 2500)
        assert (await engine.retract(scheduled.lot_id, carol, now_ms=now)).status == "ACCEPTED"
        await bid(scheduled.lot_id, alice, 2700)  # lowered, still above the price (2,600)
        # live bidding with a live-bid floor, then a bid in the last minutes extends the end
        end = ms(db.sql("SELECT ends_at FROM auctions WHERE id = %s", (ending.auction_id,))[0][0])
        await bid(ending.lot_id, alice, 1500)
        await bid(ending.lot_id, bob, 1400, "live")
        await bid(ending.lot_id, carol, 1800, at=end - 30_000)
        await bid(ending.lot_id, alice, 1900, at=end - 20_000)
        assert (await engine.view(ending.lot_id)).ends_at_ms == end - 20_000 + 120_000  # type: ignore[union-attr]
        # closed below the reserve
        await bid(closed.lot_id, dave, 2000)
        await bid(closed.lot_id, bob, 2600)
        closed_end = ms(db.sql("SELECT ends_at FROM auctions WHERE id = %s", (closed.auction_id,))[0][0])
        result = await engine.close_if_due(closed.lot_id, closed_end + 5)
        assert result is not None
        assert result.outcome == "if_bid"

        await drain(BidPersister(redis, pool, ListSink(), consumer="before"))
        before = {lot.lot_id: await lot_state(redis, lot.lot_id) for lot in (scheduled, ending, closed)}

        await redis.flushall()  # Redis lost entirely, AOF and all
        for lot in (scheduled, ending, closed):
            await service.view(lot.lot_id)  # bidding reopens only through the rebuild
            assert await lot_state(redis, lot.lot_id) == before[lot.lot_id], f"lot {lot.lot_id}"
        # nothing was published or persisted twice by the replay: the new streams hold no records
        assert await redis.xlen(lot_key(ending.lot_id, "bids")) == 0
        assert await redis.xlen(lot_key(ending.lot_id, "events")) == 0

        # bidding continues from the same state: the next arrival number, the same rules
        reply = await engine.place_bid(ending.lot_id, dave, 2500_00, now_ms=end - 1_000, currency="USD")
        assert (reply.status, reply.bid_id, reply.current_price, reply.is_leader) == (
            "ACCEPTED",
            f"{ending.lot_id}-5",
            2000_00,
            True,
        )
        user = CurrentUser(dave, "buyer")
        refused = await service.place_bid(user, closed.lot_id, Decimal(9000), "USD", "max", None)
        assert (refused.status, refused.reason) == ("REJECTED", "closed")
        await drain(BidPersister(redis, pool, ListSink(), consumer="after"))
        refs = db.sql("SELECT bid_ref FROM bids WHERE lot_id = %s ORDER BY seq", (ending.lot_id,))
        assert [r[0] for r in refs] == [f"{ending.lot_id}-{n}" for n in range(1, 6)]


async def test_a_history_that_does_not_replay_keeps_the_lot_closed_to_bids(lifecycle_db: Db, redis_url: str) -> None:
    db = lifecycle_db
    [lot] = db.auction()
    alice, bob = db.user(), db.user()
    now = int(time.time() * 1000)
    async with bidding(db.url, redis_url) as (pool, redis, service):
        await service.view(lot.lot_id)
        for user, cents in ((alice, 1500_00), (bob, 2000_00)):
            await service.engine.place_bid(lot.lot_id, user, cents, now_ms=now, currency="USD")
        await drain(BidPersister(redis, pool, ListSink(), consumer="p"))
        db.sql("UPDATE bids SET amount = 1000 WHERE bid_ref = %s", (f"{lot.lot_id}-2",))  # no longer above alice
        await redis.flushall()
        with pytest.raises(ServiceUnavailable, match=f"{lot.lot_id}-2"):
            await service.view(lot.lot_id)
        assert not await redis.exists(lot_key(lot.lot_id, "state"))
        assert await redis.keys(f"{{lot:{lot.lot_id}}}:*") == []  # no scratch keys left behind


async def test_bids_recorded_outside_live_bidding_keep_an_open_lot_closed_to_bids(
    lifecycle_db: Db, redis_url: str
) -> None:
    """Bids without an arrival number (imported, written by hand) cannot be replayed: opening the lot without them
    would restart its price below bids already taken, so the lot refuses bids and says why."""
    db = lifecycle_db
    [lot] = db.auction()
    alice, bob = db.user(), db.user()
    db.sql("INSERT INTO bids (lot_id, user_id, amount) VALUES (%s, %s, 1500)", (lot.lot_id, alice))
    db.sql("UPDATE auction_lots SET current_bid = 1500 WHERE id = %s", (lot.lot_id,))
    async with bidding(db.url, redis_url) as (_, redis, service):
        with pytest.raises(Conflict, match="1 bid\\(s\\) recorded outside live bidding"):
            await service.view(lot.lot_id)
        buyer = CurrentUser(id=bob, role="buyer")
        with pytest.raises(Conflict, match="recorded outside live bidding"):
            await service.place_bid(buyer, lot.lot_id, Decimal(1100), "USD", "max", None)
        assert not await redis.exists(lot_key(lot.lot_id, "state"))
    assert db.sql("SELECT count(*), max(amount) FROM bids WHERE lot_id = %s", (lot.lot_id,)) == [(1, Decimal(1500))]


async def test_the_demo_datas_live_lots_open_at_their_recorded_price_and_bids(
    database_factory: Callable[[str], str], redis_url: str
) -> None:
    url = database_factory("demo-lots")
    apply_migrations(url)
    load_demo_data(url, dealers=40, vehicles=600, seed=3)
    db = Db(url)
    lots = db.sql(
        "SELECT l.id, l.current_bid, count(b.id) FROM auction_lots l JOIN auctions a ON a.id = l.auction_id "
        "LEFT JOIN bids b ON b.lot_id = l.id WHERE a.starts_at < now() AND a.ends_at > now() "
        "GROUP BY l.id, l.current_bid"
    )
    assert any(bids for _, _, bids in lots), "the demo has live lots with bids"
    async with bidding(url, redis_url) as (_, _, service):
        for lot_id, recorded, bids in lots:
            view = await service.view(int(lot_id))
            assert view.bid_count == bids, lot_id
            if bids:
                assert (view.status, view.current_price) == ("open", int(recorded * 100)), lot_id
                assert view.leader_number is not None


async def test_the_persister_carries_on_across_a_redis_kill_and_restart(
    lifecycle_db: Db, redis_server_factory: Callable[[], RedisServer]
) -> None:
    db = lifecycle_db
    [lot] = db.auction()
    buyers = [CurrentUser(db.user(), "buyer") for _ in range(3)]
    server = redis_server_factory()
    async with bidding(db.url, server.url) as (pool, redis, service):
        persister = BidPersister(redis, pool, ListSink(), consumer="survivor", block_ms=50)
        stop = asyncio.Event()
        task = asyncio.create_task(persister.run(stop))
        accepted: list[str] = []

        async def place(round_: int) -> None:
            for n, user in enumerate(buyers):
                amount = Decimal(1000 + 100 * (3 * round_ + n))
                reply = await service.place_bid(user, lot.lot_id, amount, "USD", "live", None)
                assert reply.status == "ACCEPTED"
                accepted.append(str(reply.bid_id))

        async def stored() -> list[str]:
            return [str(r[0]) for r in db.sql("SELECT bid_ref FROM bids WHERE lot_id = %s", (lot.lot_id,))]

        await place(0)
        server.kill()  # kill -9 while the persister may hold unacknowledged entries
        server.start()
        for attempt in range(100):
            try:
                await place(1)
                break
            except ServiceUnavailable:
                await asyncio.sleep(0.1 * (attempt + 1))
        deadline = time.monotonic() + 30
        while sorted(await stored()) != sorted(accepted) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        stop.set()
        await task
        assert sorted(await stored()) == sorted(accepted)
        assert len(accepted) == 6
