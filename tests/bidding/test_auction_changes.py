"""A dealer changes an auction whose lots are already live in Redis: bidding follows PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.bidding.live_server import LiveApi, live_api, live_auction
from tests.marketplace.test_auctions import Market


@pytest.fixture(scope="module")
def api(database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(database_factory, tmp_path_factory.mktemp("bid-changes"), "bidchanges") as live:
        yield live


@pytest.fixture
async def market(api: LiveApi) -> AsyncIterator[Market]:
    async with api.market() as market:
        yield market


def pre_bid(user_id: int, amount: int) -> dict[str, object]:
    return {"userId": user_id, "amount": amount, "currency": "USD"}


async def test_moving_a_scheduled_auction_moves_its_armed_lots_and_keeps_pre_bids(market: Market) -> None:
    dealer = await market.dealer()
    auction = await market.created(dealer, [market.car(dealer)])
    buyer = await market.member()
    placed = await market.client.post(
        f"/api/v1/auctions/{auction['id']}/bid", json=pre_bid(buyer.id, 12_000), headers=buyer.headers
    )
    assert placed.json()["status"] == "ACCEPTED", placed.text  # a pre-bid arms the lot in Redis

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    moved = await market.client.patch(
        f"/api/v1/auctions/{auction['id']}",
        json={"starts_at": start.isoformat(), "ends_at": (start + timedelta(days=1)).isoformat()},
        headers=dealer.headers,
    )
    assert moved.status_code == 200, moved.text
    lot = (await market.client.get(f"/api/v1/lots/{auction['lots'][0]['id']}")).json()
    assert datetime.fromisoformat(lot["endsAt"]) == start + timedelta(days=1)
    assert lot["status"] == "scheduled"
    assert lot["bidCount"] == 1  # the pre-bid stays
    assert lot["leader"] == 1


async def test_cancelling_a_live_auction_stops_bidding_on_its_armed_lots(market: Market) -> None:
    auction, dealer = await live_auction(market)
    buyer, other = await market.member(), await market.member()
    url = f"/api/v1/auctions/{auction['id']}/bid"
    assert (await market.client.post(url, json=pre_bid(buyer.id, 11_000), headers=buyer.headers)).json()[
        "status"
    ] == "ACCEPTED"

    cancelled = await market.client.post(f"/api/v1/auctions/{auction['id']}/cancel", headers=dealer.headers)
    assert cancelled.status_code == 200, cancelled.text
    late = await market.client.post(url, json=pre_bid(other.id, 20_000), headers=other.headers)
    assert late.status_code == 200, late.text
    assert late.json()["status"] == "REJECTED"
    assert late.json()["reason"] == "closed"
    lot = (await market.client.get(f"/api/v1/lots/{auction['lots'][0]['id']}")).json()
    assert lot["status"] == "closed"
    assert lot["bidCount"] == 1


async def test_replacing_the_lots_forgets_the_old_armed_ones(market: Market) -> None:
    dealer = await market.dealer()
    auction = await market.created(dealer, [market.car(dealer)])
    old_lot = auction["lots"][0]["id"]
    assert (await market.client.get(f"/api/v1/lots/{old_lot}")).status_code == 200  # viewing arms it

    new_car = market.car(dealer)
    replaced = await market.client.patch(
        f"/api/v1/auctions/{auction['id']}",
        json={"lots": [{"vehicle_id": new_car, "starting_price": 5_000}]},
        headers=dealer.headers,
    )
    assert replaced.status_code == 200, replaced.text
    assert (await market.client.get(f"/api/v1/lots/{old_lot}")).status_code == 404
    new_lot = replaced.json()["data"]["lots"][0]["id"]
    assert (await market.client.get(f"/api/v1/lots/{new_lot}")).json()["currentPrice"] == 5_000.0
