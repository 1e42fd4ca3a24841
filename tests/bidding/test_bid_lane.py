"""The bid lane (plain ASGI in front of FastAPI): which requests it serves, and that its replies are the routes'."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from bidding.bid_lane import BidLane, _bid_route, _well_formed_bid
from tests.bidding.live_server import RATE_LIMIT, LiveApi, live_api, live_auction
from tests.marketplace.test_auctions import Market


@pytest.fixture(scope="module")
def api(database_factory: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    with live_api(database_factory, tmp_path_factory.mktemp("bid-lane"), "bidlane") as live:
        yield live


@pytest.fixture
async def market(api: LiveApi) -> AsyncIterator[Market]:
    api.app.state.bid_lane = True
    async with api.market() as market:
        yield market


def scope(api: LiveApi, path: str, headers: dict[str, str], method: str = "POST") -> dict[str, Any]:
    encoded = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return {"type": "http", "method": method, "path": path, "headers": encoded, "app": api.app}


@pytest.mark.parametrize(
    ("method", "path", "route"),
    [
        ("POST", "/api/v1/lots/7/bids", ("lot", 7)),
        ("POST", "/api/v1/auctions/12/bid", ("auction", 12)),
        ("POST", f"/api/v1/lots/{2**62}/bids", ("lot", 2**62)),
        ("POST", f"/api/v1/lots/{2**62 + 1}/bids", None),  # out of the routes' range: their 422
        ("POST", "/api/v1/lots/0/bids", None),
        ("POST", "/api/v1/lots/007/bids", None),
        ("POST", "/api/v1/lots/abc/bids", None),
        ("POST", "/api/v1/lots/7/bids/", None),
        ("POST", "/api/v1/auctions/12/bids", None),
        ("GET", "/api/v1/lots/7/bids", None),
        ("POST", "/api/v1/lots/7", None),
    ],
)
def test_only_the_two_bid_paths_enter_the_lane(
    api: LiveApi, method: str, path: str, route: tuple[str, int] | None
) -> None:
    assert _bid_route(scope(api, path, {}, method)) == route


async def test_only_well_formed_bids_are_served_by_the_lane(market: Market, api: LiveApi) -> None:
    buyer = await market.member()
    body = b'{"amount": 12000, "currency": "USD"}'
    json_headers = {**buyer.headers, "Content-Type": "application/json"}

    def served(headers: dict[str, str], payload: bytes = body, route: tuple[Any, int] = ("lot", 1)) -> bool:
        return _well_formed_bid(scope(api, "/", headers), route, payload) is not None

    assert served(json_headers)
    assert served({**buyer.headers, "Content-Type": "application/json; charset=utf-8"})
    assert served({**buyer.headers, "Content-Type": "application/vnd.bids+json"})
    assert served({**json_headers, "Idempotency-Key": "k" * 200})
    assert served({"authorization": "bearer " + buyer.access_token, "content-type": "application/json"})
    assert served(json_headers, b'{"userId": 5, "amount": "12000.50", "currency": "USD"}', ("auction", 3))

    refused = [
        ({"Content-Type": "application/json"}, body),  # no token
        ({"Authorization": "Bearer not-a-token"}, body),
        ({"Authorization": "Basic " + buyer.access_token}, body),
        ({**json_headers, "Idempotency-Key": "k" * 201}, body),
        ({**buyer.headers, "Content-Type": "text/plain"}, body),
        (buyer.headers, body),  # no content type: FastAPI does not read the body as JSON
        (json_headers, b'{"amount": 12000}'),
        (json_headers, b'{"amount": -1, "currency": "USD"}'),
        (json_headers, b'{"amount": 1, "currency": "USD", "extra": 1}'),
        (json_headers, b"not json"),
        (json_headers, b""),
    ]
    for headers, payload in refused:
        assert not served(headers, payload), (headers, payload)
    assert not served(json_headers, body, ("auction", 3))  # the auction path needs the seed's userId
    tokens = [(b"authorization", b"Bearer not-a-token"), (b"authorization", f"Bearer {buyer.access_token}".encode())]
    repeated = scope(api, "/", {"Content-Type": "application/json"})
    repeated["headers"] += tokens
    assert _well_formed_bid(repeated, ("lot", 1), body) is None  # Starlette reads the first: so does the lane

    api.app.state.bid_lane = False
    assert not served(json_headers)


def comparable(response: httpx.Response) -> tuple[int, bytes, dict[str, str]]:
    headers = {name: value for name, value in response.headers.items() if name not in ("date", "server")}
    return response.status_code, response.content, headers


async def test_lane_replies_are_byte_for_byte_the_routes_replies(market: Market, api: LiveApi) -> None:
    auction, _ = await live_auction(market)
    buyer = await market.member()
    url = f"/api/v1/lots/{auction['lots'][0]['id']}/bids"
    retry = {**buyer.headers, "Idempotency-Key": "same-bid"}
    body = {"amount": 12_000, "currency": "USD"}

    lane_reply = await market.client.post(url, json=body, headers=retry)
    api.app.state.bid_lane = False
    routes_reply = await market.client.post(url, json=body, headers=retry)  # the stored reply, through the routes
    assert lane_reply.json()["status"] == "ACCEPTED"
    assert comparable(lane_reply) == comparable(routes_reply)

    api.app.state.bid_lane = True
    unknown_lot = await market.client.post("/api/v1/lots/999999/bids", json=body, headers=buyer.headers)
    api.app.state.bid_lane = False
    assert comparable(unknown_lot) == comparable(
        await market.client.post("/api/v1/lots/999999/bids", json=body, headers=buyer.headers)
    )
    assert unknown_lot.status_code == 404

    limited = await market.member()
    for amount in range(RATE_LIMIT):
        raised = {"amount": 20_000 + amount * 100, "currency": "USD"}
        await market.client.post(url, json=raised, headers=limited.headers)
    routes_429 = await market.client.post(url, json=body, headers=limited.headers)
    api.app.state.bid_lane = True
    lane_429 = await market.client.post(url, json=body, headers=limited.headers)
    assert lane_429.status_code == routes_429.status_code == 429
    assert lane_429.json()["error"]["code"] == routes_429.json()["error"]["code"] == "rate_limited"
    assert set(lane_429.headers) - {"date", "server"} == set(routes_429.headers) - {"date", "server"}


async def test_a_bid_the_lane_passes_on_keeps_its_body(market: Market) -> None:
    auction, _ = await live_auction(market)
    buyer = await market.member()
    url = f"/api/v1/auctions/{auction['id']}/bid"
    chunks = [b'{"userId": ', str(buyer.id).encode(), b', "amount": 12000, "currency": "USD", "kind": "sniper"}']

    async def chunked() -> AsyncIterator[bytes]:  # streamed in pieces: the lane reads them all, then replays them
        for chunk in chunks:
            yield chunk

    headers = {**buyer.headers, "Content-Type": "application/json"}
    refused = await market.client.post(url, content=chunked(), headers=headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["problems"][0]["parameter"] == "kind", refused.text
    chunks[-1] = b', "amount": 12000, "currency": "USD"}'
    accepted = await market.client.post(url, content=chunked(), headers=headers)
    assert accepted.json()["status"] == "ACCEPTED"


async def test_a_client_gone_mid_body_places_no_bid_and_gets_no_reply(api: LiveApi) -> None:
    inner_calls: list[object] = []
    sent: list[object] = []
    messages: Iterator[dict[str, Any]] = iter(
        [{"type": "http.request", "body": b'{"amount": 120', "more_body": True}, {"type": "http.disconnect"}]
    )

    async def inner(*args: object) -> None:
        inner_calls.append(args)

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: object) -> None:
        sent.append(message)

    headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}
    await BidLane(inner)(scope(api, "/api/v1/lots/1/bids", headers), receive, send)
    assert inner_calls == sent == []
