"""Bidding over HTTP on a real uvicorn server, PostgreSQL and Redis: replies, refusals, idempotency, limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta

import pytest
import redis as sync_redis

from bidding.engine import bids_key
from tests.bidding.live_server import RATE_LIMIT, RATE_WINDOW_S, LiveApi, live_api, live_auction
from tests.marketplace.test_auctions import Market


@pytest.fixture(scope="module", params=["bid_lane", "routes"])
def api(
    request: pytest.FixtureRequest, database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveApi]:
    """Every case twice: well-formed bids served by bidding.bid_lane, and everything through the FastAPI routes."""
    lane = request.param == "bid_lane"
    with live_api(database_factory, tmp_path_factory.mktemp("bid-api"), "bidapi", bid_lane=lane) as live:
        yield live


@pytest.fixture
async def market(api: LiveApi) -> AsyncIterator[Market]:
    async with api.market() as market:
        yield market


def bid_body(user_id: int, amount: float | str, **extra: object) -> dict[str, object]:
    return {"userId": user_id, "amount": amount, "currency": "USD", **extra}


async def test_bids_are_accepted_then_too_low_with_the_minimum_next_bid(market: Market) -> None:
    auction, _ = await live_auction(market)
    alice, bob = await market.member(), await market.member()
    url = f"/api/v1/auctions/{auction['id']}/bid"

    first = await market.client.post(url, json=bid_body(alice.id, 12_000), headers=alice.headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "ACCEPTED"
    assert body["currentPrice"] == 10_000.0  # a max bid alone holds the starting price
    assert body["minNextBid"] == 10_100.0
    assert (body["bidCount"], body["isLeader"], body["reserveMet"]) == (1, True, False)
    assert body["reason"] is None

    low = await market.client.post(url, json=bid_body(bob.id, 10_000), headers=bob.headers)
    assert low.status_code == 200
    assert low.json()["status"] == "REJECTED"
    assert low.json()["reason"] == "too_low"
    assert low.json()["minNextBid"] == 10_100.0
    assert low.json()["message"]

    outbid = await market.client.post(url, json=bid_body(bob.id, "11000.50", kind="live"), headers=bob.headers)
    assert outbid.json()["status"] == "ACCEPTED"
    assert outbid.json()["isLeader"] is False  # alice's 12,000 max answers for her
    assert outbid.json()["currentPrice"] == 11_100.5

    lot_id = auction["lots"][0]["id"]
    lot = await market.client.get(f"/api/v1/lots/{lot_id}")  # public: no token
    assert lot.status_code == 200
    view = lot.json()
    assert view["currentPrice"] == 11_100.5
    assert view["bidCount"] == 2
    assert view["hasReserve"] is True
    assert "reservePrice" not in view
    assert view["leader"] == 1  # alice, bidder number 1


async def test_lot_endpoint_and_multi_lot_auctions_name_the_vehicle(market: Market) -> None:
    auction, _ = await live_auction(market, lots=2)
    buyer = await market.member()
    url = f"/api/v1/auctions/{auction['id']}/bid"
    missing = await market.client.post(url, json=bid_body(buyer.id, 10_000), headers=buyer.headers)
    assert missing.status_code == 422
    assert missing.json()["error"]["problems"][0]["parameter"] == "vehicleId"

    second = auction["lots"][1]
    named = bid_body(buyer.id, 10_000, vehicleId=second["vehicle_id"])
    assert (await market.client.post(url, json=named, headers=buyer.headers)).json()["status"] == "ACCEPTED"
    same = await market.client.post(
        f"/api/v1/lots/{second['id']}/bids", json={"amount": 10_000, "currency": "USD"}, headers=buyer.headers
    )
    assert (same.json()["status"], same.json()["reason"]) == ("REJECTED", "too_low")  # already their maximum
    raised = await market.client.post(
        f"/api/v1/lots/{second['id']}/bids", json={"amount": 20_000, "currency": "USD"}, headers=buyer.headers
    )
    assert raised.json()["status"] == "ACCEPTED"
    assert raised.json()["bidCount"] == 2


async def test_idempotent_retry_returns_the_original_reply_and_one_bid(market: Market, api: LiveApi) -> None:
    auction, _ = await live_auction(market)
    buyer = await market.member()
    lot_id = auction["lots"][0]["id"]
    url = f"/api/v1/lots/{lot_id}/bids"
    headers = {**buyer.headers, "Idempotency-Key": "retry-me-1"}
    replies = [await market.client.post(url, json={"amount": 15_000, "currency": "USD"}, headers=headers)]
    replies += await asyncio.gather(
        *(market.client.post(url, json={"amount": 15_000, "currency": "USD"}, headers=headers) for _ in range(3))
    )
    assert {reply.status_code for reply in replies} == {200}
    assert len({reply.content for reply in replies}) == 1
    assert replies[0].json()["status"] == "ACCEPTED"
    assert replies[0].json()["bidCount"] == 1
    client = sync_redis.Redis.from_url(api.redis.url)
    assert client.xlen(bids_key(lot_id)) == 1
    client.close()


async def test_rate_limit_answers_429_with_retry_after(market: Market) -> None:
    auction, _ = await live_auction(market)
    buyer = await market.member()
    url = f"/api/v1/lots/{auction['lots'][0]['id']}/bids"
    statuses = []
    for amount in range(RATE_LIMIT + 2):
        response = await market.client.post(
            url, json={"amount": 10_000 + 100 * amount, "currency": "USD"}, headers=buyer.headers
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert 1 <= int(response.headers["Retry-After"]) <= RATE_WINDOW_S
            assert response.json()["error"]["code"] == "rate_limited"
    assert statuses == [200] * RATE_LIMIT + [429, 429]  # a sliding window: no boundary lets a burst through
    other = await market.member()  # per user: someone else still bids
    assert (await market.client.post(url, json={"amount": 50_000, "currency": "USD"}, headers=other.headers)).json()[
        "status"
    ] == "ACCEPTED"


async def test_dealers_cannot_bid_on_their_own_lots_but_may_on_others(market: Market) -> None:
    auction, dealer = await live_auction(market)
    url = f"/api/v1/auctions/{auction['id']}/bid"
    own = await market.client.post(url, json=bid_body(dealer.id, 12_000), headers=dealer.headers)
    assert own.status_code == 200
    assert (own.json()["status"], own.json()["reason"]) == ("REJECTED", "own_lot")
    other_auction, other_dealer = await live_auction(market)
    theirs = await market.client.post(
        f"/api/v1/auctions/{other_auction['id']}/bid", json=bid_body(dealer.id, 12_000), headers=dealer.headers
    )
    assert theirs.json()["status"] == "ACCEPTED"
    assert other_dealer.id != dealer.id


async def test_refusals_userid_role_currency_unknown_closed_and_bad_bodies(market: Market, api: LiveApi) -> None:
    auction, _ = await live_auction(market)
    buyer, someone = await market.member(), await market.member()
    url = f"/api/v1/auctions/{auction['id']}/bid"

    mismatch = await market.client.post(url, json=bid_body(someone.id, 12_000), headers=buyer.headers)
    assert mismatch.status_code == 403
    assert (await market.client.post(url, json=bid_body(buyer.id, 12_000))).status_code == 401
    admin = await market.member("admin")
    assert (await market.client.post(url, json=bid_body(admin.id, 12_000), headers=admin.headers)).status_code == 403

    for euro in ("EUR", " eur "):  # any case: read as EUR, then refused as not the auction's currency
        body = {**bid_body(buyer.id, 12_000), "currency": euro}
        euros = await market.client.post(url, json=body, headers=buyer.headers)
        assert (euros.status_code, euros.json()["status"], euros.json()["reason"]) == (200, "REJECTED", "currency")

    unknown_auction = await market.client.post(
        "/api/v1/auctions/999999/bid", json=bid_body(buyer.id, 1), headers=buyer.headers
    )
    assert unknown_auction.status_code == 404
    lot_body = {"amount": 1, "currency": "USD"}
    assert (
        await market.client.post("/api/v1/lots/999999/bids", json=lot_body, headers=buyer.headers)
    ).status_code == 404
    assert (await market.client.get("/api/v1/lots/999999")).status_code == 404

    for body, parameter in [
        (bid_body(buyer.id, "12000.001"), "amount"),
        (bid_body(buyer.id, -5), "amount"),
        ({**bid_body(buyer.id, 12_000), "currency": "US$"}, "currency"),
        (bid_body(buyer.id, 12_000, kind="sniper"), "kind"),
        ({"amount": 12_000, "currency": "USD"}, "userId"),
    ]:
        response = await market.client.post(url, json=body, headers=buyer.headers)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["problems"][0]["parameter"] == parameter

    not_json = await market.client.post(
        url, content=b'{"amount": 12000,', headers={**buyer.headers, "content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.json()["error"]["problems"] == [
        {"parameter": "body", "message": "not valid JSON at character 17 (Expecting property name enclosed in double "
         "quotes); send a JSON object"}
    ]  # fmt: skip

    upcoming, _ = await live_auction(market)
    market.shift_schedule(upcoming["id"], timedelta(hours=1), timedelta(hours=2))
    upcoming_url = f"/api/v1/auctions/{upcoming['id']}/bid"
    live = await market.client.post(upcoming_url, json=bid_body(buyer.id, 12_000, kind="live"), headers=buyer.headers)
    assert (live.json()["status"], live.json()["reason"]) == ("REJECTED", "not_started")
    pre_bid = await market.client.post(
        upcoming_url, json={**bid_body(buyer.id, 12_000), "currency": "usd"}, headers=buyer.headers
    )
    assert pre_bid.json()["status"] == "ACCEPTED"  # pre-bidding: maximums while scheduled

    ended, _ = await live_auction(market)
    market.shift_schedule(ended["id"], timedelta(hours=-2), timedelta(minutes=-1))
    closed = await market.client.post(
        f"/api/v1/auctions/{ended['id']}/bid", json=bid_body(buyer.id, 12_000), headers=buyer.headers
    )
    assert (closed.json()["status"], closed.json()["reason"]) == ("REJECTED", "closed")
    assert api.base_url


async def test_a_lot_settled_before_live_bidding_shows_as_closed_at_its_recorded_price(market: Market) -> None:
    """Lots PostgreSQL holds as sold with bids live bidding never took (imported history, the demo's past auctions):
    the lot, its auction's stream and a bid all say it closed, at the price on record, not as a sale still to come."""
    auction, _ = await live_auction(market)
    buyer, other = await market.member(), await market.member()
    market.shift_schedule(auction["id"], timedelta(days=-3), timedelta(days=-2))
    market.bid(auction["id"], buyer, 11_000)
    market.bid(auction["id"], other, 12_500)
    market.sql("UPDATE auction_lots SET status = 'sold', current_bid = 12500 WHERE auction_id = %s", (auction["id"],))
    lot_id = auction["lots"][0]["id"]

    lot = await market.client.get(f"/api/v1/lots/{lot_id}")
    assert lot.status_code == 200, lot.text
    assert {key: lot.json()[key] for key in ("status", "currentPrice", "bidCount", "leader")} == {
        "status": "closed",
        "currentPrice": 12_500.0,
        "bidCount": 2,
        "leader": None,
    }
    async with market.client.stream("GET", f"/api/v1/auctions/{auction['id']}/stream") as stream:
        lines = stream.aiter_lines()
        async for line in lines:
            if line == "event: snapshot":
                break
        data = await anext(lines)
    snapshot = json.loads(data.removeprefix("data:"))
    assert (snapshot["status"], snapshot["currentPrice"]) == ("closed", 12_500.0)

    bid = await market.client.post(f"/api/v1/lots/{lot_id}/bids", json={"amount": 20_000, "currency": "USD"},
                                   headers=buyer.headers)  # fmt: skip
    assert bid.status_code == 409, bid.text
    assert bid.json()["error"]["message"] == f"lot {lot_id} has closed (sold); it takes no more bids"
    assert (await market.client.get(f"/api/v1/lots/{lot_id}")).json()["status"] == "closed"  # still not armed
