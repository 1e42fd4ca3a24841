"""GET /api/v1/me/bids/stream: a signed-in buyer hears that they were outbid, resumes after a disconnect with
Last-Event-ID, and nobody else hears it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest

from tests.bidding.live_server import LiveApi, live_api, live_auction
from tests.bidding.test_feed import SseReader
from tests.marketplace.api_client import Member
from tests.marketplace.test_auctions import Market

STREAM = "/api/v1/me/bids/stream"


@pytest.fixture(scope="module")
def api(database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(database_factory, tmp_path_factory.mktemp("outbid"), "outbid") as live:
        yield live


@pytest.fixture
async def market(api: LiveApi) -> AsyncIterator[Market]:
    async with api.market() as market:
        yield market


async def max_bid(market: Market, who: Member, lot_id: int, amount: int) -> None:
    response = await market.client.post(
        f"/api/v1/lots/{lot_id}/bids", json={"amount": amount, "currency": "USD"}, headers=who.headers
    )
    assert response.json()["status"] == "ACCEPTED", response.text


async def test_a_buyer_hears_they_were_outbid_and_resumes_after_a_disconnect(api: LiveApi, market: Market) -> None:
    auction, _ = await live_auction(market)
    lot = auction["lots"][0]["id"]
    alice, bob = await market.member(), await market.member()
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
        async with (
            client.stream("GET", STREAM, headers=alice.headers) as response,
            client.stream(
                "GET", STREAM, params={"access_token": alice.headers["Authorization"].split()[1]}
            ) as by_query,
            client.stream("GET", STREAM, headers=bob.headers) as bobs,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            readers = SseReader(response), SseReader(by_query), SseReader(bobs)
            for reader in readers:
                assert (await reader.next()).event == "ready"
            await max_bid(market, alice, lot, 12_000)
            await max_bid(market, bob, lot, 13_000)  # takes the lead from alice
            for reader in readers[:2]:
                outbid = await reader.next()
                assert outbid.event == "outbid"
                assert (outbid.data["lotId"], outbid.data["currentPrice"]) == (lot, 12_100.0)
                assert isinstance(outbid.data["at"], int)  # Unix ms, like the lot feed's times
                assert outbid.id
            first_id = outbid.id
            await readers[2].nothing_more(0.6)  # bob leads: nothing for him

        await max_bid(market, alice, lot, 20_000)  # alice leads again: bob is outbid
        await max_bid(market, bob, lot, 25_000)  # and alice once more, while she is disconnected
        headers = {**alice.headers, "Last-Event-ID": str(first_id)}
        async with client.stream("GET", STREAM, headers=headers) as resumed:
            reader = SseReader(resumed)
            missed = await reader.next()
            assert (missed.event, missed.data["lotId"], missed.data["currentPrice"]) == (
                "outbid",
                lot,
                20_250.0,
            )  # the 250 band above 20,000
            await reader.nothing_more(0.6)


async def test_the_stream_needs_a_signed_in_user(api: LiveApi) -> None:
    async with httpx.AsyncClient(base_url=api.base_url, timeout=10) as client:
        anonymous = await client.get(STREAM)
        assert anonymous.status_code == 401
        assert anonymous.json()["status"] == "error"
        forged = await client.get(STREAM, params={"access_token": "not-a-token"})
        assert forged.status_code == 401
