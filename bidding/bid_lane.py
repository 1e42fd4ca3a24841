"""The bid lane: the two bid endpoints served as plain ASGI in front of the FastAPI router.

A bid is the hottest write of an event sale, and on it FastAPI's per-request machinery (routing, dependency
solving, body validation into a model, exception middleware) cost as much CPU as the bid itself (two Redis round
trips). The lane serves only the well-formed case: a POST to a bid path with a JSON body, a valid bearer token and a
configured bidding service. Everything else (no or bad token, a body that does not validate, a path id out of range,
another content type) falls through, body replayed, to the FastAPI routes, which remain the single source of the
API's error replies and of the OpenAPI document. Once a bid reaches the service it is answered here, errors
included: falling through then could count it twice against the rate limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import orjson
from pydantic import ValidationError

from bidding.api import AuctionBidIn, LotBidIn, bid_out
from bidding.service import BiddingService
from hub.errors import AppError, Unauthorized, error_body
from hub.security import ASGIApp, Message, Receive, Scope, Send
from marketplace.accounts import Accounts, CurrentUser

LOT_BID_PATH = re.compile(r"/api/v1/lots/([1-9][0-9]{0,18})/bids")
AUCTION_BID_PATH = re.compile(r"/api/v1/auctions/([1-9][0-9]{0,18})/bid")
MAX_ROW_ID = 2**62  # the routes' path bound (bidding.api.RowId)
MAX_IDEMPOTENCY_KEY = 200
JSON_HEADERS = [(b"content-type", b"application/json")]
LANE_HEADERS = frozenset((b"authorization", b"idempotency-key", b"content-type"))


class BidLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = _bid_route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        body, disconnected = await _read_body(receive)
        if disconnected:  # gone before its body arrived: no bid, no one to answer
            return
        bid = _well_formed_bid(scope, route, body)
        if bid is None:
            await self.app(scope, _replay(body, receive), send)
            return
        status, payload, headers = await _place(bid)
        await send({"type": "http.response.start", "status": status, "headers": _headers(payload, headers)})
        await send({"type": "http.response.body", "body": payload})


@dataclass(frozen=True, slots=True)
class _Bid:
    service: BiddingService
    user: CurrentUser
    path_id: int  # a lot's id, or an auction's when `body` is an AuctionBidIn
    body: LotBidIn | AuctionBidIn
    idempotency_key: str | None


def _bid_route(scope: Scope) -> tuple[Literal["lot", "auction"], int] | None:
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if path.endswith("/bids"):
        match = LOT_BID_PATH.fullmatch(path)
        kind: Literal["lot", "auction"] = "lot"
    elif path.endswith("/bid"):
        match = AUCTION_BID_PATH.fullmatch(path)
        kind = "auction"
    else:
        return None
    row_id = None if match is None else int(match.group(1))
    if row_id is None or row_id > MAX_ROW_ID:
        return None
    return kind, row_id


def _well_formed_bid(scope: Scope, route: tuple[Literal["lot", "auction"], int], body: bytes) -> _Bid | None:
    """The bid if the FastAPI route would accept the request as is; None sends it there for its error reply."""
    state = scope["app"].state
    if not getattr(state, "bid_lane", False):
        return None
    service: BiddingService | None = getattr(state, "bidding_service", None)
    accounts: Accounts | None = getattr(state, "accounts", None)
    if service is None or accounts is None:
        return None
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in LANE_HEADERS and name not in headers:  # the first of repeated headers, as Starlette reads them
            headers[name] = value
    scheme, _, credentials = headers.get(b"authorization", b"").partition(b" ")
    token = credentials.decode("latin-1") if scheme.lower() == b"bearer" and credentials else None
    raw_key = headers.get(b"idempotency-key")
    idempotency_key = None if raw_key is None else raw_key.decode("latin-1")
    if not _is_json(headers.get(b"content-type", b"")) or token is None:
        return None
    if idempotency_key is not None and len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        return None
    kind, path_id = route
    model = LotBidIn if kind == "lot" else AuctionBidIn
    try:
        user = accounts.authenticate(token)
        parsed = model.model_validate_json(body)
    except (Unauthorized, ValidationError):
        return None
    return _Bid(service, user, path_id, parsed, idempotency_key)


def _is_json(content_type: bytes) -> bool:
    """FastAPI's rule: only `application/json` or `application/*+json` bodies are read as JSON (none: not at all)."""
    maintype, _, subtype = content_type.partition(b";")[0].strip().lower().partition(b"/")
    return maintype == b"application" and (subtype == b"json" or subtype.endswith(b"+json"))


async def _place(bid: _Bid) -> tuple[int, bytes, dict[str, str] | None]:
    """What the FastAPI route would answer: the reply, or the service's refusal in the API's error shape."""
    body, service = bid.body, bid.service
    try:
        if isinstance(body, AuctionBidIn):
            lot_id, claimed_user_id = await service.lot_of_auction(bid.path_id, body.vehicleId), body.userId
        else:
            lot_id, claimed_user_id = bid.path_id, None
        reply = await service.place_bid(
            bid.user, lot_id, body.amount, body.currency, body.kind, bid.idempotency_key, claimed_user_id
        )
    except AppError as exc:
        return exc.status_code, orjson.dumps(error_body(exc.code, exc.message, **exc.details)), exc.headers
    return 200, bid_out(lot_id, reply).model_dump_json().encode(), None


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    replayed = False

    async def receive_again() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again


def _headers(payload: bytes, extra: dict[str, str] | None) -> list[tuple[bytes, bytes]]:
    headers = [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())]
    if extra:
        headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra.items()]
    return headers
