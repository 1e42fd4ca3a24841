"""GET /api/v1/me/bids over the real API, Redis and PostgreSQL: a buyer's lots, whether they lead, the result."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from bidding.persistence import BidPersister
from tests.bidding.live_server import LiveApi, live_api, live_auction
from tests.bidding.pg_lots import ListSink, bidding
from tests.bidding.test_feed import bid
from tests.bidding.test_results import close_and_persist
from tests.marketplace.api_client import Member
from tests.marketplace.test_auctions import Market


@pytest.fixture(scope="module")
def api(database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(database_factory, tmp_path_factory.mktemp("my-bids"), "mybids") as live:
        yield live


@pytest.fixture
async def market(api: LiveApi) -> AsyncIterator[Market]:
    async with api.market() as market:
        yield market


async def persist(api: LiveApi) -> None:
    """What the bids process does: accepted bids from the lots' Redis streams into PostgreSQL."""
    async with bidding(api.database_url, api.redis.url) as (pool, redis, _):
        persister = BidPersister(redis, pool, ListSink(), consumer="my-bids")
        while await persister.step():
            pass


async def my_bids(client: httpx.AsyncClient, who: Member, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/me/bids", params=params, headers=who.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_buyer_sees_the_lots_they_bid_on_and_whether_they_lead(api: LiveApi, market: Market) -> None:
    auction, _ = await live_auction(market, lots=2)
    first, second = (lot["id"] for lot in auction["lots"])
    alice, bob = await market.member(), await market.member()
    for lot, amount in ((first, 12_000), (second, 11_000)):
        reply = await market.client.post(
            f"/api/v1/lots/{lot}/bids", json={"amount": amount, "currency": "USD"}, headers=alice.headers
        )
        assert reply.json()["status"] == "ACCEPTED", reply.text
    await bid(market, bob, second, 13_000)  # above alice's maximum there
    await persist(api)

    mine = await my_bids(market.client, alice)
    assert mine["pagination"]["total"] == 2
    assert [item["lotId"] for item in mine["data"]] == [second, first]  # latest bid first
    lots = {item["lotId"]: item for item in mine["data"]}
    assert (lots[first]["youLead"], lots[first]["yourHighestBid"], lots[first]["currentPrice"]) == (
        True,
        12_000,
        10_000,
    )
    assert (lots[second]["youLead"], lots[second]["currentPrice"], lots[second]["status"]) == (False, 13_000, "open")
    assert lots[first]["auctionId"] == auction["id"]
    assert lots[first]["result"] is None
    assert [item["lotId"] for item in (await my_bids(market.client, bob))["data"]] == [second]
    paged = await my_bids(market.client, alice, limit=1, page=2)
    assert ([item["lotId"] for item in paged["data"]], paged["pagination"]["total"]) == ([first], 2)
    assert (await market.client.get("/api/v1/me/bids")).status_code == 401

    await close_and_persist(api)
    closed = {item["lotId"]: item for item in (await my_bids(market.client, alice))["data"]}
    assert (closed[first]["status"], closed[first]["result"], closed[first]["youLead"]) == (
        "closed", "pending_seller", True)  # fmt: skip
    assert (closed[second]["result"], closed[second]["youLead"]) == ("pending_seller", False)
