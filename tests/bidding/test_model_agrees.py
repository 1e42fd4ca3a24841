"""Hypothesis drives the Lua engine (real Redis) and the pure-Python model with the same random operations.

After every step the replies (all fields but the Redis stream id) and the lot views must be identical; at the end
so must the private bid records and the outbid notices.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bidding.engine import BidEngine, bids_key, notices_key
from bidding.lots import BidReply, LotRules
from bidding.model import BidModel, LotModel
from tests.bidding.conftest import T0, RedisServer

_lot_ids = itertools.count(5_000_000)


@st.composite
def increment_tables(draw: st.DrawFn) -> tuple[tuple[int, int], ...]:
    starts = draw(st.lists(st.integers(1, 40).map(lambda n: n * 100), max_size=2, unique=True))
    steps = st.sampled_from([1, 5, 10, 50, 100, 250])
    return tuple((start, draw(steps)) for start in [0, *sorted(starts)])


@st.composite
def lot_rules(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "auction_id": 1,
        "currency": "USD",
        "starting_price": draw(st.integers(1, 2000)),
        "increments": draw(increment_tables()),
        "starts_at_ms": T0,
        "ends_at_ms": T0 + draw(st.integers(5, 120)) * 1000,
        "reserve_price": draw(st.none() | st.integers(500, 5000)),
        "buy_now_price": draw(st.none() | st.integers(1000, 6000)),
        "soft_close_s": draw(st.integers(1, 15)),
        "soft_close_cap_s": draw(st.integers(0, 30)),
        "tie_policy": draw(st.sampled_from(["earliest_max", "live_beats_proxy"])),
    }


SEEN: Counter[str] = Counter()


def seen(label: str) -> None:
    """A hypothesis event, also counted so the test can assert the random runs reached every rule."""
    event(label)
    SEEN[label] += 1


def public(reply: BidReply) -> BidReply:
    return replace(reply, event_id=None)


class LotMachine(RuleBasedStateMachine):
    """One lot per example; users 1-4 bid, user 5 is the seller."""

    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = aioredis.Redis.from_url(self.redis_url)
        self.engine = BidEngine(self.client)
        self.model = BidModel()
        self.now = T0 - 20_000
        self.lot_id = 0
        self.users: list[int] = []

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    @property
    def lot(self) -> LotModel:
        return self.model.lots[self.lot_id]

    @initialize(fields=lot_rules(), clock=st.sampled_from([T0 - 20_000, T0]))
    def arm(self, fields: dict[str, Any], clock: int) -> None:
        self.now = clock
        self.lot_id = next(_lot_ids)
        base = self.lot_id * 10
        self.users = [base + n for n in range(1, 6)]
        rules = LotRules(lot_id=self.lot_id, seller_user_id=self.users[-1], **fields)
        self.run(self.engine.arm(rules))
        self.model.arm(rules)

    @rule(
        user=st.sampled_from([0, 1, 2, 3] * 3 + [4]),
        anchor=st.sampled_from(["price", "min_next", "min_next", "mine", "top", "top", "top", "buy_now"]),
        offset=st.sampled_from([-1, 0, 0, 0, 0, 0, 1]) | st.integers(-150, 1500),
        kind=st.sampled_from(["max", "max", "live"]),
        currency=st.sampled_from(["USD"] * 8 + ["EUR"]),
        key=st.none() | st.sampled_from(["a", "b"]),
    )
    def bid(self, user: int, anchor: str, offset: int, kind: Any, currency: str, key: str | None) -> None:
        user_id = self.users[user]
        mine = self.lot.maxes[user_id].amount if user_id in self.lot.maxes else self.lot.price
        buy_now = self.lot.rules.buy_now_price or self.lot.price
        top = self.lot.leader_max or self.lot.price  # bidding exactly the leader's secret max makes ties
        base = {"price": self.lot.price, "min_next": self.lot.min_next, "mine": mine, "top": top, "buy_now": buy_now}[
            anchor
        ]
        amount = max(1, base + offset)
        tie = self.lot.leader not in (None, user_id) and amount == self.lot.leader_max
        args = {"kind": kind, "now_ms": self.now, "currency": currency, "idempotency_key": key}
        expected = self.model.place_bid(self.lot_id, user_id, amount, **args)
        got = self.run(self.engine.place_bid(self.lot_id, user_id, amount, **args))
        assert public(got) == expected
        seen(f"bid {kind}: {expected.reason or expected.status}")
        if tie and expected.status == "ACCEPTED":
            seen(f"tie: {kind} vs max ({self.lot.rules.tie_policy})")
        if expected.ended_by_buy_now:
            seen("buy-now")
        if expected.status == "ACCEPTED" and expected.ends_at_ms > self.lot.rules.ends_at_ms:
            seen("extended")

    @rule(user=st.integers(0, 4))
    def retract(self, user: int) -> None:
        expected = self.model.retract(self.lot_id, self.users[user], now_ms=self.now)
        got = self.run(self.engine.retract(self.lot_id, self.users[user], now_ms=self.now))
        assert public(got) == expected

    @rule(ms=st.integers(0, 4000) | st.integers(0, 40_000))
    def advance(self, ms: int) -> None:
        self.now += ms

    @rule(
        to=st.sampled_from(["start", "soft_close", "end"]),
        offset=st.integers(-1500, 1500) | st.sampled_from([-1, 0, 1]),
    )
    def jump(self, to: str, offset: int) -> None:
        """Move the clock to an interesting moment (never backwards): the start, the soft-close window, the end."""
        lot = self.lot
        target = {
            "start": lot.rules.starts_at_ms,
            "soft_close": lot.ends_at_ms - lot.rules.soft_close_s * 1000,
            "end": lot.ends_at_ms,
        }[to]
        self.now = max(self.now, target + offset)

    @rule()
    def open_due(self) -> None:
        assert self.run(self.engine.open_due(self.lot_id, self.now)) == self.model.open_due(self.lot_id, self.now)

    @precondition(lambda self: self.lot_id)
    @rule()
    def close_if_due(self) -> None:
        got = self.run(self.engine.close_if_due(self.lot_id, self.now))
        expected = self.model.close_if_due(self.lot_id, self.now)
        assert (got is None) == (expected is None)
        if got is not None:
            assert replace(got, events=[]) == expected
            seen(f"closed: {got.outcome}")

    @invariant()
    def same_view(self) -> None:
        if self.lot_id:
            assert self.run(self.engine.view(self.lot_id)) == self.model.view(self.lot_id)

    def teardown(self) -> None:
        try:
            if self.lot_id:
                self.check_streams()
        finally:
            self.run(self.client.aclose())
            self.loop.close()

    def check_streams(self) -> None:
        records = self.run(self.client.xrange(bids_key(self.lot_id)))
        got = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in records]
        assert [{k: record[k] for k in expected} for record, expected in zip(got, self.lot.records, strict=True)] == (
            self.lot.records
        )
        for user_id in self.users:
            notices = self.run(self.client.xrange(notices_key(user_id)))
            expected = [price for outbid, price in self.lot.notices if outbid == user_id]
            assert [int(fields[b"price"]) for _, fields in notices] == expected


@pytest.mark.timeout(120)
def test_engine_and_model_agree(redis_server: RedisServer) -> None:
    LotMachine.redis_url = redis_server.url
    run = settings(
        max_examples=300,
        stateful_step_count=50,
        deadline=None,
        derandomize=True,  # the same examples every run: no flaky coverage check; change the seed to explore
        suppress_health_check=[HealthCheck.too_slow],
    )(LotMachine).TestCase
    SEEN.clear()
    run().runTest()
    wanted = {"buy-now", "extended", "closed: sold", "closed: if_bid", "closed: no_bids", "bid live: ACCEPTED"}
    wanted |= {f"bid max: {reason}" for reason in ("ACCEPTED", "too_low", "lower_max", "closed", "currency", "own_lot")}
    wanted.add("bid live: not_started")
    wanted |= {f"tie: max vs max ({policy})" for policy in ("earliest_max", "live_beats_proxy")}
    assert wanted <= set(SEEN), f"the random runs never reached {wanted - set(SEEN)}: {SEEN}"
    # A live bid landing exactly on a secret max is rare in random runs; test_engine.py's tie tests pin both
    # policies down on both implementations, so here one policy reached is enough.
    assert any(label.startswith("tie: live vs max") for label in SEEN), SEEN
