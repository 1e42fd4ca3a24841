"""Accepted bids reach PostgreSQL (once each, by bid id) and Kafka `auction.bids`, through the Redis consumer group:
several persisters, crashes before the acknowledgement, replays."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from bidding.bid_events import KafkaBidSink, vehicle_key
from bidding.engine import LOTS_KEY
from bidding.persistence import BidPersister, Entry
from hub.broker import EmbeddedBroker
from marketplace.accounts import CurrentUser
from tests.bidding import pg_lots
from tests.bidding.pg_lots import Db, ListSink, bidding

lifecycle_db, lifecycle_redis, redis_url = pg_lots.lifecycle_db, pg_lots.lifecycle_redis, pg_lots.redis_url


async def drain(*persisters: BidPersister, rounds: int = 20) -> None:
    """Rounds until a full pass of every persister handles nothing."""
    for _ in range(rounds):
        handled = sum([await persister.step() for persister in persisters])
        if not handled:
            return


def bids_of(db: Db, lot_id: int) -> list[tuple[str, int, Decimal, Decimal | None, str]]:
    return [
        (str(r[0]), int(r[1]), r[2], r[3], str(r[4]))
        for r in db.sql(
            "SELECT bid_ref, user_id, amount, price_after, kind FROM bids WHERE lot_id = %s ORDER BY seq", (lot_id,)
        )
    ]


async def test_accepted_bids_land_once_in_postgres_and_on_kafka(
    lifecycle_db: Db, redis_url: str, kafka_broker: EmbeddedBroker
) -> None:
    db = lifecycle_db
    [lot] = db.auction(starting="1000.00")
    [early] = db.auction(starts_in=timedelta(hours=1), ends_in=timedelta(hours=2))
    alice, bob = CurrentUser(db.user(), "buyer"), CurrentUser(db.user(), "buyer")
    topic = f"auction.bids.{lot.lot_id}-{alice.id}"
    sink = KafkaBidSink(kafka_broker.bootstrap_servers, topic, 2)
    await sink.start()
    try:
        async with bidding(db.url, redis_url) as (pool, redis, service):
            r1 = await service.place_bid(alice, lot.lot_id, Decimal(1500), "USD", "max", None)
            r2 = await service.place_bid(bob, lot.lot_id, Decimal(1200), "USD", "live", None)
            rejected = await service.place_bid(bob, lot.lot_id, Decimal(1000), "USD", "live", None)
            r3 = await service.place_bid(bob, lot.lot_id, Decimal(2000), "USD", "max", None)
            await service.place_bid(alice, early.lot_id, Decimal(3000), "USD", "max", None)
            retracted = await service.engine.retract(early.lot_id, alice.id, now_ms=int(time.time() * 1000))
            assert rejected.status == "REJECTED"
            persister = BidPersister(redis, pool, sink, consumer="p1")
            await drain(persister)
            assert persister.persisted == 5

            assert bids_of(db, lot.lot_id) == [
                (f"{lot.lot_id}-1", alice.id, Decimal("1500.00"), Decimal("1000.00"), "max"),
                (f"{lot.lot_id}-2", bob.id, Decimal("1200.00"), Decimal("1300.00"), "live"),
                (f"{lot.lot_id}-3", bob.id, Decimal("2000.00"), Decimal("1600.00"), "max"),
            ]
            assert [r1.bid_id, r2.bid_id, r3.bid_id] == [f"{lot.lot_id}-{n}" for n in (1, 2, 3)]
            assert db.sql("SELECT current_bid, bid_seq FROM auction_lots WHERE id = %s", (lot.lot_id,)) == [
                (Decimal("1600.00"), 3)
            ]
            assert retracted.status == "ACCEPTED"
            assert db.sql("SELECT bid_ref, user_id FROM bid_retractions WHERE lot_id = %s", (early.lot_id,)) == [
                (f"{early.lot_id}-2", alice.id)
            ]

            # a replay (e.g. a crash after the commit, before the acknowledgement) writes nothing new
            records: Any = await redis.xrange(f"{{lot:{lot.lot_id}}}:bids")
            again = BidPersister(redis, pool, ListSink(), consumer="p2")
            await again.handle(
                [_entry(lot.lot_id, raw_id, fields) for raw_id, fields in records]  # the same entries once more
            )
            assert len(bids_of(db, lot.lot_id)) == 3
    finally:
        await sink.close()

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_broker.bootstrap_servers, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        got: list[dict[str, object]] = []
        keys: set[bytes] = set()
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    got.append(orjson.loads(record.value))
                    keys.add(record.key)
            if len(got) >= 5:
                break
    finally:
        await consumer.stop()
    by_lot = [(e["type"], e["bidId"], e["priceCents"], e["bidCount"]) for e in got if e["lotId"] == lot.lot_id]
    assert by_lot == [
        ("bid", f"{lot.lot_id}-1", 100_000, 1),
        ("bid", f"{lot.lot_id}-2", 130_000, 2),
        ("bid", f"{lot.lot_id}-3", 160_000, 3),
    ]
    assert all("max" not in e and "amount" not in e for e in got)  # the secret maximum never leaves
    assert keys == {vehicle_key(lot.vehicle_id), vehicle_key(early.vehicle_id)}
    statuses = [(e["type"], e["lotStatus"], e["priceCents"]) for e in got if e["lotId"] == early.lot_id]
    assert statuses == [("bid", "scheduled", 100_000), ("retract", "scheduled", None)]


def _entry(lot_id: int, raw_id: bytes, fields: dict[bytes, bytes]) -> Entry:
    return Entry(lot_id, raw_id.decode(), {k.decode(): v.decode() for k, v in fields.items()})


async def test_two_persisters_share_the_lots_without_loss_or_duplicates(lifecycle_db: Db, redis_url: str) -> None:
    db = lifecycle_db
    lots = db.auction(lots=4)
    buyers = [CurrentUser(db.user(), "buyer") for _ in range(5)]
    sinks = ListSink(), ListSink()
    async with bidding(db.url, redis_url) as (pool, redis, service):
        persisters = [BidPersister(redis, pool, sink, consumer=f"p{n}", block_ms=20) for n, sink in enumerate(sinks)]
        accepted: set[str] = set()
        stop = asyncio.Event()

        async def bidder(user: CurrentUser, lot_id: int) -> None:
            for step in range(10):
                reply = await service.place_bid(user, lot_id, Decimal(2000 + 100 * step + user.id), "USD", "live", None)
                if reply.status == "ACCEPTED" and reply.bid_id:
                    accepted.add(reply.bid_id)

        async def persist(persister: BidPersister) -> None:
            while not stop.is_set():
                await persister.step()

        runners = [asyncio.create_task(persist(p)) for p in persisters]
        await asyncio.gather(*(bidder(user, lot.lot_id) for user in buyers for lot in lots))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*runners)
        await drain(*persisters)
        lot_ids = [lot.lot_id for lot in lots]
        stored = [str(r[0]) for r in db.sql("SELECT bid_ref FROM bids WHERE lot_id = ANY(%s)", (lot_ids,))]
        assert sorted(stored) == sorted(accepted)
        published = [str(e.bidId) for sink in sinks for e in sink.events]
        assert sorted(published) == sorted(accepted)  # each record handled by exactly one persister
        for lot in lots:
            view = await service.view(lot.lot_id)
            assert db.sql("SELECT current_bid FROM auction_lots WHERE id = %s", (lot.lot_id,)) == [
                (Decimal(view.current_price) / 100,)
            ]
        assert (await redis.xpending(f"{{lot:{lots[0].lot_id}}}:bids", "pg-persister"))["pending"] == 0


async def test_entries_of_a_failed_round_are_retried_and_a_dead_consumers_are_claimed(
    lifecycle_db: Db, redis_url: str
) -> None:
    db = lifecycle_db
    [lot] = db.auction()
    buyer = CurrentUser(db.user(), "buyer")
    async with bidding(db.url, redis_url) as (pool, redis, service):
        await service.place_bid(buyer, lot.lot_id, Decimal(1000), "USD", "max", None)
        broken = ListSink()
        broken.fail = True
        crashed = BidPersister(redis, pool, broken, consumer="crashed")
        try:
            await crashed.step()
            raise AssertionError("the round should have failed")
        except ConnectionError:
            pass
        # committed to PostgreSQL, but not acknowledged: still pending for `crashed`
        assert len(bids_of(db, lot.lot_id)) == 1
        pending = await redis.xpending(f"{{lot:{lot.lot_id}}}:bids", "pg-persister")
        assert pending["pending"] == 1

        await service.place_bid(buyer, lot.lot_id, Decimal(1500), "USD", "max", None)
        survivor_sink = ListSink()
        survivor = BidPersister(redis, pool, survivor_sink, consumer="survivor", claim_idle_ms=100)
        await asyncio.sleep(0.15)
        await drain(survivor)
        assert [e.bidId for e in survivor_sink.events] == [f"{lot.lot_id}-1", f"{lot.lot_id}-2"]
        assert (await redis.xpending(f"{{lot:{lot.lot_id}}}:bids", "pg-persister"))["pending"] == 0
        assert len(bids_of(db, lot.lot_id)) == 2

        # a persister restarted under its old name re-reads what it had not acknowledged
        await service.place_bid(buyer, lot.lot_id, Decimal(2500), "USD", "max", None)
        flaky_sink = ListSink()
        flaky_sink.fail = True
        flaky = BidPersister(redis, pool, flaky_sink, consumer="flaky")
        try:
            await flaky.step()
        except ConnectionError:
            pass
        flaky_sink.fail = False
        restarted = BidPersister(redis, pool, flaky_sink, consumer="flaky", claim_idle_ms=3_600_000)
        await drain(restarted)
        assert [e.bidId for e in flaky_sink.events] == [f"{lot.lot_id}-3"]
        assert await redis.sismember(LOTS_KEY, str(lot.lot_id))
