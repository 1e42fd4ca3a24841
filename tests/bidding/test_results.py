"""Results over HTTP: a lot closed below its reserve waits for its seller (accept, counter, decline), a counter-offer
for the high bidder (accept, decline); only they may decide; results reach dealer statistics, Kafka and SSE."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis as sync_redis

from bidding.engine import events_key, notices_key
from bidding.persistence import BidPersister
from bidding.scheduler import LotScheduler
from schemas.auction_bids import PHASES
from tests.bidding.live_server import LiveApi, live_api
from tests.bidding.pg_lots import ListSink, bidding
from tests.marketplace.test_auctions import Market


@pytest.fixture(scope="module")
def api(database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(database_factory, tmp_path_factory.mktemp("results"), "results") as live:
        yield live


@pytest.fixture
async def market(api: LiveApi) -> AsyncIterator[Market]:
    async with api.market() as market:
        yield market


async def close_and_persist(api: LiveApi, sink: ListSink | None = None) -> None:
    """Past the auctions' end: the scheduler closes the lots, the persister records the results."""
    async with bidding(api.database_url, api.redis.url) as (pool, redis, service):
        await LotScheduler(pool, service, clock=lambda: time.time() + 3605).tick()
        persister = BidPersister(redis, pool, sink or ListSink(), consumer="results")
        while await persister.step():
            pass


async def test_if_bid_accept_counter_decline(api: LiveApi, market: Market) -> None:
    dealer = await market.dealer()
    cars = [market.car(dealer) for _ in range(3)]
    auction = await market.created(dealer, cars)  # reserve 15,000, start 10,000
    market.shift_schedule(auction["id"], timedelta(minutes=-1), timedelta(hours=1))
    alice, bob, stranger = await market.member(), await market.member(), await market.dealer()
    lot1, lot2, lot3 = (lot["id"] for lot in auction["lots"])
    for lot_id in (lot1, lot2, lot3):
        body = {"amount": 12_000, "currency": "USD"}
        reply = await market.client.post(f"/api/v1/lots/{lot_id}/bids", json=body, headers=alice.headers)
        assert reply.json()["status"] == "ACCEPTED"
    await close_and_persist(api)

    public = await market.client.get(f"/api/v1/lots/{lot1}/result")
    assert public.status_code == 200, public.text
    view = public.json()["data"]
    assert (view["outcome"], view["status"], view["finalPrice"]) == ("if_bid", "pending_seller", None)
    assert "highBid" not in view  # only the parties see the bid
    mine = (await market.client.get(f"/api/v1/lots/{lot1}/result", headers=alice.headers)).json()["data"]
    assert (mine["highBid"], mine["youAreHighBidder"]) == (10_000.0, True)

    decide = f"/api/v1/lots/{lot1}/decision"
    for outsider in (alice, stranger.member):
        refused = await market.client.post(decide, json={"action": "accept"}, headers=outsider.headers)
        assert refused.status_code == 403, refused.text
    low = await market.client.post(decide, json={"action": "counter", "amount": 9_000}, headers=dealer.headers)
    assert low.status_code == 422
    assert low.json()["error"]["problems"][0]["parameter"] == "amount"
    countered = await market.client.post(decide, json={"action": "counter", "amount": 14_000}, headers=dealer.headers)
    assert countered.status_code == 200, countered.text
    assert (countered.json()["data"]["status"], countered.json()["data"]["counterAmount"]) == ("countered", 14_000.0)
    again = await market.client.post(decide, json={"action": "accept"}, headers=dealer.headers)
    assert again.status_code == 409

    answer = f"/api/v1/lots/{lot1}/counter-offer"
    not_bidder = await market.client.post(answer, json={"action": "accept"}, headers=bob.headers)
    assert not_bidder.status_code == 403
    accepted = await market.client.post(answer, json={"action": "accept"}, headers=alice.headers)
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["data"]["status"], accepted.json()["data"]["finalPrice"]) == ("sold", 14_000.0)

    took = await market.client.post(f"/api/v1/lots/{lot2}/decision", json={"action": "accept"}, headers=dealer.headers)
    assert (took.json()["data"]["status"], took.json()["data"]["finalPrice"]) == ("sold", 10_000.0)
    gone = await market.client.post(f"/api/v1/lots/{lot3}/decision", json={"action": "decline"}, headers=dealer.headers)
    assert gone.json()["data"]["status"] == "unsold"

    assert [market.car_status(car) for car in cars] == ["sold", "sold", "active"]
    stats = await market.client.get(f"/api/v1/dealers/{dealer.dealer_id}/statistics", headers=dealer.headers)
    data = stats.json()["data"]
    assert (data["lots_sold"], data["earnings"], data["cars_sold"]) == (2, 24_000.0, 2)

    # published: the decision records reach Kafka through the persister, the SSE feed gets `result`, the buyer a notice
    sink = ListSink()
    await close_and_persist(api, sink)
    results = [(e.lotId, e.type, e.lotStatus, e.priceCents, e.phase) for e in sink.events]
    assert (lot1, "result", "countered", 1_000_000, PHASES["countered"]) in results
    assert (lot1, "result", "sold", 1_400_000, PHASES["result"]) in results
    assert (lot3, "result", "unsold", 1_000_000, PHASES["result"]) in results
    client = sync_redis.Redis.from_url(api.redis.url)
    try:
        events: Any = client.xrange(events_key(lot1))
        kinds = [fields[b"type"] for _, fields in events]
        assert kinds[-2:] == [b"closed", b"result"]
        assert events[-1][1][b"outcome"] == b"sold"
        raw: Any = client.xrange(notices_key(alice.id))
        notices = [fields for _, fields in raw if fields[b"lot_id"] == str(lot1).encode()]
        assert [(n[b"type"], n[b"price"]) for n in notices] == [(b"counter_offer", b"1400000"), (b"result", b"1400000")]
    finally:
        client.close()


async def test_a_buyer_declines_the_counter_offer(api: LiveApi, market: Market) -> None:
    dealer = await market.dealer()
    car = market.car(dealer)
    auction = await market.created(dealer, [car])
    market.shift_schedule(auction["id"], timedelta(minutes=-1), timedelta(hours=1))
    buyer = await market.member()
    lot = auction["lots"][0]["id"]
    await market.client.post(
        f"/api/v1/lots/{lot}/bids", json={"amount": 11_000, "currency": "USD"}, headers=buyer.headers
    )
    not_yet = await market.client.post(
        f"/api/v1/lots/{lot}/decision", json={"action": "accept"}, headers=dealer.headers
    )
    assert not_yet.status_code == 404  # not closed yet
    await close_and_persist(api)
    counter = {"action": "counter", "amount": 16_000}
    await market.client.post(f"/api/v1/lots/{lot}/decision", json=counter, headers=dealer.headers)
    declined = await market.client.post(
        f"/api/v1/lots/{lot}/counter-offer", json={"action": "decline"}, headers=buyer.headers
    )
    assert declined.json()["data"]["status"] == "unsold"
    assert market.car_status(car) == "active"
    assert market.sql("SELECT status FROM auction_lots WHERE id = %s", (lot,)) == [("unsold",)]
