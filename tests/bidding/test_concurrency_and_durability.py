"""Many bidders at once on one lot, and kill -9 of the AOF Redis: the engine's answers stay the model's."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis

from bidding.engine import BidEngine, bids_key
from bidding.lots import BidReply, LotRules
from bidding.model import BidModel
from bidding.redis_mux import RedisMux
from tests.bidding.conftest import T0, RedisServer

Rules = Callable[..., LotRules]
OPEN = T0 + 1000


def seq_of(reply: BidReply) -> int:
    assert reply.bid_id is not None
    return int(reply.bid_id.rsplit("-", 1)[1])


@pytest.mark.parametrize("bid_path", ["redis_py_pool", "redis_mux"])
async def test_200_concurrent_bidders_on_one_lot_end_as_the_model_says(
    redis_server: RedisServer, rules_factory: Rules, bid_path: str
) -> None:
    """200 bidders, each on its own connection, bid at the same moment (several rounds). Redis runs the scripts
    one at a time in some order; replaying the accepted bids in that order (their arrival numbers) through the
    model must give the same replies, the same rejections where the model is asked the same question, and the
    same final lot. With the API's multiplexed connection all 200 share one connection instead."""
    rules = rules_factory(starting_price=1000, increments=((0, 10), (5000, 50)), reserve_price=4000)
    pool = aioredis.BlockingConnectionPool.from_url(redis_server.url, max_connections=200)
    client = aioredis.Redis(connection_pool=pool)
    mux = RedisMux(redis_server.url) if bid_path == "redis_mux" else None
    engine = BidEngine(client, mux)
    await engine.arm(rules)
    generator = random.Random(20261124)
    users = list(range(1, 201))
    try:
        replies: list[tuple[int, int, BidReply]] = []
        for _round in range(5):
            view = await engine.view(rules.lot_id)
            assert view is not None
            amounts = {user: view.min_next_bid + generator.randrange(0, 40) * 10 for user in users}
            results = await asyncio.gather(
                *(engine.place_bid(rules.lot_id, user, amounts[user], now_ms=OPEN, currency="USD") for user in users)
            )
            replies += [(user, amounts[user], reply) for user, reply in zip(users, results, strict=True)]
        accepted = sorted((r for r in replies if r[2].status == "ACCEPTED"), key=lambda r: seq_of(r[2]))
        assert accepted, "no bid was accepted"
        assert [seq_of(r) for _, _, r in accepted] == list(range(1, len(accepted) + 1)), "arrival numbers have gaps"

        model = BidModel()
        model.arm(rules)
        for user, amount, reply in accepted:
            expected = model.place_bid(rules.lot_id, user, amount, now_ms=OPEN, currency="USD")
            assert replace(reply, event_id=None) == expected
        assert await engine.view(rules.lot_id) == model.view(rules.lot_id)
        # Every rejection is one the final model state also gives: nobody was refused a bid the rules allowed.
        final = model.lots[rules.lot_id]
        for user, amount, reply in replies:
            if reply.status == "REJECTED":
                standing = final.maxes[user].amount if user in final.maxes else 0
                assert amount < final.min_next or amount <= standing, (user, amount, reply)
        records: Any = await client.xrange(bids_key(rules.lot_id))
        assert [fields[b"bid_id"].decode() for _, fields in records] == [r.bid_id for _, _, r in accepted]
    finally:
        await client.aclose()
        await pool.disconnect()
        if mux is not None:
            await mux.aclose()


@pytest.mark.parametrize("bid_path", ["redis_py_pool", "redis_mux"])
async def test_kill_9_after_accepted_replies_loses_no_accepted_bid(
    redis_server_factory: Callable[[], RedisServer], rules_factory: Rules, bid_path: str
) -> None:
    """ACCEPTED means durable: with appendfsync always, every bid acknowledged before kill -9 is in the lot's
    state and its bid records after the restart, and bidding continues from there (on the multiplexed
    connection: the same one, reconnected)."""
    server = redis_server_factory()
    rules = rules_factory(starting_price=1000, increments=((0, 100),))
    client = aioredis.Redis.from_url(server.url, max_connections=50)
    mux = RedisMux(server.url) if bid_path == "redis_mux" else None
    engine = BidEngine(client, mux)
    await engine.arm(rules)
    acknowledged: list[BidReply] = []
    stop = asyncio.Event()

    async def bidder(user: int) -> None:
        while not stop.is_set():
            view = await engine.view(rules.lot_id)
            assert view is not None
            try:
                reply = await engine.place_bid(
                    rules.lot_id, user, view.min_next_bid + 100 * user, now_ms=OPEN, currency="USD"
                )
            except (ConnectionError, OSError, aioredis.ConnectionError):
                return
            if reply.status == "ACCEPTED":
                acknowledged.append(reply)

    tasks = [asyncio.create_task(bidder(user)) for user in range(1, 21)]
    while len(acknowledged) < 150:
        await asyncio.sleep(0.005)
    server.kill()  # mid-traffic: replies may be in flight; only the ones already received are promises
    promised = list(acknowledged)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()

    server.start()
    client = aioredis.Redis.from_url(server.url)
    engine = BidEngine(client, mux)
    try:
        records: Any = await client.xrange(bids_key(rules.lot_id))
        stored = {fields[b"bid_id"].decode() for _, fields in records}
        missing = {str(reply.bid_id) for reply in promised} - stored
        assert not missing, f"accepted bids lost by kill -9: {sorted(missing)[:10]}"
        view = await engine.view(rules.lot_id)
        assert view is not None
        assert view.bid_count >= len(promised)
        assert view.current_price >= max(reply.current_price for reply in promised)
        after = await engine.place_bid(rules.lot_id, 500, view.min_next_bid, now_ms=OPEN, currency="USD")
        assert after.status == "ACCEPTED"
        assert seq_of(after) == view.bid_count + 1
    finally:
        await client.aclose()
        if mux is not None:
            await mux.aclose()
