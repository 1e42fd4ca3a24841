"""One test per rule of issue 5, each run on the Lua engine (real Redis with AOF) and on the pure-Python model."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import redis.asyncio as aioredis
from redis.crc import key_slot

from bidding.engine import BidEngine, bids_key, events_key, lot_key, notices_key
from bidding.lots import LotRules, LotStatus, Rejection
from tests.bidding.conftest import T0, AsyncModel

Engine = BidEngine | AsyncModel
Rules = Callable[..., LotRules]
OPEN = T0 + 1000  # a moment inside every default lot
END = T0 + 3_600_000


async def entries(client: aioredis.Redis, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """A stream's entries (redis-py types XRANGE loosely)."""
    return cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(key))


async def armed(engine: Engine, rules_factory: Rules, **overrides: object) -> LotRules:
    rules = rules_factory(**overrides)
    await engine.arm(rules)
    return rules


async def bid(engine: Engine, lot: LotRules, user: int, amount: int, at: int = OPEN, **kwargs: object):  # type: ignore[no-untyped-def]
    return await engine.place_bid(lot.lot_id, user, amount, now_ms=at, currency="USD", **kwargs)  # type: ignore[arg-type]


async def test_starting_price_and_tiered_increments(engine: Engine, rules_factory: Rules) -> None:
    lot = await armed(engine, rules_factory, starting_price=4800, increments=((0, 100), (5000, 250)))
    low = await bid(engine, lot, 1, 4700)
    assert (low.status, low.reason, low.min_next_bid) == ("REJECTED", Rejection.TOO_LOW, 4800)
    first = await bid(engine, lot, 1, 4800)
    assert (first.status, first.current_price, first.min_next_bid, first.is_leader) == ("ACCEPTED", 4800, 4900, True)
    second = await bid(engine, lot, 2, 4950)  # price 4900 + 100 -> 5000, now in the 250 band
    assert (second.current_price, second.min_next_bid, second.is_leader) == (4900, 5000, True)
    third = await bid(engine, lot, 1, 6000)
    assert (third.current_price, third.min_next_bid) == (5050, 5300)  # 4950 + 100, then the 250 band


async def test_proxy_bids_settle_at_second_max_plus_increment_capped_by_leader(
    engine: Engine, rules_factory: Rules
) -> None:
    lot = await armed(engine, rules_factory)
    await bid(engine, lot, 1, 3000)
    reply = await bid(engine, lot, 2, 2000)
    assert (reply.status, reply.current_price, reply.is_leader) == ("ACCEPTED", 2100, False)
    capped = await bid(engine, lot, 2, 2950)
    assert (capped.current_price, capped.is_leader) == (3000, False)  # 2950 + 100 capped at the leader's 3000
    view = await engine.view(lot.lot_id)
    assert view is not None
    assert view.leader_number == 1
    assert view.bid_count == 3
    too_low = await bid(engine, lot, 3, 3050)
    assert (too_low.reason, too_low.min_next_bid, too_low.current_price) == (Rejection.TOO_LOW, 3100, 3000)


async def test_equal_maxes_earliest_wins(engine: Engine, rules_factory: Rules) -> None:
    lot = await armed(engine, rules_factory)
    await bid(engine, lot, 1, 2000)
    tie = await bid(engine, lot, 2, 2000)
    assert (tie.status, tie.current_price, tie.is_leader) == ("ACCEPTED", 2000, False)
    view = await engine.view(lot.lot_id)
    assert view is not None
    assert view.leader_number == 1


async def test_live_beats_proxy_option(engine: Engine, rules_factory: Rules) -> None:
    lot = await armed(engine, rules_factory, tie_policy="live_beats_proxy")
    await bid(engine, lot, 1, 2000)
    live = await bid(engine, lot, 2, 2000, kind="live")
    assert (live.current_price, live.is_leader) == (2000, True)
    lot2 = await armed(engine, rules_factory)  # default policy: the earlier proxy keeps the lead
    await bid(engine, lot2, 1, 2000)
    assert not (await bid(engine, lot2, 2, 2000, kind="live")).is_leader


async def test_live_bid_sets_the_price(engine: Engine, rules_factory: Rules) -> None:
    lot = await armed(engine, rules_factory)
    first = await bid(engine, lot, 1, 2500, kind="live")
    assert (first.current_price, first.min_next_bid) == (2500, 2600)


async def test_reserve_met_flag_and_price_jumps_to_reserve(
    engine: Engine, rules_factory: Rules, redis_client: aioredis.Redis
) -> None:
    lot = await armed(engine, rules_factory, reserve_price=4321)
    below = await bid(engine, lot, 1, 4000)
    assert (below.reserve_met, below.current_price) == (False, 1000)
    assert "4321" not in repr(below) + repr(await engine.view(lot.lot_id))
    met = await bid(engine, lot, 1, 5000)
    assert (met.reserve_met, met.current_price) == (True, 4321)
    view = await engine.view(lot.lot_id)
    assert view is not None
    assert view.has_reserve
    assert view.reserve_met
    if isinstance(engine, BidEngine):
        for _, fields in await entries(redis_client, events_key(lot.lot_id)):
            assert set(fields) == {
                b"type",
                b"lot_id",
                b"price",
                b"bid_count",
                b"leader",
                b"reserve_met",
                b"ends_at_ms",
                b"accepted_at_ms",
            }


async def test_buy_now_ends_the_lot(engine: Engine, rules_factory: Rules, redis_client: aioredis.Redis) -> None:
    lot = await armed(engine, rules_factory, buy_now_price=9000)
    pre = await bid(engine, lot, 1, 9500, at=T0 - 10)  # a pre-bid is a maximum, not a purchase
    assert (pre.status, pre.ended_by_buy_now) == ("ACCEPTED", False)
    assert (await engine.retract(lot.lot_id, 1, now_ms=T0 - 5)).status == "ACCEPTED"
    view = await engine.view(lot.lot_id)
    assert view is not None
    assert view.buy_now_price == 9000
    bought = await bid(engine, lot, 2, 9000)
    assert (bought.status, bought.ended_by_buy_now, bought.current_price, bought.is_leader) == (
        "ACCEPTED",
        True,
        9000,
        True,
    )
    view = await engine.view(lot.lot_id)
    assert view is not None
    assert view.status is LotStatus.CLOSED
    assert view.buy_now_price is None
    assert (await bid(engine, lot, 3, 20000)).reason is Rejection.CLOSED
    assert await engine.close_if_due(lot.lot_id, END + 1) is None
    if isinstance(engine, BidEngine):
        events = await entries(redis_client, events_key(lot.lot_id))
        assert events[-1][1][b"type"] == b"closed"
        assert events[-1][1][b"outcome"] == b"sold"


async def test_buy_now_gone_once_someone_bids(engine: Engine, rules_factory: Rules) -> None:
    lot = await armed(engine, rules_factory, buy_now_price=9000)
    await bid(engine, lot, 1, 2000)
    view = await engine.view(lot.lot_id)
    assert view is not None
    assert view.buy_now_price is None
    over = await bid(engine, lot, 2, 9000)
    assert (over.ended_by_buy_now, over.current_price) == (False, 2100)


async def test_soft_close_extends_up_to_the_cap(
    engine: Engine, rules_factory: Rules, redis_client: aioredis.Redis
) -> None:
    lot = await armed(engine, rules_factory, soft_close_s=60, soft_close_cap_s=90)
    early = await bid(engine, lot, 1, 2000, at=END - 61_000)
    assert early.ends_at_ms == END
    late = await bid(engine, lot, 2, 3000, at=END - 10_000)
    assert late.ends_at_ms == END + 50_000
    later = await bid(engine, lot, 1, 4000, at=END + 45_000)
    assert later.ends_at_ms == END + 90_000  # now + 60 s would be END + 105 s: capped at END + 90 s
    assert (await bid(engine, lot, 2, 9000, at=END + 90_000)).reason is Rejection.CLOSED
    assert await engine.close_if_due(lot.lot_id, END + 89_999) is None
    result = await engine.close_if_due(lot.lot_id, END + 90_000)
    assert result is not None
    assert result.outcome == "sold"
    assert result.winner_user_id == 1
    if isinstance(engine, BidEngine):
        types = [fields[b"type"] for _, fields in await entries(redis_client, events_key(lot.lot_id))]
        assert types == [b"price", b"price", b"extended", b"price", b"extended", b"closed"]


async def test_pre_bidding_lowering_and_retracting_only_while_scheduled(engine: Engine, rules_factory: Rules) -> None:
    lot = await armed(engine, rules_factory)
    early = T0 - 60_000
    live = await bid(engine, lot, 1, 2000, at=early, kind="live")
    assert live.reason is Rejection.NOT_STARTED
    assert (await bid(engine, lot, 1, 3000, at=early)).status == "ACCEPTED"
    assert (await bid(engine, lot, 2, 2000, at=early)).current_price == 2100
    below_price = await bid(engine, lot, 1, 2000, at=early)
    assert below_price.reason is Rejection.LOWER_MAX
    lowered = await bid(engine, lot, 1, 2500, at=early)
    assert (lowered.status, lowered.current_price, lowered.is_leader) == ("ACCEPTED", 2100, True)
    retracted = await engine.retract(lot.lot_id, 1, now_ms=early)
    assert (retracted.status, retracted.current_price) == ("ACCEPTED", 1000)
    nothing = await engine.retract(lot.lot_id, 1, now_ms=early)
    assert nothing.reason is Rejection.LOWER_MAX
    assert await engine.open_due(lot.lot_id, T0 - 1) is False
    assert await engine.open_due(lot.lot_id, T0) is True
    assert await engine.open_due(lot.lot_id, T0) is False
    assert (await bid(engine, lot, 2, 1500)).reason is Rejection.LOWER_MAX
    assert (await engine.retract(lot.lot_id, 2, now_ms=OPEN)).reason is Rejection.LOWER_MAX
    raised = await bid(engine, lot, 2, 2500)
    assert (raised.status, raised.is_leader) == ("ACCEPTED", True)


async def test_rejections_say_why(engine: Engine, rules_factory: Rules) -> None:
    lot = await armed(engine, rules_factory, seller_user_id=7)
    own = await bid(engine, lot, 7, 2000)
    assert (own.status, own.reason, own.min_next_bid, own.current_price) == ("REJECTED", Rejection.OWN_LOT, 1000, 1000)
    eur = await engine.place_bid(lot.lot_id, 1, 2000, now_ms=OPEN, currency="EUR")
    assert eur.reason is Rejection.CURRENCY
    assert eur.message
    closed = await bid(engine, lot, 1, 2000, at=END)
    assert closed.reason is Rejection.CLOSED
    unknown = await engine.place_bid(987_654_321, 1, 2000, now_ms=OPEN, currency="USD")
    assert unknown.reason is Rejection.UNKNOWN_LOT
    assert await engine.view(987_654_321) is None
    same = await bid(engine, lot, 1, 2000)
    again = await bid(engine, lot, 1, 2000)
    assert (same.status, again.reason) == ("ACCEPTED", Rejection.TOO_LOW)


async def test_idempotency_key_returns_the_original_reply(
    engine: Engine, rules_factory: Rules, redis_client: aioredis.Redis
) -> None:
    lot = await armed(engine, rules_factory)
    first = await bid(engine, lot, 1, 2000, idempotency_key="k1")
    await bid(engine, lot, 2, 3000)
    retry = await bid(engine, lot, 1, 2000, idempotency_key="k1")
    assert retry == first
    assert retry.bid_id is not None
    other_user = await bid(engine, lot, 3, 5000, idempotency_key="k1")
    assert other_user.status == "ACCEPTED"
    assert other_user.bid_id != first.bid_id
    view = await engine.view(lot.lot_id)
    assert view is not None
    assert view.bid_count == 3
    if isinstance(engine, BidEngine):
        assert await redis_client.xlen(bids_key(lot.lot_id)) == 3
        ttl = await redis_client.pttl(lot_key(lot.lot_id, "idem:1:k1"))
        assert 86_000_000 < ttl <= 86_400_000


async def test_concurrent_retries_with_one_key_make_one_bid(engine: Engine, rules_factory: Rules) -> None:
    lot = await armed(engine, rules_factory)
    replies = await asyncio.gather(*(bid(engine, lot, 1, 2000, idempotency_key="same") for _ in range(20)))
    assert len({reply.bid_id for reply in replies}) == 1
    view = await engine.view(lot.lot_id)
    assert view is not None
    assert view.bid_count == 1


async def test_close_outcomes(engine: Engine, rules_factory: Rules) -> None:
    sold = await armed(engine, rules_factory, reserve_price=3000)
    await bid(engine, sold, 1, 3000)
    if_bid = await armed(engine, rules_factory, reserve_price=3000)
    await bid(engine, if_bid, 1, 2000)
    await bid(engine, if_bid, 2, 2999)
    none = await armed(engine, rules_factory)
    no_reserve = await armed(engine, rules_factory)
    await bid(engine, no_reserve, 4, 1000)
    results = {}
    for lot in (sold, if_bid, none, no_reserve):
        assert await engine.close_if_due(lot.lot_id, END - 1) is None
        results[lot.lot_id] = await engine.close_if_due(lot.lot_id, END)
        assert await engine.close_if_due(lot.lot_id, END + 1) is None
    assert [(r.outcome, r.price, r.winner_user_id) for r in results.values() if r] == [
        ("sold", 3000, 1),
        ("if_bid", 2100, 2),
        ("no_bids", 1000, None),
        ("sold", 1000, 4),
    ]


async def test_arm_never_resets_a_lot(engine: Engine, rules_factory: Rules) -> None:
    lot = await armed(engine, rules_factory)
    await bid(engine, lot, 1, 2000)
    await engine.arm(lot)
    view = await engine.view(lot.lot_id)
    assert view is not None
    assert view.bid_count == 1


async def test_two_schedulers_close_exactly_once(redis_server, rules_factory: Rules) -> None:  # type: ignore[no-untyped-def]
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    engines = [BidEngine(client) for client in clients]
    lots = [rules_factory() for _ in range(20)]
    for lot in lots:
        await engines[0].arm(lot)
        await bid(engines[0], lot, 1, 2000)
    results = await asyncio.gather(
        *(engine.close_if_due(lot.lot_id, END + n) for lot in lots for engine in engines for n in range(3))
    )
    closed = [result for result in results if result is not None]
    assert sorted(result.lot_id for result in closed) == sorted(lot.lot_id for lot in lots)
    for client in clients:
        await client.aclose()


async def test_outbid_notice_and_private_bid_records(redis_client: aioredis.Redis, rules_factory: Rules) -> None:
    engine = BidEngine(redis_client)
    lot = await armed(engine, rules_factory)
    await bid(engine, lot, 501, 2000)
    await bid(engine, lot, 502, 1500)  # does not take the lead: no notice
    await bid(engine, lot, 502, 2500, idempotency_key="x")
    await bid(engine, lot, 502, 2500, idempotency_key="x")  # a replay publishes nothing
    notices = await entries(redis_client, notices_key(501))
    assert [fields[b"price"] for _, fields in notices] == [b"2100"]
    records = [fields for _, fields in await entries(redis_client, bids_key(lot.lot_id))]
    assert [(r[b"bid_id"], r[b"user_id"], r[b"amount"], r[b"kind"]) for r in records] == [
        (f"{lot.lot_id}-1".encode(), b"501", b"2000", b"max"),
        (f"{lot.lot_id}-2".encode(), b"502", b"1500", b"max"),
        (f"{lot.lot_id}-3".encode(), b"502", b"2500", b"max"),
    ]
    assert records[2][b"outbid_user_id"] == b"501"


async def test_every_key_of_a_lot_is_on_one_cluster_slot(redis_client: aioredis.Redis, rules_factory: Rules) -> None:
    engine = BidEngine(redis_client)
    lot = await armed(engine, rules_factory)
    await bid(engine, lot, 1, 2000, idempotency_key="k")
    await engine.close_if_due(lot.lot_id, END)
    keys = [key async for key in redis_client.scan_iter(match=f"{{lot:{lot.lot_id}}}*")]
    assert len(keys) == 6
    assert len({key_slot(key) for key in keys}) == 1
