"""The scheduler opens lots at their start and closes them at their (extended) end; two schedulers racing over the
same lots close each exactly once; the persister turns each close into the result, lot, car and auction status."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from bidding.engine import bids_key, events_key
from bidding.lots import LotResult
from bidding.persistence import BidPersister
from bidding.scheduler import LotScheduler
from marketplace.accounts import CurrentUser
from tests.bidding import pg_lots
from tests.bidding.pg_lots import Db, ListSink, bidding

lifecycle_db, lifecycle_redis, redis_url = pg_lots.lifecycle_db, pg_lots.lifecycle_redis, pg_lots.redis_url


async def drain(persister: BidPersister) -> None:
    while await persister.step():
        pass


async def test_lots_open_on_time_and_the_auction_goes_live(lifecycle_db: Db, redis_url: str) -> None:
    db = lifecycle_db
    lots = db.auction(lots=2, starts_in=timedelta(minutes=2), ends_in=timedelta(hours=1))
    far = db.auction(starts_in=timedelta(days=2), ends_in=timedelta(days=3))
    async with bidding(db.url, redis_url) as (pool, redis, service):
        scheduler = LotScheduler(pool, service, arm_ahead_s=300, announce_ahead_s=0)
        tick = await scheduler.tick()
        assert sorted(tick.armed) == sorted(lot.lot_id for lot in lots)  # armed ahead, not the one in two days
        assert tick.opened == []
        assert (await service.view(lots[0].lot_id)).status == "scheduled"
        assert not await redis.exists(f"{{lot:{far[0].lot_id}}}:state")

        later = LotScheduler(pool, service, clock=lambda: time.time() + 180)
        tick = await later.tick()
        assert sorted(tick.opened) == sorted(lot.lot_id for lot in lots)
        assert (await service.view(lots[1].lot_id)).status == "open"
        assert db.sql("SELECT status FROM auctions WHERE id = %s", (lots[0].auction_id,)) == [("live",)]
        assert (await later.tick()).opened == []  # opened once


async def test_two_schedulers_close_every_lot_exactly_once(lifecycle_db: Db, redis_url: str) -> None:
    db = lifecycle_db
    lots = db.auction(lots=12, reserve="3000.00")
    buyer, rival = CurrentUser(db.user(), "buyer"), CurrentUser(db.user(), "buyer")
    async with bidding(db.url, redis_url) as (pool, redis, service):
        sold, if_bid = lots[0], lots[1]
        await service.place_bid(buyer, sold.lot_id, Decimal(3500), "USD", "max", None)
        await service.place_bid(rival, sold.lot_id, Decimal(2000), "USD", "max", None)
        await service.place_bid(buyer, if_bid.lot_id, Decimal(2500), "USD", "max", None)
        after_the_end = time.time() + 3601  # the auction ends in an hour
        schedulers = [LotScheduler(pool, service, clock=lambda: after_the_end) for _ in range(2)]
        results: list[LotResult] = []
        for _ in range(3):
            ticks = await asyncio.gather(*(scheduler.tick() for scheduler in schedulers))
            mine = {lot.lot_id for lot in lots}  # (other tests' lots in this database close too)
            results += [result for tick in ticks for result in tick.closed if result.lot_id in mine]
        assert sorted(result.lot_id for result in results) == sorted(lot.lot_id for lot in lots)
        for lot in lots:
            records: Any = await redis.xrange(bids_key(lot.lot_id))
            assert [fields[b"type"] for _, fields in records].count(b"close") == 1
            events: Any = await redis.xrange(events_key(lot.lot_id))
            assert [fields[b"type"] for _, fields in events].count(b"closed") == 1

        by_lot = {result.lot_id: result for result in results}
        assert (by_lot[sold.lot_id].outcome, by_lot[sold.lot_id].price) == ("sold", 3000_00)  # the reserve
        assert by_lot[sold.lot_id].winner_user_id == buyer.id
        assert (by_lot[if_bid.lot_id].outcome, by_lot[if_bid.lot_id].price) == ("if_bid", 1000_00)
        assert by_lot[lots[2].lot_id].outcome == "no_bids"

        sink = ListSink()
        await drain(BidPersister(redis, pool, sink, consumer="p"))
        rows = dict(db.sql("SELECT lot_id, status FROM lot_results WHERE auction_id = %s", (sold.auction_id,)))
        assert rows[sold.lot_id] == "sold"
        assert rows[if_bid.lot_id] == "pending_seller"
        assert {rows[lot.lot_id] for lot in lots[2:]} == {"unsold"}
        lot_rows = dict(db.sql("SELECT id, status FROM auction_lots WHERE auction_id = %s", (sold.auction_id,)))
        assert (lot_rows[sold.lot_id], lot_rows[if_bid.lot_id], lot_rows[lots[2].lot_id]) == (
            "sold",
            "if_bid",
            "unsold",
        )
        cars = dict(db.sql("SELECT id, status FROM vehicles WHERE id = ANY(%s)", ([lot.vehicle_id for lot in lots],)))
        assert (cars[sold.vehicle_id], cars[if_bid.vehicle_id], cars[lots[2].vehicle_id]) == (
            "sold",
            "in_auction",  # waits for the seller's decision
            "active",  # back on sale
        )
        assert db.sql("SELECT status FROM auctions WHERE id = %s", (sold.auction_id,)) == [("closed",)]
        assert db.sql("SELECT current_bid FROM auction_lots WHERE id = %s", (sold.lot_id,)) == [(Decimal("3000.00"),)]
        closes = [event for event in sink.events if event.type == "closed" and event.auctionId == sold.auction_id]
        assert len(closes) == len(lots)
        assert next(e for e in closes if e.lotId == sold.lot_id).lotStatus == "sold"
        assert (await schedulers[0].tick()).closed == []  # nothing left to close


async def test_a_soft_close_extension_is_respected(lifecycle_db: Db, redis_url: str) -> None:
    db = lifecycle_db
    [lot] = db.auction(ends_in=timedelta(minutes=10))
    buyer = db.user()
    async with bidding(db.url, redis_url) as (pool, _, service):
        end_ms = int(db.sql("SELECT ends_at FROM auctions WHERE id = %s", (lot.auction_id,))[0][0].timestamp() * 1000)
        await service.view(lot.lot_id)
        reply = await service.engine.place_bid(lot.lot_id, buyer, 1000_00, now_ms=end_ms - 5_000, currency="USD")
        assert reply.ends_at_ms == end_ms + 115_000
        at_scheduled_end = LotScheduler(pool, service, clock=lambda: end_ms / 1000 + 1)
        assert (await at_scheduled_end.tick()).closed == []
        after_extension = LotScheduler(pool, service, clock=lambda: end_ms / 1000 + 116)
        [result] = (await after_extension.tick()).closed
        assert (result.lot_id, result.outcome) == (lot.lot_id, "sold")


async def test_a_lot_that_cannot_be_armed_is_skipped_and_reported_once(
    lifecycle_db: Db, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    db = lifecycle_db
    [refused] = db.auction()
    db.sql("INSERT INTO bids (lot_id, user_id, amount) VALUES (%s, %s, 1500)", (refused.lot_id, db.user()))
    async with bidding(db.url, redis_url) as (pool, redis, service):
        scheduler = LotScheduler(pool, service)
        with caplog.at_level(logging.WARNING, logger="bidding.scheduler"):
            for _ in range(3):
                assert refused.lot_id not in (await scheduler.tick()).armed
        assert not await redis.exists(f"{{lot:{refused.lot_id}}}:state")
    warnings = [record.getMessage() for record in caplog.records if str(refused.lot_id) in record.getMessage()]
    assert len(warnings) == 1
    assert "recorded outside live bidding" in warnings[0]


async def test_lots_no_bid_speaks_for_are_announced_for_search_once_and_again_when_they_open(
    lifecycle_db: Db, redis_url: str
) -> None:
    """Search learns that a car is in an upcoming auction, and when it goes live, from state records the persister
    publishes; a cancelled auction's lots are announced withdrawn."""
    db = lifecycle_db
    [far] = db.auction(starts_in=timedelta(days=3), ends_in=timedelta(days=4))
    [soon] = db.auction(starts_in=timedelta(minutes=2), ends_in=timedelta(hours=1))
    [cancelled] = db.auction(starts_in=timedelta(days=1), ends_in=timedelta(days=2))
    async with bidding(db.url, redis_url) as (pool, redis, service):
        scheduler = LotScheduler(pool, service, arm_ahead_s=300, announce_ahead_s=5 * 86_400, announce_every_s=60)
        tick = await scheduler.tick()  # the first tick sweeps the whole announce horizon
        assert {far.lot_id, soon.lot_id, cancelled.lot_id} <= set(tick.armed) & set(tick.announced)
        assert (await scheduler.tick()).announced == []  # once per lot, and no sweep before a minute has passed

        sink = ListSink()
        await drain(BidPersister(redis, pool, sink, consumer="p"))
        states = {(e.lotId, e.lotStatus, e.priceCents, e.bidCount) for e in sink.events if e.type == "state"}
        starts = {e.lotId: e.startsAtMs for e in sink.events}
        assert starts[far.lot_id] == pytest.approx((time.time() + 3 * 86_400) * 1000, abs=120_000)
        first_positions = {e.lotId: e.position for e in sink.events}
        assert {(lot.lot_id, "scheduled", None, 0) for lot in (far, soon, cancelled)} <= states
        assert db.sql("SELECT count(*) FROM bids WHERE lot_id = %s", (far.lot_id,)) == [(0,)]  # nothing written

        later = time.time() + 180
        scheduler.clock = lambda: later
        opened = await scheduler.tick()
        assert soon.lot_id in opened.opened
        assert opened.announced == [soon.lot_id]

        db.sql("UPDATE auctions SET status = 'cancelled' WHERE id = %s", (cancelled.auction_id,))
        await service.sync_auction(cancelled.auction_id)
        sink.events.clear()
        await drain(BidPersister(redis, pool, sink, consumer="p"))
        assert {(e.lotId, e.type, e.lotStatus) for e in sink.events} == {
            (soon.lot_id, "state", "open"),
            (cancelled.lot_id, "state", "withdrawn"),
        }
        [opened_record] = [e for e in sink.events if e.lotId == soon.lot_id]
        assert opened_record.position > first_positions[soon.lot_id]  # the indexer applies it over the announcement
